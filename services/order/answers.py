"""What order's read routes answer (`GET /orders/{order_id}`, `GET /gift-rules[/{rule_id}]`), as
models: documented in the OpenAPI document with a real example each, and checked by FastAPI against
every real answer (`flexchain.answers`). They mirror `order_view` and `rule_view` in `views.py`, and the
event records (`to_record`) an order's `history` is made of."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from flexchain.answers import Answer, ReplaySummary

Channel = Literal["live", "short_video", "article", "mini_program"]  # R-ORD-1
GiftTier = Literal["base", "interaction", "surprise"]  # R-ORD-3
Cents = Annotated[int, Field(description="cents (fen)")]
TimeMs = Annotated[int, Field(description="business time, ms since the epoch (UTC)")]
REFUND_REASON = "R-ORD-2a: no_reason, defect, damaged or late; campaign_failed for a presale refund (R-PRE-7)"


# --- records inside answers ------------------------------------------------------------------------


class Line(Answer):
    """One order line (R-ORD-1)."""

    EXAMPLE = {"sku": "mask-86d57a", "qty": 4, "unit_price": 5900}

    sku: str
    qty: int
    unit_price: Cents = Field(description="cents (fen) per unit")


class GiftLine(Answer):
    """A gift attached to an order (R-ORD-3): free to the member, `unit_cost` cents to the merchant."""

    EXAMPLE = {
        "rule_id": "eye-86d57a",
        "sku": "eyetrial-86d57a",
        "qty": 1,
        "unit_cost": 600,
        "main_sku": "mask-86d57a",
        "tier": "base",
        "consumable": False,
        "fallback_sku": "cloth-86d57a",
        "fallback_unit_cost": 200,
        "main_unit_cost": 2500,
    }

    rule_id: str
    sku: str
    qty: int
    unit_cost: Cents
    main_sku: str = Field(description="the main product whose line brings the gift")
    tier: GiftTier
    consumable: bool = Field(description="written off, not returned, when its main line is refunded after shipping (R-ORD-2a)")
    fallback_sku: str | None = Field(description="the gift sent instead if this one is out of stock (R-ORD-5)")
    fallback_unit_cost: Cents
    main_unit_cost: Cents = Field(description="the main product's unit cost, for the cost cap (R-ORD-4)")


class RefundedLine(Answer):
    """Units of one line refunded, the amount, and whether goods come back (R-ORD-2a)."""

    EXAMPLE = {"sku": "mask-01", "qty": 2, "reason": "defect", "amount": 10620, "goods_returned": True}

    sku: str
    qty: int
    reason: str = Field(description=REFUND_REASON)
    amount: Cents
    goods_returned: bool = Field(description="the order had shipped: the goods come back to the warehouse")


class RefundedGift(Answer):
    """A gift taken back with its main line (R-ORD-2a): returned goods, a released hold, or written off."""

    EXAMPLE = {"rule_id": "eye", "sku": "cloth", "qty": 1, "goods_returned": True, "written_off": False, "reason": "defect"}

    rule_id: str
    sku: str
    qty: int
    goods_returned: bool
    written_off: bool = Field(description="a consumable gift, shipped: not returned, written off")
    reason: str = Field(description="the refund reason of its main line; " + REFUND_REASON)


class OrderGift(Answer):
    """One rule's gift on an order, as it stands (R-ORD-3..5, R-ORD-2a)."""

    EXAMPLE = {"sku": "cloth-86d57a", "qty": 1, "unit_cost": 200, "status": "released", "taken_back": 0}

    sku: str = Field(description="the gift sku, or the rule's fallback gift once substituted (R-ORD-5)")
    qty: int
    unit_cost: Cents
    status: Literal["pending", "reserved", "omitted", "skipped", "released"] = Field(
        description="pending: stock asked; reserved: held (ships with the order); omitted: out of stock, no "
        "fallback (R-ORD-5); skipped: over the cost cap at the final price (R-ORD-4); released: the order was "
        "rejected or cancelled"
    )
    taken_back: int = Field(description="gift units taken back by refunds of the main line (R-ORD-2a)")


