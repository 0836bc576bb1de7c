"""Order's state and its fold (pure): a partition's `OrderBook` — its orders, the timers a clock
tick checks, the gift rules whose aggregate lives here and its replicas of every rule — `new_state`,
and `evolve(book, event)` that applies one event through its evolver in `EVOLVERS` (one per event
type) and returns the book.

An event of a known order is added to its history, folded into the order, and then keeps the
partition's timer indexes; a refusal changes nothing (R-ORD-2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flexchain.messages import Message
from services.order import gift_rules_state
from services.order import gifts as gifting
from services.order.messages import (
    GiftAttached,
    GiftRule,
    OrderCancelled,
    OrderCommandRejected,
    OrderCompleted,
    OrderConfirmed,
    OrderDelivered,
    OrderDiscountApplied,
    OrderLine,
    OrderLineRejected,
    OrderLineReserved,
    OrderPaid,
    OrderPlaced,
    OrderPresaleAnswered,
    OrderRefunded,
    OrderRejected,
    OrderShipped,
)

MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS


@dataclass(frozen=True)
class OrderConfig:
    """Merchant-configurable defaults (R-ORD-2)."""

    payment_hold_ms: int = 30 * MINUTE_MS
    return_window_ms: int = 7 * DAY_MS
    member_discounts: bool = False  # wait for the loyalty service's tier discount (R-LOY-1)
    gift_cost_cap: Decimal = gifting.GIFT_COST_CAP  # R-ORD-4
    gift_review_min_gifts: int = 10  # R-ORD-6: gifts given before a rule's ROI is judged


@dataclass
class Order:
    order_id: str
    member_id: str
    channel: str
    lines: list[OrderLine]
    distributor_id: str | None
    campaign_id: str | None
    total: int
    placed_at: int
    status: str = "placed"
    answers: dict[str, bool] = field(default_factory=dict)
    reject_reasons: dict[str, str] = field(default_factory=dict)
    pay_by: int | None = None
    paid: int = 0
    shipped: bool = False
    return_window_ends: int | None = None
    refunded_qty: dict[str, int] = field(default_factory=dict)
    refunded_amount: int = 0
    refund_ids: set[str] = field(default_factory=set)
    awaiting: list[str] = field(default_factory=list)
    presale_accepted: bool | None = None
    presale_price: int | None = None
    presale_reason: str = ""
    tier: str | None = None
    discount_rate: Decimal | None = None
    gifts: dict[str, gifting.GiftState] = field(default_factory=dict)  # by rule id
    history: list[Message] = field(default_factory=list)

    def line(self, sku: str) -> OrderLine | None:
        return next((line for line in self.lines if line.sku == sku), None)

    @property
    def skus(self) -> list[str]:
        return [line.sku for line in self.lines]


@dataclass
class OrderBook:
    """The orders of one partition, with the timers that a clock tick checks."""

    config: OrderConfig = field(default_factory=OrderConfig)
    orders: dict[str, Order] = field(default_factory=dict)
    pay_deadlines: dict[str, int] = field(default_factory=dict)
    return_windows: dict[str, int] = field(default_factory=dict)
    gift_rules: dict[str, GiftRule] = field(default_factory=dict)  # the rules whose aggregate lives here
    rule_replicas: dict[str, GiftRule] = field(default_factory=dict)  # every rule, as this partition knows it
    reviews_open: set[str] = field(default_factory=set)  # rules with a review suggested, not yet healthy


def new_state(config: OrderConfig | None = None) -> OrderBook:
    return OrderBook(config or OrderConfig())


Evolver = Callable[[OrderBook, Any], None]
OrderPart = Callable[[Order, Any], None]


def evolve(book: OrderBook, e: Message) -> OrderBook:
    """Fold one event through its evolver (`EVOLVERS`); returns the book, changed in place."""
    evolver = EVOLVERS.get(type(e))
    if evolver is not None:
        evolver(book, e)
    return book


def _placed(book: OrderBook, e: OrderPlaced) -> None:
    book.orders[e.order_id] = Order(
        e.order_id,
        e.member_id,
        e.channel,
        list(e.lines),
        e.distributor_id,
        e.campaign_id,
        e.total,
        e.placed_at,
        awaiting=list(e.awaiting) or ["stock"],
        history=[e],
    )
    for g in e.gifts:
        gifting.apply_gift(book.orders[e.order_id], GiftAttached(order_id=e.order_id, gift=g))


def _unchanged(book: OrderBook, e: Message) -> None:
    """A refusal changes nothing (R-ORD-2)."""


def _of_order(apply: OrderPart) -> Evolver:
    """An evolver of the event's order: into its history, `apply` to the order, then the partition's
    timer indexes; nothing for an order this partition does not hold."""

    def evolver(book: OrderBook, e: Message) -> None:
        order = book.orders.get(e.key)
        if order is None:
            return
        order.history.append(e)
        apply(order, e)
        _index(book, order, e)

    return evolver


def fold_into_order(order: Order, e: Message) -> None:
    """The order's part of an event alone (no history, no indexes): `decide` looks ahead on a copy."""
    apply = ORDER_PARTS.get(type(e))
    if apply is not None:
        apply(order, e)


