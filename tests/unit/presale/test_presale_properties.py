"""Properties of random campaign histories (hypothesis): deposits, pledges in every phase and group,
payments of any amount, cancellations, partial and full refunds, the order service's echoes, price
rises and answers, milestones, ticks and closes, in any order and at any business times.

After EVERY event: R-PRE-10 (received = held + released + refunded, to the cent), no bucket below
zero, no order refunded more than it paid, the tally equal to what the pledges and buckets say.
After the history: folding the log rebuilds the live state; a refused command changed nothing; and a
failed campaign has refunded every cent it received — each order exactly what it paid."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from presale_builders import CID, DELIVERY, END, REFUSAL, START, T0

from flexchain.messages import Message
from flexchain.testing import Scenario
from services.presale.app import SERVICE as PRESALE
from services.presale.messages import (
    AnswerPriceRise,
    CheckCampaignTimers,
    CloseCampaign,
    CollectDeposit,
    CreateCampaign,
    EscrowRefunded,
    LaunchCampaign,
    PaymentEscrowed,
    RecordMilestone,
    RecordOrderRefund,
    RecordPayment,
    RecordPledge,
    RecordPriceRise,
    ReleasePledge,
    ScheduleCampaign,
    presale_refund_id,
)
from services.presale.rules import DAY_MS, HOUR_MS, SPLIT_BUCKETS
from services.presale.state import P_OPEN, Campaign, PresaleBook

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)
MILESTONES = ["materials_bought", "sample_approved", "production_finished", "shipped", "painted"]


@dataclass(frozen=True)
class Step:
    kind: str
    order: int
    n: int
    flag: bool
    dt: int


KINDS = (
    ["pledge"] * 5
    + ["pay"] * 4
    + ["pay_odd", "cancel", "cancel", "refund", "refund", "echo", "tick", "tick", "milestone", "milestone"]
    + ["rise", "rise", "answer", "answer", "answer", "close"]
)
step_st = st.builds(
    Step,
    st.sampled_from(KINDS),
    st.integers(0, 15),
    st.integers(-3, 40),
    st.booleans(),
    st.sampled_from([0, 1, HOUR_MS, 12 * HOUR_MS, DAY_MS, 2 * DAY_MS]),
)


@dataclass(frozen=True)
class History:
    moq: int
    capacity: int
    split: str
    deposits: int
    steps: list[Step]


history_st = st.builds(
    History,
    st.integers(1, 40),
    st.integers(20, 150),
    st.sampled_from(["standard", "simple"]),
    st.integers(0, 4),
    st.lists(step_st, min_size=10, max_size=50),
)


def check_money(c: Campaign) -> None:
    """After every event."""
    assert c.received == c.held + c.released + c.refunded, "R-PRE-10"
    assert min(c.buckets.values()) >= 0
    assert all(0 <= p.refunded <= p.paid for p in c.pledges.values())


def check_tally(c: Campaign) -> None:
    """After every command (its events together move a pledge from one consistent state to the next)."""
    t = c.tally
    assert t.pledged_units == sum(p.units for p in c.pledges.values())
    assert t.open_pledges == sum(1 for p in c.pledges.values() if p.status == P_OPEN and p.units > 0)
    assert t.held == sum(c.buckets[b] for b in SPLIT_BUCKETS)
    assert all(p.units == 0 for p in c.pledges.values() if p.status != P_OPEN)


def command(step: Step, book: PresaleBook, now: int) -> Message:
    c = book.campaigns[CID]
    pledged = sorted(c.pledges)
    oid = pledged[step.order % len(pledged)] if pledged and step.kind != "pledge" else f"o{step.order}"
    p = c.pledges.get(oid)
    if step.kind == "pledge":
        return RecordPledge(
            campaign_id=CID, order_id=oid, member_id=f"m-{step.order % 5}", units=step.n, group_id="g1" if step.flag else None
        )
    if step.kind == "pay":  # what the order service would charge
        return RecordPayment(
            campaign_id=CID, order_id=oid, amount=(p.unit_price * p.units) if p else max(1, step.n) * 100, payment_ref="pay"
        )
    if step.kind == "pay_odd":
        return RecordPayment(campaign_id=CID, order_id=oid, amount=step.n * 37, payment_ref="odd")
    if step.kind == "cancel":
        return ReleasePledge(campaign_id=CID, order_id=oid, refund_amount=(p.net if p and step.flag else 0), reason="cancel")
    if step.kind == "refund":
        return RecordOrderRefund(
            campaign_id=CID,
            order_id=oid,
            refund_id=f"r-{now}-{step.n}",
            amount=max(0, step.n) * 100,
            units=max(0, step.n),
            fully_refunded=step.flag,
        )
    if step.kind == "echo":
        return RecordOrderRefund(
            campaign_id=CID,
            order_id=oid,
            refund_id=presale_refund_id(CID, oid),
            amount=p.net if p else 0,
            units=1,
            fully_refunded=True,
        )
    if step.kind == "tick":
        return CheckCampaignTimers(time=now)
    if step.kind == "close":
        return CloseCampaign(campaign_id=CID, reason="merchant")
    if step.kind == "milestone":
        name = MILESTONES[abs(step.n) % len(MILESTONES)]
        return RecordMilestone(campaign_id=CID, milestone=name, evidence="evidence", amount=step.n * 50 if step.flag else None)
    if step.kind == "rise":
        return RecordPriceRise(campaign_id=CID, rise_id=f"rise-{now}", new_unit_cost=c.unit_cost + step.n * 20, evidence="quote")
    return AnswerPriceRise(
        campaign_id=CID, rise_id=next(iter(sorted(c.rises, reverse=True)), "none"), order_id=oid, accept=step.flag
    )


def run(h: History) -> tuple[PresaleBook, list[Message], list[tuple[Message, list[Message]]]]:
    def money(book: PresaleBook, e: Message) -> None:
        for c in book.campaigns.values():
            check_money(c)

    sc = Scenario(PRESALE, refusal=REFUSAL, check=money, strict=False)
    decided: list[tuple[Message, list[Message]]] = []

    def send(cmd: Message, now: int) -> None:
        sc.strict = bool(h.steps) and len(decided) % 7 == 0  # a copy of the state at every 7th command, to compare
        events = sc.when(cmd, now).events
        for c in sc.state.campaigns.values():
            check_tally(c)
        if sc.strict and events and all(REFUSAL(e) for e in events):
            sc.unchanged(f"refused {cmd} changed the state")
        decided.append((cmd, events))

    send(
        CreateCampaign(
            campaign_id=CID,
            product="notebook",
            unit_cost=2_000,
            fan_base=5_000,
            moq=min(h.moq, h.capacity * 8 // 10),
            max_capacity=h.capacity,
            split=h.split,
        ),
        T0,
    )
    for i in range(h.deposits):
        send(CollectDeposit(campaign_id=CID, deposit_id=f"d{i}", member_id=f"dm{i}", amount=2_000 + 250 * i), T0)
    send(ScheduleCampaign(campaign_id=CID, starts_at=START, ends_at=END, delivery_at=DELIVERY), T0)
    send(LaunchCampaign(campaign_id=CID, force=True), T0)
    now = START - 1  # the first pledge at +0 is refused: the campaign opens 1 ms later
    for step in h.steps:
        now += step.dt
        send(command(step, sc.state, now), now)
    return sc.state, sc.log, decided


@PROPERTY_SETTINGS
@given(history_st)
def test_r_pre_10_money_is_conserved_after_every_event_of_any_history(h: History) -> None:
    book, log, _ = run(h)  # the checks ran after every event
    assert Scenario(PRESALE).given(*log).state == book, "folding the log gives the live state (rebuild)"


@PROPERTY_SETTINGS
@given(history_st)
def test_a_failed_campaign_refunds_every_cent_it_received_each_order_exactly_what_it_paid(h: History) -> None:
    book, log, _ = run(h)
    c = book.campaigns[CID]
    book2, _, _ = run(History(h.moq, h.capacity, h.split, h.deposits, [*h.steps, Step("close", 0, 0, False, 1)]))
    for camp in (c, book2.campaigns[CID]):
        if camp.status != "failed":
            continue
        assert camp.held == 0 and camp.released == 0 and camp.uncovered == 0
        assert camp.refunded == camp.received, "every cent back, no more, no less"
        assert all(p.refunded == p.paid for p in camp.pledges.values())
    paid = {e.order_id: e.amount for e in log if isinstance(e, PaymentEscrowed)}
    back: dict[str, int] = {}
    for e in log:
        if isinstance(e, EscrowRefunded):
            back[e.order_id] = back.get(e.order_id, 0) + sum(e.taken.values()) + e.uncovered
    assert all(back.get(o, 0) <= amount for o, amount in paid.items()), "no order gets back more than it paid"


@PROPERTY_SETTINGS
@given(history_st)
def test_deciding_the_same_history_again_gives_the_same_events(h: History) -> None:
    _, log1, _ = run(h)
    _, log2, _ = run(h)
    assert log1 == log2
