"""Loyalty's saga policy (pure): order events, clock ticks and two of its own events become loyalty
commands, re-keyed by member id (or sent to every partition when the key is empty).

- OrderPlaced → QuoteMemberDiscount (the order service waits for the tier discount, R-LOY-1)
- OrderPaid → RecordPurchase; OrderCompleted → CompletePurchase (R-LOY-2)
- OrderRefunded, OrderCancelled → ReversePurchase (R-X-3; loyalty ignores a cancellation of what it never recorded)
- ClockTicked → CheckMemberTimers on every partition (R-X-1)
- ReferralCompleted (the referred member's partition) → RewardReferrer (the referrer's, R-LOY-5)
- UsageCycleConfigured (the sku's partition) → ApplyUsageCycle on every partition (R-LOY-4)
"""

from __future__ import annotations

from flexchain.messages import Message
from flexchain.ticks import ClockTicked
from services.loyalty.domain import CANCELLED
from services.loyalty.messages import (
    ApplyUsageCycle,
    CheckMemberTimers,
    CompletePurchase,
    PurchasedLine,
    QuoteMemberDiscount,
    RecordPurchase,
    ReferralCompleted,
    ReversePurchase,
    RewardReferrer,
    UsageCycleConfigured,
)
from services.order.messages import OrderCancelled, OrderCompleted, OrderPaid, OrderPlaced, OrderRefunded


def react(event: Message) -> list[Message]:
    if isinstance(event, ClockTicked):
        return [CheckMemberTimers(time=event.time)]  # empty key: every partition
    if isinstance(event, ReferralCompleted):
        return [RewardReferrer(member_id=event.referrer_id, referred_id=event.member_id, order_id=event.order_id)]
    if isinstance(event, UsageCycleConfigured):
        return [ApplyUsageCycle(sku=event.sku, cycle_days=event.cycle_days)]
    member = getattr(event, "member_id", "")
    if not member:  # an empty key would broadcast a member's command to every partition
        return []
    if isinstance(event, OrderPlaced):
        return [QuoteMemberDiscount(member_id=member, order_id=event.order_id)]
    if isinstance(event, OrderPaid):
        lines = [PurchasedLine(sku=line.sku, qty=line.qty) for line in event.lines]
        return [
            RecordPurchase(member_id=member, order_id=event.order_id, amount=event.amount, paid_at=event.paid_at, lines=lines)
        ]
    if isinstance(event, OrderCompleted):
        return [CompletePurchase(member_id=member, order_id=event.order_id, completed_at=event.completed_at)]
    if isinstance(event, OrderRefunded):
        return [
            ReversePurchase(
                member_id=member,
                order_id=event.order_id,
                refund_id=event.refund_id,
                amount=event.amount,
                fully_refunded=event.fully_refunded,
                paid_total=event.paid_total,  # the order's figures: an exact take-back after completion (R-LOY-2)
                refunded_before=event.refunded_before,
            )
        ]
    if isinstance(event, OrderCancelled):  # also when nothing is refunded: an order paid 0 must close too
        return [
            ReversePurchase(
                member_id=member, order_id=event.order_id, refund_id=CANCELLED, amount=event.refund_amount, fully_refunded=True
            )
        ]
    return []
