"""Inventory's state and its fold (pure): `evolve(state, event)` applies one event, in place, and
returns the state. The state of a partition is an :class:`Inventory` — every sku whose key hashes to
it, plus what the partition keeps for the skus as a whole (presale links, the last reviewed day).

Nothing is decided here: derived events (alerts, suggestions, slow movers) are decided once, in
`domain.decide`, and folding them only sets flags — a rebuild emits nothing (R-X-2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

from flexchain.messages import Message
from services.inventory import stock_math
from services.inventory.messages import (
    DailyStockReviewed,
    GiftWrittenOff,
    LiveStreamEnded,
    LiveStreamScheduled,
    LowStockAlertCleared,
    LowStockAlertRaised,
    PresaleCampaignLinked,
    RegularStockPlanned,
    ReplenishmentSuggested,
    ReservationCommitted,
    ReservationReleased,
    SafetyStockSet,
    SkuRegistered,
    SlowMovingStockCleared,
    SlowMovingStockDetected,
    StockPolicyConfigured,
    StockReceived,
    StockReserved,
    StockReturned,
    StockTransferSuggested,
)
from services.inventory.stock_math import StockPolicy

DEFAULT_LOW_STOCK_FLOOR = 50  # R-INV-3a
LIVE_STREAM_SHARE_PERCENT = 20  # R-INV-3c


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


def evolve(state: Inventory, e: Message) -> Inventory:
    item = state.skus.get(e.key)
    if item is None:
        _evolve_partition(state, e)
        return state
    if isinstance(e, StockReserved):  # the hot path, inline
        held = item.reservations.setdefault(e.order_id, {})
        for a in e.allocations:
            item.warehouses[a.warehouse].reserved += a.qty
            held[a.warehouse] = held.get(a.warehouse, 0) + a.qty
        if e.gift_rule_id is not None:
            item.gift_holds[e.order_id] = e.gift_rule_id
    elif isinstance(e, ReservationReleased):
        _released(item, e)
    elif isinstance(e, StockReceived):
        wh = item.warehouses.setdefault(e.warehouse, WarehouseStock())
        wh.on_hand += e.qty
        wh.received += e.qty
    elif isinstance(e, ReservationCommitted):
        _committed(item, e)
    elif isinstance(e, StockReturned):
        _came_back(item, e)
        wh = item.warehouses.setdefault(e.warehouse, WarehouseStock())
        if e.grade == "A":
            wh.on_hand += e.qty
            wh.returned_a += e.qty
        else:
            wh.clearance += e.qty
            wh.returned_b += e.qty
    elif isinstance(e, PresaleCampaignLinked | RegularStockPlanned):
        _presale(state, e)
        apply_threshold(item, e)
    else:
        _apply_signal(item, e)
    if item.available > 0:
        item.ever_available = True
    return state


def _evolve_partition(state: Inventory, e: Message) -> None:
    """Events of no registered sku: a registration, the day mark, presale plans of unknown skus
    (rejections of commands for unknown skus change nothing)."""
    if isinstance(e, SkuRegistered):
        standing = state.pending_standing.pop(e.sku, 0)
        state.skus[e.sku] = Sku(
            e.sku, e.name, e.is_gift, e.low_stock_floor, standing_stock=standing, registered_at=e.registered_at
        )
    elif isinstance(e, DailyStockReviewed):
        state.reviewed_day = e.day
    elif isinstance(e, PresaleCampaignLinked | RegularStockPlanned):
        _presale(state, e)
        if isinstance(e, RegularStockPlanned):
            state.pending_standing[e.sku] = e.standing_units


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


def _apply_signal(item: Sku, e: Message) -> None:
    if isinstance(e, LowStockAlertRaised):
        item.alert_active = True
        item.crossings = e.crossing
        item.last_replenishment = None
        item.last_transfers = []
    elif isinstance(e, LowStockAlertCleared):
        item.alert_active = False
    elif isinstance(e, ReplenishmentSuggested):
        item.last_replenishment = e
    elif isinstance(e, StockTransferSuggested):
        item.last_transfers.append(e)
    elif isinstance(e, SlowMovingStockDetected):
        item.slow_moving = True
        item.slow_episodes = e.episode
    elif isinstance(e, SlowMovingStockCleared):
        item.slow_moving = False
    elif isinstance(e, StockPolicyConfigured):
        item.policy = policy_of(e)
    elif isinstance(e, GiftWrittenOff):
        item.written_off += e.qty
    else:
        if isinstance(e, SafetyStockSet):
            item.safety_basis = e.basis
        apply_threshold(item, e)