def _index(book: OrderBook, order: Order, e: Message) -> None:
    """The timers a clock tick checks: the payment deadline and the return window."""
    if isinstance(e, OrderConfirmed):
        book.pay_deadlines[order.order_id] = e.pay_by
    elif isinstance(e, OrderPaid | OrderCancelled):
        book.pay_deadlines.pop(order.order_id, None)
    elif isinstance(e, OrderDelivered):
        book.return_windows[order.order_id] = e.return_window_ends
    elif isinstance(e, OrderCompleted) or (isinstance(e, OrderRefunded) and e.fully_refunded):
        book.return_windows.pop(order.order_id, None)


def _line_reserved(order: Order, e: OrderLineReserved) -> None:
    order.answers[e.sku] = True


def _line_rejected(order: Order, e: OrderLineRejected) -> None:
    order.answers[e.sku] = False
    order.reject_reasons[e.sku] = e.reason


def _presale_answered(order: Order, e: OrderPresaleAnswered) -> None:
    order.presale_accepted = e.accepted
    order.presale_price = e.unit_price if e.accepted else None
    order.presale_reason = e.reason


def _discount_applied(order: Order, e: OrderDiscountApplied) -> None:
    order.tier = e.tier
    order.discount_rate = e.discount_rate


def _confirmed(order: Order, e: OrderConfirmed) -> None:
    order.status = "confirmed"
    order.pay_by = e.pay_by
    if e.lines:  # written by the first release without lines (read as []): the placed prices stand
        order.total = e.total
        order.lines = list(e.lines)


def _rejected(order: Order, e: OrderRejected) -> None:
    order.status = "rejected"
    gifting.release(order)


def _paid(order: Order, e: OrderPaid) -> None:
    order.status = "paid"
    order.paid = e.amount


def _shipped(order: Order, e: OrderShipped) -> None:
    order.status = "shipped"
    order.shipped = True


def _delivered(order: Order, e: OrderDelivered) -> None:
    order.status = "delivered"
    order.return_window_ends = e.return_window_ends


def _completed(order: Order, e: OrderCompleted) -> None:
    order.status = "completed"


def _cancelled(order: Order, e: OrderCancelled) -> None:
    order.status = "cancelled"
    gifting.release(order)
    order.refunded_amount += e.refund_amount


def _refunded(order: Order, e: OrderRefunded) -> None:
    order.refund_ids.add(e.refund_id)
    order.refunded_amount += e.amount
    gifting.apply_refund(order, e.gifts)
    for r in e.lines:
        order.refunded_qty[r.sku] = order.refunded_qty.get(r.sku, 0) + r.qty
    if e.fully_refunded:
        order.status = "refunded"


ORDER_PARTS: dict[type[Message], OrderPart] = {
    OrderLineReserved: _line_reserved,
    OrderLineRejected: _line_rejected,
    OrderPresaleAnswered: _presale_answered,
    OrderDiscountApplied: _discount_applied,
    OrderConfirmed: _confirmed,
    OrderRejected: _rejected,
    OrderPaid: _paid,
    OrderShipped: _shipped,
    OrderDelivered: _delivered,
    OrderCompleted: _completed,
    OrderCancelled: _cancelled,
    OrderRefunded: _refunded,
    **dict.fromkeys(gifting.GIFT_EVENTS, gifting.apply_gift),
}

EVOLVERS: dict[type[Message], Evolver] = {
    **gift_rules_state.EVOLVERS,  # the gift-rule aggregate's events
    OrderPlaced: _placed,
    OrderCommandRejected: _unchanged,
    **{event_type: _of_order(apply) for event_type, apply in ORDER_PARTS.items()},
}