class GiftPerformance(Answer):
    """A gift rule's figures (R-ORD-6), over every partition: ratios and ROI as decimal strings."""

    EXAMPLE = {
        "gifts_given": 1,
        "gifts_taken_back": 1,
        "recipients": 1,
        "acceptance": "0.0000",
        "conversion": "0.0000",
        "rebuy": "1.0000",
        "ltv_uplift": 4800,
        "gift_cost": 600,
        "roi": "8.0000",
    }

    gifts_given: int = Field(description="gift units shipped")
    gifts_taken_back: int = Field(description="gift units taken back by refunds")
    recipients: int = Field(description="members who received the gift")
    acceptance: str = Field(description='1 − units taken back ÷ units shipped; "" while none shipped')
    conversion: str = Field(description="recipients who later paid for the rule's `converts_to` product ÷ recipients")
    rebuy: str = Field(description="recipients who paid for another order later ÷ recipients")
    ltv_uplift: Cents = Field(
        description="cents per member: mean later net spend of a recipient − that of a member without the gift"
    )
    gift_cost: Cents = Field(description="cost of the gifts shipped")
    roi: str = Field(
        description='LTV uplift × recipients ÷ gift cost; "" while no cost; below 1.2 suggests a review, 1.5 is healthy'
    )


# --- an order's history: its events, each with its type ---------------------------------------------


class OrderPlacedEntry(Answer):
    """`OrderPlaced`: the order was placed at list prices; its lines await their answers."""

    EXAMPLE = {
        "event_type": "OrderPlaced",
        "order_id": "C-86d57a",
        "member_id": "m-86d57a",
        "channel": "live",
        "lines": [{"sku": "mask-86d57a", "qty": 4, "unit_price": 5900}, {"sku": "serum-86d57a", "qty": 40, "unit_price": 12900}],
        "distributor_id": None,
        "campaign_id": None,
        "total": 539600,
        "placed_at": 1795000000000,
        "awaiting": ["stock", "loyalty"],
        "group_id": None,
        "gifts": [GiftLine.EXAMPLE],
    }

    event_type: Literal["OrderPlaced"]
    order_id: str
    member_id: str
    channel: Channel
    lines: list[Line]
    distributor_id: str | None
    campaign_id: str | None
    total: Cents
    placed_at: TimeMs
    awaiting: list[Literal["stock", "presale", "loyalty"]] = Field(
        description="the answers the order waits for: stock (inventory), presale (the campaign's price), loyalty "
        "(the member's tier discount, R-LOY-1)"
    )
    group_id: str | None = Field(description="a presale campaign's group (R-PRE-3)")
    gifts: list[GiftLine] = Field(description="the gifts attached at placement (R-ORD-3, R-ORD-4)")


class OrderLineReservedEntry(Answer):
    """`OrderLineReserved`: stock for one line is held."""

    EXAMPLE = {"event_type": "OrderLineReserved", "order_id": "C-86d57a", "sku": "mask-86d57a"}

    event_type: Literal["OrderLineReserved"]
    order_id: str
    sku: str


class OrderLineRejectedEntry(Answer):
    """`OrderLineRejected`: stock for one line could not be held."""

    EXAMPLE = {
        "event_type": "OrderLineRejected",
        "order_id": "C-86d57a",
        "sku": "serum-86d57a",
        "reason": "only 28 available, 40 requested",
    }

    event_type: Literal["OrderLineRejected"]
    order_id: str
    sku: str
    reason: str


