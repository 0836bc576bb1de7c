"""Property-based tests of the loyalty decider: invariants that must hold for any history.

(a) The ledger balances per member: available + pending + redeemed + expired + reversed = earned,
    and the state holds exactly what the ledger says; no balance is ever negative (R-LOY-2).
(b) Replay: folding the events of a history into an empty state gives the same state, so the same
    ledger and the same decisions afterwards (rebuild, R-X-2); the partition's own bookkeeping
    (agenda, histograms, pending orders) always agrees with its members.
(c) Derived events once per cause: one churn warning per entry into declining (R-LOY-3), one
    reminder per estimated run-out (R-LOY-4), one referral per referred member (R-LOY-5).
(d) Business time (R-X-1): what happens to a member does not depend on when the clock ticks
    arrive, only on the member's own purchases and the last tick.
(e) Refunds take back what the order earned (R-LOY-2, R-X-3): an order refunded in parts, split
    anyhow across its completion, through the router as the order service writes the events, loses
    exactly its points — taken back, or a shortfall for what was spent meanwhile.
"""

from __future__ import annotations

import copy
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from flexchain.messages import Message
from flexchain.runtime import canonical
from flexchain.testing import Scenario
from services.loyalty import policy
from services.loyalty.messages import (
    ACTIONS,
    ApplyUsageCycle,
    CheckMemberTimers,
    ChurnWarningRaised,
    CompletePurchase,
    JoinMember,
    PointsEarned,
    PointsExpired,
    PointsReversed,
    PurchasedLine,
    PurchaseRecorded,
    RecordBehaviour,
    RecordPurchase,
    RedeemPoints,
    ReferralCompleted,
    ReplenishmentReminderRaised,
    ReversePurchase,
    StageChanged,
)
from services.loyalty.state import Loyalty, batch_points
from services.order.messages import OrderCancelled, OrderCompleted, OrderRefunded
from tests.unit.loyalty.builders import LOYALTY, T0, check_bookkeeping, totals

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)
HOUR = 3_600_000
MEMBERS = ("ann", "bob", "cat")

member_st = st.sampled_from(MEMBERS)
slot_st = st.integers(0, 3)  # a member's order "slot": orders are often completed or refunded later
lines_st = st.lists(
    st.builds(PurchasedLine, sku=st.sampled_from(("water", "mug")), qty=st.integers(1, 3)), max_size=2, unique_by=lambda x: x.sku
)


def order_id(member: str, slot: int) -> str:
    return f"{member}-{slot}"


purchase_st = st.builds(
    lambda m, o, a, ls: lambda t: RecordPurchase(member_id=m, order_id=order_id(m, o), amount=a, paid_at=t, lines=ls),
    member_st,
    slot_st,
    st.integers(0, 400_000),
    lines_st,
)
complete_st = st.builds(
    lambda m, o: lambda t: CompletePurchase(member_id=m, order_id=order_id(m, o), completed_at=t), member_st, slot_st
)
# a command builder takes the business time of the step; purchases and completions weigh double
command_st = st.one_of(
    st.builds(lambda m, r: lambda t: JoinMember(member_id=m, referrer_id=r), member_st, st.none() | member_st),
    purchase_st,
    purchase_st,
    complete_st,
    complete_st,
    st.builds(
        lambda m, o, r, a, f, fig: (
            lambda t: ReversePurchase(
                member_id=m,
                order_id=order_id(m, o),
                refund_id=r,
                amount=a,
                fully_refunded=f,
                paid_total=fig[0],
                refunded_before=fig[1],
            )
        ),
        member_st,
        slot_st,
        st.sampled_from(("r1", "r2", "cancelled")),
        st.integers(0, 300_000),
        st.booleans(),
        st.just((0, 0)) | st.tuples(st.integers(0, 400_000), st.integers(0, 400_000)),  # the order's figures, if any
    ),
    st.builds(lambda m, a: lambda t: RecordBehaviour(member_id=m, action=a), member_st, st.sampled_from(ACTIONS)),
    st.builds(
        lambda m, p: lambda t: RedeemPoints(member_id=m, redemption_id=f"rd-{t}", points=p, reward="coupon"),
        member_st,
        st.integers(1, 3_000),
    ),
    st.builds(lambda d: lambda t: ApplyUsageCycle(sku="water", cycle_days=d), st.integers(0, 20)),
    st.just(lambda t: CheckMemberTimers(time=t)),
)
# hours since the previous step: often the same day, sometimes months
step_st = st.tuples(st.one_of(st.integers(0, 30), st.integers(0, 24 * 120)), command_st)
JOINS: list[tuple[int, object]] = [
    (0, lambda t: JoinMember(member_id="ann")),
    (0, lambda t: JoinMember(member_id="bob", referrer_id="ann")),
    (0, lambda t: ApplyUsageCycle(sku="water", cycle_days=10)),
]
history_st = st.lists(step_st, min_size=8, max_size=60).map(lambda steps: JOINS + steps)


