"""Given/when/then helpers for the presale decider: a partition's state driven by commands at business
times, each decision folded with `evolve`, and R-PRE-10 checked after every single event."""

from __future__ import annotations

import copy
from typing import Any

from flexchain.messages import Message
from services.presale.domain import decide, evolve, is_refusal, new_state
from services.presale.messages import (
    CheckCampaignTimers,
    CreateCampaign,
    LaunchCampaign,
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


class World:
    """One partition of the presale service, in memory."""

    def __init__(self) -> None:
        self.book: PresaleBook = new_state()
        self.log: list[Message] = []

    @property
    def c(self) -> Campaign:
        return self.book.campaigns[CID]

    def campaign(self, cid: str = CID) -> Campaign:
        return self.book.campaigns[cid]

    def fold(self, events: list[Message]) -> None:
        for e in events:
            evolve(self.book, e)
            self.log.append(e)
            for c in self.book.campaigns.values():
                assert c.balanced(), f"R-PRE-10 broken after {e}: {c.received} != {c.held}+{c.released}+{c.refunded}"

    def send(self, cmd: Message, now: int) -> list[Message]:
        """Decide and fold, whatever the outcome."""
        events = decide(self.book, cmd, now)
        self.fold(events)
        return events

    def ok(self, cmd: Message, now: int) -> list[Message]:
        """A command the history needs accepted."""
        events = self.send(cmd, now)
        assert not any(is_refusal(e) for e in events), events
        return events

    def refused(self, cmd: Message, now: int) -> str:
        """Then: one refusal with a reason, and the state exactly as before."""
        before = copy.deepcopy(self.book)
        events = self.send(cmd, now)
        assert len(events) == 1 and is_refusal(events[0]), events
        assert self.book == before, "a refused command changed the state"
        reason: str = events[0].reason
        return reason

    def pledge(self, oid: str, units: int, now: int, member: str | None = None, group: str | None = None) -> list[Message]:
        return self.send(
            RecordPledge(campaign_id=CID, order_id=oid, member_id=member or f"m-{oid}", units=units, group_id=group), now
        )

    def pay(self, oid: str, amount: int, now: int) -> list[Message]:
        return self.ok(RecordPayment(campaign_id=CID, order_id=oid, amount=amount, payment_ref=f"pay-{oid}"), now)

    def tick(self, at: int) -> list[Message]:
        return self.ok(CheckCampaignTimers(time=at), at)


def of(events: list[Message], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def created(moq: int = 30, capacity: int = 500, split: str = "standard", fan_base: int = 38_000) -> World:
    w = World()
    w.ok(
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


def launched(moq: int = 30, capacity: int = 500, split: str = "standard", fan_base: int = 38_000) -> World:
    """Given a campaign scheduled START..END, launched (forced) before it opens, the opening tick seen."""
    w = created(moq, capacity, split, fan_base)
    w.ok(ScheduleCampaign(campaign_id=CID, starts_at=START, ends_at=END, delivery_at=DELIVERY), T0)
    w.ok(LaunchCampaign(campaign_id=CID, force=True), T0)
    w.tick(START)
    return w
