"""Inventory's saga policy: what order events ask of stock (pure; the router only routes).

OrderPlaced → ReserveStock per line; OrderRejected / OrderCancelled → ReleaseReservation per sku
(a no-op where nothing is held); OrderShipped → CommitReservation; OrderRefunded → ReturnStock
(goods came back: grade A for no-reason and late returns, grade B for defect and damage) or a
partial ReleaseReservation when the goods had not shipped (R-INV-2, R-X-3).
"""

from __future__ import annotations

from flexchain.messages import Message
from services.inventory.messages import CommitReservation, ReleaseReservation, ReserveStock, ReturnStock
from services.order.messages import OrderCancelled, OrderPlaced, OrderRefunded, OrderRejected, OrderShipped

RESELLABLE_REASONS = ("no_reason", "late")  # returned goods graded A; defect and damaged → B


def react(event: Message) -> list[Message]:
    if isinstance(event, (OrderPlaced, OrderShipped)) and event.campaign_id:
        return []  # presale goods are made after the campaign: nothing to reserve or commit yet
    if isinstance(event, OrderPlaced):
        return [ReserveStock(line.sku, event.order_id, line.qty) for line in event.lines]
    if isinstance(event, OrderRejected):
        return [ReleaseReservation(sku, event.order_id, "order rejected") for sku in event.release_skus]
    if isinstance(event, OrderCancelled):
        return [ReleaseReservation(sku, event.order_id, f"order cancelled: {event.reason}") for sku in event.release_skus]
    if isinstance(event, OrderShipped):
        return [CommitReservation(sku, event.order_id) for sku in event.skus]
    if isinstance(event, OrderRefunded):
        out: list[Message] = []
        for line in event.lines:
            if line.goods_returned:
                grade = "A" if line.reason in RESELLABLE_REASONS else "B"
                out.append(ReturnStock(line.sku, event.order_id, line.qty, grade))
            else:
                out.append(ReleaseReservation(line.sku, event.order_id, "order refunded", line.qty))
        return out
    return []
