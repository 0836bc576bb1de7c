"""Presale's read side: its read model (`PresaleView`: nothing from other services), the Prometheus
collector of its business gauges, and the pure queries the read routes of `api.py` answer — a
campaign's view, its pledges, its money ledger line by line — built from the folded state; the
answer models are in `answers.py`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from flexchain.fold import UnreadableEvent
from flexchain.messages import Enveloped
from services.presale.rules import BUCKETS, ENDED, phase_at, unit_price
from services.presale.state import Campaign, LedgerLine

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


def _refunds(c: Campaign) -> list[dict[str, Any]]:
    return [
        {"at": at, "kind": kind, "reference": ref, "amount": amount}
        for at, kind, ref, amount, _ in c.ledger
        if kind.startswith(("refund", "deposit refund"))
    ]


def pledges_view(c: Campaign) -> dict[str, Any]:
    return {
        oid: {
            "member_id": p.member_id,
            "units": p.units,
            "unit_price": p.unit_price,
            "phase": p.phase,
            "group_id": p.group_id,
            "status": p.status,
            "paid": p.paid,
            "refunded": p.refunded,
            "price_rise_owed": p.extra_owed,
        }
        for oid, p in sorted(c.pledges.items())
    }


def campaign_view(c: Campaign, now: int, cfg: Any) -> dict[str, Any]:
    phase = c.phase
    price = None
    if c.starts_at is not None and c.ends_at is not None and c.status == "open":
        phase = phase_at(c.starts_at, c.ends_at, now, cfg)
        price = None if phase == ENDED else unit_price(c.unit_cost, phase, False, cfg)
    open_pledges = [p for p in c.pledges.values() if p.status == "open"]
    return {
        "campaign_id": c.campaign_id,
        "product": c.product,
        "status": c.status,
        "phase": phase,
        "unit_price_now": price,
        "group_price": unit_price(c.unit_cost, "group", True, cfg),
        "unit_cost": c.unit_cost,
        "fan_base": c.fan_base,
        "moq": c.moq,
        "max_capacity": c.max_capacity,
        "split": c.split,
        "schedule": {"starts_at": c.starts_at, "ends_at": c.ends_at, "delivery_at": c.delivery_at},
        "intake_closed": c.intake_closed,
        "deposits": {"count": len(c.deposits), "held": c.buckets["deposits"], "launch_signal": c.launch_signal},
        "pledged_units": c.tally.pledged_units,
        "pledges": {"open": len(open_pledges), "accepted_units": c.tally.accepted_units, "paid_orders": c.tally.paid_orders},
        "groups": {
            gid: {"orders": g.order_ids, "completed": g.completed, "dissolved": g.dissolved}
            for gid, g in sorted(c.groups.items())
        },
        "buckets": {b: c.buckets[b] for b in BUCKETS},
        "money": {
            "received": c.received,
            "held": c.held,
            "released": c.released,
            "refunded": c.refunded,
            "uncovered_refunds": c.uncovered,
            "balanced": c.balanced(),
        },
        "first_batch_units": c.first_batch_units,
        "final_batch_units": c.final_batch_units,
        "milestones": {
            m: {
                "share": str(share),
                "due_at": c.tally.milestone_due.get(m),
                "reached_at": c.tally.milestones_done.get(m),
                "buyer_notice": m in c.notices,
                "supplier_penalty": m in c.penalties,
            }
            for m, share in c.milestone_shares.items()
        },
        "releases": [
            {"at": at, "milestone": ref, "amount": amount} for at, kind, ref, amount, _ in c.ledger if kind == "release"
        ],
        "refunds": _refunds(c),
        "price_rises": {
            rid: {
                "old_unit_cost": r.old_unit_cost,
                "new_unit_cost": r.new_unit_cost,
                "shared": r.shared,
                "answer_by": r.answer_by,
                "open_offers": r.offers,
                "accepted": r.accepted,
                "declined": r.declined,
                "expired": r.expired,
            }
            for rid, r in sorted(c.rises.items())
        },
        "risk_signals": {
            "active": dict(sorted(c.signals.items())),
            "history": [
                {"at": at, "what": what, "signal_id": sid, "level": level, "detail": detail}
                for at, what, sid, level, detail in c.signal_log
            ],
        },
    }


def campaign_rows(campaigns: Iterable[Campaign], now: int, cfg: Any) -> list[dict[str, Any]]:
    """The campaigns in id order, each with its status and its phase at `now`."""
    return [
        {"campaign_id": c.campaign_id, "status": c.status, "phase": campaign_view(c, now, cfg)["phase"]}
        for c in sorted(campaigns, key=lambda c: c.campaign_id)
    ]


def ledger_lines(ledger: list[LedgerLine]) -> list[dict[str, Any]]:
    """A campaign's money line by line, with running totals and the R-PRE-10 check on every line."""
    received = released = refunded = 0
    balances = dict.fromkeys(BUCKETS, 0)
    out = []
    for line, (at, kind, ref, amount, change) in enumerate(ledger, start=1):
        if kind in ("payment", "deposit"):
            received += amount
        elif kind == "release":
            released += amount
        else:
            refunded += amount
        for b, delta in zip(BUCKETS, change, strict=True):
            balances[b] += delta
        held = sum(balances.values())
        out.append(
            {
                "line": line,
                "at": at,
                "kind": kind,
                "reference": ref,
                "amount": amount,
                "buckets": {b: d for b, d in zip(BUCKETS, change, strict=True) if d},
                "received": received,
                "held": held,
                "released": released,
                "refunded": refunded,
                "balances": dict(balances),
                "balanced": received == held + released + refunded,
            }
        )
    return out
