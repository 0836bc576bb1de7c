"""Wiring of the presale service: its ServiceDef, the ledger view of a campaign, its Prometheus
collector (business gauges per campaign) and `main`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from flexchain.fold import UnreadableEvent
from flexchain.host import serve
from flexchain.messages import Enveloped
from flexchain.runtime import Route, ServiceDef
from flexchain.settings import Settings
from flexchain.ticks import MESSAGES as CLOCK_MESSAGES
from services.order.messages import EVENTS as ORDER_EVENTS
from services.presale import PACKAGE, domain, policy, state
from services.presale.messages import COMMANDS, EVENTS
from services.presale.rules import BUCKETS
from services.presale.state import Campaign

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
LEVELS = ("red", "yellow", "green")  # R-PRE-9's signal levels


class PresaleView:
    """Presale needs nothing from other services for its queries: campaigns, their ledgers and signal
    histories are the service's own state (`rt.own`, read under `rt.consistent()`)."""

    topics: list[str] = []

    def fold(self, item: Enveloped) -> None:
        pass


class CampaignCollector(Collector):
    """Business gauges read from the read model at scrape time (no cost on the hot path)."""

    def __init__(self, campaigns: Callable[[], Iterable[Campaign]], service: str = "presale") -> None:
        self.campaigns = campaigns
        self.prefix = f"flexchain_{service}_"

    def collect(self) -> Iterator[GaugeMetricFamily]:
        risk = GaugeMetricFamily(
            self.prefix + "campaign_risk_signals",
            "Active risk signals per campaign and level (R-PRE-9)",
            labels=["campaign", "level"],
        )
        escrow = GaugeMetricFamily(
            self.prefix + "campaign_escrow_cents", "Money held per campaign and bucket (R-PRE-5)", labels=["campaign", "bucket"]
        )
        pledged = GaugeMetricFamily(self.prefix + "campaign_pledged_units", "Units pledged per campaign", labels=["campaign"])
        # a closed label set (one series per level, whatever the number of campaigns), for alert rules:
        # a campaign "in red" holds at least one active red signal (R-PRE-9)
        signalled = GaugeMetricFamily(
            self.prefix + "signalled_campaigns",
            "Campaigns with at least one active risk signal of this level (R-PRE-9)",
            labels=["level"],
        )
        with_level = dict.fromkeys(LEVELS, 0)
        try:
            campaigns = sorted(self.campaigns(), key=lambda c: c.campaign_id)
        except UnreadableEvent:  # a partition stopped: say nothing rather than fail the scrape (partition_stopped says why)
            return
        for c in campaigns:
            cid = c.campaign_id
            levels = dict.fromkeys(LEVELS, 0)
            for level in c.signals.values():
                levels[level] = levels.get(level, 0) + 1
            for level, n in levels.items():
                risk.add_metric([cid, level], n)
                if n:
                    with_level[level] = with_level.get(level, 0) + 1
            for bucket in BUCKETS:
                escrow.add_metric([cid, bucket], c.buckets[bucket])
            pledged.add_metric([cid], c.tally.pledged_units)
        for level, n in with_level.items():
            signalled.add_metric([level], n)
        yield risk
        yield escrow
        yield pledged
        yield signalled

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


def declared() -> tuple[ServiceDef[Any], PresaleView]:
    """The service and its read model as `main` builds them (default settings): what it does on Kafka
    is derived from these (flexchain.access, its ACLs in flexchain.security)."""
    return SERVICE, PresaleView()


def main(settings: Settings | None = None) -> None:
    from services.presale.api import build_api

    asyncio.run(serve(SERVICE, PresaleView(), build_api, settings, HTTP_PORT))
