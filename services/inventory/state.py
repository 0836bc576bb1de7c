"""Inventory's state and its fold (pure): `evolve(state, event)` applies one event through its
evolver in `EVOLVERS` (one per event type), in place, and returns the state. The state of a partition
is an :class:`Inventory` — every sku whose key hashes to it, plus what the partition keeps for the
skus as a whole (presale links, the last reviewed day).

Nothing is decided here: derived events (alerts, suggestions, slow movers) are decided once, in
`domain.decide`, and folding them only sets flags — a rebuild emits nothing (R-X-2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flexchain.messages import Message
from services.inventory import stock_math
from services.inventory.messages import (
    DailyStockReviewed,
    GiftWrittenOff,
    InventoryCommandRejected,
    LiveStreamEnded,
    LiveStreamScheduled,
    LowStockAlertCleared,
    LowStockAlertRaised,
    PresaleCampaignLinked,
    RegularStockPlanned,
    ReplenishmentSuggested,
    ReservationCommitted,
    ReservationRejected,
    ReservationReleased,
    SafetyStockSet,
    SkuRegistered,
    SlowMovingStockCleared,
    SlowMovingStockDetected,
    StockBecameAvailable,
    StockPolicyConfigured,
    StockReceived,
    StockReserved,
    StockReturned,
    StockTransferSuggested,
)
from services.inventory.stock_math import StockPolicy

DEFAULT_LOW_STOCK_FLOOR = 50  # R-INV-3: the absolute floor
LIVE_STREAM_SHARE_PERCENT = 20  # R-INV-3: share of a live stream's expected sales


@dataclass
class WarehouseStock:
    """One warehouse's stock of a sku. R-INV-2: on hand = received − shipped + returned (grade A),
    clearance = returned (grade B), at every point of the log."""

    on_hand: int = 0
    reserved: int = 0
    clearance: int = 0
    received: int = 0
    shipped: int = 0
    returned_a: int = 0
    returned_b: int = 0

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
    standing_stock: int = 0  # R-INV-7: the floor under the safety stock after a presale
    registered_at: int | None = None
    policy: StockPolicy | None = None  # R-INV-4: None = the safety stock is set by hand
    safety_basis: str | None = None
    shipped_by_day: dict[int, int] = field(default_factory=dict)  # business day → units shipped
    gift_holds: dict[str, str] = field(default_factory=dict)  # order id → gift rule id of its hold
    shipped_from: dict[str, dict[str, int]] = field(default_factory=dict)  # order → warehouse → units not returned
    slow_moving: bool = False  # R-INV-6: inside an episode
    slow_episodes: int = 0
    written_off: int = 0
    last_replenishment: ReplenishmentSuggested | None = None
    last_transfers: list[StockTransferSuggested] = field(default_factory=list)

    @property
    def available(self) -> int:
        return sum(w.available for w in self.warehouses.values())

    @property
    def on_hand(self) -> int:
        return sum(w.on_hand for w in self.warehouses.values())

    @property
    def reserved(self) -> int:
        return sum(w.reserved for w in self.warehouses.values())

    @property
    def registered_day(self) -> int | None:
        return None if self.registered_at is None else stock_math.day_of(self.registered_at)

    def effective_safety_stock(self) -> int:
        """R-INV-4 with R-INV-7: the safety stock, never below the standing stock of a presale."""
        return max(self.safety_stock, self.standing_stock)

    def threshold(self) -> int:
        """R-INV-3: the largest of the floor, the safety stock (R-INV-4, at least the standing stock of
        R-INV-7) and 20 % of the largest scheduled live stream's expected sales, rounded up."""
        stream = max(self.streams.values(), default=0)
        live = math.ceil(stream * LIVE_STREAM_SHARE_PERCENT / 100)
        return max(self.low_stock_floor, self.effective_safety_stock(), live)

    def velocity(self, today: int) -> Decimal:
        window = (self.policy or stock_math.DEFAULT_POLICY).velocity_window_days
        return stock_math.as_decimal(stock_math.velocity(self.shipped_by_day, today, window, self.registered_day))