def pending_never_negative(s: Loyalty, e: Message) -> None:
    assert s.pending[s.rows[e.key]] >= 0 if e.key in s.rows else True


def play(history: list[tuple[int, object]], state: Loyalty | None = None) -> tuple[Loyalty, list[Message]]:
    """Decide and fold each command (routing the referral to the referrer, as the router would)."""
    sc = Scenario(LOYALTY, check=pending_never_negative, state=state, strict=False)  # long histories: no copies
    t = T0
    for hours, build in history:
        t += hours * HOUR
        queue: list[Message] = [build(t)]  # type: ignore[operator]
        while queue:
            for e in sc.when(queue.pop(0), t).events:
                if isinstance(e, ReferralCompleted):
                    queue += policy.react(e)
    return sc.state, sc.log


def fold(events: list[Message]) -> Loyalty:
    return Scenario(LOYALTY).given(*events).state


@PROPERTY_SETTINGS
@given(history_st)
def test_the_ledger_balances_and_the_state_holds_what_it_says(history: list[tuple[int, object]]) -> None:
    s, log = play(history)
    for member, t in totals(log).items():
        assert t["available"] + t["pending"] + t["redeemed"] + t["expired"] + t["reversed"] == t["earned"], (member, t)
        assert min(t["available"], t["pending"], t["redeemed"], t["expired"], t["reversed"], t["shortfall"]) >= 0
        m = s.member(member)
        assert m is not None
        assert sum(batch_points(b) for b in m.batches) == t["available"]
        assert m.pending == t["pending"]
    # the `points{state="held"}` gauge's one pass over the packed batches says the same
    assert s.held_points() == sum(t["available"] for t in totals(log).values())
    check_bookkeeping(s)


@PROPERTY_SETTINGS
@given(history_st, history_st)
def test_replay_gives_the_same_state_ledger_and_decisions(
    first: list[tuple[int, object]], then: list[tuple[int, object]]
) -> None:
    live, log = play(first)
    rebuilt = fold(log)
    assert rebuilt == live
    assert canonical(rebuilt) == canonical(live)
    # the rebuilt state decides exactly as the live one from here on
    after = [(h, b) for h, b in then]
    shift = sum(h for h, _ in first)
    _, live_more = play([(shift, lambda t: CheckMemberTimers(time=t)), *after], copy.deepcopy(live))
    _, rebuilt_more = play([(shift, lambda t: CheckMemberTimers(time=t)), *after], rebuilt)
    assert live_more == rebuilt_more


@PROPERTY_SETTINGS
@given(history_st)
def test_derived_events_once_per_cause(history: list[tuple[int, object]]) -> None:
    _, log = play(history)
    reminders = Counter((e.member_id, e.sku, e.run_out_at) for e in log if isinstance(e, ReplenishmentReminderRaised))
    assert all(n == 1 for n in reminders.values()), reminders
    referrals = Counter(e.member_id for e in log if isinstance(e, ReferralCompleted))
    assert all(n == 1 for n in referrals.values())
    for member in MEMBERS:  # between two churn warnings the member bought again (a new entry)
        seen_purchase = True
        for e in log:
            if e.key != member:
                continue
            if isinstance(e, PurchaseRecorded):
                seen_purchase = True
            elif isinstance(e, ChurnWarningRaised):
                assert seen_purchase, f"second warning for {member} without a purchase in between"
                seen_purchase = False
    for e in log:
        if isinstance(e, StageChanged):
            assert e.previous != e.stage


