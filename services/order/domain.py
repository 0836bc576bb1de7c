"""Order's pure core: the order life cycle of R-ORD-2 and the collection side of the stock saga.

placed → confirmed (every line reserved) or rejected → paid → shipped → delivered → completed;
cancel before shipping; refunds by line after payment, within the no-reason window or for a
defect at any time; a confirmed order unpaid past the hold time is cancelled on a clock tick.
Every refused transition is an `OrderCommandRejected` event with the reason; it changes nothing.
The state (`OrderBook`), `new_state` and `evolve` are in `state.py`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flexchain.messages import Message
from services.order import gift_rules
from services.order import gifts as gifting
from services.order.messages import (
    CHANNELS,
    PRESALE_REFUND_REASON,
    REFUND_REASONS,
    CancelOrder,
    CheckOrderTimers,
    ConfirmDelivery,
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
    PayOrder,
    PlaceOrder,
    RecordLineReservation,
    RecordMemberDiscount,
    RecordPresaleAnswer,
    RecordPresaleRefund,
    RefundedLine,
    RefundOrder,
    ShipOrder,
)
from services.order.state import DAY_MS, MINUTE_MS, Order, OrderBook, OrderConfig, evolve, fold_into_order, new_state

__all__ = [  # the state's names too, for the code that reads them from here
    "DAY_MS",
    "DECIDERS",
    "MINUTE_MS",
    "Order",
    "OrderBook",
    "OrderConfig",
    "decide",
    "evolve",
    "new_state",
    "price",
    "validate_lines",
]

# --- decide ------------------------------------------------------------------------------------


def _refuse(cmd: Message, reason: str) -> list[Message]:
    return [OrderCommandRejected(order_id=cmd.key, command=type(cmd).__name__, reason=reason)]


def validate_lines(lines: list[OrderLine]) -> str | None:
    if not lines:
        return "an order needs at least one line"
    seen: set[str] = set()
    for line in lines:
        if line.qty <= 0:
            return f"line {line.sku}: qty must be a positive whole number"
        if line.unit_price < 0:
            return f"line {line.sku}: unit_price must be >= 0 cents"
        if line.sku in seen:
            return f"sku {line.sku} appears in two lines; put the quantity on one line"
        seen.add(line.sku)
    return None


def decide(book: OrderBook, cmd: Message, now: int) -> list[Message]:
    whole = _BOOK_DECIDERS.get(type(cmd))
    if whole is not None:
        return whole(book, cmd, now)
    order = book.orders.get(cmd.key)
    if order is None:
        return _refuse(cmd, f"unknown order {cmd.key}")
    handler = _ORDER_DECIDERS.get(type(cmd))
    if handler is None:
        return _refuse(cmd, f"{type(cmd).__name__} is not an order command")
    return handler(book, order, cmd, now)


def _place(book: OrderBook, cmd: PlaceOrder, now: int) -> list[Message]:
    if cmd.order_id in book.orders:
        return _refuse(cmd, f"order {cmd.order_id} already exists")
    if cmd.group_id is not None and cmd.campaign_id is None:
        return _refuse(cmd, "a group belongs to a presale campaign: give campaign_id too")  # R-PRE-3
    if cmd.channel not in CHANNELS:
        return _refuse(cmd, f"channel must be one of {', '.join(CHANNELS)}")
    problem = validate_lines(cmd.lines)
    if problem:
        return _refuse(cmd, problem)
    total = sum(line.qty * line.unit_price for line in cmd.lines)
    awaiting = ["presale" if cmd.campaign_id else "stock"]  # a presale order is priced by its campaign, not reserved
    if book.config.member_discounts:
        awaiting.append("loyalty")
    attached, skipped = gifting.placement_gifts(book, cmd, now)  # R-ORD-3, R-ORD-4
    placed = OrderPlaced(
        order_id=cmd.order_id,
        member_id=cmd.member_id,
        channel=cmd.channel,
        lines=list(cmd.lines),
        distributor_id=cmd.distributor_id,
        campaign_id=cmd.campaign_id,
        total=total,
        placed_at=now,
        awaiting=awaiting,
        group_id=cmd.group_id,
        gifts=attached,
    )
    return [placed, *skipped]


def _record(book: OrderBook, order: Order, cmd: Any, now: int) -> list[Message]:
    gift = gifting.pending_gift(order, cmd.sku)
    if gift is not None:  # R-ORD-5: a gift's answer never fails the order
        answer = gifting.on_stock_answer(book, order, gift, cmd.reserved, cmd.reason)
        return [answer, *(_settle(book, order, answer, now) if order.status == "placed" else [])]
    if order.status != "placed" or "stock" not in order.awaiting or cmd.sku in order.answers or order.line(cmd.sku) is None:
        return []  # a late or repeated answer: the saga already moved on (stock is released by sku)
    first: Message = (
        OrderLineReserved(order_id=order.order_id, sku=cmd.sku)
        if cmd.reserved
        else OrderLineRejected(order_id=order.order_id, sku=cmd.sku, reason=cmd.reason)
    )
    return [first, *_settle(book, order, first, now)]


def _presale_answer(book: OrderBook, order: Order, cmd: Any, now: int) -> list[Message]:
    if order.status != "placed" or "presale" not in order.awaiting or order.presale_accepted is not None:
        return []
    first = OrderPresaleAnswered(
        order_id=order.order_id, accepted=cmd.accepted, unit_price=cmd.unit_price, phase=cmd.phase, reason=cmd.reason
    )
    return [first, *_settle(book, order, first, now)]


def _discount(book: OrderBook, order: Order, cmd: Any, now: int) -> list[Message]:
    if order.status != "placed" or "loyalty" not in order.awaiting or order.discount_rate is not None:
        return []
    first = OrderDiscountApplied(order_id=order.order_id, tier=cmd.tier, discount_rate=Decimal(cmd.discount_rate))
    return [first, *_settle(book, order, first, now)]


def price(unit_price: int, rate: Decimal | None) -> int:
    """A unit price after a tier discount, rounded half up to the cent."""
    if rate is None:
        return unit_price
    return int((Decimal(unit_price) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _settle(book: OrderBook, order: Order, new: Message, now: int) -> list[Message]:
    """Once every awaited answer is in (counting `new`): confirm with the final prices, or reject."""
    shadow = copy.copy(order)
    shadow.answers, shadow.reject_reasons, shadow.gifts = dict(order.answers), dict(order.reject_reasons), dict(order.gifts)
    fold_into_order(shadow, new)
    waiting = (
        gifting.waiting_for_gifts(shadow)
        or ("stock" in shadow.awaiting and len(shadow.answers) < len(shadow.lines))
        or ("presale" in shadow.awaiting and shadow.presale_accepted is None)
        or ("loyalty" in shadow.awaiting and shadow.discount_rate is None)
    )
    if waiting:
        return []
    reasons = [f"{sku}: {why}" for sku, why in sorted(shadow.reject_reasons.items())]
    if shadow.presale_accepted is False:
        reasons.append(f"presale: {shadow.presale_reason}")
    if reasons:
        reserved = [sku for sku, ok in shadow.answers.items() if ok] + gifting.held_skus(shadow)
        what = "presale refused" if shadow.presale_accepted is False else "stock not available"
        return [OrderRejected(order_id=order.order_id, reason=f"{what} ({'; '.join(reasons)})", release_skus=reserved)]
    base = shadow.presale_price
    lines = [
        OrderLine(sku=line.sku, qty=line.qty, unit_price=price(line.unit_price if base is None else base, shadow.discount_rate))
        for line in order.lines
    ]
    total = sum(line.qty * line.unit_price for line in lines)
    skipped = gifting.over_cap_at(book, shadow, lines)  # R-ORD-4 on the final prices
    return [*skipped, OrderConfirmed(order_id=order.order_id, pay_by=now + book.config.payment_hold_ms, total=total, lines=lines)]


def _presale_refund(book: OrderBook, order: Order, cmd: Any, now: int) -> list[Message]:
    """A failed campaign refunded the order from escrow (R-PRE-7): refund what is left, or cancel."""
    if cmd.refund_id in order.refund_ids:
        return []
    if order.status in ("placed", "confirmed"):
        return [_cancelled(order, f"presale refund: {cmd.reason}", 0)]
    if order.status not in ("paid", "shipped", "delivered", "completed"):
        return []
    lines = [
        RefundedLine(
            sku=line.sku, qty=left, reason=PRESALE_REFUND_REASON, amount=left * line.unit_price, goods_returned=order.shipped
        )
        for line in order.lines
        if (left := line.qty - order.refunded_qty.get(line.sku, 0)) > 0
    ]
    return [_refunded(order, cmd.refund_id, lines, True)]


def _cancelled(order: Order, reason: str, refund: int) -> OrderCancelled:
    release = [] if order.campaign_id else [*order.skus, *gifting.held_skus(order)]
    return OrderCancelled(
        order_id=order.order_id,
        reason=reason,
        release_skus=release,
        refund_amount=refund,
        member_id=order.member_id,
        distributor_id=order.distributor_id,
        campaign_id=order.campaign_id,
    )


def _refunded(order: Order, refund_id: str, lines: list[RefundedLine], full: bool) -> OrderRefunded:
    amount = sum(r.amount for r in lines)
    back = gifting.taken_back(order, {r.sku: (r.qty, r.reason) for r in lines})  # R-ORD-2a
    o = order
    return OrderRefunded(
        order_id=o.order_id,
        refund_id=refund_id,
        lines=lines,
        amount=amount,
        fully_refunded=full,
        member_id=o.member_id,
        distributor_id=o.distributor_id,
        campaign_id=o.campaign_id,
        gifts=back,
        paid_total=o.paid,
        refunded_before=o.refunded_amount,  # this refund is added when the event is folded
    )


def _pay(book: OrderBook, order: Order, cmd: Any, now: int) -> list[Message]:
    if order.status != "confirmed":
        return _refuse(cmd, f"order is {order.status}: only a confirmed order can be paid")
    if order.pay_by is not None and now >= order.pay_by:
        return _refuse(cmd, "the payment hold expired; the order is being cancelled")
    if cmd.amount != order.total:
        return _refuse(cmd, f"amount {cmd.amount} does not match the order total {order.total} (cents)")
    o = order
    return [
        OrderPaid(
            order_id=o.order_id,
            amount=cmd.amount,
            payment_ref=cmd.payment_ref,
            paid_at=now,
            member_id=o.member_id,
            distributor_id=o.distributor_id,
            campaign_id=o.campaign_id,
            lines=list(o.lines),
        )
    ]


def _ship(book: OrderBook, order: Order, cmd: Any, now: int) -> list[Message]:
    if order.status != "paid":
        return _refuse(cmd, f"order is {order.status}: only a paid order can be shipped")
    in_parcel = gifting.shipped(order)
    skus = [line.sku for line in order.lines if order.refunded_qty.get(line.sku, 0) < line.qty] + [g.sku for g in in_parcel]
    return [
        OrderShipped(order_id=order.order_id, tracking=cmd.tracking, skus=skus, campaign_id=order.campaign_id, gifts=in_parcel)
    ]


def _deliver(book: OrderBook, order: Order, cmd: Any, now: int) -> list[Message]:
    if order.status != "shipped":
        return _refuse(cmd, f"order is {order.status}: only a shipped order can be delivered")
    return [OrderDelivered(order_id=order.order_id, delivered_at=now, return_window_ends=now + book.config.return_window_ms)]


def _cancel(book: OrderBook, order: Order, cmd: Any, now: int) -> list[Message]:
    if order.status in ("shipped", "delivered", "completed"):
        return _refuse(cmd, f"order is {order.status}: it can no longer be cancelled, ask for a refund")
    if order.status not in ("placed", "confirmed", "paid"):
        return _refuse(cmd, f"order is {order.status}: nothing to cancel")
    return [_cancelled(order, cmd.reason, order.paid - order.refunded_amount)]


def _window(book: OrderBook) -> str:
    """The configured no-reason window in whole days ("7-day " by default), for a refusal's reason."""
    ms = book.config.return_window_ms
    return f"{ms // DAY_MS}-day " if ms % DAY_MS == 0 else ""


