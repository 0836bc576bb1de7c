"""Inventory's pure core: stock per sku per warehouse, reservations, low-stock alerts.

`decide(state, command, now)` returns the events a command causes and changes nothing;
`evolve(state, event)` folds one event into the state (in place, for speed, and returns it).
The state of a partition is an :class:`Inventory` — every sku whose key hashes to it.
No I/O, no clock: `now` is the command's business time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flexchain.messages import Message
from services.inventory.messages import (
    Allocation,
    CommitReservation,
    EndLiveStream,
    InventoryCommandRejected,
    LiveStreamEnded,
    LiveStreamScheduled,
    LowStockAlertCleared,
    LowStockAlertRaised,
    ReceiveStock,
    RegisterSku,
    ReleaseReservation,
    ReservationCommitted,
    ReservationRejected,
    ReservationReleased,
    ReserveStock,
    ReturnStock,
    SafetyStockSet,
    ScheduleLiveStream,
    SetSafetyStock,
    SkuRegistered,
    StockBackInStock,
    StockReceived,
    StockReserved,
    StockReturned,
)

DEFAULT_LOW_STOCK_FLOOR = 50  # R-INV-3a
LIVE_STREAM_SHARE_PERCENT = 20  # R-INV-3c
GRADES = ("A", "B")  # R-INV-2


@dataclass
class WarehouseStock:
    on_hand: int = 0
    reserved: int = 0
    clearance: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass
class Sku:
    sku: str
    name: str
    is_gift: bool = False
    low_stock_floor: int = DEFAULT_LOW_STOCK_FLOOR
    safety_stock: int = 0
    streams: dict[str, int] = field(default_factory=dict)
    warehouses: dict[str, WarehouseStock] = field(default_factory=dict)
    reservations: dict[str, dict[str, int]] = field(default_factory=dict)
    alert_active: bool = False
    crossings: int = 0
    ever_available: bool = False

    @property
    def available(self) -> int:
        return sum(w.available for w in self.warehouses.values())

    @property
    def on_hand(self) -> int:
        return sum(w.on_hand for w in self.warehouses.values())

    @property
    def reserved(self) -> int:
        return sum(w.reserved for w in self.warehouses.values())

    def threshold(self) -> int:
        """R-INV-3: the largest of the floor, the safety stock and 20 % of a scheduled stream."""
        stream = max(self.streams.values(), default=0)
        return max(self.low_stock_floor, self.safety_stock, math.ceil(stream * LIVE_STREAM_SHARE_PERCENT / 100))


@dataclass
class Inventory:
    skus: dict[str, Sku] = field(default_factory=dict)


def new_state() -> Inventory:
    return Inventory()


# --- decide ------------------------------------------------------------------------------------


def _reject(cmd: Message, reason: str) -> list[Message]:
    return [InventoryCommandRejected(sku=cmd.key, command=type(cmd).__name__, reason=reason)]


def _allocate(item: Sku, qty: int, preferred: str | None) -> list[Allocation]:
    """Preferred warehouse if it can hold the whole line, else the fullest warehouses first."""
    if preferred is not None:
        wh = item.warehouses.get(preferred)
        if wh is not None and wh.available >= qty:
            return [Allocation(preferred, qty)]
    out: list[Allocation] = []
    left = qty
    for name, wh in sorted(item.warehouses.items(), key=lambda kv: (-kv[1].available, kv[0])):
        if left == 0:
            break
        take = min(left, wh.available)
        if take > 0:
            out.append(Allocation(name, take))
            left -= take
    return out


def _with_signals(item: Sku, events: list[Message]) -> list[Message]:
    """Append the derived events a change implies: alert raised or cleared, back in stock."""
    before = item.available
    after = before + _available_delta(events)
    changes_threshold = any(isinstance(e, _THRESHOLD_EVENTS) for e in events)
    threshold = _shadow(item, events).threshold() if changes_threshold else item.threshold()
    out = list(events)
    if not item.alert_active and after < threshold:  # R-INV-3: once per crossing
        out.append(LowStockAlertRaised(item.sku, after, threshold, item.crossings + 1))
    elif item.alert_active and after > threshold:  # recovered above: re-armed
        out.append(LowStockAlertCleared(item.sku, after, threshold, item.crossings))
    if before == 0 and after > 0 and item.ever_available:
        out.append(StockBackInStock(item.sku, after))  # R-INV-6a
    return out


_THRESHOLD_EVENTS = (SafetyStockSet, LiveStreamScheduled, LiveStreamEnded)


def _shadow(item: Sku, events: list[Message]) -> Sku:
    """A copy of the threshold-relevant part of the sku with `events` applied."""
    copy = Sku(item.sku, item.name, item.is_gift, item.low_stock_floor, item.safety_stock, dict(item.streams))
    for e in events:
        _apply_threshold(copy, e)
    return copy


def _available_delta(events: list[Message]) -> int:
    delta = 0
    for e in events:
        if isinstance(e, StockReceived):
            delta += e.qty
        elif isinstance(e, StockReserved):
            delta -= e.qty
        elif isinstance(e, ReservationReleased):
            delta += sum(a.qty for a in e.allocations)
        elif isinstance(e, StockReturned) and e.grade == "A":
            delta += e.qty
    return delta


def decide(state: Inventory, cmd: Message, now: int) -> list[Message]:
    if isinstance(cmd, RegisterSku):
        if cmd.sku in state.skus:
            return _reject(cmd, f"sku {cmd.sku} is already registered")
        floor = DEFAULT_LOW_STOCK_FLOOR if cmd.low_stock_floor is None else cmd.low_stock_floor
        if floor < 0:
            return _reject(cmd, "low_stock_floor must be >= 0")
        return [SkuRegistered(cmd.sku, cmd.name, cmd.is_gift, floor)]
    item = state.skus.get(cmd.key)
    if item is None:
        if isinstance(cmd, ReserveStock):
            return [ReservationRejected(cmd.sku, cmd.order_id, cmd.qty, 0, f"unknown sku {cmd.sku}")]
        if isinstance(cmd, ReleaseReservation):
            return []
        return _reject(cmd, f"unknown sku {cmd.key}")
    handler = _HANDLERS.get(type(cmd))
    if handler is None:
        return _reject(cmd, f"{type(cmd).__name__} is not an inventory command")
    events = handler(item, cmd)
    if not events or isinstance(events[0], (InventoryCommandRejected, ReservationRejected)):
        return events
    return _with_signals(item, events)


def _receive(item: Sku, cmd: Any) -> list[Message]:
    if cmd.qty <= 0:
        return _reject(cmd, "qty must be a positive whole number")
    if not cmd.warehouse:
        return _reject(cmd, "warehouse is required")
    return [StockReceived(item.sku, cmd.warehouse, cmd.qty, cmd.reference)]


def _reserve(item: Sku, cmd: Any) -> list[Message]:
    if cmd.order_id in item.reservations:
        return [ReservationRejected(item.sku, cmd.order_id, cmd.qty, item.available, "order already holds a reservation")]
    if cmd.qty <= 0:
        return [ReservationRejected(item.sku, cmd.order_id, cmd.qty, item.available, "qty must be positive")]
    available = item.available
    if cmd.qty > available:  # R-INV-1: available never goes below zero
        return [
            ReservationRejected(item.sku, cmd.order_id, cmd.qty, available, f"only {available} available, {cmd.qty} requested")
        ]
    return [StockReserved(item.sku, cmd.order_id, cmd.qty, _allocate(item, cmd.qty, cmd.preferred_warehouse))]


def _release(item: Sku, cmd: Any) -> list[Message]:
    held = item.reservations.get(cmd.order_id)
    if not held:
        return []  # nothing held: releasing is a no-op (a rejected line, or already released)
    want = sum(held.values()) if cmd.qty is None else min(cmd.qty, sum(held.values()))
    if want <= 0:
        return []
    allocations: list[Allocation] = []
    for wh, qty in sorted(held.items()):
        take = min(qty, want)
        if take:
            allocations.append(Allocation(wh, take))
            want -= take
    return [ReservationReleased(item.sku, cmd.order_id, allocations, cmd.reason)]


def _commit(item: Sku, cmd: Any) -> list[Message]:
    held = item.reservations.get(cmd.order_id)
    if not held:
        return _reject(cmd, f"order {cmd.order_id} holds no reservation of {item.sku}")
    return [ReservationCommitted(item.sku, cmd.order_id, [Allocation(w, q) for w, q in sorted(held.items())])]


def _return(item: Sku, cmd: Any) -> list[Message]:
    if cmd.qty <= 0:
        return _reject(cmd, "qty must be positive")
    if cmd.grade not in GRADES:
        return _reject(cmd, f"grade must be one of {', '.join(GRADES)}")
    warehouse = cmd.warehouse or next(iter(item.warehouses), None)
    if warehouse is None:
        return _reject(cmd, "no warehouse to return to")
    return [StockReturned(item.sku, cmd.order_id, warehouse, cmd.qty, cmd.grade)]


def _safety(item: Sku, cmd: Any) -> list[Message]:
    if cmd.units < 0:
        return _reject(cmd, "units must be >= 0")
    return [SafetyStockSet(item.sku, cmd.units)]


def _schedule(item: Sku, cmd: Any) -> list[Message]:
    if cmd.expected_sales < 0:
        return _reject(cmd, "expected_sales must be >= 0")
    return [LiveStreamScheduled(item.sku, cmd.stream_id, cmd.expected_sales)]


def _end_stream(item: Sku, cmd: Any) -> list[Message]:
    if cmd.stream_id not in item.streams:
        return _reject(cmd, f"no live stream {cmd.stream_id} is scheduled for {item.sku}")
    return [LiveStreamEnded(item.sku, cmd.stream_id)]


_HANDLERS: dict[type, Callable[[Sku, Any], list[Message]]] = {
    ReceiveStock: _receive,
    ReserveStock: _reserve,
    ReleaseReservation: _release,
    CommitReservation: _commit,
    ReturnStock: _return,
    SetSafetyStock: _safety,
    ScheduleLiveStream: _schedule,
    EndLiveStream: _end_stream,
}


# --- evolve ------------------------------------------------------------------------------------


def _apply_threshold(item: Sku, e: Message) -> None:
    if isinstance(e, SafetyStockSet):
        item.safety_stock = e.units
    elif isinstance(e, LiveStreamScheduled):
        item.streams[e.stream_id] = e.expected_sales
    elif isinstance(e, LiveStreamEnded):
        item.streams.pop(e.stream_id, None)


def evolve(state: Inventory, e: Message) -> Inventory:
    if isinstance(e, SkuRegistered):
        state.skus[e.sku] = Sku(e.sku, e.name, e.is_gift, e.low_stock_floor)
        return state
    item = state.skus.get(e.key)
    if item is None:
        return state  # InventoryCommandRejected / ReservationRejected for unknown skus
    if isinstance(e, StockReceived):
        item.warehouses.setdefault(e.warehouse, WarehouseStock()).on_hand += e.qty
    elif isinstance(e, StockReserved):
        held = item.reservations.setdefault(e.order_id, {})
        for a in e.allocations:
            item.warehouses[a.warehouse].reserved += a.qty
            held[a.warehouse] = held.get(a.warehouse, 0) + a.qty
    elif isinstance(e, ReservationReleased):
        held = item.reservations.get(e.order_id, {})
        for a in e.allocations:
            item.warehouses[a.warehouse].reserved -= a.qty
            held[a.warehouse] -= a.qty
            if held[a.warehouse] == 0:
                del held[a.warehouse]
        if not held:
            item.reservations.pop(e.order_id, None)
    elif isinstance(e, ReservationCommitted):
        for a in e.allocations:
            wh = item.warehouses[a.warehouse]
            wh.reserved -= a.qty
            wh.on_hand -= a.qty
        item.reservations.pop(e.order_id, None)
    elif isinstance(e, StockReturned):
        wh = item.warehouses.setdefault(e.warehouse, WarehouseStock())
        if e.grade == "A":
            wh.on_hand += e.qty
        else:
            wh.clearance += e.qty
    elif isinstance(e, LowStockAlertRaised):
        item.alert_active = True
        item.crossings = e.crossing
    elif isinstance(e, LowStockAlertCleared):
        item.alert_active = False
    else:
        _apply_threshold(item, e)
    if item.available > 0:
        item.ever_available = True
    return state
