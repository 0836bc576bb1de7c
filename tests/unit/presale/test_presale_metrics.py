"""The presale business gauges read by alert rules: campaigns per R-PRE-9 risk level, a closed label
set (one series per level, whatever the number of campaigns) — FlexchainPresaleCampaignRed reads it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from services.presale.rules import BUCKETS
from services.presale.views import CampaignCollector


def campaign(cid: str, signals: dict[str, str]) -> Any:
    return SimpleNamespace(
        campaign_id=cid, signals=signals, buckets=dict.fromkeys(BUCKETS, 0), tally=SimpleNamespace(pledged_units=0)
    )


def test_r_pre_9_campaigns_are_counted_per_level_of_their_active_signals() -> None:
    campaigns = [
        campaign("a", {"red:pledge-rate": "red", "red:milestone-late:sample": "red", "yellow:order-value": "yellow"}),
        campaign("b", {"red:refund-rate:2026-11-26": "red"}),
        campaign("c", {"green:fund-coverage": "green"}),
        campaign("d", {}),
    ]
    registry = CollectorRegistry()
    registry.register(CampaignCollector(lambda: campaigns))
    got = {
        lvl: registry.get_sample_value("flexchain_presale_signalled_campaigns", {"level": lvl})
        for lvl in ("red", "yellow", "green")
    }
    assert got == {"red": 2, "yellow": 1, "green": 1}  # a campaign with two red signals is one campaign in red


def test_every_level_is_exported_at_zero_without_campaigns() -> None:
    registry = CollectorRegistry()
    registry.register(CampaignCollector(list))
    for level in ("red", "yellow", "green"):
        assert registry.get_sample_value("flexchain_presale_signalled_campaigns", {"level": level}) == 0


def test_a_stopped_partition_leaves_the_campaign_gauges_out_instead_of_failing_the_scrape() -> None:
    from flexchain.fold import UnreadableEvent

    def stopped() -> list[Any]:
        raise UnreadableEvent("presale.events", 1, 7, "unknown schema id")

    registry = CollectorRegistry()
    registry.register(CampaignCollector(stopped))
    assert registry.get_sample_value("flexchain_presale_signalled_campaigns", {"level": "red"}) is None
