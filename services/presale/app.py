"""Wiring of the presale service: its ServiceDef, `declared()` and `main`; its read model
(`PresaleView`) and Prometheus collector (business gauges per campaign) are in `views.py`."""

from __future__ import annotations

import asyncio
from typing import Any

from flexchain.host import serve
from flexchain.runtime import Route, ServiceDef
from flexchain.settings import Settings
from flexchain.ticks import MESSAGES as CLOCK_MESSAGES
from services.order.messages import EVENTS as ORDER_EVENTS
from services.presale import PACKAGE, domain, policy, state
from services.presale.messages import COMMANDS, EVENTS
from services.presale.views import PresaleView

SERVICE = ServiceDef(
    name="presale",
    commands=COMMANDS,
    events=EVENTS,
    new_state=state.new_state,
    decide=domain.decide,
    evolve=state.evolve,
    routes=(
        Route("order.events", ORDER_EVENTS, policy.react),
        Route("clock.ticks", tuple(CLOCK_MESSAGES), policy.react),
    ),
    state_format="presale-1",
)
HTTP_PORT = PACKAGE.http_port


def declared() -> tuple[ServiceDef[Any], PresaleView]:
    """The service and its read model as `main` builds them (default settings): what it does on Kafka
    is derived from these (flexchain.access, its ACLs in flexchain.security)."""
    return SERVICE, PresaleView()


def main(settings: Settings | None = None) -> None:
    from services.presale.api import build_api

    asyncio.run(serve(SERVICE, PresaleView(), build_api, settings, HTTP_PORT))
