"""Inventory's pure core: stock per sku per warehouse, reservations, low-stock alerts and plans.

`decide(state, command, now)` returns the events a command causes and changes nothing;
`evolve(state, event)` (in `state.py`) folds one event into the state, in place, and returns it.
No I/O, no clock: `now` is the command's business time (R-X-1).

* R-INV-1/2 stock, reservations, grading of returns — this module;
* R-INV-3 the alert once per crossing, with R-INV-5's replenishment and transfer suggestions in the
  same decision, and R-INV-6a — `signals.py`;
* R-INV-4 dynamic safety stock and R-INV-6 slow movers — the daily review (`CheckStockTimers`) and
  `ConfigureStockPolicy`; R-INV-7 standing stock after a presale — `RecordPresaleClose`: `plan_deciders.py`;
  the arithmetic of all four is in `stock_math.py`; the state and `evolve` in `state.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flexchain.messages import Message
from services.inventory import plan_deciders
from services.inventory.messages import (
    Allocation,
    CheckStockTimers,
    CommitReservation,
    ConfigureStockPolicy,
    EndLiveStream,
    GiftWrittenOff,
    InventoryCommandRejected,
    LinkPresaleCampaign,
    LiveStreamEnded,
    LiveStreamScheduled,
    ReceiveStock,
    RecordGiftWriteOff,
    RecordPresaleClose,
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
    StockReceived,
    StockReserved,
    StockReturned,
)
from services.inventory.plan_deciders import PRESALE_SUCCEEDED
from services.inventory.signals import reject, with_signals
from services.inventory.state import (
    DEFAULT_LOW_STOCK_FLOOR,
    LIVE_STREAM_SHARE_PERCENT,
    Inventory,
    Sku,
    WarehouseStock,
    evolve,
    new_state,
)

__all__ = [
    "DEFAULT_LOW_STOCK_FLOOR",
    "GRADES",
    "LIVE_STREAM_SHARE_PERCENT",
    "PRESALE_SUCCEEDED",
    "Inventory",
    "Sku",
    "WarehouseStock",
    "decide",
    "evolve",
    "new_state",
]

GRADES = ("A", "B")  # R-INV-2
RETURNS_WAREHOUSE = "returns"  # where returned goods go when no warehouse of the sku is known


# --- decide ------------------------------------------------------------------------------------


def decide(state: Inventory, cmd: Message, now: int) -> list[Message]:
    whole = _PARTITION_DECIDERS.get(type(cmd))
    if whole is not None:
        return whole(state, cmd, now)
    item = state.skus.get(cmd.key)
    if item is None:
        if isinstance(cmd, ReserveStock):
            return [
                ReservationRejected(sku=cmd.sku, order_id=cmd.order_id, qty=cmd.qty, available=0, reason=f"unknown sku {cmd.sku}")
            ]
        if isinstance(cmd, ReleaseReservation | RecordGiftWriteOff):
            return []  # nothing of it is held here: nothing to give back or to record
        if isinstance(cmd, ReturnStock) and cmd.campaign_id and cmd.qty > 0 and cmd.grade in GRADES:
            return _presale_goods_back(cmd, now)
        return reject(cmd, f"unknown sku {cmd.key}")
    handler = _SKU_DECIDERS.get(type(cmd))
    if handler is None:
        return reject(cmd, f"{type(cmd).__name__} is not an inventory command")
    events = handler(item, cmd, now)
    if not events or isinstance(events[0], InventoryCommandRejected | ReservationRejected):
        return events
    return with_signals(item, events, now)


def _register(state: Inventory, cmd: Any, now: int) -> list[Message]:
    if not cmd.sku:
        return reject(cmd, "sku is required")
    if cmd.sku in state.skus:
        return reject(cmd, f"sku {cmd.sku} is already registered")
    floor = DEFAULT_LOW_STOCK_FLOOR if cmd.low_stock_floor is None else cmd.low_stock_floor
    if floor < 0:
        return reject(cmd, "low_stock_floor must be >= 0")
    return [SkuRegistered(sku=cmd.sku, name=cmd.name, is_gift=cmd.is_gift, low_stock_floor=floor, registered_at=now)]


# --- stock commands (R-INV-1, R-INV-2) ----------------------------------------------------------------


def _allocate(item: Sku, qty: int, preferred: str | None) -> list[Allocation]:
    """Preferred warehouse if it can hold the whole line, else the fullest warehouses first."""
    if preferred is not None:
        wh = item.warehouses.get(preferred)
        if wh is not None and wh.available >= qty:
            return [Allocation(warehouse=preferred, qty=qty)]
    out: list[Allocation] = []
    left = qty
    for name, wh in sorted(item.warehouses.items(), key=lambda kv: (-kv[1].available, kv[0])):
        if left == 0:
            break
        take = min(left, wh.available)
        if take > 0:
            out.append(Allocation(warehouse=name, qty=take))
            left -= take
    return out


def _receive(item: Sku, cmd: Any, now: int) -> list[Message]:
    if cmd.qty <= 0:
        return reject(cmd, "qty must be a positive whole number")
    if not cmd.warehouse:
        return reject(cmd, "warehouse is required")
    return [StockReceived(sku=item.sku, warehouse=cmd.warehouse, qty=cmd.qty, reference=cmd.reference)]


def _reserve(item: Sku, cmd: Any, now: int) -> list[Message]:
    if cmd.order_id in item.reservations:
        return [
            ReservationRejected(
                sku=item.sku,
                order_id=cmd.order_id,
                qty=cmd.qty,
                available=item.available,
                reason="order already holds a reservation",
            )
        ]
    if cmd.qty <= 0:
        return [
            ReservationRejected(
                sku=item.sku, order_id=cmd.order_id, qty=cmd.qty, available=item.available, reason="qty must be positive"
            )
        ]
    available = item.available
    if cmd.qty > available:  # R-INV-1: available never goes below zero
        return [
            ReservationRejected(
                sku=item.sku,
                order_id=cmd.order_id,
                qty=cmd.qty,
                available=available,
                reason=f"only {available} available, {cmd.qty} requested",
            )
        ]
    allocations = _allocate(item, cmd.qty, cmd.preferred_warehouse)
    return [
        StockReserved(sku=item.sku, order_id=cmd.order_id, qty=cmd.qty, allocations=allocations, gift_rule_id=cmd.gift_rule_id)
    ]


def _release(item: Sku, cmd: Any, now: int) -> list[Message]:
    held = item.reservations.get(cmd.order_id)
    if not held:
        return []  # nothing held: releasing is a no-op (a rejected line, or already released)
    if cmd.gift_rule_id is not None and item.gift_holds.get(cmd.order_id) != cmd.gift_rule_id:
        return []  # the order's hold of this sku is not that gift's (a main line, another rule's gift)
    want = sum(held.values()) if cmd.qty is None else min(cmd.qty, sum(held.values()))
    if want <= 0:
        return []
    allocations: list[Allocation] = []
    for wh, qty in sorted(held.items()):
        take = min(qty, want)
        if take:
            allocations.append(Allocation(warehouse=wh, qty=take))
            want -= take
    return [ReservationReleased(sku=item.sku, order_id=cmd.order_id, allocations=allocations, reason=cmd.reason)]


def _commit(item: Sku, cmd: Any, now: int) -> list[Message]:
    held = item.reservations.get(cmd.order_id)
    if not held:
        return reject(cmd, f"order {cmd.order_id} holds no reservation of {item.sku}")
    return [
        ReservationCommitted(
            sku=item.sku,
            order_id=cmd.order_id,
            allocations=[Allocation(warehouse=w, qty=q) for w, q in sorted(held.items())],
            committed_at=now,
        )
    ]


def _return(item: Sku, cmd: Any, now: int) -> list[Message]:
    """R-INV-2: back to the warehouses the order's units shipped from (most first), the rest to the
    named warehouse, else the sku's first, else the returns warehouse."""
    if cmd.qty <= 0:
        return reject(cmd, "qty must be positive")
    if cmd.grade not in GRADES:
        return reject(cmd, f"grade must be one of {', '.join(GRADES)}")
    out: list[Message] = []
    left = cmd.qty
    if cmd.warehouse is None:
        shipped = item.shipped_from.get(cmd.order_id, {})
        for name, qty in sorted(shipped.items(), key=lambda kv: (-kv[1], kv[0])):
            take = min(left, qty)
            if take > 0:
                out.append(StockReturned(sku=item.sku, order_id=cmd.order_id, warehouse=name, qty=take, grade=cmd.grade))
                left -= take
    if left:
        warehouse = cmd.warehouse or next(iter(item.warehouses), None) or RETURNS_WAREHOUSE
        out.append(StockReturned(sku=item.sku, order_id=cmd.order_id, warehouse=warehouse, qty=left, grade=cmd.grade))
    return out


