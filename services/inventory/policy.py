"""Inventory's saga policies: what other services' events ask of stock (pure; the router only routes).

order (`react`):
* OrderPlaced → ReserveStock per line, and per gift (`gift_rule_id` marks a gift's hold); nothing
  for a presale campaign's order (its goods are made after the campaign);
* GiftAttached → ReserveStock of the gift; GiftSubstituted → ReserveStock of the fallback gift
  (R-ORD-5); GiftOmitted / GiftRuleSkipped → ReleaseReservation of that gift's hold — only the hold
  made for that rule, never a main line of the same sku (a no-op when nothing is held);
* OrderRejected / OrderCancelled → ReleaseReservation per sku (gift skus included by the order);
  OrderShipped → CommitReservation per sku;
* OrderRefunded → per line, ReturnStock (goods came back: grade A for no-reason and late returns,
  grade B for defect and damage) or a partial ReleaseReservation when the goods had not shipped;
  per gift taken back with its main line (R-ORD-2a): ReturnStock graded the same way, a release of
  the gift's hold, or — a consumable gift that shipped — RecordGiftWriteOff: nothing comes back
  (R-INV-2, R-X-3).

presale (`react_presale`, R-INV-7): CampaignCreated → LinkPresaleCampaign keyed by the campaign's
`product` (the sku); a successful CampaignClosed → RecordPresaleClose on every partition (the event
carries no sku: the partition that holds the link answers).

clock (`react_clock`, R-X-1): ClockTicked → CheckStockTimers on every partition.
"""

from __future__ import annotations

from flexchain.messages import Message
from flexchain.ticks import ClockTicked
from services.inventory.domain import PRESALE_SUCCEEDED
from services.inventory.messages import (
    CheckStockTimers,
    CommitReservation,
    LinkPresaleCampaign,
    RecordGiftWriteOff,
    RecordPresaleClose,
    ReleaseReservation,
    ReserveStock,
    ReturnStock,
)
from services.order.messages import (
    GiftAttached,
    GiftOmitted,
    GiftRuleSkipped,
    GiftSubstituted,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
    OrderRejected,
    OrderShipped,
    RefundedGift,
)
from services.presale.messages import CampaignClosed, CampaignCreated

RESELLABLE_REASONS = ("no_reason", "late")  # returned goods graded A; defect and damaged → B
GIFT_TAKEN_BACK = "gift taken back with its main line"

# what the router decodes: every other type on those topics is skipped by its `type` header
ORDER_EVENTS: tuple[type[Message], ...] = (
    OrderPlaced,
    OrderRejected,
    OrderCancelled,
    OrderShipped,
    OrderRefunded,
    GiftAttached,
    GiftSubstituted,
    GiftOmitted,
    GiftRuleSkipped,
)
PRESALE_EVENTS: tuple[type[Message], ...] = (CampaignCreated, CampaignClosed)


def _grade(reason: str) -> str:
    return "A" if reason in RESELLABLE_REASONS else "B"


def react(event: Message) -> list[Message]:
    if isinstance(event, (OrderPlaced, OrderShipped)) and event.campaign_id:
        return []  # presale goods are made after the campaign: nothing to reserve or commit yet
    if isinstance(event, OrderPlaced):
        lines = [ReserveStock(sku=line.sku, order_id=event.order_id, qty=line.qty) for line in event.lines]
        gifts = [ReserveStock(sku=g.sku, order_id=event.order_id, qty=g.qty, gift_rule_id=g.rule_id) for g in event.gifts]
        return [*lines, *gifts]
    if isinstance(event, OrderRejected):
        return [ReleaseReservation(sku=sku, order_id=event.order_id, reason="order rejected") for sku in event.release_skus]
    if isinstance(event, OrderCancelled):
        return [
            ReleaseReservation(sku=sku, order_id=event.order_id, reason=f"order cancelled: {event.reason}")
            for sku in event.release_skus
        ]
    if isinstance(event, OrderShipped):
        return [CommitReservation(sku=sku, order_id=event.order_id) for sku in event.skus]
    if isinstance(event, OrderRefunded):
        return _refunded(event)
    return _gift(event)


def _refunded(event: OrderRefunded) -> list[Message]:
    out: list[Message] = []
    for line in event.lines:
        if line.goods_returned:
            out.append(
                ReturnStock(
                    sku=line.sku, order_id=event.order_id, qty=line.qty, grade=_grade(line.reason), campaign_id=event.campaign_id
                )
            )
        else:
            out.append(ReleaseReservation(sku=line.sku, order_id=event.order_id, reason="order refunded", qty=line.qty))
    out.extend(_gift_back(event.order_id, g) for g in event.gifts)
    return out


def _gift_back(order_id: str, g: RefundedGift) -> Message:
    """R-ORD-2a: a gift goes back with its main line."""
    if g.written_off:  # a consumable that shipped: nothing comes back, the write-off is recorded
        return RecordGiftWriteOff(sku=g.sku, order_id=order_id, rule_id=g.rule_id, qty=g.qty, reason=g.reason)
    if g.goods_returned:
        return ReturnStock(sku=g.sku, order_id=order_id, qty=g.qty, grade=_grade(g.reason))
    return ReleaseReservation(sku=g.sku, order_id=order_id, reason=GIFT_TAKEN_BACK, qty=g.qty, gift_rule_id=g.rule_id)


def _gift(event: Message) -> list[Message]:
    """Gifts that change after placement (R-ORD-3, R-ORD-4, R-ORD-5)."""
    if isinstance(event, GiftAttached):
        g = event.gift
        return [ReserveStock(sku=g.sku, order_id=event.order_id, qty=g.qty, gift_rule_id=g.rule_id)]
    if isinstance(event, GiftSubstituted):
        return [ReserveStock(sku=event.to_sku, order_id=event.order_id, qty=event.qty, gift_rule_id=event.rule_id)]
    if isinstance(event, GiftOmitted):
        reason = f"gift omitted: {event.reason}"
        return [ReleaseReservation(sku=event.sku, order_id=event.order_id, reason=reason, gift_rule_id=event.rule_id)]
    if isinstance(event, GiftRuleSkipped):
        reason = f"gift rule skipped: {event.reason}"
        return [ReleaseReservation(sku=event.gift_sku, order_id=event.order_id, reason=reason, gift_rule_id=event.rule_id)]
    return []


def react_presale(event: Message) -> list[Message]:
    """R-INV-7: a campaign's product is linked to its sku; its close plans the regular stock."""
    if isinstance(event, CampaignCreated):
        return [LinkPresaleCampaign(sku=event.product, campaign_id=event.campaign_id)] if event.product else []
    if isinstance(event, CampaignClosed) and event.outcome == PRESALE_SUCCEEDED:  # failed: nothing to plan
        return [
            RecordPresaleClose(
                campaign_id=event.campaign_id, outcome=event.outcome, pledged_units=event.pledged_units, closed_at=event.closed_at
            )
        ]
    return []


def react_clock(event: Message) -> list[Message]:
    """R-X-1: business time reaches every partition (empty key)."""
    if isinstance(event, ClockTicked):
        return [CheckStockTimers(time=event.time)]
    return []
