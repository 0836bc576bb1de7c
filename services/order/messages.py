"""Order's commands (on `order.commands`) and events (on `order.events`), keyed by order id."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar

from flexchain.messages import Message
from flexchain.serde import Upcaster, filling, lacking

CHANNELS = ("live", "short_video", "article", "mini_program")  # R-ORD-1
REFUND_REASONS = ("no_reason", "defect", "damaged", "late")  # R-ORD-2a: what a member may give
GIFT_TIERS = ("base", "interaction", "surprise")  # R-ORD-3
GIFT_CHANNELS = ("live", "short_video")  # the channels a gift rule applies to by default (R-ORD-3)
PRESALE_REFUND_REASON = "campaign_failed"  # a refund the presale service issues (R-PRE-7)


class OrderMessage(Message):
    KEY: ClassVar[str] = "order_id"
    SERVICE: ClassVar[str] = "order"


class GiftRuleMessage(OrderMessage):
    """Decided by the rule's own aggregate (keyed by rule id), on the partition the rule hashes to."""

    KEY: ClassVar[str] = "rule_id"


class PartitionMessage(OrderMessage):
    KEY: ClassVar[str] = ""  # broadcast to every partition / kept by each partition


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderLine:
    """One line: `unit_price` in cents (fen)."""

    sku: str
    qty: int
    unit_price: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundLine:
    """Units of one line to refund, and why."""

    sku: str
    qty: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundedLine:
    """Units of one line refunded, the amount in cents, and whether goods come back."""

    sku: str
    qty: int
    reason: str
    amount: int
    goods_returned: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftRule:
    """A gift rule (R-ORD-3): `gift_qty` of `gift_sku` with every qualifying order of `main_sku`.

    Costs are unit costs in cents; `version` grows with every change; `converts_to` is the full-size
    product whose later purchase counts as the gift's conversion (R-ORD-6); a `consumable` gift is
    written off, not returned, when its main line is refunded after shipping (R-ORD-2a)."""

    rule_id: str
    version: int
    tier: str
    main_sku: str
    main_unit_cost: int
    gift_sku: str
    gift_unit_cost: int
    gift_qty: int
    fallback_sku: str | None
    fallback_unit_cost: int
    consumable: bool
    converts_to: str
    channels: list[str]
    members: list[str]
    window_start: int | None
    window_end: int | None
    active: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftLine:
    """A gift attached to an order: free to the member, `unit_cost` cents to the merchant."""

    rule_id: str
    sku: str
    qty: int
    unit_cost: int
    main_sku: str
    tier: str
    consumable: bool
    fallback_sku: str | None = None
    fallback_unit_cost: int = 0
    main_unit_cost: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundedGift:
    """A gift taken back with its main line (R-ORD-2a): returned goods, a released hold, or written off."""

    rule_id: str
    sku: str
    qty: int
    goods_returned: bool
    written_off: bool
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftPerformance:
    """A gift rule's figures (R-ORD-6); rates and ROI as decimal strings, cost in cents."""

    gifts_given: int
    gifts_taken_back: int
    recipients: int
    acceptance: str
    conversion: str
    rebuy: str
    ltv_uplift: int
    gift_cost: int
    roi: str


