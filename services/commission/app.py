"""Wiring of the commission service: its ServiceDef (routes of the policies), settings and `main`."""

from __future__ import annotations

import asyncio
import dataclasses
import zlib

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flexchain.host import serve
from flexchain.messages import to_record
from flexchain.runtime import Route, ServiceDef
from flexchain.settings import Settings
from flexchain.ticks import MESSAGES as CLOCK_MESSAGES
from services.commission import PACKAGE, domain, policy, state
from services.commission.messages import COMMANDS, EVENTS, CommissionPlan
from services.commission.model import CommissionState
from services.commission.plan import DAY_MS, DEFAULT_PLAN, HOUR_MS, MAX_RECRUITMENT_DEPTH
from services.commission.views import CommissionView
from services.inventory.messages import EVENTS as INVENTORY_EVENTS
from services.order.messages import EVENTS as ORDER_EVENTS

HTTP_PORT = PACKAGE.http_port


class CommissionSettings(BaseSettings):
    """The merchant's starting plan (every part can be changed later by command, as an event)."""

    model_config = SettingsConfigDict(env_prefix="FLEXCHAIN_COMMISSION_", extra="ignore")

    levels: int = Field(DEFAULT_PLAN.levels, ge=1, le=3, description="levels commission flows up (R-COM-1)")
    max_chain_depth: int = Field(
        DEFAULT_PLAN.max_chain_depth,
        ge=0,
        le=MAX_RECRUITMENT_DEPTH,
        description="a cap on recruitment depth: the deepest chain the tree may hold (0: no cap, the default); "
        "not how far commission flows up, which is `levels` (R-COM-1)",
    )
    payout_delay_days: int = Field(7, ge=0, description="T+N: days from payable to due for payout")
    batch_interval_hours: int = Field(24, ge=1, description="hours between payout batch cutoffs")
    referral_bonus: int = Field(DEFAULT_PLAN.referral_bonus, ge=0, description="cents per new member (R-COM-4)")

    def plan(self) -> CommissionPlan:
        return dataclasses.replace(
            DEFAULT_PLAN,
            levels=self.levels,
            max_chain_depth=self.max_chain_depth,
            payout_delay_ms=self.payout_delay_days * DAY_MS,
            batch_interval_ms=self.batch_interval_hours * HOUR_MS,
            referral_bonus=self.referral_bonus,
        )


def service(plan: CommissionPlan | None = None) -> ServiceDef[CommissionState]:
    start = plan or DEFAULT_PLAN
    # the starting plan is part of every partition's initial state: a snapshot taken under another
    # starting plan is not reused (the log is folded again)
    tag = zlib.crc32(repr(to_record(start)).encode()) & 0xFFFFFFFF
    return ServiceDef(
        name="commission",
        commands=COMMANDS,
        events=EVENTS,
        new_state=lambda: state.new_state(start),
        decide=domain.decide,
        evolve=state.evolve,
        routes=(
            Route("order.events", ORDER_EVENTS, policy.react_order),
            Route("inventory.events", INVENTORY_EVENTS, policy.react_inventory),
            Route("clock.ticks", tuple(CLOCK_MESSAGES), policy.react_clock),
            Route("commission.events", policy.ROUTED_OWN_EVENTS, policy.react_own),
        ),
        state_format=f"commission-2-{tag:08x}",
    )


def declared() -> tuple[ServiceDef[CommissionState], CommissionView]:
    """The service and its read model as `main` builds them (default settings): what it does on Kafka
    is derived from these (flexchain.access, its ACLs in flexchain.security)."""
    return service(), CommissionView()


def main(settings: Settings | None = None) -> None:
    from services.commission.api import build_api

    asyncio.run(serve(service(CommissionSettings().plan()), CommissionView(), build_api, settings, HTTP_PORT))
