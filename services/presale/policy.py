"""Presale's saga policy (pure): order events and clock ticks become presale commands, keyed by
campaign id so each lands on the partition that owns the campaign.

OrderPlaced → RecordPledge (units = the order's quantity); OrderPaid → RecordPayment;
OrderCancelled → ReleasePledge (refunding `refund_amount` from escrow when it had been paid);
OrderRefunded → RecordOrderRefund — except the order service's echo of a refund presale issued
itself (`refund_id` = `presale-<campaign>-<order>`), which is dropped: its money already left escrow.
ClockTicked → CheckCampaignTimers for every partition (empty key). Orders without a campaign are
none of presale's business.
"""

from __future__ import annotations

from flexchain.messages import Message
from flexchain.ticks import ClockTicked
from services.order.messages import OrderCancelled, OrderPaid, OrderPlaced, OrderRefunded
from services.presale.messages import (
    CheckCampaignTimers,
    RecordOrderRefund,
    RecordPayment,
    RecordPledge,
    ReleasePledge,
    presale_refund_id,
)


def is_presale_echo(event: OrderRefunded) -> bool:
    """The order service refunding an order because presale asked it to (PresaleRefundIssued)."""
    return event.campaign_id is not None and event.refund_id == presale_refund_id(event.campaign_id, event.order_id)


def react(event: Message) -> list[Message]:
    if isinstance(event, ClockTicked):
        return [CheckCampaignTimers(time=event.time)]  # empty key: sent to every partition
    campaign = getattr(event, "campaign_id", None)
    if campaign is None:
        return []
    if isinstance(event, OrderPlaced):
        units = sum(line.qty for line in event.lines)
        group = getattr(event, "group_id", None)  # R-PRE-3: carried once the order service has it
        return [
            RecordPledge(campaign_id=campaign, order_id=event.order_id, member_id=event.member_id, units=units, group_id=group)
        ]
    if isinstance(event, OrderPaid):
        return [RecordPayment(campaign_id=campaign, order_id=event.order_id, amount=event.amount, payment_ref=event.payment_ref)]
    if isinstance(event, OrderCancelled):
        return [
            ReleasePledge(campaign_id=campaign, order_id=event.order_id, refund_amount=event.refund_amount, reason=event.reason)
        ]
    if isinstance(event, OrderRefunded):
        if is_presale_echo(event):
            return []
        units = sum(line.qty for line in event.lines)
        return [
            RecordOrderRefund(
                campaign_id=campaign,
                order_id=event.order_id,
                refund_id=event.refund_id,
                amount=event.amount,
                units=units,
                fully_refunded=event.fully_refunded,
            )
        ]
    return []
