"""Presale's sugar on top of flexchain.testing: the campaign's calendar, a `Scenario` of the service
that checks R-PRE-10 after every single event, and the commands a history is made of (a campaign
created or launched, a pledge, a payment, a tick)."""

from __future__ import annotations

from typing import Any

from flexchain.messages import Message
from flexchain.testing import Scenario, refusal_of
from services.presale.app import SERVICE as PRESALE
from services.presale.messages import (
    CheckCampaignTimers,
    CreateCampaign,
    LaunchCampaign,
    PledgeRejected,
    PresaleCommandRejected,
    RecordPayment,
    RecordPledge,
    ScheduleCampaign,
)
from services.presale.rules import DAY_MS, HOUR_MS
from services.presale.state import Campaign, PresaleBook

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
START = T0 + DAY_MS  # the campaign opens
EARLY_END = START + 72 * HOUR_MS  # R-PRE-3: early bird until here (exclusive)
END = START + 10 * DAY_MS  # the schedule ends
GROUP_START = END - 48 * HOUR_MS  # R-PRE-3: the group phase from here
DELIVERY = END + 30 * DAY_MS
CID = "c1"
COST = 2_000  # cents per unit: early 2400, regular 3600, group 3000
REFUSAL = refusal_of(PresaleCommandRejected, PledgeRejected)  # a refused command, or a refused order


def balanced(book: PresaleBook, e: Message) -> None:
    for c in book.campaigns.values():
        assert c.balanced(), f"R-PRE-10 broken after {e}: {c.received} != {c.held}+{c.released}+{c.refunded}"


def world() -> Scenario[PresaleBook]:
    """One partition of the presale service, in memory, R-PRE-10 checked after every event."""
    return Scenario(PRESALE, refusal=REFUSAL, check=balanced)


def ok(sc: Scenario[PresaleBook], cmd: Message, now: int) -> list[Message]:
    """A command the history needs accepted."""
    return sc.when(cmd, now).accepted().events


def pledge(
    sc: Scenario[PresaleBook], oid: str, units: int, now: int, member: str | None = None, group: str | None = None
) -> list[Message]:
    return sc.when(
        RecordPledge(campaign_id=CID, order_id=oid, member_id=member or f"m-{oid}", units=units, group_id=group), now
    ).events


def pay(sc: Scenario[PresaleBook], oid: str, amount: int, now: int) -> list[Message]:
    return ok(sc, RecordPayment(campaign_id=CID, order_id=oid, amount=amount, payment_ref=f"pay-{oid}"), now)


def tick(sc: Scenario[PresaleBook], at: int) -> list[Message]:
    return ok(sc, CheckCampaignTimers(time=at), at)


def of(events: list[Message], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def created(moq: int = 30, capacity: int = 500, split: str = "standard", fan_base: int = 38_000) -> Scenario[PresaleBook]:
    w = world()
    ok(
        w,
        CreateCampaign(
            campaign_id=CID,
            product="glow notebook",
            unit_cost=COST,
            fan_base=fan_base,
            moq=moq,
            max_capacity=capacity,
            split=split,
        ),
        T0,
    )
    return w


def launched(moq: int = 30, capacity: int = 500, split: str = "standard", fan_base: int = 38_000) -> Scenario[PresaleBook]:
    """Given a campaign scheduled START..END, launched (forced) before it opens, the opening tick seen."""
    w = created(moq, capacity, split, fan_base)
    ok(w, ScheduleCampaign(campaign_id=CID, starts_at=START, ends_at=END, delivery_at=DELIVERY), T0)
    ok(w, LaunchCampaign(campaign_id=CID, force=True), T0)
    tick(w, START)
    return w


def campaign(sc: Scenario[PresaleBook], cid: str = CID) -> Campaign:
    return sc.state.campaigns[cid]