class OrderConfirmedEntry(Answer):
    """`OrderConfirmed`: every answer is in; `total` at the final unit prices is due by `pay_by`."""

    EXAMPLE = {
        "event_type": "OrderConfirmed",
        "order_id": "o-1",
        "pay_by": 1795001800000,
        "total": 22230,
        "lines": [{"sku": "mask-01", "qty": 2, "unit_price": 5310}, {"sku": "serum-01", "qty": 1, "unit_price": 11610}],
    }

    event_type: Literal["OrderConfirmed"]
    order_id: str
    pay_by: TimeMs
    total: Cents
    lines: list[Line] = Field(description="the final unit prices; [] in records of the first release (the placed prices stand)")


class OrderPresaleAnsweredEntry(Answer):
    """`OrderPresaleAnswered`: the campaign's phase price per unit (R-PRE-3), or why it refused."""

    EXAMPLE = {
        "event_type": "OrderPresaleAnswered",
        "order_id": "p-1",
        "accepted": True,
        "unit_price": 4800,
        "phase": "early",
        "reason": "",
    }

    event_type: Literal["OrderPresaleAnswered"]
    order_id: str
    accepted: bool
    unit_price: Cents
    phase: str
    reason: str = Field(description='why the campaign refused; "" when accepted')


class OrderDiscountAppliedEntry(Answer):
    """`OrderDiscountApplied`: the member's tier discount in force when the order was placed (R-LOY-1)."""

    EXAMPLE = {"event_type": "OrderDiscountApplied", "order_id": "C-86d57a", "tier": "regular", "discount_rate": "1.0"}

    event_type: Literal["OrderDiscountApplied"]
    order_id: str
    tier: str
    discount_rate: str = Field(description='a decimal string: the share of the price paid ("0.9" = 10 % off)')


class OrderRejectedEntry(Answer):
    """`OrderRejected`: a line could not be reserved, or the campaign refused; held stock goes back."""

    EXAMPLE = {
        "event_type": "OrderRejected",
        "order_id": "C-86d57a",
        "reason": "stock not available (serum-86d57a: only 28 available, 40 requested)",
        "release_skus": ["mask-86d57a", "cloth-86d57a"],
    }

    event_type: Literal["OrderRejected"]
    order_id: str
    reason: str
    release_skus: list[str] = Field(description="skus (lines and gifts) whose holds go back")


class OrderPaidEntry(Answer):
    """`OrderPaid`: payment received for `lines` at their final unit prices."""

    EXAMPLE = {
        "event_type": "OrderPaid",
        "order_id": "o-1",
        "amount": 22230,
        "payment_ref": "wx-42",
        "paid_at": 1795000060000,
        "member_id": "m-1001",
        "distributor_id": "lin",
        "campaign_id": None,
        "lines": [{"sku": "mask-01", "qty": 2, "unit_price": 5310}, {"sku": "serum-01", "qty": 1, "unit_price": 11610}],
    }

    event_type: Literal["OrderPaid"]
    order_id: str
    amount: Cents
    payment_ref: str
    paid_at: TimeMs
    member_id: str = Field(description='"" in records of the first release')
    distributor_id: str | None
    campaign_id: str | None
    lines: list[Line] = Field(description="[] in records of the first release")


class OrderShippedEntry(Answer):
    """`OrderShipped`: the goods left the warehouse, with the gifts in the parcel."""

    EXAMPLE = {
        "event_type": "OrderShipped",
        "order_id": "o-1",
        "tracking": "SF123",
        "skus": ["mask-01", "serum-01", "cloth"],
        "campaign_id": None,
        "gifts": [
            {
                "rule_id": "eye",
                "sku": "cloth",
                "qty": 1,
                "unit_cost": 200,
                "main_sku": "mask-01",
                "tier": "base",
                "consumable": False,
                "fallback_sku": "cloth",
                "fallback_unit_cost": 200,
                "main_unit_cost": 2500,
            }
        ],
    }

    event_type: Literal["OrderShipped"]
    order_id: str
    tracking: str
    skus: list[str] = Field(description="the skus shipped: lines not wholly refunded, then gifts")
    campaign_id: str | None
    gifts: list[GiftLine] = Field(description="the gifts in the parcel (R-ORD-6 counts them)")


