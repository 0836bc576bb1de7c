"""Inventory's commands (on `inventory.commands`) and events (on `inventory.events`), keyed by sku.

Two exceptions have no key: `CheckStockTimers` and `RecordPresaleClose` go to every partition (the
router broadcasts them), and `DailyStockReviewed` is the mark a partition leaves in its own log once
it has reviewed a business day (R-INV-4, R-INV-6).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from flexchain.messages import Message


class InventoryMessage(Message):
    KEY: ClassVar[str] = "sku"
    SERVICE: ClassVar[str] = "inventory"


class PartitionMessage(InventoryMessage):
    KEY: ClassVar[str] = ""  # sent to every partition / kept by each partition


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    """Units of one reservation held in one warehouse."""

    warehouse: str
    qty: int


# --- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterSku(InventoryMessage):
    """Add a sku to the catalogue; `low_stock_floor` overrides the default absolute floor (R-INV-3)."""

    sku: str
    name: str
    is_gift: bool = False
    low_stock_floor: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiveStock(InventoryMessage):
    """Goods arrived in a warehouse."""

    sku: str
    warehouse: str
    qty: int
    reference: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReserveStock(InventoryMessage):
    """Hold `qty` units for one order line (saga step; R-INV-1, R-INV-2)."""

    sku: str
    order_id: str
    qty: int
    preferred_warehouse: str | None = None
    gift_rule_id: str | None = None  # the hold is the gift of this order gift rule (R-ORD-3)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseReservation(InventoryMessage):
    """Give back an order's reservation (all of it, or `qty` units) on cancel, reject or refund.

    With `gift_rule_id`, only a hold made for that gift rule is released: a rule skipped because its
    gift sku is a main line of the order must not release the main line's hold."""

    sku: str
    order_id: str
    reason: str
    qty: int | None = None
    gift_rule_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitReservation(InventoryMessage):
    """The order shipped: reserved units leave the warehouse (R-INV-2)."""

    sku: str
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReturnStock(InventoryMessage):
    """Returned goods: grade A back to stock, grade B to clearance (R-INV-2). Without `warehouse`
    they go back where the order's units shipped from. `campaign_id`: the goods of a presale order,
    which inventory may not stock yet (they shipped from production) — the sku is then registered
    and the goods go to the returns warehouse, so nothing that came back is lost."""

    sku: str
    order_id: str
    qty: int
    grade: str
    warehouse: str | None = None
    campaign_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetSafetyStock(InventoryMessage):
    """Set the sku's safety stock (one of the low-stock thresholds, R-INV-3)."""

    sku: str
    units: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleLiveStream(InventoryMessage):
    """A live stream will sell this sku; 20 % of `expected_sales` becomes a threshold (R-INV-3)."""

    sku: str
    stream_id: str
    expected_sales: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EndLiveStream(InventoryMessage):
    """The live stream is over; its threshold no longer applies."""

    sku: str
    stream_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigureStockPolicy(InventoryMessage):
    """The sku's planning figures (R-INV-4, R-INV-6, R-INV-7); replaces the previous policy whole.

    `lead_time_days` supplier lead time; `cover_factor` on top of it; `gift_tier` 1 (core: 30 days
    of cover), 2 (seasonal: `forecast_daily_units` instead of the measured velocity) or 3 (generic:
    7 days), for gift skus only; `monthly_visitors` × `conversion_rate` feed the standing stock after
    a presale. The windows and the sell-through floor default to 28 days, 30 days and 0.20."""

    sku: str
    lead_time_days: int
    cover_factor: Decimal = Decimal("1")
    gift_tier: int | None = None
    forecast_daily_units: Decimal | None = None
    monthly_visitors: int = 0
    conversion_rate: Decimal = Decimal("0")
    velocity_window_days: int | None = None
    slow_mover_window_days: int | None = None
    sell_through_floor: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckStockTimers(PartitionMessage):
    """Business time reached `time` on this partition: the first tick of a business day reviews
    every sku of the partition (velocity → safety stock, slow movers). Routed from `clock.ticks`
    to every partition (its key is empty)."""

    time: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkPresaleCampaign(InventoryMessage):
    """A presale campaign sells this sku (routed from presale's `CampaignCreated`, its `product`)."""

    sku: str
    campaign_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordPresaleClose(PartitionMessage):
    """A presale campaign closed (routed from `CampaignClosed` to every partition: the one that holds
    the campaign's sku plans its regular stock, R-INV-7)."""

    campaign_id: str
    outcome: str
    pledged_units: int
    closed_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordGiftWriteOff(InventoryMessage):
    """A consumable gift that shipped was written off with its refunded main line (R-ORD-2a): no
    unit comes back; recorded so the sku's log says where its units went."""

    sku: str
    order_id: str
    rule_id: str
    qty: int
    reason: str


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SkuRegistered(InventoryMessage):
    """A sku joined the catalogue."""

    sku: str
    name: str
    is_gift: bool
    low_stock_floor: int
    registered_at: int | None = None  # business time (ms); None in events written before it was kept


