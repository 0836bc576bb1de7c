"""Wiring of the loyalty service: its settings, its ServiceDef, `declared()` and `main`; its read model
(`LoyaltyView`) is in `views.py`."""

from __future__ import annotations

import asyncio
import zlib

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flexchain.host import serve
from flexchain.runtime import Route, ServiceDef
from flexchain.settings import Settings
from flexchain.ticks import MESSAGES as CLOCK_MESSAGES
from services.loyalty import PACKAGE, domain, policy
from services.loyalty.members import Loyalty
from services.loyalty.messages import COMMANDS, EVENTS, ReferralCompleted, UsageCycleConfigured
from services.loyalty.rules import HOUR_MS, LoyaltyConfig
from services.loyalty.state import evolve, new_state
from services.loyalty.views import LoyaltyView
from services.order.messages import EVENTS as ORDER_EVENTS

HTTP_PORT = PACKAGE.http_port


class LoyaltySettings(BaseSettings):
    """The merchant's loyalty defaults (DOMAIN § Loyalty), from the environment."""

    model_config = SettingsConfigDict(env_prefix="FLEXCHAIN_LOYALTY_", extra="ignore")

    tz_offset_hours: int = Field(8, ge=-12, le=14, description="business days in this UTC offset")
    points_expiry_months: int = Field(12, ge=1)
    reminder_lead_days: int = Field(7, ge=0)
    referral_points: int = Field(200, ge=0)
    streak_months: int = Field(3, ge=2, le=12)

    def config(self) -> LoyaltyConfig:
        return LoyaltyConfig(
            tz_offset_ms=self.tz_offset_hours * HOUR_MS,
            points_expiry_months=self.points_expiry_months,
            reminder_lead_days=self.reminder_lead_days,
            referral_points=self.referral_points,
            streak_months=self.streak_months,
        )


def service(config: LoyaltyConfig | None = None) -> ServiceDef[Loyalty]:
    cfg = config or LoyaltyConfig()
    return ServiceDef(
        name="loyalty",
        commands=COMMANDS,
        events=EVENTS,
        new_state=lambda: new_state(cfg),
        decide=domain.decide,
        evolve=evolve,
        routes=(
            Route("order.events", ORDER_EVENTS, policy.react),
            Route("clock.ticks", tuple(CLOCK_MESSAGES), policy.react),
            Route("loyalty.events", (ReferralCompleted, UsageCycleConfigured), policy.react),  # cross-partition hops
        ),
        # a snapshot taken under other settings is ignored: the state is rebuilt from the log with these
        state_format=f"loyalty-1-{zlib.crc32(repr(cfg).encode()):08x}",
    )


def declared() -> tuple[ServiceDef[Loyalty], LoyaltyView]:
    """The service and its read model as `main` builds them (default settings): what it does on Kafka
    is derived from these (flexchain.access, its ACLs in flexchain.security)."""
    return service(), LoyaltyView()


def main(settings: Settings | None = None) -> None:
    from services.loyalty.api import build_api

    cfg = LoyaltySettings().config()
    asyncio.run(serve(service(cfg), LoyaltyView(cfg), build_api, settings, HTTP_PORT))