@dataclass
class Inventory:
    skus: dict[str, Sku] = field(default_factory=dict)
    campaigns: dict[str, str] = field(default_factory=dict)  # presale campaign → its sku, until planned
    pending_standing: dict[str, int] = field(default_factory=dict)  # R-INV-7 plans of unregistered skus
    reviewed_day: int | None = None  # the last business day this partition reviewed


def new_state() -> Inventory:
    return Inventory()


def policy_of(e: StockPolicyConfigured) -> StockPolicy:
    return StockPolicy(
        e.lead_time_days,
        e.cover_factor,
        e.gift_tier,
        e.forecast_daily_units,
        e.monthly_visitors,
        e.conversion_rate,
        e.velocity_window_days,
        e.slow_mover_window_days,
        e.sell_through_floor,
    )


def apply_threshold(item: Sku, e: Message) -> None:
    """The part of an event that moves the sku's threshold (also used on a copy, to look ahead)."""
    if isinstance(e, SafetyStockSet):
        item.safety_stock = e.units
    elif isinstance(e, LiveStreamScheduled):
        item.streams[e.stream_id] = e.expected_sales
    elif isinstance(e, LiveStreamEnded):
        item.streams.pop(e.stream_id, None)
    elif isinstance(e, RegularStockPlanned):
        item.standing_stock = e.standing_units


Evolver = Callable[[Inventory, Any], None]
SkuEvolver = Callable[[Sku, Any], None]


def evolve(state: Inventory, e: Message) -> Inventory:
    """Fold one event through its evolver (`EVOLVERS`); returns the state, changed in place."""
    evolver = EVOLVERS.get(type(e))
    if evolver is not None:
        evolver(state, e)
    return state


def _of_sku(apply: SkuEvolver) -> Evolver:
    """An evolver of the event's sku: nothing for a sku this partition does not hold."""

    def evolver(state: Inventory, e: Message) -> None:
        item = state.skus.get(e.key)
        if item is None:
            return
        apply(item, e)
        if item.available > 0:
            item.ever_available = True

    return evolver


def _unchanged(item: Sku, e: Message) -> None:
    """Rejections and back-in-stock news: the sku stays as it was."""


def _registered(state: Inventory, e: SkuRegistered) -> None:
    if e.key in state.skus:
        return  # a second registration changes nothing
    standing = state.pending_standing.pop(e.sku, 0)
    state.skus[e.sku] = Sku(e.sku, e.name, e.is_gift, e.low_stock_floor, standing_stock=standing, registered_at=e.registered_at)


def _reviewed(state: Inventory, e: DailyStockReviewed) -> None:
    if e.key not in state.skus:  # the partition's day mark (no key)
        state.reviewed_day = e.day


def _presale_planned(state: Inventory, e: PresaleCampaignLinked | RegularStockPlanned) -> None:
    """R-INV-7: the link or the plan is the partition's; the plan of an unregistered sku waits for it."""
    _presale(state, e)
    item = state.skus.get(e.key)
    if item is None:
        if isinstance(e, RegularStockPlanned):
            state.pending_standing[e.sku] = e.standing_units
        return
    apply_threshold(item, e)
    if item.available > 0:
        item.ever_available = True


def _reserved(item: Sku, e: StockReserved) -> None:
    held = item.reservations.setdefault(e.order_id, {})
    for a in e.allocations:
        item.warehouses[a.warehouse].reserved += a.qty
        held[a.warehouse] = held.get(a.warehouse, 0) + a.qty
    if e.gift_rule_id is not None:
        item.gift_holds[e.order_id] = e.gift_rule_id


def _received(item: Sku, e: StockReceived) -> None:
    wh = item.warehouses.setdefault(e.warehouse, WarehouseStock())
    wh.on_hand += e.qty
    wh.received += e.qty


def _returned(item: Sku, e: StockReturned) -> None:
    _came_back(item, e)
    wh = item.warehouses.setdefault(e.warehouse, WarehouseStock())
    if e.grade == "A":
        wh.on_hand += e.qty
        wh.returned_a += e.qty
    else:
        wh.clearance += e.qty
        wh.returned_b += e.qty


def _presale(state: Inventory, e: PresaleCampaignLinked | RegularStockPlanned) -> None:
    if isinstance(e, PresaleCampaignLinked):
        state.campaigns[e.campaign_id] = e.sku
    else:
        state.campaigns.pop(e.campaign_id, None)  # planned once