@dataclass(frozen=True, slots=True, kw_only=True)
class StockReceived(InventoryMessage):
    """Units arrived in a warehouse."""

    sku: str
    warehouse: str
    qty: int
    reference: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StockReserved(InventoryMessage):
    """Units held for an order line (or for a gift of `gift_rule_id`), per warehouse."""

    sku: str
    order_id: str
    qty: int
    allocations: list[Allocation]
    gift_rule_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservationRejected(InventoryMessage):
    """An order line could not be reserved; `available` is what there was."""

    sku: str
    order_id: str
    qty: int
    available: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservationReleased(InventoryMessage):
    """Reserved units went back to available."""

    sku: str
    order_id: str
    allocations: list[Allocation]
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservationCommitted(InventoryMessage):
    """Reserved units shipped: on hand and reserved both went down; `committed_at` (business time,
    ms) dates the shipment for the sales velocity (R-INV-4, R-INV-6)."""

    sku: str
    order_id: str
    allocations: list[Allocation]
    committed_at: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StockReturned(InventoryMessage):
    """Returned units: grade A to on-hand stock, grade B to the clearance bucket."""

    sku: str
    order_id: str
    warehouse: str
    qty: int
    grade: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetyStockSet(InventoryMessage):
    """The sku's safety stock changed: set by hand (`basis` None) or computed from its policy
    (R-INV-4): `basis` velocity, gift_tier_1, gift_tier_2_forecast or gift_tier_3, with the daily
    demand it used."""

    sku: str
    units: int
    daily_demand: Decimal | None = None
    basis: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveStreamScheduled(InventoryMessage):
    """A live stream selling this sku is scheduled."""

    sku: str
    stream_id: str
    expected_sales: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveStreamEnded(InventoryMessage):
    """A live stream selling this sku is over."""

    sku: str
    stream_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LowStockAlertRaised(InventoryMessage):
    """Available stock fell below the threshold (once per crossing, R-INV-3)."""

    sku: str
    available: int
    threshold: int
    crossing: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LowStockAlertCleared(InventoryMessage):
    """Available stock recovered above the threshold: the next crossing raises a new alert."""

    sku: str
    available: int
    threshold: int
    crossing: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StockBecameAvailable(InventoryMessage):
    """A sku that had run out is available again (R-INV-6a)."""

    FORMERLY: ClassVar[tuple[str, ...]] = ("StockBackInStock",)
    sku: str
    available: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StockPolicyConfigured(InventoryMessage):
    """The sku's planning figures, every default filled in (R-INV-4, R-INV-6, R-INV-7)."""

    sku: str
    lead_time_days: int
    cover_factor: Decimal
    gift_tier: int | None
    forecast_daily_units: Decimal | None
    monthly_visitors: int
    conversion_rate: Decimal
    velocity_window_days: int
    slow_mover_window_days: int
    sell_through_floor: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplenishmentSuggested(InventoryMessage):
    """With a low-stock alert (R-INV-5): order `qty` = threshold − available + ⌈daily demand ×
    lead time⌉ from the supplier. `crossing` names the alert it belongs to."""

    sku: str
    crossing: int
    available: int
    threshold: int
    daily_demand: Decimal
    lead_time_days: int
    qty: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StockTransferSuggested(InventoryMessage):
    """With a low-stock alert (R-INV-5): move `qty` units from a warehouse holding more than its
    share of the threshold to one holding less."""

    sku: str
    crossing: int
    from_warehouse: str
    to_warehouse: str
    qty: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SlowMovingStockDetected(InventoryMessage):
    """Sell-through over the window fell below the floor (R-INV-6): once per episode. Sell-through =
    shipped in the window / (shipped in the window + on hand); `day` is the business day (days since
    the epoch, UTC) it was found on."""

    sku: str
    episode: int
    sell_through: Decimal
    shipped: int
    on_hand: int
    window_days: int
    floor: Decimal
    day: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SlowMovingStockCleared(InventoryMessage):
    """The sku sells again (sell-through at or above the floor) or has nothing on hand: the next
    fall below the floor is a new episode."""

    sku: str
    episode: int
    sell_through: Decimal
    shipped: int
    on_hand: int
    day: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DailyStockReviewed(PartitionMessage):
    """This partition reviewed business day `day` (days since the epoch, UTC) for its `skus` skus:
    later ticks of the same day change nothing."""

    day: int
    skus: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PresaleCampaignLinked(InventoryMessage):
    """A presale campaign sells this sku; its close will plan the sku's regular stock (R-INV-7)."""

    sku: str
    campaign_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RegularStockPlanned(InventoryMessage):
    """A presale campaign closed successfully (R-INV-7): the regular catalogue keeps `standing_units`
    = ⌈presold × 0.3 + monthly visitors × conversion rate × 2⌉; they become the floor under the
    sku's safety stock."""

    sku: str
    campaign_id: str
    presold_units: int
    monthly_visitors: int
    conversion_rate: Decimal
    standing_units: int


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftWrittenOff(InventoryMessage):
    """A consumable gift that shipped was written off with its refunded main line: nothing came back."""

    sku: str
    order_id: str
    rule_id: str
    qty: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryCommandRejected(InventoryMessage):
    """A command was refused; nothing changed."""

    sku: str
    command: str
    reason: str


COMMANDS: tuple[type[Message], ...] = (
    RegisterSku,
    ReceiveStock,
    ReserveStock,
    ReleaseReservation,
    CommitReservation,
    ReturnStock,
    SetSafetyStock,
    ScheduleLiveStream,
    EndLiveStream,
    ConfigureStockPolicy,
    CheckStockTimers,
    LinkPresaleCampaign,
    RecordPresaleClose,
    RecordGiftWriteOff,
)
EVENTS: tuple[type[Message], ...] = (
    SkuRegistered,
    StockReceived,
    StockReserved,
    ReservationRejected,
    ReservationReleased,
    ReservationCommitted,
    StockReturned,
    SafetyStockSet,
    LiveStreamScheduled,
    LiveStreamEnded,
    LowStockAlertRaised,
    LowStockAlertCleared,
    StockBecameAvailable,
    StockPolicyConfigured,
    ReplenishmentSuggested,
    StockTransferSuggested,
    SlowMovingStockDetected,
    SlowMovingStockCleared,
    DailyStockReviewed,
    PresaleCampaignLinked,
    RegularStockPlanned,
    GiftWrittenOff,
    InventoryCommandRejected,
)
MESSAGES: list[type[Message]] = [*COMMANDS, *EVENTS]
