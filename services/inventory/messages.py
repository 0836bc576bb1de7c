"""Inventory's commands (on `inventory.commands`) and events (on `inventory.events`), keyed by sku."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from flexchain.messages import Message


class InventoryMessage(Message):
    KEY: ClassVar[str] = "sku"
    SERVICE: ClassVar[str] = "inventory"


@dataclass(frozen=True, slots=True)
class Allocation:
    """Units of one reservation held in one warehouse."""

    warehouse: str
    qty: int


# --- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterSku(InventoryMessage):
    """Add a sku to the catalogue; `low_stock_floor` overrides the default absolute floor (R-INV-3a)."""

    sku: str
    name: str
    is_gift: bool = False
    low_stock_floor: int | None = None


@dataclass(frozen=True, slots=True)
class ReceiveStock(InventoryMessage):
    """Goods arrived in a warehouse."""

    sku: str
    warehouse: str
    qty: int
    reference: str = ""


@dataclass(frozen=True, slots=True)
class ReserveStock(InventoryMessage):
    """Hold `qty` units for one order line (saga step; R-INV-1, R-INV-2)."""

    sku: str
    order_id: str
    qty: int
    preferred_warehouse: str | None = None


@dataclass(frozen=True, slots=True)
class ReleaseReservation(InventoryMessage):
    """Give back an order's reservation (all of it, or `qty` units) on cancel, reject or refund."""

    sku: str
    order_id: str
    reason: str
    qty: int | None = None


@dataclass(frozen=True, slots=True)
class CommitReservation(InventoryMessage):
    """The order shipped: reserved units leave the warehouse (R-INV-2)."""

    sku: str
    order_id: str


@dataclass(frozen=True, slots=True)
class ReturnStock(InventoryMessage):
    """Returned goods: grade A back to stock, grade B to clearance (R-INV-2)."""

    sku: str
    order_id: str
    qty: int
    grade: str
    warehouse: str | None = None


@dataclass(frozen=True, slots=True)
class SetSafetyStock(InventoryMessage):
    """Set the sku's safety stock (one of the low-stock thresholds, R-INV-3b)."""

    sku: str
    units: int


@dataclass(frozen=True, slots=True)
class ScheduleLiveStream(InventoryMessage):
    """A live stream will sell this sku; 20 % of `expected_sales` becomes a threshold (R-INV-3c)."""

    sku: str
    stream_id: str
    expected_sales: int


@dataclass(frozen=True, slots=True)
class EndLiveStream(InventoryMessage):
    """The live stream is over; its threshold no longer applies."""

    sku: str
    stream_id: str


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SkuRegistered(InventoryMessage):
    """A sku joined the catalogue."""

    sku: str
    name: str
    is_gift: bool
    low_stock_floor: int


@dataclass(frozen=True, slots=True)
class StockReceived(InventoryMessage):
    """Units arrived in a warehouse."""

    sku: str
    warehouse: str
    qty: int
    reference: str


@dataclass(frozen=True, slots=True)
class StockReserved(InventoryMessage):
    """Units held for an order line, per warehouse."""

    sku: str
    order_id: str
    qty: int
    allocations: list[Allocation]


@dataclass(frozen=True, slots=True)
class ReservationRejected(InventoryMessage):
    """An order line could not be reserved; `available` is what there was."""

    sku: str
    order_id: str
    qty: int
    available: int
    reason: str


@dataclass(frozen=True, slots=True)
class ReservationReleased(InventoryMessage):
    """Reserved units went back to available."""

    sku: str
    order_id: str
    allocations: list[Allocation]
    reason: str


@dataclass(frozen=True, slots=True)
class ReservationCommitted(InventoryMessage):
    """Reserved units shipped: on hand and reserved both went down."""

    sku: str
    order_id: str
    allocations: list[Allocation]


@dataclass(frozen=True, slots=True)
class StockReturned(InventoryMessage):
    """Returned units: grade A to on-hand stock, grade B to the clearance bucket."""

    sku: str
    order_id: str
    warehouse: str
    qty: int
    grade: str


@dataclass(frozen=True, slots=True)
class SafetyStockSet(InventoryMessage):
    """The sku's safety stock changed."""

    sku: str
    units: int


@dataclass(frozen=True, slots=True)
class LiveStreamScheduled(InventoryMessage):
    """A live stream selling this sku is scheduled."""

    sku: str
    stream_id: str
    expected_sales: int


@dataclass(frozen=True, slots=True)
class LiveStreamEnded(InventoryMessage):
    """A live stream selling this sku is over."""

    sku: str
    stream_id: str


@dataclass(frozen=True, slots=True)
class LowStockAlertRaised(InventoryMessage):
    """Available stock fell below the threshold (once per crossing, R-INV-3)."""

    sku: str
    available: int
    threshold: int
    crossing: int


@dataclass(frozen=True, slots=True)
class LowStockAlertCleared(InventoryMessage):
    """Available stock recovered above the threshold: the next crossing raises a new alert."""

    sku: str
    available: int
    threshold: int
    crossing: int


@dataclass(frozen=True, slots=True)
class StockBackInStock(InventoryMessage):
    """A sku that had run out is available again (R-INV-6a)."""

    sku: str
    available: int


@dataclass(frozen=True, slots=True)
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
    StockBackInStock,
    InventoryCommandRejected,
)
MESSAGES: list[type[Message]] = [*COMMANDS, *EVENTS]
