"""Inventory's sugar on top of flexchain.testing: business time, the warehouses, and the commands a
history is made of (a sku registered, stock received, an order shipped, a policy configured, a tick)
run on a `Scenario` of the service."""

from __future__ import annotations

import itertools
from decimal import Decimal
from weakref import WeakKeyDictionary

from flexchain.messages import Message
from flexchain.testing import Scenario
from services.inventory.app import SERVICE as INVENTORY
from services.inventory.messages import (
    CheckStockTimers,
    CommitReservation,
    ConfigureStockPolicy,
    ReceiveStock,
    RegisterSku,
    ReserveStock,
)
from services.inventory.state import Inventory

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC: business day 20 454
HOUR = 3_600_000
DAY = 24 * HOUR
D0 = T0 // DAY
NORTH, SOUTH, WEST = "wh-north", "wh-south", "wh-west"

_orders: WeakKeyDictionary[Scenario[Inventory], itertools.count[int]] = WeakKeyDictionary()


def of_type(events: list[Message], *classes: type[Message]) -> list[Message]:
    return [e for e in events if isinstance(e, classes)]


def world() -> Scenario[Inventory]:
    """One partition of the inventory service, at business time T0."""
    return Scenario(INVENTORY, at=T0)


def register(sc: Scenario[Inventory], sku: str, at: int = T0, gift: bool = False, floor: int | None = None) -> None:
    sc.when(RegisterSku(sku=sku, name=sku, is_gift=gift, low_stock_floor=floor), at)


def receive(sc: Scenario[Inventory], sku: str, qty: int, warehouse: str = NORTH, at: int = T0) -> list[Message]:
    return sc.when(ReceiveStock(sku=sku, warehouse=warehouse, qty=qty, reference="po"), at).events


def ship(sc: Scenario[Inventory], sku: str, qty: int, at: int) -> list[Message]:
    """An order of `qty` units reserved and shipped at `at` (a sale, for the velocity); orders o-1, o-2, …"""
    order = f"o-{next(_orders.setdefault(sc, itertools.count(1)))}"
    events = sc.when(ReserveStock(sku=sku, order_id=order, qty=qty), at).events
    return events + sc.when(CommitReservation(sku=sku, order_id=order), at).events


def sell_daily(sc: Scenario[Inventory], sku: str, per_day: int, days: int, first_day_at: int) -> None:
    for d in range(days):
        ship(sc, sku, per_day, first_day_at + d * DAY + 10 * HOUR)


def configure(sc: Scenario[Inventory], sku: str, lead: int, cover: str = "1", at: int = T0, **kw: object) -> list[Message]:
    return sc.when(ConfigureStockPolicy(sku=sku, lead_time_days=lead, cover_factor=Decimal(cover), **kw), at).events  # type: ignore[arg-type]


def tick(sc: Scenario[Inventory], at: int) -> list[Message]:
    return sc.when(CheckStockTimers(time=at), at).events
