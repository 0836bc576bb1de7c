"""Loyalty's read model and its queries: `LoyaltyView` folds the service's events into every member,
each member's points ledger and the members per stage and segment; the pure queries below answer the
read routes of `api.py` from it — a member, its ledger page by page, the members of a stage or
segment; the answer models are in `answers.py`."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from flexchain.messages import Enveloped, Message, to_record
from services.loyalty.ledger import LedgerStore, pack_entry, unpack_entry
from services.loyalty.members import NO_DAY, Loyalty, Member, batch_day, batch_points
from services.loyalty.messages import (
    LEDGER,
    STAGES,
    MemberJoined,
    PointsEarned,
    PointsExpired,
    PointsRedeemed,
    PointsReleased,
    PointsReversed,
    RfmSegmentChanged,
    StageChanged,
    UsageCycleConfigured,
)
from services.loyalty.rules import LoyaltyConfig, day_of, day_start, iso, rfm_scores, segment
from services.loyalty.state import evolve, new_state


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One points movement as it happened: the event, its id and its cause (R-LOY-2)."""

    business_time: int
    event_id: str
    causation_id: str | None
    movement: Message


def _entry(packed: bytes) -> LedgerEntry:
    return LedgerEntry(*unpack_entry(packed))


@dataclass
class LoyaltyView:
    """Every member of every partition (the domain's own state, folded with `evolve`), with each
    member's ledger (on disk, `ledger.LedgerStore`) and the members per stage and per RFM segment,
    in joining order. A member's answer reads its state and its ledger totals from this one fold, so
    they agree at every moment (the refund cascade checks the identity in every answer)."""

    config: LoyaltyConfig = field(default_factory=LoyaltyConfig)
    topics: list[str] = field(default_factory=lambda: ["loyalty.events"])
    state: Loyalty = field(init=False)
    ledger: LedgerStore = field(default_factory=LedgerStore)
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
        # one string per member id (and segment name), whichever event it came in: each event
        # decodes its own, and the indexes keep them
        if isinstance(msg, MemberJoined) and msg.member_id not in self.state.rows:
            who = sys.intern(msg.member_id)
            self.by_stage["prospect"][who] = None
            self._segment(who, "prospect")
        elif isinstance(msg, StageChanged):
            who = sys.intern(msg.member_id)
            self.by_stage[msg.previous].pop(who, None)
            self.by_stage[msg.stage][who] = None
        elif isinstance(msg, RfmSegmentChanged):
            self._segment(sys.intern(msg.member_id), msg.segment)
        elif isinstance(msg, UsageCycleConfigured):
            self.cycles[msg.sku] = msg.cycle_days
        elif isinstance(msg, LEDGER):
            entry = pack_entry(env.business_time, env.event_id, env.causation_id, msg)
            self.ledger.append(msg.key, entry)
        evolve(self.state, msg)

    def _segment(self, member_id: str, name: str) -> None:
        old = self.segments.get(member_id)
        if old is not None:
            self.by_segment[old].pop(member_id, None)
        name = sys.intern(name)
        self.segments[member_id] = name
        self.by_segment.setdefault(name, {})[member_id] = None


class PastView:
    """The members' read model as an as-of fold (R-X-4): the partition does not matter to it."""

    def __init__(self, config: LoyaltyConfig) -> None:
        self.view = LoyaltyView(config)

    def fold(self, partition: int, item: Enveloped) -> None:
        self.view.fold(item)


def _day(day: int, view: LoyaltyView) -> dict[str, Any]:
    return {"date": iso(day), "at": day_start(day, view.config)}


def member_totals(view: LoyaltyView, member_id: str) -> dict[str, int]:
    """The ledger summed: earned = available + pending + redeemed + expired + reversed (R-LOY-2)."""
    t = dict.fromkeys(("earned", "released", "redeemed", "expired", "reversed", "shortfall"), 0)
    for entry in map(_entry, view.ledger.entries(member_id)):
        mv = entry.movement
        if isinstance(mv, PointsEarned):
            t["earned"] += mv.points
        elif isinstance(mv, PointsReleased):
            t["released"] += mv.points
        elif isinstance(mv, PointsRedeemed):
            t["redeemed"] += mv.points
        elif isinstance(mv, PointsExpired):
            t["expired"] += mv.points
        elif isinstance(mv, PointsReversed):
            t["reversed"] += mv.points
            t["shortfall"] += mv.shortfall
    return t


def member_view(view: LoyaltyView, m: Member, now: int) -> dict[str, Any]:
    cfg = view.config
    today = day_of(now, cfg)
    tier = cfg.tiers[m.tier]
    nxt = cfg.tiers[m.tier + 1] if m.tier + 1 < len(cfg.tiers) else None
    batches = [(batch_day(b), batch_points(b)) for b in m.batches]
    scores = rfm_scores(m.rfm) if m.rfm >= 0 else None
    return {
        "member_id": m.member_id,
        "joined": _day(m.joined, view),
        "referral_pending_from": m.referrer,
        "tier": {
            "name": tier.name,
            "discount_rate": str(tier.discount_rate),
            "growth": m.growth,
            "next": None if nxt is None else {"name": nxt.name, "threshold": nxt.threshold, "missing": nxt.threshold - m.growth},
        },
        "stage": STAGES[m.stage],
        "rfm": {
            "segment": segment(m.rfm),
            "recency": scores and scores[0],
            "frequency": scores and scores[1],
            "monetary": scores and scores[2],
        },
        "purchases": {
            "orders": m.orders,
            "purchase_days": m.purchase_days,
            "net_spend": m.spend,
            "first": None if m.first_day == NO_DAY else _day(m.first_day, view),
            "last": None if m.last_day == NO_DAY else _day(m.last_day, view),
        },
        "points": {
            "available": m.available(today),
            "pending": m.pending,
            "held": sum(p for _, p in batches),  # available + expired batches the next tick books off
            "expiring": [{**_day(d, view), "points": p} for d, p in batches if d > today],
        },
        "totals": member_totals(view, m.member_id),
        "reminders": [
            {"sku": sku, "run_out": _day(run_out, view), "order_id": order}
            for sku, (run_out, order) in sorted(m.reminders.items())
        ],
    }


def ledger_page(view: LoyaltyView, member_id: str, offset: int, limit: int) -> dict[str, Any]:
    """The member's point movements, oldest first, from `offset`."""
    total = view.ledger.count(member_id)
    page = [
        {
            "type": type(e.movement).__name__,
            "business_time": e.business_time,
            "event_id": e.event_id,
            "causation_id": e.causation_id,
            **{k: v for k, v in to_record(e.movement).items() if k != "member_id"},
        }
        for e in map(_entry, view.ledger.entries(member_id, offset, limit))
    ]
    return {"member_id": member_id, "total": total, "offset": offset, "entries": page}


def members_page(view: LoyaltyView, stage: str | None, segment_: str | None, offset: int, limit: int) -> dict[str, Any]:
    """The members of a stage, of a segment, or of both, in the order they entered it."""
    pool: dict[str, None] = {}
    if stage is not None:
        pool = view.by_stage[stage]
    elif segment_ is not None:
        pool = view.by_segment.get(segment_, {})
    if stage is not None and segment_ is not None:
        pool = {m: None for m in pool if view.segments.get(m) == segment_}
    page = list(islice(pool, offset, offset + limit))
    return {"stage": stage, "segment": segment_, "total": len(pool), "offset": offset, "members": page}
