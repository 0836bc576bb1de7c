"""Order's saga policy: the other services' answers and clock ticks become order commands (pure).

inventory: StockReserved / ReservationRejected → RecordLineReservation (per line, R-INV-1);
presale: PledgeAccepted / PledgeRejected → RecordPresaleAnswer (the campaign's phase price, R-PRE-3,
R-PRE-4); PresaleRefundIssued → RecordPresaleRefund (a failed campaign, R-PRE-7);
loyalty: MemberDiscountQuoted → RecordMemberDiscount (the tier in force at order time, R-LOY-1);
clock: ClockTicked → CheckOrderTimers on every partition (R-X-1);
order's own GiftRuleChanged → ReplicateGiftRule on every partition (the orders of every partition
see every gift rule, R-ORD-3).
"""

from __future__ import annotations

from flexchain.messages import Message
from flexchain.ticks import ClockTicked
from services.inventory.messages import ReservationRejected, StockReserved
from services.loyalty.messages import MemberDiscountQuoted
from services.order.messages import (
    CheckOrderTimers,
    GiftRuleChanged,
    RecordLineReservation,
    RecordMemberDiscount,
    RecordPresaleAnswer,
    RecordPresaleRefund,
    ReplicateGiftRule,
)
from services.presale.messages import PledgeAccepted, PledgeRejected, PresaleRefundIssued


def react(event: Message) -> list[Message]:
    if isinstance(event, StockReserved):
        return [RecordLineReservation(order_id=event.order_id, sku=event.sku, reserved=True, reason="")]
    if isinstance(event, ReservationRejected):
        return [RecordLineReservation(order_id=event.order_id, sku=event.sku, reserved=False, reason=event.reason)]
    if isinstance(event, PledgeAccepted):
        return [
            RecordPresaleAnswer(order_id=event.order_id, accepted=True, unit_price=event.unit_price, phase=event.phase, reason="")
        ]
    if isinstance(event, PledgeRejected):
        return [RecordPresaleAnswer(order_id=event.order_id, accepted=False, unit_price=0, phase="", reason=event.reason)]
    if isinstance(event, PresaleRefundIssued):
        return [RecordPresaleRefund(order_id=event.order_id, refund_id=event.refund_id, amount=event.amount, reason=event.reason)]
    if isinstance(event, MemberDiscountQuoted):
        return [RecordMemberDiscount(order_id=event.order_id, tier=event.tier, discount_rate=event.discount_rate)]
    if isinstance(event, GiftRuleChanged):
        return [ReplicateGiftRule(rule=event.rule)]  # empty key: sent to every partition
    if isinstance(event, ClockTicked):
        return [CheckOrderTimers(time=event.time)]  # empty key: sent to every partition
    return []