class OrderDeliveredEntry(Answer):
    """`OrderDelivered`: the member received the goods; no-reason returns are open until `return_window_ends`."""

    EXAMPLE = {
        "event_type": "OrderDelivered",
        "order_id": "o-1",
        "delivered_at": 1795086400000,
        "return_window_ends": 1795691200000,
    }

    event_type: Literal["OrderDelivered"]
    order_id: str
    delivered_at: TimeMs
    return_window_ends: TimeMs


class OrderCompletedEntry(Answer):
    """`OrderCompleted`: the return window closed (R-ORD-2)."""

    EXAMPLE = {
        "event_type": "OrderCompleted",
        "order_id": "o-1",
        "completed_at": 1795777600000,
        "member_id": "m-1001",
        "distributor_id": "lin",
        "campaign_id": None,
    }

    event_type: Literal["OrderCompleted"]
    order_id: str
    completed_at: TimeMs
    member_id: str = Field(description='"" in records of the first release')
    distributor_id: str | None
    campaign_id: str | None


class OrderCancelledEntry(Answer):
    """`OrderCancelled`: cancelled before shipping; held stock goes back; `refund_amount` if it was paid."""

    EXAMPLE = {
        "event_type": "OrderCancelled",
        "order_id": "o-2",
        "reason": "changed my mind",
        "release_skus": ["mask-01"],
        "refund_amount": 0,
        "member_id": "m-1002",
        "distributor_id": None,
        "campaign_id": None,
    }

    event_type: Literal["OrderCancelled"]
    order_id: str
    reason: str
    release_skus: list[str]
    refund_amount: Cents
    member_id: str = Field(description='"" in records of the first release')
    distributor_id: str | None
    campaign_id: str | None


class OrderRefundedEntry(Answer):
    """`OrderRefunded`: lines refunded, and the gifts taken back with them (R-ORD-2a)."""

    EXAMPLE = {
        "event_type": "OrderRefunded",
        "order_id": "o-1",
        "refund_id": "r-1",
        "lines": [RefundedLine.EXAMPLE],
        "amount": 10620,
        "fully_refunded": False,
        "member_id": "m-1001",
        "distributor_id": "lin",
        "campaign_id": None,
        "gifts": [RefundedGift.EXAMPLE],
        "paid_total": 22230,
        "refunded_before": 0,
    }

    event_type: Literal["OrderRefunded"]
    order_id: str
    refund_id: str
    lines: list[RefundedLine]
    amount: Cents
    fully_refunded: bool = Field(description="nothing paid remains")
    member_id: str = Field(description='"" in records of the first release')
    distributor_id: str | None
    campaign_id: str | None
    gifts: list[RefundedGift]
    paid_total: Cents = Field(description="cents paid for the order; 0 in older records")
    refunded_before: Cents = Field(description="cents refunded before this refund (cancellations included); 0 in older records")


class GiftAttachedEntry(Answer):
    """`GiftAttached`: a gift joined the order after placement (a surprise window announced afterwards, R-ORD-3)."""

    EXAMPLE = {
        "event_type": "GiftAttached",
        "order_id": "o-3",
        "gift": {
            "rule_id": "surp",
            "sku": "comb",
            "qty": 1,
            "unit_cost": 100,
            "main_sku": "mask-01",
            "tier": "surprise",
            "consumable": False,
            "fallback_sku": None,
            "fallback_unit_cost": 0,
            "main_unit_cost": 2500,
        },
    }

    event_type: Literal["GiftAttached"]
    order_id: str
    gift: GiftLine


class GiftReservedEntry(Answer):
    """`GiftReserved`: stock for a gift is held."""

    EXAMPLE = {"event_type": "GiftReserved", "order_id": "C-86d57a", "rule_id": "eye-86d57a", "sku": "cloth-86d57a"}

    event_type: Literal["GiftReserved"]
    order_id: str
    rule_id: str
    sku: str