def _member_story(log: list[Message]) -> Counter[tuple[object, ...]]:
    """What happened to members on business time, whatever the ticks: stages, warnings, reminders
    and expired batches, each with the day it took effect."""
    out: Counter[tuple[object, ...]] = Counter()
    for e in log:
        if isinstance(e, (StageChanged, ChurnWarningRaised, ReplenishmentReminderRaised)):
            out[(type(e).__name__, *canonical(e).values())] += 1
        elif isinstance(e, PointsExpired):
            for b in e.batches:
                out[("expired", e.member_id, b.expires_at, b.points)] += 1
    return out


member_history_st = st.lists(
    st.tuples(
        st.integers(1, 24 * 90),
        st.one_of(
            st.builds(
                lambda o, a, ls: (
                    lambda t: RecordPurchase(member_id="ann", order_id=order_id("ann", o), amount=a, paid_at=t, lines=ls)
                ),
                slot_st,
                st.integers(0, 300_000),
                lines_st,
            ),
            st.builds(
                lambda o: lambda t: CompletePurchase(member_id="ann", order_id=order_id("ann", o), completed_at=t), slot_st
            ),
            st.builds(lambda a: lambda t: RecordBehaviour(member_id="ann", action=a), st.sampled_from(ACTIONS)),
            st.builds(
                lambda p: lambda t: RedeemPoints(member_id="ann", redemption_id=f"rd-{t}", points=p, reward="coupon"),
                st.integers(1, 2_000),
            ),
        ),
    ),
    max_size=25,
)


@PROPERTY_SETTINGS
@given(member_history_st, st.sets(st.integers(0, 24 * 90 * 25), max_size=30))
def test_r_x_1_a_members_story_does_not_depend_on_when_the_ticks_arrive(
    history: list[tuple[int, object]], tick_hours: set[int]
) -> None:
    setup: list[tuple[int, object]] = [
        (0, lambda t: JoinMember(member_id="ann")),
        (0, lambda t: ApplyUsageCycle(sku="water", cycle_days=9)),
    ]
    end = sum(h for h, _ in history) + 24 * 800  # far enough for every batch to expire
    # the same history with daily ticks, with some random ticks, and with one tick at the end
    daily = _with_ticks(history, set(range(0, end, 24)))
    some = _with_ticks(history, {h for h in tick_hours if h < end})
    _, log_daily = play(setup + daily + [(0, lambda t: CheckMemberTimers(time=t))])
    _, log_some = play(setup + some + [(end - sum(h for h, _ in some), lambda t: CheckMemberTimers(time=t))])
    _, log_none = play(setup + history + [(end - sum(h for h, _ in history), lambda t: CheckMemberTimers(time=t))])
    assert _member_story(log_daily) == _member_story(log_some) == _member_story(log_none)


def _with_ticks(history: list[tuple[int, object]], tick_hours: set[int]) -> list[tuple[int, object]]:
    """Interleave clock ticks at the given hours (a tick and a command at the same hour: tick first)."""
    steps: list[tuple[int, int, object]] = []
    t = 0
    for hours, build in history:
        t += hours
        steps.append((t, 1, build))
    steps += [(h, 0, lambda t: CheckMemberTimers(time=t)) for h in tick_hours]
    steps.sort(key=lambda s: (s[0], s[1]))
    out: list[tuple[int, object]] = []
    prev = 0
    for at_hour, _, build in steps:
        out.append((at_hour - prev, build))
        prev = at_hour
    return out


# --- (e) refunds split across the completion ---------------------------------------------------