def _released(item: Sku, e: ReservationReleased) -> None:
    held = item.reservations.get(e.order_id, {})
    for a in e.allocations:
        item.warehouses[a.warehouse].reserved -= a.qty
        held[a.warehouse] -= a.qty
        if held[a.warehouse] == 0:
            del held[a.warehouse]
    if not held:
        item.reservations.pop(e.order_id, None)
        if item.gift_holds:
            item.gift_holds.pop(e.order_id, None)


def _came_back(item: Sku, e: StockReturned) -> None:
    shipped = item.shipped_from.get(e.order_id)
    if shipped is None or e.warehouse not in shipped:
        return
    shipped[e.warehouse] = max(0, shipped[e.warehouse] - e.qty)
    if not any(shipped.values()):
        del item.shipped_from[e.order_id]


def _committed(item: Sku, e: ReservationCommitted) -> None:
    qty = 0
    shipped = item.shipped_from.setdefault(e.order_id, {})
    for a in e.allocations:
        wh = item.warehouses[a.warehouse]
        wh.reserved -= a.qty
        wh.on_hand -= a.qty
        wh.shipped += a.qty
        shipped[a.warehouse] = shipped.get(a.warehouse, 0) + a.qty
        qty += a.qty
    item.reservations.pop(e.order_id, None)
    if item.gift_holds:
        item.gift_holds.pop(e.order_id, None)
    if e.committed_at is not None and qty:
        stock_math.add_shipment(item.shipped_by_day, stock_math.day_of(e.committed_at), qty, stock_math.kept_days(item.policy))


def _alert_raised(item: Sku, e: LowStockAlertRaised) -> None:
    item.alert_active = True
    item.crossings = e.crossing
    item.last_replenishment = None
    item.last_transfers = []


def _alert_cleared(item: Sku, e: LowStockAlertCleared) -> None:
    item.alert_active = False


def _replenishment(item: Sku, e: ReplenishmentSuggested) -> None:
    item.last_replenishment = e


def _transfer(item: Sku, e: StockTransferSuggested) -> None:
    item.last_transfers.append(e)


def _slow_detected(item: Sku, e: SlowMovingStockDetected) -> None:
    item.slow_moving = True
    item.slow_episodes = e.episode


def _slow_cleared(item: Sku, e: SlowMovingStockCleared) -> None:
    item.slow_moving = False


def _policy_configured(item: Sku, e: StockPolicyConfigured) -> None:
    item.policy = policy_of(e)


def _written_off(item: Sku, e: GiftWrittenOff) -> None:
    item.written_off += e.qty


def _safety_set(item: Sku, e: SafetyStockSet) -> None:
    item.safety_basis = e.basis
    apply_threshold(item, e)


EVOLVERS: dict[type[Message], Evolver] = {
    SkuRegistered: _registered,
    DailyStockReviewed: _reviewed,
    PresaleCampaignLinked: _presale_planned,
    RegularStockPlanned: _presale_planned,
    StockReserved: _of_sku(_reserved),
    ReservationReleased: _of_sku(_released),
    StockReceived: _of_sku(_received),
    ReservationCommitted: _of_sku(_committed),
    StockReturned: _of_sku(_returned),
    LowStockAlertRaised: _of_sku(_alert_raised),
    LowStockAlertCleared: _of_sku(_alert_cleared),
    ReplenishmentSuggested: _of_sku(_replenishment),
    StockTransferSuggested: _of_sku(_transfer),
    SlowMovingStockDetected: _of_sku(_slow_detected),
    SlowMovingStockCleared: _of_sku(_slow_cleared),
    StockPolicyConfigured: _of_sku(_policy_configured),
    GiftWrittenOff: _of_sku(_written_off),
    SafetyStockSet: _of_sku(_safety_set),
    LiveStreamScheduled: _of_sku(apply_threshold),
    LiveStreamEnded: _of_sku(apply_threshold),
    ReservationRejected: _of_sku(_unchanged),
    StockBecameAvailable: _of_sku(_unchanged),
    InventoryCommandRejected: _of_sku(_unchanged),
}