class GiftSubstitutedEntry(Answer):
    """`GiftSubstituted`: the gift was out of stock; the rule's fallback gift is asked for instead (R-ORD-5)."""

    EXAMPLE = {
        "event_type": "GiftSubstituted",
        "order_id": "C-86d57a",
        "rule_id": "eye-86d57a",
        "from_sku": "eyetrial-86d57a",
        "to_sku": "cloth-86d57a",
        "qty": 1,
        "unit_cost": 200,
        "reason": "gift eyetrial-86d57a out of stock (only 0 available, 1 requested)",
    }

    event_type: Literal["GiftSubstituted"]
    order_id: str
    rule_id: str
    from_sku: str
    to_sku: str
    qty: int
    unit_cost: Cents
    reason: str


class GiftOmittedEntry(Answer):
    """`GiftOmitted`: no gift of this rule comes with the order (R-ORD-5); the order goes on."""

    EXAMPLE = {
        "event_type": "GiftOmitted",
        "order_id": "o-3",
        "rule_id": "eye",
        "sku": "cloth",
        "reason": "gift cloth out of stock (only 0 available, 1 requested)",
    }

    event_type: Literal["GiftOmitted"]
    order_id: str
    rule_id: str
    sku: str
    reason: str


class GiftRuleSkippedEntry(Answer):
    """`GiftRuleSkipped`: a qualifying rule was not applied: over the cost cap (R-ORD-4), or its gift is in the order."""

    EXAMPLE = {
        "event_type": "GiftRuleSkipped",
        "order_id": "o-1",
        "rule_id": "big",
        "gift_sku": "gold",
        "reason": "gift gold costs 90000 cents, over 15% of the serum-01 line's gross margin 10400 (1560.00) at the list price",
    }

    event_type: Literal["GiftRuleSkipped"]
    order_id: str
    rule_id: str
    gift_sku: str
    reason: str


HistoryEntry = Annotated[
    OrderPlacedEntry
    | OrderLineReservedEntry
    | OrderLineRejectedEntry
    | OrderConfirmedEntry
    | OrderPresaleAnsweredEntry
    | OrderDiscountAppliedEntry
    | OrderRejectedEntry
    | OrderPaidEntry
    | OrderShippedEntry
    | OrderDeliveredEntry
    | OrderCompletedEntry
    | OrderCancelledEntry
    | OrderRefundedEntry
    | GiftAttachedEntry
    | GiftReservedEntry
    | GiftSubstitutedEntry
    | GiftOmittedEntry
    | GiftRuleSkippedEntry,
    Field(discriminator="event_type"),
]


# --- the answers ------------------------------------------------------------------------------------