@st.composite
def refunded_order_st(draw: st.DrawFn, oid: str) -> list[object]:
    """One paid order's story for "ann" as the order service writes it: the paid amount refunded
    in 1–4 parts (the last one full), the completion after some of them (none: all refunded first,
    the last part perhaps a cancellation), each refund with the order's figures."""
    paid = draw(st.integers(0, 400_000))
    k = draw(st.integers(1, 4))
    cuts = sorted(draw(st.lists(st.integers(0, paid), min_size=k - 1, max_size=k - 1)))
    parts = [b - a for a, b in zip([0, *cuts], [*cuts, paid], strict=True)]
    completed_after = draw(st.integers(0, k))  # refunds before the return window closes
    cancel_last = completed_after == k and draw(st.booleans())
    steps: list[object] = [lambda t: RecordPurchase(member_id="ann", order_id=oid, amount=paid, paid_at=t, lines=[])]
    before = 0
    for i, amount in enumerate(parts):
        if i == completed_after:
            steps.append(
                lambda t: OrderCompleted(order_id=oid, completed_at=t, member_id="ann", distributor_id=None, campaign_id=None)
            )
        if cancel_last and i == k - 1:
            steps.append(
                lambda t, a=amount: OrderCancelled(
                    order_id=oid,
                    reason="changed mind",
                    release_skus=[],
                    refund_amount=a,
                    member_id="ann",
                    distributor_id=None,
                    campaign_id=None,
                )
            )
        else:
            steps.append(
                lambda t, a=amount, b=before, i=i: OrderRefunded(
                    order_id=oid,
                    refund_id=f"r{i}",
                    lines=[],
                    amount=a,
                    fully_refunded=i == k - 1,
                    member_id="ann",
                    distributor_id=None,
                    campaign_id=None,
                    paid_total=paid,
                    refunded_before=b,
                )
            )
        before += amount
    return steps


@st.composite
def refund_story_st(draw: st.DrawFn) -> list[tuple[int, object]]:
    """Up to three such orders interleaved, with check-ins and redemptions in between."""
    stories = [draw(refunded_order_st(f"o{n}")) for n in range(draw(st.integers(1, 3)))]
    out: list[tuple[int, object]] = []
    while any(stories):
        extra = draw(st.sampled_from(("none", "none", "checkin", "redeem")))
        if extra == "checkin":
            out.append((24, lambda t: RecordBehaviour(member_id="ann", action="checkin")))
        elif extra == "redeem":
            points = draw(st.integers(1, 2_000))
            out.append((1, lambda t, p=points: RedeemPoints(member_id="ann", redemption_id=f"rd-{t}", points=p, reward="coupon")))
        story = draw(st.sampled_from([s for s in stories if s]))
        out.append((draw(st.integers(1, 24 * 20)), story.pop(0)))
    return out


@PROPERTY_SETTINGS
@given(refund_story_st())
def test_r_loy_2_a_fully_refunded_order_keeps_none_of_its_points(story: list[tuple[int, object]]) -> None:
    sc = Scenario(LOYALTY, at=T0, strict=False).given(JoinMember(member_id="ann"))
    t = T0
    for hours, build in story:
        t += hours * HOUR
        made = build(t)  # type: ignore[operator]
        for cmd in policy.react(made) if type(made).__module__.startswith("services.order") else [made]:
            sc.when(cmd, t)
    s, log = sc.state, sc.log
    earned: Counter[str] = Counter()
    gone: Counter[str] = Counter()  # taken back or short
    for e in log:
        if isinstance(e, PointsEarned) and e.reason == "order":
            earned[e.source.split(":")[1]] += e.points
        elif isinstance(e, PointsReversed):
            gone[e.order_id] += e.points + e.shortfall
    assert gone == earned, "a fully refunded order gives back exactly its points"
    tot = totals(log).get("ann", Counter())
    assert tot["available"] + tot["pending"] + tot["redeemed"] + tot["expired"] + tot["reversed"] == tot["earned"]
    assert tot["pending"] == 0 and not s.open_orders
    # what was not spent is gone with the orders: only check-in points are left, less what was redeemed
    m = s.member("ann")
    assert m is not None
    checkins = sum(e.points for e in log if isinstance(e, PointsEarned) and e.reason == "checkin")
    assert tot["available"] == checkins + tot["shortfall"] - tot["redeemed"] == sum(batch_points(b) for b in m.batches)
    check_bookkeeping(s)
