"""Wiring of the inventory service: its ServiceDef, its read model and `main`.

Consumes `inventory.commands` (processor), and through its router `order.events` (the stock saga and
gifts), `presale.events` (R-INV-7) and `clock.ticks` (R-X-1: the daily review of R-INV-4 and R-INV-6).
"""

from __future__ import annotations

import asyncio
from typing import Any

from flexchain.host import serve
from flexchain.runtime import Route, ServiceDef
from flexchain.settings import Settings
from flexchain.ticks import MESSAGES as CLOCK_MESSAGES
from services.inventory import PACKAGE, domain, policy, state
from services.inventory.messages import COMMANDS, EVENTS
from services.inventory.views import InventoryView

SERVICE = ServiceDef(
    name="inventory",
    commands=COMMANDS,
    events=EVENTS,
    new_state=state.new_state,
    decide=domain.decide,
    evolve=state.evolve,
    routes=(
        Route("order.events", policy.ORDER_EVENTS, policy.react),
        Route("presale.events", policy.PRESALE_EVENTS, policy.react_presale),
        Route("clock.ticks", tuple(CLOCK_MESSAGES), policy.react_clock),
    ),
    state_format="inventory-2",  # counters, sales per day, stock policy, presale links (issue 6)
)
HTTP_PORT = PACKAGE.http_port


def declared() -> tuple[ServiceDef[Any], InventoryView]:
    """The service and its read model as `main` builds them (default settings): what it does on Kafka
    is derived from these (flexchain.access, its ACLs in flexchain.security)."""
    return SERVICE, InventoryView()


def main(settings: Settings | None = None) -> None:
    from services.inventory.api import build_api

    asyncio.run(serve(SERVICE, InventoryView(), build_api, settings, HTTP_PORT))
