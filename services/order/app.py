"""Wiring of the order service: its ServiceDef, its read model and `main`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flexchain.host import serve
from flexchain.messages import Enveloped
from flexchain.runtime import Route, ServiceDef
from flexchain.settings import Settings
from services.clock.messages import MESSAGES as CLOCK_MESSAGES
from services.inventory.messages import EVENTS as INVENTORY_EVENTS
from services.inventory.messages import SkuRegistered
from services.loyalty.messages import MemberDiscountQuoted
from services.order import domain, policy
from services.order.messages import COMMANDS, EVENTS
from services.presale.messages import EVENTS as PRESALE_EVENTS


class OrderSettings(BaseSettings):
    """The merchant's order defaults (R-ORD-2, R-LOY-1), from the environment."""

    model_config = SettingsConfigDict(env_prefix="FLEXCHAIN_ORDER_", extra="ignore")

    payment_hold_minutes: int = Field(30, ge=1)
    return_window_days: int = Field(7, ge=0)
    member_discounts: bool = Field(False, description="wait for the loyalty service's tier discount")

    def config(self) -> domain.OrderConfig:
        return domain.OrderConfig(
            self.payment_hold_minutes * domain.MINUTE_MS, self.return_window_days * domain.DAY_MS, self.member_discounts
        )


def service(config: domain.OrderConfig | None = None) -> ServiceDef[domain.OrderBook]:
    cfg = config or domain.OrderConfig()
    return ServiceDef(
        name="order",
        commands=COMMANDS,
        events=EVENTS,
        new_state=lambda: domain.new_state(cfg),
        decide=domain.decide,
        evolve=domain.evolve,
        routes=(
            Route("inventory.events", INVENTORY_EVENTS, policy.react),
            Route("presale.events", PRESALE_EVENTS, policy.react),
            Route("loyalty.events", (MemberDiscountQuoted,), policy.react),
            Route("clock.ticks", tuple(CLOCK_MESSAGES), policy.react),
        ),
        state_format="order-3",
    )


HTTP_PORT = 8081


@dataclass
class OrderView:
    """What the order API needs from other services: the sku catalogue (inventory's SkuRegistered).

    The orders themselves are the service's own state (`rt.own`), history included."""

    topics: list[str] = field(default_factory=lambda: ["inventory.events"])
    types: set[str] = field(default_factory=lambda: {"SkuRegistered"})
    messages: tuple[type, ...] = INVENTORY_EVENTS
    skus: set[str] = field(default_factory=set)

    def fold(self, item: Enveloped) -> None:
        if isinstance(item.message, SkuRegistered):
            self.skus.add(item.message.sku)


def main(settings: Settings | None = None) -> None:
    from services.order.api import build_api

    asyncio.run(serve(service(OrderSettings().config()), OrderView(), build_api, settings, HTTP_PORT))
