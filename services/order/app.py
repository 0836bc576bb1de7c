"""Wiring of the order service: its settings, its ServiceDef, the gift-rule review loop, `declared()`
and `main`; its read model (`OrderView`) is in `views.py`."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flexchain.host import Runtime, serve
from flexchain.runtime import Route, ServiceDef
from flexchain.settings import Settings
from flexchain.ticks import MESSAGES as CLOCK_MESSAGES
from services.inventory.messages import EVENTS as INVENTORY_EVENTS
from services.loyalty.messages import MemberDiscountQuoted
from services.order import PACKAGE, domain, policy, state
from services.order.messages import COMMANDS, EVENTS, GiftRuleChanged, ReviewGiftRule
from services.order.views import OrderView
from services.presale.messages import EVENTS as PRESALE_EVENTS


class OrderSettings(BaseSettings):
    """The merchant's order defaults (R-ORD-2, R-LOY-1), from the environment."""

    model_config = SettingsConfigDict(env_prefix="FLEXCHAIN_ORDER_", extra="ignore")

    payment_hold_minutes: int = Field(30, ge=1)
    return_window_days: int = Field(7, ge=0)
    member_discounts: bool = Field(False, description="wait for the loyalty service's tier discount")
    gift_cost_cap_percent: Decimal = Field(Decimal(15), ge=0, le=100, description="R-ORD-4: of the main line's gross margin")
    gift_review_min_gifts: int = Field(10, ge=1, description="R-ORD-6: gifts shipped before a rule's ROI is judged")
    gift_review_seconds: float = Field(60.0, gt=0, description="how often the rules' figures are sent for review")

    def config(self) -> domain.OrderConfig:
        return domain.OrderConfig(
            self.payment_hold_minutes * domain.MINUTE_MS,
            self.return_window_days * domain.DAY_MS,
            self.member_discounts,
            self.gift_cost_cap_percent / 100,
            self.gift_review_min_gifts,
        )


def service(config: domain.OrderConfig | None = None) -> ServiceDef[domain.OrderBook]:
    cfg = config or domain.OrderConfig()
    return ServiceDef(
        name="order",
        commands=COMMANDS,
        events=EVENTS,
        new_state=lambda: state.new_state(cfg),
        decide=domain.decide,
        evolve=state.evolve,
        routes=(
            Route("inventory.events", INVENTORY_EVENTS, policy.react),
            Route("presale.events", PRESALE_EVENTS, policy.react),
            Route("loyalty.events", (MemberDiscountQuoted,), policy.react),
            Route("clock.ticks", tuple(CLOCK_MESSAGES), policy.react),
            Route("order.events", (GiftRuleChanged,), policy.react),
        ),
        state_format="order-4",
    )


HTTP_PORT = PACKAGE.http_port


async def review_gift_rules(rt: Runtime, stopping: asyncio.Event, every: float) -> None:
    """R-ORD-6: send each rule's changed figures to its aggregate, which decides on a review
    suggestion. The command id is derived from the figures, so instances and restarts that send the
    same figures are deduplicated, and unchanged figures are not sent again."""
    sent: dict[str, str] = {}
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), every)
        if stopping.is_set() or not rt.is_ready():
            continue
        view: OrderView = rt.view
        for rule_id in view.gifts.known():
            perf = view.gifts.performance(rule_id)
            figures = f"{perf.gifts_given}:{perf.gifts_taken_back}:{perf.recipients}:{perf.roi}"
            if not perf.roi or sent.get(rule_id) == figures:
                continue
            await rt.send(ReviewGiftRule(rule_id=rule_id, performance=perf), command_id=f"gift-review:{rule_id}:{figures}")
            sent[rule_id] = figures


def declared() -> tuple[ServiceDef[domain.OrderBook], OrderView]:
    """The service and its read model as `main` builds them (default settings): what it does on Kafka
    is derived from these (flexchain.access, its ACLs in flexchain.security)."""
    return service(), OrderView()


def main(settings: Settings | None = None) -> None:
    from services.order.api import build_api

    cfg = OrderSettings()

    async def background(rt: Runtime, stopping: asyncio.Event) -> None:
        await review_gift_rules(rt, stopping, cfg.gift_review_seconds)

    asyncio.run(serve(service(cfg.config()), OrderView(), build_api, settings, HTTP_PORT, background))
