"""A partition of the inventory service driven in memory: commands at business times, decided (which
must not change the state), folded, and logged — so a test can also rebuild the state from the log."""

from __future__ import annotations

import copy
import itertools
from decimal import Decimal

from flexchain.messages import Message
from services.inventory.domain import Inventory, Sku, decide, evolve, new_state
from services.inventory.messages import (
    CheckStockTimers,
    CommitReservation,
    ConfigureStockPolicy,
    ReceiveStock,
    RegisterSku,
    ReserveStock,
)

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC: business day 20 454
HOUR = 3_600_000
DAY = 24 * HOUR
D0 = T0 // DAY
NORTH, SOUTH, WEST = "wh-north", "wh-south", "wh-west"


def of_type(events: list[Message], *classes: type[Message]) -> list[Message]:
    return [e for e in events if isinstance(e, classes)]


class World:
    def __init__(self) -> None:
        self.state: Inventory = new_state()
        self.log: list[Message] = []
        self._orders = itertools.count(1)

    def run(self, cmd: Message, at: int = T0) -> list[Message]:
        before = copy.deepcopy(self.state)
        events = decide(self.state, cmd, at)
        assert self.state == before, "decide must not change the state"
        for e in events:
            evolve(self.state, e)
        self.log.extend(events)
        return events

    def sku(self, sku: str) -> Sku:
        return self.state.skus[sku]

    def register(self, sku: str, at: int = T0, gift: bool = False, floor: int | None = None) -> None:
        self.run(RegisterSku(sku=sku, name=sku, is_gift=gift, low_stock_floor=floor), at)

    def receive(self, sku: str, qty: int, warehouse: str = NORTH, at: int = T0) -> list[Message]:
        return self.run(ReceiveStock(sku=sku, warehouse=warehouse, qty=qty, reference="po"), at)

    def ship(self, sku: str, qty: int, at: int) -> list[Message]:
        """An order of `qty` units reserved and shipped at `at` (a sale, for the velocity)."""
        order = f"o-{next(self._orders)}"
        events = self.run(ReserveStock(sku=sku, order_id=order, qty=qty), at)
        return events + self.run(CommitReservation(sku=sku, order_id=order), at)

    def sell_daily(self, sku: str, per_day: int, days: int, first_day_at: int) -> None:
        for d in range(days):
            self.ship(sku, per_day, first_day_at + d * DAY + 10 * HOUR)

    def configure(self, sku: str, lead: int, cover: str = "1", at: int = T0, **kw: object) -> list[Message]:
        return self.run(ConfigureStockPolicy(sku=sku, lead_time_days=lead, cover_factor=Decimal(cover), **kw), at)  # type: ignore[arg-type]

    def tick(self, at: int) -> list[Message]:
        return self.run(CheckStockTimers(time=at), at)

    def rebuilt(self) -> Inventory:
        state = new_state()
        for e in self.log:
            evolve(state, e)
        return state