class Order(Answer):
    """An order with its history (`GET /orders/{order_id}`); with `?as_of=`, as it stood then (R-X-4)."""

    EXAMPLE = {
        "order_id": "C-86d57a",
        "status": "rejected",
        "member_id": "m-86d57a",
        "channel": "live",
        "distributor_id": None,
        "campaign_id": None,
        "lines": [{"sku": "mask-86d57a", "qty": 4, "unit_price": 5900}, {"sku": "serum-86d57a", "qty": 40, "unit_price": 12900}],
        "total": 539600,
        "paid": 0,
        "refunded_amount": 0,
        "refunded_qty": {},
        "pay_by": None,
        "return_window_ends": None,
        "reservations": {"serum-86d57a": "rejected", "mask-86d57a": "reserved"},
        "tier": "regular",
        "discount_rate": "1.0",
        "gifts": {"eye-86d57a": OrderGift.EXAMPLE},
        "history": [OrderPlacedEntry.EXAMPLE, OrderRejectedEntry.EXAMPLE],
    }

    order_id: str
    status: Literal["placed", "confirmed", "rejected", "paid", "shipped", "delivered", "completed", "cancelled", "refunded"] = (
        Field(description="R-ORD-2's life cycle; refunded: every line wholly refunded (R-ORD-2a)")
    )
    member_id: str
    channel: Channel
    distributor_id: str | None = Field(description="the referring distributor, if any")
    campaign_id: str | None = Field(description="the presale campaign, if any (priced by its phase price, R-PRE-3)")
    lines: list[Line] = Field(description="list prices until confirmed, then the final unit prices")
    total: Cents = Field(description="cents: the lines' total; the final one once confirmed")
    paid: Cents = Field(description="cents paid (0 until paid)")
    refunded_amount: Cents = Field(description="cents refunded, a cancellation's refund included")
    refunded_qty: dict[str, int] = Field(description="units refunded so far, by sku (R-ORD-2a)")
    pay_by: TimeMs | None = Field(description="the payment deadline (the hold time, R-ORD-2); null until confirmed")
    return_window_ends: TimeMs | None = Field(description="end of the 7-day no-reason return window; null until delivered")
    reservations: dict[str, Literal["reserved", "rejected"]] = Field(
        description="inventory's answer per line, by sku (gifts are under `gifts`); empty for a presale order"
    )
    tier: str | None = Field(
        description="the member's loyalty tier at placement (R-LOY-1), not a gift tier; null unless the tier discount was asked"
    )
    discount_rate: str | None = Field(
        description='the tier discount, a decimal string ("0.9" = 10 % off, R-LOY-1); null like `tier`'
    )
    gifts: dict[str, OrderGift] = Field(description="the order's gifts, by rule id (R-ORD-3..5)")
    history: list[HistoryEntry] = Field(
        description="the order's events, oldest first: each its type (`event_type`) and record; refusals are not in it"
    )
    as_of: ReplaySummary | None = Field(None, description="only with `?as_of=` (R-X-4): what the answer was folded from")


class GiftRule(Answer):
    """A gift rule (R-ORD-3..5) as its aggregate holds it, with its figures (R-ORD-6)."""

    EXAMPLE = {
        "rule_id": "eye-86d57a",
        "version": 1,
        "tier": "base",
        "main_sku": "mask-86d57a",
        "main_unit_cost": 2500,
        "gift_sku": "eyetrial-86d57a",
        "gift_unit_cost": 600,
        "gift_qty": 1,
        "fallback_sku": "cloth-86d57a",
        "fallback_unit_cost": 200,
        "consumable": False,
        "converts_to": "mask-86d57a",
        "channels": ["live", "short_video"],
        "members": [],
        "window_start": None,
        "window_end": None,
        "active": True,
        "replicated": True,
        "review_suggested": False,
        "performance": GiftPerformance.EXAMPLE,
    }

    rule_id: str
    version: int = Field(description="grows with every change of the rule")
    tier: GiftTier = Field(description="R-ORD-3: base (every qualifying order), interaction (granted members), surprise (window)")
    main_sku: str
    main_unit_cost: Cents
    gift_sku: str
    gift_unit_cost: Cents
    gift_qty: int
    fallback_sku: str | None = Field(description="sent instead of an out-of-stock gift (R-ORD-5)")
    fallback_unit_cost: Cents
    consumable: bool = Field(description="written off, not returned, when its main line is refunded after shipping (R-ORD-2a)")
    converts_to: str = Field(description="the full-size product whose later purchase counts as conversion (R-ORD-6)")
    channels: list[Channel] = Field(description="the channels whose orders the rule applies to")
    members: list[str] = Field(description="interaction tier: the members granted the gift")
    window_start: TimeMs | None = Field(description="surprise tier: the announced window's start; null until announced")
    window_end: TimeMs | None = Field(description="surprise tier: the announced window's end (exclusive)")
    active: bool = Field(description="false once retired: no new gifts")
    replicated: bool = Field(description="every partition holds this version: it applies to every new order")
    review_suggested: bool = Field(description="R-ORD-6: ROI fell below 1.2, and has not been healthy (≥ 1.5) since")
    performance: GiftPerformance | None = Field(description="null until the read model has folded the rule")
