"""Order's saga policy: inventory's answers and clock ticks become order commands (pure)."""

from __future__ import annotations

from flexchain.messages import Message
from services.clock.messages import ClockTicked
from services.inventory.messages import ReservationRejected, StockReserved
from services.order.messages import CheckOrderTimers, RecordLineReservation


def react(event: Message) -> list[Message]:
    if isinstance(event, StockReserved):
        return [RecordLineReservation(event.order_id, event.sku, True, "")]
    if isinstance(event, ReservationRejected):
        return [RecordLineReservation(event.order_id, event.sku, False, event.reason)]
    if isinstance(event, ClockTicked):
        return [CheckOrderTimers(event.time)]  # empty key: sent to every partition
    return []