# --- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceOrder(OrderMessage):
    """A member orders lines through a channel (R-ORD-1)."""

    order_id: str
    member_id: str
    channel: str
    lines: list[OrderLine]
    distributor_id: str | None = None
    campaign_id: str | None = None
    group_id: str | None = None  # a three-person group of a presale campaign (R-PRE-3)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordLineReservation(OrderMessage):
    """Inventory's answer for one line (routed from `inventory.events`)."""

    order_id: str
    sku: str
    reserved: bool
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PayOrder(OrderMessage):
    """Payment received for a confirmed order; `amount` in cents must equal the order total."""

    order_id: str
    amount: int
    payment_ref: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipOrder(OrderMessage):
    """The order left the warehouse."""

    order_id: str
    tracking: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmDelivery(OrderMessage):
    """The member received the order; the 7-day no-reason return window starts."""

    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelOrder(OrderMessage):
    """Cancel before shipping (R-ORD-2)."""

    order_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundOrder(OrderMessage):
    """Refund some or all lines, each with a reason (R-ORD-2, R-ORD-2a)."""

    order_id: str
    refund_id: str
    lines: list[RefundLine]


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckOrderTimers(OrderMessage):
    """Business time reached `time` on this partition: cancel unpaid holds, close return windows.

    Sent to every partition (its key is empty) by the order router for each clock tick."""

    KEY: ClassVar[str] = ""
    time: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordPresaleAnswer(OrderMessage):
    """The presale service's answer to a campaign order: the phase price, or a refusal (routed)."""

    order_id: str
    accepted: bool
    unit_price: int
    phase: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordMemberDiscount(OrderMessage):
    """The loyalty service's tier discount for the member, in force when the order was placed (routed)."""

    order_id: str
    tier: str
    discount_rate: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordPresaleRefund(OrderMessage):
    """The presale service refunded this order from escrow (a failed campaign, R-PRE-7) (routed)."""

    order_id: str
    refund_id: str
    amount: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DefineGiftRule(GiftRuleMessage):
    """Create or replace a gift rule (R-ORD-3, R-ORD-4, R-ORD-5). Costs in cents."""

    rule_id: str
    tier: str
    main_sku: str
    main_unit_cost: int
    gift_sku: str
    gift_unit_cost: int
    gift_qty: int = 1
    fallback_sku: str | None = None
    fallback_unit_cost: int = 0
    consumable: bool = False
    converts_to: str | None = None
    channels: list[str] = field(default_factory=lambda: list(GIFT_CHANNELS))


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantInteractionGift(GiftRuleMessage):
    """An interaction-tier rule's gift goes to this member's qualifying orders (a question picked
    during the stream, R-ORD-3)."""

    rule_id: str
    member_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnounceSurpriseWindow(GiftRuleMessage):
    """A surprise-tier rule's window, announced afterwards: orders placed in [starts_at, ends_at)
    that have not shipped get the gift (R-ORD-3)."""

    rule_id: str
    starts_at: int
    ends_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RetireGiftRule(GiftRuleMessage):
    """The rule attaches no more gifts; gifts already attached stay."""

    rule_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewGiftRule(GiftRuleMessage):
    """The rule's current figures (computed by the read model over every partition, R-ORD-6)."""

    rule_id: str
    performance: GiftPerformance


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicateGiftRule(PartitionMessage):
    """Copy a rule change to every partition (routed from `GiftRuleChanged`)."""

    rule: GiftRule


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPlaced(OrderMessage):
    """An order was placed; its lines await stock reservations. `total` in cents."""

    order_id: str
    member_id: str
    channel: str
    lines: list[OrderLine]
    distributor_id: str | None
    campaign_id: str | None
    total: int
    placed_at: int
    awaiting: list[str] = field(default_factory=list)
    group_id: str | None = None
    gifts: list[GiftLine] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderLineReserved(OrderMessage):
    """Stock for one line is held."""

    order_id: str
    sku: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderLineRejected(OrderMessage):
    """Stock for one line could not be held."""

    order_id: str
    sku: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderConfirmed(OrderMessage):
    """Every answer is in; payment of `total` (final unit prices in `lines`) is due by `pay_by` (ms)."""

    order_id: str
    pay_by: int
    total: int
    lines: list[OrderLine]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPresaleAnswered(OrderMessage):
    """The campaign's answer: its phase price per unit (cents), or why the pledge was refused."""

    order_id: str
    accepted: bool
    unit_price: int
    phase: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderDiscountApplied(OrderMessage):
    """The member's tier discount in force when the order was placed (R-LOY-1)."""

    order_id: str
    tier: str
    discount_rate: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRejected(OrderMessage):
    """At least one line could not be reserved; `release_skus` lines that were reserved go back."""

    order_id: str
    reason: str
    release_skus: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPaid(OrderMessage):
    """Payment received (cents) for `lines` at their final unit prices."""

    order_id: str
    amount: int
    payment_ref: str
    paid_at: int
    member_id: str
    distributor_id: str | None
    campaign_id: str | None
    lines: list[OrderLine]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderShipped(OrderMessage):
    """Goods left the warehouse; reservations are committed."""

    order_id: str
    tracking: str
    skus: list[str]
    campaign_id: str | None = None
    gifts: list[GiftLine] = field(default_factory=list)  # the gifts in the parcel (R-ORD-6 counts them)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderDelivered(OrderMessage):
    """The member received the goods; no-reason returns are open until `return_window_ends`."""

    order_id: str
    delivered_at: int
    return_window_ends: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCompleted(OrderMessage):
    """The return window closed: points and commissions of the order are final."""

    order_id: str
    completed_at: int
    member_id: str
    distributor_id: str | None
    campaign_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelled(OrderMessage):
    """Cancelled before shipping; held stock goes back; `refund_amount` cents if it was paid."""

    order_id: str
    reason: str
    release_skus: list[str]
    refund_amount: int
    member_id: str
    distributor_id: str | None
    campaign_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRefunded(OrderMessage):
    """Lines refunded; `amount` in cents; `fully_refunded` when nothing paid remains.

    `paid_total` and `refunded_before`: the order's paid cents, and the cents refunded before this
    refund (cancellations included), so a subscriber can take back an exact share without keeping
    the order (loyalty's points after completion, R-LOY-2); 0 in records written before them."""

    order_id: str
    refund_id: str
    lines: list[RefundedLine]
    amount: int
    fully_refunded: bool
    member_id: str
    distributor_id: str | None
    campaign_id: str | None
    gifts: list[RefundedGift] = field(default_factory=list)
    paid_total: int = 0  # cents paid for the order
    refunded_before: int = 0  # cents refunded before this refund (cancellations included)


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftAttached(OrderMessage):
    """A gift joined an order after it was placed (a surprise window announced afterwards)."""

    order_id: str
    gift: GiftLine


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftReserved(OrderMessage):
    """Stock for a gift is held."""

    order_id: str
    rule_id: str
    sku: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftSubstituted(OrderMessage):
    """The gift was out of stock: the rule's fallback gift is asked for instead (R-ORD-5)."""

    order_id: str
    rule_id: str
    from_sku: str
    to_sku: str
    qty: int
    unit_cost: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftOmitted(OrderMessage):
    """No gift of this rule comes with the order (out of stock, no fallback, or too late); any
    hold on `sku` goes back. The order goes on (R-ORD-5)."""

    order_id: str
    rule_id: str
    sku: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftRuleSkipped(OrderMessage):
    """A qualifying rule was not applied to the order, with the reason — the gift's cost is over
    the cap of the main line's gross margin (R-ORD-4), or its sku is already in the order."""

    order_id: str
    rule_id: str
    gift_sku: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftRuleChanged(GiftRuleMessage):
    """A gift rule as it is after a change (`change` names it: defined, member_granted,
    window_announced, retired)."""

    rule_id: str
    change: str
    rule: GiftRule


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftRuleReplicated(PartitionMessage):
    """This partition's copy of a gift rule took `rule.version` (kept per partition)."""

    rule: GiftRule


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftRuleReviewSuggested(GiftRuleMessage):
    """The rule's gift ROI fell below the review line (1.2, R-ORD-6): once until it is healthy again."""

    rule_id: str
    roi: str
    threshold: str
    performance: GiftPerformance


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftRuleRecovered(GiftRuleMessage):
    """The rule's ROI is back at or above the healthy line (1.5): a later fall is suggested again."""

    FORMERLY: ClassVar[tuple[str, ...]] = ("GiftRuleHealthy",)
    rule_id: str
    roi: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftRuleCommandRejected(GiftRuleMessage):
    """A gift-rule command was refused with a reason; nothing changed."""

    rule_id: str
    command: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCommandRejected(OrderMessage):
    """A command was refused with a reason; nothing changed."""

    order_id: str
    command: str
    reason: str