def _refund(book: OrderBook, order: Order, cmd: Any, now: int) -> list[Message]:
    if order.status not in ("paid", "shipped", "delivered", "completed"):
        return _refuse(cmd, f"order is {order.status}: only a paid order can be refunded")
    if cmd.refund_id in order.refund_ids:
        return _refuse(cmd, f"refund {cmd.refund_id} was already made")
    if not cmd.lines:
        return _refuse(cmd, "a refund names at least one line")
    window_closed = order.return_window_ends is not None and now >= order.return_window_ends
    refunded: list[RefundedLine] = []
    seen: set[str] = set()
    for rl in cmd.lines:
        line = order.line(rl.sku)
        if line is None:
            return _refuse(cmd, f"sku {rl.sku} is not in the order")
        if rl.sku in seen:
            return _refuse(cmd, f"sku {rl.sku} appears twice in the refund")
        seen.add(rl.sku)
        if rl.reason not in REFUND_REASONS:
            return _refuse(cmd, f"line {rl.sku}: reason must be one of {', '.join(REFUND_REASONS)}")
        if rl.qty <= 0:
            return _refuse(cmd, f"line {rl.sku}: qty must be positive")
        left = line.qty - order.refunded_qty.get(rl.sku, 0)
        if rl.qty > left:
            return _refuse(cmd, f"line {rl.sku}: {rl.qty} units asked back, only {left} paid and not refunded")
        if window_closed and rl.reason != "defect":
            return _refuse(cmd, f"line {rl.sku}: the {_window(book)}no-reason window closed; only a defect is refunded now")
        refunded.append(
            RefundedLine(sku=rl.sku, qty=rl.qty, reason=rl.reason, amount=rl.qty * line.unit_price, goods_returned=order.shipped)
        )
    after = {**order.refunded_qty}
    for r in refunded:
        after[r.sku] = after.get(r.sku, 0) + r.qty
    full = all(after.get(line.sku, 0) == line.qty for line in order.lines)
    return [_refunded(order, cmd.refund_id, refunded, full)]