def _presale_goods_back(cmd: ReturnStock, now: int) -> list[Message]:
    """Goods of a presale order came back for a sku inventory does not stock yet (they shipped from
    production): the sku joins the catalogue (no low-stock floor) and the goods the returns warehouse."""
    name = f"{cmd.sku} (returned from presale {cmd.campaign_id})"
    warehouse = cmd.warehouse or RETURNS_WAREHOUSE
    return [
        SkuRegistered(sku=cmd.sku, name=name, is_gift=False, low_stock_floor=0, registered_at=now),
        StockReturned(sku=cmd.sku, order_id=cmd.order_id, warehouse=warehouse, qty=cmd.qty, grade=cmd.grade),
    ]


def _write_off(item: Sku, cmd: Any, now: int) -> list[Message]:
    if cmd.qty <= 0:
        return reject(cmd, "qty must be positive")
    return [GiftWrittenOff(sku=item.sku, order_id=cmd.order_id, rule_id=cmd.rule_id, qty=cmd.qty, reason=cmd.reason)]


# --- thresholds by hand (R-INV-3); the stock policy (R-INV-4) is in plan_deciders.py --------------------------


def _safety(item: Sku, cmd: Any, now: int) -> list[Message]:
    if cmd.units < 0:
        return reject(cmd, "units must be >= 0")
    if item.policy is not None:
        return reject(cmd, f"the safety stock of {item.sku} follows its stock policy (R-INV-4): change the policy instead")
    return [SafetyStockSet(sku=item.sku, units=cmd.units)]