COMMANDS: tuple[type[Message], ...] = (
    PlaceOrder,
    RecordLineReservation,
    PayOrder,
    ShipOrder,
    ConfirmDelivery,
    CancelOrder,
    RefundOrder,
    CheckOrderTimers,
    RecordPresaleAnswer,
    RecordMemberDiscount,
    RecordPresaleRefund,
    DefineGiftRule,
    GrantInteractionGift,
    AnnounceSurpriseWindow,
    RetireGiftRule,
    ReviewGiftRule,
    ReplicateGiftRule,
)
EVENTS: tuple[type[Message], ...] = (
    OrderPlaced,
    OrderLineReserved,
    OrderLineRejected,
    OrderConfirmed,
    OrderPresaleAnswered,
    OrderDiscountApplied,
    OrderRejected,
    OrderPaid,
    OrderShipped,
    OrderDelivered,
    OrderCompleted,
    OrderCancelled,
    OrderRefunded,
    GiftAttached,
    GiftReserved,
    GiftSubstituted,
    GiftOmitted,
    GiftRuleSkipped,
    GiftRuleChanged,
    GiftRuleReplicated,
    GiftRuleReviewSuggested,
    GiftRuleRecovered,
    GiftRuleCommandRejected,
    OrderCommandRejected,
)
MESSAGES: list[type[Message]] = [*COMMANDS, *EVENTS]

# --- reading the past (README "Schema evolution") ------------------------------------------------
# The first release (schemas/history/order/*.v1.avsc) wrote these events before the saga carried the
# member and the final prices: OrderPaid, OrderCancelled, OrderCompleted and OrderRefunded had no
# `member_id`, OrderConfirmed and OrderPaid no `lines` (and OrderConfirmed no `total`); v2 added them
# without defaults, so Avro resolution alone cannot read v1. Such a record reads with `member_id`
# "" (not known: subscribers that key by member skip it) and `lines` [] — for OrderConfirmed: the
# lines and total of the order as placed stand (v1 confirmed at the placed prices; see `domain`).
UPCASTERS: list[Upcaster] = [
    Upcaster("flexchain.order.OrderConfirmed", filling(total=0, lines=[]), applies=lacking("lines")),
    Upcaster("flexchain.order.OrderPaid", filling(member_id="", lines=[]), applies=lacking("member_id", "lines")),
    Upcaster("flexchain.order.OrderCancelled", filling(member_id=""), applies=lacking("member_id")),
    Upcaster("flexchain.order.OrderCompleted", filling(member_id=""), applies=lacking("member_id")),
    Upcaster("flexchain.order.OrderRefunded", filling(member_id=""), applies=lacking("member_id")),
]