def _timers(book: OrderBook, time: int) -> list[Message]:
    out: list[Message] = []
    for order_id, deadline in sorted(book.pay_deadlines.items()):
        if deadline <= time:
            order = book.orders[order_id]
            out.append(_cancelled(order, "not paid within the payment hold time", 0))
    for order_id, ends in sorted(book.return_windows.items()):
        if ends <= time:
            order = book.orders[order_id]
            out.append(
                OrderCompleted(
                    order_id=order_id,
                    completed_at=time,
                    member_id=order.member_id,
                    distributor_id=order.distributor_id,
                    campaign_id=order.campaign_id,
                )
            )
    return out


_ORDER_DECIDERS: dict[type, Callable[[OrderBook, Order, Any, int], list[Message]]] = {
    RecordLineReservation: _record,
    PayOrder: _pay,
    ShipOrder: _ship,
    ConfirmDelivery: _deliver,
    CancelOrder: _cancel,
    RefundOrder: _refund,
    RecordPresaleAnswer: _presale_answer,
    RecordMemberDiscount: _discount,
    RecordPresaleRefund: _presale_refund,
}


def _check_timers(book: OrderBook, cmd: CheckOrderTimers, now: int) -> list[Message]:
    return _timers(book, cmd.time)


def _gift_rule(book: OrderBook, cmd: Message, now: int) -> list[Message]:
    return gift_rules.decide_rule(book, cmd)


_BOOK_DECIDERS: dict[type, Callable[[OrderBook, Any, int], list[Message]]] = {
    CheckOrderTimers: _check_timers,
    PlaceOrder: _place,
    **dict.fromkeys(gift_rules.RULE_COMMANDS, _gift_rule),
}

# every command and its decider (on the partition, or on one order): a test checks none is missing
DECIDERS: dict[type, Callable[..., list[Message]]] = {**_BOOK_DECIDERS, **_ORDER_DECIDERS}
