"""Gifts on orders (pure): attaching rules to orders, out-of-stock fallbacks and taking them back.

* R-ORD-3 — a rule pairs a main sku with a gift. Tiers: *base* (every qualifying order),
  *interaction* (orders of members granted the gift), *surprise* (orders placed inside a window
  announced afterwards: the announcement attaches the gift to the orders of the window that have not
  shipped). A rule applies to orders through its channels (live and short video by default) that
  hold its main sku; presale campaign orders get no gifts.
* R-ORD-4 — attached only if `gift_qty × gift unit cost ≤ cap × main line's gross margin`, where the
  margin is `qty × (unit price − main unit cost)` and the cap 15 %. Checked at placement on the list
  price and again at confirmation on the final (discounted) price; a skipped rule is recorded
  (`GiftRuleSkipped`) and any hold on the gift goes back.
* R-ORD-5 — a gift the warehouse cannot hold is replaced by the rule's fallback gift (if it also fits
  the cap and is not already in the order), else omitted; the order never fails because of a gift.
  An order waits for its gifts' stock answers before it is confirmed, so it ships with them.
* R-ORD-2a — a refund of a main line takes back the gifts that came with it, in proportion
  (`gift qty × main units refunded so far ÷ main units`, rounded down, so a whole refund takes all):
  returned goods after shipping, written off if consumable, a released hold before shipping.

A rule is decided by its own aggregate (keyed by rule id, `GiftRuleChanged`: `gift_rules.py`, its
fold `gift_rules_state.py`) and copied to every partition (`ReplicateGiftRule` → `GiftRuleReplicated`,
highest version wins, `replicate` here), where the orders are.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flexchain.messages import Message
from services.order.messages import (
    GiftAttached,
    GiftLine,
    GiftOmitted,
    GiftReserved,
    GiftRule,
    GiftRuleReplicated,
    GiftRuleSkipped,
    GiftSubstituted,
    OrderLine,
    RefundedGift,
)

if TYPE_CHECKING:
    from services.order.state import Order, OrderBook

GIFT_COST_CAP = Decimal("0.15")  # R-ORD-4: of the main line's gross margin
OPEN = ("placed", "confirmed", "paid")  # a gift can still join or be held for these orders


@dataclass(frozen=True)
class GiftState:
    """One rule's gift on one order. `status`: pending (stock asked), reserved, omitted, skipped, or
    released (its order was rejected or cancelled)."""

    line: GiftLine
    sku: str
    qty: int
    unit_cost: int
    status: str = "pending"
    tried_fallback: bool = False
    taken_back: int = 0

    @property
    def held(self) -> bool:
        return self.status in ("pending", "reserved")


# --- the cost cap (R-ORD-4) ----------------------------------------------------------------------


def within_cap(cap: Decimal, gift_qty: int, gift_unit_cost: int, main: OrderLine, main_unit_cost: int) -> bool:
    margin = main.qty * (main.unit_price - main_unit_cost)
    return gift_qty * gift_unit_cost <= cap * margin


def _cap_reason(cap: Decimal, sku: str, qty: int, unit_cost: int, main: OrderLine, main_unit_cost: int, when: str) -> str:
    margin = main.qty * (main.unit_price - main_unit_cost)
    limit = (cap * margin).quantize(Decimal("0.01"))
    cost = qty * unit_cost
    return f"gift {sku} costs {cost} cents, over {cap:%} of the {main.sku} line's gross margin {margin} ({limit}) {when}".strip()


# --- rules on every partition: placement and surprise windows -------------------------------------


def _qualifies(rule: GiftRule, order: Any, member_id: str, placed_at: int) -> bool:
    if not rule.active or order.campaign_id or order.channel not in rule.channels:
        return False
    if all(line.sku != rule.main_sku for line in order.lines):
        return False
    if rule.tier == "interaction":
        return member_id in rule.members
    if rule.tier == "surprise":
        return rule.window_start is not None and rule.window_end is not None and rule.window_start <= placed_at < rule.window_end
    return True


def _gift_line(rule: GiftRule) -> GiftLine:
    return GiftLine(
        rule_id=rule.rule_id,
        sku=rule.gift_sku,
        qty=rule.gift_qty,
        unit_cost=rule.gift_unit_cost,
        main_sku=rule.main_sku,
        tier=rule.tier,
        consumable=rule.consumable,
        fallback_sku=rule.fallback_sku,
        fallback_unit_cost=rule.fallback_unit_cost,
        main_unit_cost=rule.main_unit_cost,
    )


def _attach(cap: Decimal, rule: GiftRule, order_id: str, lines: list[OrderLine], taken: set[str]) -> GiftLine | Message:
    """The gift line of `rule` for an order, or the recorded reason it is skipped."""
    main = next(line for line in lines if line.sku == rule.main_sku)
    if rule.gift_sku in taken:
        return GiftRuleSkipped(
            order_id=order_id,
            rule_id=rule.rule_id,
            gift_sku=rule.gift_sku,
            reason=f"gift {rule.gift_sku} is already in the order",
        )
    if not within_cap(cap, rule.gift_qty, rule.gift_unit_cost, main, rule.main_unit_cost):
        r = rule
        reason = _cap_reason(cap, r.gift_sku, r.gift_qty, r.gift_unit_cost, main, r.main_unit_cost, "at the list price")
        return GiftRuleSkipped(order_id=order_id, rule_id=rule.rule_id, gift_sku=rule.gift_sku, reason=reason)
    return _gift_line(rule)


def placement_gifts(book: OrderBook, cmd: Any, now: int) -> tuple[list[GiftLine], list[Message]]:
    """The gifts a new order gets and the rules skipped for it (R-ORD-3, R-ORD-4)."""
    gifts: list[GiftLine] = []
    skipped: list[Message] = []
    if cmd.campaign_id:
        return gifts, skipped
    taken = {line.sku for line in cmd.lines}
    for rule_id in sorted(book.rule_replicas):
        rule = book.rule_replicas[rule_id]
        if not _qualifies(rule, cmd, cmd.member_id, now):
            continue
        got = _attach(book.config.gift_cost_cap, rule, cmd.order_id, cmd.lines, taken)
        if isinstance(got, GiftLine):
            gifts.append(got)
            taken.add(got.sku)
        else:
            skipped.append(got)
    return gifts, skipped


def replicate(book: OrderBook, rule: GiftRule) -> list[Message]:
    """This partition's copy of a rule (`ReplicateGiftRule`), and a surprise window's gifts for the
    orders of the window that are still open."""
    old = book.rule_replicas.get(rule.rule_id)
    if old is not None and old.version >= rule.version:
        return []  # this partition has it already (a re-delivered copy)
    out: list[Message] = [GiftRuleReplicated(rule=rule)]
    window_news = rule.tier == "surprise" and rule.window_start is not None
    if window_news and (old is None or (old.window_start, old.window_end) != (rule.window_start, rule.window_end)):
        for order_id in sorted(book.orders):
            order = book.orders[order_id]
            if order.status not in OPEN or rule.rule_id in order.gifts or _main_refunded(order, rule.main_sku):
                continue
            if not _qualifies(rule, order, order.member_id, order.placed_at):
                continue
            got = _attach(book.config.gift_cost_cap, rule, order_id, order.lines, skus_in_use(order))
            out.append(GiftAttached(order_id=order_id, gift=got) if isinstance(got, GiftLine) else got)
    return out


# --- gifts on an order: stock answers, confirmation, refunds --------------------------------------


def skus_in_use(order: Order) -> set[str]:
    return {line.sku for line in order.lines} | {g.sku for g in order.gifts.values() if g.held}


def _main_refunded(order: Order, main_sku: str) -> bool:
    main = order.line(main_sku)
    return main is None or order.refunded_qty.get(main_sku, 0) >= main.qty


def pending_gift(order: Order, sku: str) -> GiftState | None:
    return next((g for g in order.gifts.values() if g.status == "pending" and g.sku == sku), None)


def on_stock_answer(book: OrderBook, order: Order, gift: GiftState, reserved: bool, why: str) -> Message:
    """The warehouse answered for a gift (R-ORD-5): held, a fallback asked for, or omitted."""
    rid, oid = gift.line.rule_id, order.order_id
    late = order.status not in OPEN or _main_refunded(order, gift.line.main_sku)
    if reserved:
        if late:
            return GiftOmitted(
                order_id=oid,
                rule_id=rid,
                sku=gift.sku,
                reason=f"the order is {order.status} or its main line refunded: the gift is not sent",
            )
        return GiftReserved(order_id=oid, rule_id=rid, sku=gift.sku)
    reason = f"gift {gift.sku} out of stock ({why})"
    fallback = gift.line.fallback_sku
    if late or fallback is None or gift.tried_fallback:
        return GiftOmitted(
            order_id=oid, rule_id=rid, sku=gift.sku, reason=reason + ("" if fallback and not late else "; no fallback gift")
        )
    if fallback in skus_in_use(order):
        return GiftOmitted(
            order_id=oid, rule_id=rid, sku=gift.sku, reason=f"{reason}; fallback {fallback} is already in the order"
        )
    main = order.line(gift.line.main_sku)
    assert main is not None
    cap, cost, main_cost = book.config.gift_cost_cap, gift.line.fallback_unit_cost, gift.line.main_unit_cost
    if not within_cap(cap, gift.qty, cost, main, main_cost):
        over = _cap_reason(cap, fallback, gift.qty, cost, main, main_cost, "")
        return GiftOmitted(order_id=oid, rule_id=rid, sku=gift.sku, reason=f"{reason}; fallback {over}")
    return GiftSubstituted(
        order_id=oid, rule_id=rid, from_sku=gift.sku, to_sku=fallback, qty=gift.qty, unit_cost=cost, reason=reason
    )


def waiting_for_gifts(order: Order) -> bool:
    return any(g.status == "pending" for g in order.gifts.values())


def over_cap_at(book: OrderBook, order: Order, lines: list[OrderLine]) -> list[Message]:
    """At confirmation: held gifts whose cost is over the cap at the final prices are skipped (R-ORD-4)."""
    out: list[Message] = []
    by_sku = {line.sku: line for line in lines}
    cap = book.config.gift_cost_cap
    for rid in sorted(order.gifts):
        g = order.gifts[rid]
        main = by_sku.get(g.line.main_sku)
        if g.status != "reserved" or main is None:
            continue
        if not within_cap(cap, g.qty, g.unit_cost, main, g.line.main_unit_cost):
            reason = _cap_reason(cap, g.sku, g.qty, g.unit_cost, main, g.line.main_unit_cost, "at the final price")
            out.append(GiftRuleSkipped(order_id=order.order_id, rule_id=rid, gift_sku=g.sku, reason=reason))
    return out


def held_skus(order: Order) -> list[str]:
    """Gift skus with a hold (or a hold on the way) to give back when the order ends unshipped."""
    return [g.sku for _, g in sorted(order.gifts.items()) if g.held]


def shipped(order: Order) -> list[GiftLine]:
    """The gifts that go into the parcel: held, less any taken back before shipping."""
    return [
        dataclasses.replace(g.line, sku=g.sku, unit_cost=g.unit_cost, qty=g.qty - g.taken_back)
        for _, g in sorted(order.gifts.items())
        if g.status == "reserved" and g.taken_back < g.qty
    ]


def taken_back(order: Order, refunded: dict[str, tuple[int, str]]) -> list[RefundedGift]:
    """R-ORD-2a: gifts that go back with the refunded main units (`sku → (qty now refunded, reason)`)."""
    out: list[RefundedGift] = []
    for rid in sorted(order.gifts):
        g = order.gifts[rid]
        main = order.line(g.line.main_sku)
        if g.status != "reserved" or main is None or g.line.main_sku not in refunded:
            continue
        qty, reason = refunded[g.line.main_sku]
        after = order.refunded_qty.get(main.sku, 0) + qty
        back = g.qty * after // main.qty - g.taken_back
        if back > 0:
            shipped = order.shipped
            out.append(
                RefundedGift(
                    rule_id=rid,
                    sku=g.sku,
                    qty=back,
                    goods_returned=shipped and not g.line.consumable,
                    written_off=shipped and g.line.consumable,
                    reason=reason,
                )
            )
    return out


def apply_gift(order: Order, e: Message) -> None:
    """Fold one order-keyed gift event (states are replaced, never mutated: `_settle` shadows them)."""
    gifts = order.gifts
    if isinstance(e, GiftAttached):
        gifts[e.gift.rule_id] = GiftState(e.gift, e.gift.sku, e.gift.qty, e.gift.unit_cost)
    elif isinstance(e, GiftReserved):
        gifts[e.rule_id] = dataclasses.replace(gifts[e.rule_id], status="reserved")
    elif isinstance(e, GiftSubstituted):
        gifts[e.rule_id] = dataclasses.replace(gifts[e.rule_id], sku=e.to_sku, unit_cost=e.unit_cost, tried_fallback=True)
    elif isinstance(e, (GiftOmitted, GiftRuleSkipped)) and e.rule_id in gifts:
        status = "omitted" if isinstance(e, GiftOmitted) else "skipped"
        gifts[e.rule_id] = dataclasses.replace(gifts[e.rule_id], status=status)


def release(order: Order) -> None:
    """The order ended unshipped (rejected, cancelled): its held gifts went back with its lines."""
    for rid, g in order.gifts.items():
        if g.status == "reserved":
            order.gifts[rid] = dataclasses.replace(g, status="released")


def apply_refund(order: Order, back: list[RefundedGift]) -> None:
    for r in back:
        g = order.gifts[r.rule_id]
        order.gifts[r.rule_id] = dataclasses.replace(g, taken_back=g.taken_back + r.qty)


GIFT_EVENTS = (GiftAttached, GiftReserved, GiftSubstituted, GiftOmitted, GiftRuleSkipped)
