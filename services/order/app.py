"""Wiring of the order service: its ServiceDef, its read model and `main`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from flexchain.host import serve
from flexchain.messages import Enveloped
from flexchain.runtime import Route, ServiceDef
from flexchain.settings import Settings
from services.clock.messages import MESSAGES as CLOCK_MESSAGES
from services.inventory.messages import EVENTS as INVENTORY_EVENTS
from services.inventory.messages import SkuRegistered
from services.order import domain, policy
from services.order.messages import COMMANDS, EVENTS

SERVICE = ServiceDef(
    name="order",
    commands=COMMANDS,
    events=EVENTS,
    new_state=domain.new_state,
    decide=domain.decide,
    evolve=domain.evolve,
    routes=(
        Route("inventory.events", INVENTORY_EVENTS, policy.react),
        Route("clock.ticks", tuple(CLOCK_MESSAGES), policy.react),
    ),
    state_format="order-1",
)
HTTP_PORT = 8081


@dataclass(frozen=True)
class HistoryEntry:
    business_time: int
    event_type: str
    event_id: str
    detail: dict[str, object]


@dataclass
class OrderView:
    """Every order of every partition with its history, and the sku catalogue (from inventory)."""

    topics: list[str] = field(default_factory=lambda: ["order.events", "inventory.events"])
    messages: tuple[type, ...] = INVENTORY_EVENTS
    book: domain.OrderBook = field(default_factory=domain.new_state)
    history: dict[str, list[HistoryEntry]] = field(default_factory=dict)
    skus: set[str] = field(default_factory=set)

    def fold(self, item: Enveloped) -> None:
        msg, env = item.message, item.envelope
        if isinstance(msg, SkuRegistered):
            self.skus.add(msg.sku)
            return
        if env.producer != "order":
            return
        domain.evolve(self.book, msg)
        if env.aggregate_id in self.book.orders:
            from flexchain.messages import to_record

            detail = {k: v for k, v in to_record(msg).items() if k != "order_id"}
            self.history.setdefault(env.aggregate_id, []).append(
                HistoryEntry(env.business_time, env.event_type, env.event_id, detail)
            )


def main(settings: Settings | None = None) -> None:
    from services.order.api import build_api

    asyncio.run(serve(SERVICE, OrderView(), build_api, settings, HTTP_PORT))
