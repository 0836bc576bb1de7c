"""Wiring of the loyalty service: its settings, its ServiceDef, its read model and `main`."""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass, field

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flexchain.host import serve
from flexchain.messages import Enveloped, Message
from flexchain.runtime import Route, ServiceDef
from flexchain.settings import Settings
from flexchain.ticks import MESSAGES as CLOCK_MESSAGES
from services.loyalty import PACKAGE, domain, policy
from services.loyalty.members import Loyalty
from services.loyalty.messages import (
    COMMANDS,
    EVENTS,
    LEDGER,
    STAGES,
    MemberJoined,
    ReferralCompleted,
    RfmSegmentChanged,
    StageChanged,
    UsageCycleConfigured,
)
from services.loyalty.rules import HOUR_MS, LoyaltyConfig
from services.loyalty.state import evolve, new_state
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


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One points movement as it happened: the event, its id and its cause (R-LOY-2)."""

    business_time: int
    event_id: str
    causation_id: str | None
    movement: Message


@dataclass
class LoyaltyView:
    """Every member of every partition (the domain's own state, folded with `evolve`), with each
    member's ledger and the members per stage and per RFM segment, in joining order."""

    config: LoyaltyConfig = field(default_factory=LoyaltyConfig)
    topics: list[str] = field(default_factory=lambda: ["loyalty.events"])
    state: Loyalty = field(init=False)
    ledger: dict[str, list[LedgerEntry]] = field(default_factory=dict)
    by_stage: dict[str, dict[str, None]] = field(default_factory=lambda: {s: {} for s in STAGES})
    by_segment: dict[str, dict[str, None]] = field(default_factory=dict)
    segments: dict[str, str] = field(default_factory=dict)
    cycles: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = new_state(self.config)

    def fold(self, item: Enveloped) -> None:
        msg, env = item.message, item.envelope
        if env.producer != "loyalty":
            return
        if isinstance(msg, MemberJoined) and msg.member_id not in self.state.rows:
            self.by_stage["prospect"][msg.member_id] = None
            self._segment(msg.member_id, "prospect")
        elif isinstance(msg, StageChanged):
            self.by_stage[msg.previous].pop(msg.member_id, None)
            self.by_stage[msg.stage][msg.member_id] = None
        elif isinstance(msg, RfmSegmentChanged):
            self._segment(msg.member_id, msg.segment)
        elif isinstance(msg, UsageCycleConfigured):
            self.cycles[msg.sku] = msg.cycle_days
        elif isinstance(msg, LEDGER):
            entry = LedgerEntry(env.business_time, env.event_id, env.causation_id, msg)
            self.ledger.setdefault(msg.key, []).append(entry)
        evolve(self.state, msg)

    def _segment(self, member_id: str, name: str) -> None:
        old = self.segments.get(member_id)
        if old is not None:
            self.by_segment[old].pop(member_id, None)
        self.segments[member_id] = name
        self.by_segment.setdefault(name, {})[member_id] = None


def declared() -> tuple[ServiceDef[Loyalty], LoyaltyView]:
    """The service and its read model as `main` builds them (default settings): what it does on Kafka
    is derived from these (flexchain.access, its ACLs in flexchain.security)."""
    return service(), LoyaltyView()


def main(settings: Settings | None = None) -> None:
    from services.loyalty.api import build_api

    cfg = LoyaltySettings().config()
    asyncio.run(serve(service(cfg), LoyaltyView(cfg), build_api, settings, HTTP_PORT))
