"""Wiring of the inventory service: its ServiceDef, its read model and `main`."""

from __future__ import annotations

import asyncio

from flexchain.host import serve
from flexchain.messages import Enveloped
from flexchain.runtime import Route, ServiceDef
from flexchain.settings import Settings
from services.inventory import domain, policy
from services.inventory.messages import COMMANDS, EVENTS
from services.order.messages import EVENTS as ORDER_EVENTS

SERVICE = ServiceDef(
    name="inventory",
    commands=COMMANDS,
    events=EVENTS,
    new_state=domain.new_state,
    decide=domain.decide,
    evolve=domain.evolve,
    routes=(Route("order.events", ORDER_EVENTS, policy.react),),
    state_format="inventory-1",
)
HTTP_PORT = 8082


class InventoryView:
    """Inventory needs nothing from other services for its queries: its own state is `rt.own`."""

    topics: list[str] = []

    def fold(self, item: Enveloped) -> None:
        pass


def main(settings: Settings | None = None) -> None:
    from services.inventory.api import build_api

    asyncio.run(serve(SERVICE, InventoryView(), build_api, settings, HTTP_PORT))