def _schedule(item: Sku, cmd: Any, now: int) -> list[Message]:
    if cmd.expected_sales < 0:
        return reject(cmd, "expected_sales must be >= 0")
    return [LiveStreamScheduled(sku=item.sku, stream_id=cmd.stream_id, expected_sales=cmd.expected_sales)]


def _end_stream(item: Sku, cmd: Any, now: int) -> list[Message]:
    if cmd.stream_id not in item.streams:
        return reject(cmd, f"no live stream {cmd.stream_id} is scheduled for {item.sku}")
    return [LiveStreamEnded(sku=item.sku, stream_id=cmd.stream_id)]


_SKU_DECIDERS: dict[type, Callable[[Sku, Any, int], list[Message]]] = {
    ReserveStock: _reserve,
    ReleaseReservation: _release,
    CommitReservation: _commit,
    ReceiveStock: _receive,
    ReturnStock: _return,
    SetSafetyStock: _safety,
    ScheduleLiveStream: _schedule,
    EndLiveStream: _end_stream,
    ConfigureStockPolicy: plan_deciders.configure,
    RecordGiftWriteOff: _write_off,
}


_PARTITION_DECIDERS: dict[type, Callable[[Inventory, Any, int], list[Message]]] = {
    RegisterSku: _register,
    CheckStockTimers: plan_deciders.review,
    LinkPresaleCampaign: plan_deciders.link,
    RecordPresaleClose: plan_deciders.presale_closed,
}

# every command and its decider (per sku or per partition): a test checks none is missing
DECIDERS: dict[type, Callable[..., list[Message]]] = {**_SKU_DECIDERS, **_PARTITION_DECIDERS}
