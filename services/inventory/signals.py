"""Derived signals of a change to one sku (pure): R-INV-3 the low-stock alert once per crossing,
R-INV-5 its replenishment and transfer suggestions in the same decision, R-INV-6a back in stock.

`with_signals(item, events, now)` appends what `events` (not yet applied) imply. It costs O(1) on
the reservation path; the suggestions are computed only when an alert is raised.
"""

from __future__ import annotations

from flexchain.messages import Message
from services.inventory import stock_math
from services.inventory.messages import (
    InventoryCommandRejected,
    LiveStreamEnded,
    LiveStreamScheduled,
    LowStockAlertCleared,
    LowStockAlertRaised,
    RegularStockPlanned,
    ReplenishmentSuggested,
    ReservationReleased,
    SafetyStockSet,
    StockBecameAvailable,
    StockPolicyConfigured,
    StockReceived,
    StockReserved,
    StockReturned,
    StockTransferSuggested,
)
from services.inventory.state import Sku, apply_threshold, policy_of
from services.inventory.stock_math import StockPolicy


def reject(cmd: Message, reason: str) -> list[Message]:
    return [InventoryCommandRejected(sku=cmd.key, command=type(cmd).__name__, reason=reason)]


_THRESHOLD_EVENTS = (SafetyStockSet, LiveStreamScheduled, LiveStreamEnded, RegularStockPlanned)


def with_signals(item: Sku, events: list[Message], now: int) -> list[Message]:
    """Append the derived events a change implies: alert raised (with its suggestions) or cleared,
    back in stock. Costs O(1) unless the alert is raised (once per crossing)."""
    before = item.available
    after = before + _available_delta(events)
    changes_threshold = any(isinstance(e, _THRESHOLD_EVENTS) for e in events)
    threshold = _shadow(item, events).threshold() if changes_threshold else item.threshold()
    out = list(events)
    if not item.alert_active and after < threshold:  # R-INV-3: once per crossing
        crossing = item.crossings + 1
        out.append(LowStockAlertRaised(sku=item.sku, available=after, threshold=threshold, crossing=crossing))
        out.extend(_suggestions(item, events, after, threshold, crossing, now))
    elif item.alert_active and after > threshold:  # recovered above: re-armed
        out.append(LowStockAlertCleared(sku=item.sku, available=after, threshold=threshold, crossing=item.crossings))
    if before == 0 and after > 0 and item.ever_available:
        out.append(StockBecameAvailable(sku=item.sku, available=after))  # R-INV-6a
    return out


def _shadow(item: Sku, events: list[Message]) -> Sku:
    """A copy of the threshold-relevant part of the sku with `events` applied."""
    copy = Sku(item.sku, item.name, item.is_gift, item.low_stock_floor, item.safety_stock, dict(item.streams))
    copy.standing_stock = item.standing_stock
    for e in events:
        apply_threshold(copy, e)
    return copy


def _available_delta(events: list[Message]) -> int:
    delta = 0
    for e in events:
        if isinstance(e, StockReserved):
            delta -= e.qty
        elif isinstance(e, StockReceived):
            delta += e.qty
        elif isinstance(e, ReservationReleased):
            delta += sum(a.qty for a in e.allocations)
        elif isinstance(e, StockReturned) and e.grade == "A":
            delta += e.qty
    return delta


def _warehouses_after(item: Sku, events: list[Message]) -> dict[str, int]:
    """Available units per warehouse once `events` are applied."""
    avail = {name: w.available for name, w in item.warehouses.items()}
    for e in events:
        if isinstance(e, StockReserved):
            for a in e.allocations:
                avail[a.warehouse] -= a.qty
        elif isinstance(e, ReservationReleased):
            for a in e.allocations:
                avail[a.warehouse] += a.qty
        elif isinstance(e, StockReceived) or (isinstance(e, StockReturned) and e.grade == "A"):
            avail[e.warehouse] = avail.get(e.warehouse, 0) + e.qty
    return avail


def _suggestions(item: Sku, events: list[Message], available: int, threshold: int, crossing: int, now: int) -> list[Message]:
    """R-INV-5: what to order from the supplier, and what to move between warehouses."""
    policy = _policy_after(item, events) or stock_math.DEFAULT_POLICY
    measured = stock_math.velocity(item.shipped_by_day, stock_math.day_of(now), policy.velocity_window_days, item.registered_day)
    demand = stock_math.daily_demand(policy, item.is_gift, measured)
    qty = stock_math.replenishment_qty(threshold, available, demand, policy.lead_time_days)
    out: list[Message] = [
        ReplenishmentSuggested(
            sku=item.sku,
            crossing=crossing,
            available=available,
            threshold=threshold,
            daily_demand=stock_math.as_decimal(demand),
            lead_time_days=policy.lead_time_days,
            qty=qty,
        )
    ]
    for frm, to, n in stock_math.transfers(_warehouses_after(item, events), threshold):
        out.append(StockTransferSuggested(sku=item.sku, crossing=crossing, from_warehouse=frm, to_warehouse=to, qty=n))
    return out


def _policy_after(item: Sku, events: list[Message]) -> StockPolicy | None:
    for e in reversed(events):
        if isinstance(e, StockPolicyConfigured):
            return policy_of(e)
    return item.policy
