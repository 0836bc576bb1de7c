"""Given/when/then on business time: life-cycle stages and the churn warning (R-LOY-3) and
replenishment reminders (R-LOY-4), decided by clock ticks through the partition's agenda, and
caught up by a purchase when the ticks lag behind (R-X-1)."""

from __future__ import annotations

from flexchain.messages import Message
from flexchain.testing import Scenario
from services.loyalty.messages import (
    ApplyUsageCycle,
    ChurnWarningRaised,
    ConfigureUsageCycle,
    MembersEvaluated,
    ReplenishmentReminderRaised,
    RunOut,
    StageChanged,
    UsageCycleApplied,
    UsageCycleConfigured,
)
from services.loyalty.rules import day_start, usual_interval
from services.loyalty.state import Loyalty
from tests.unit.loyalty.builders import D0, at, buy, check_bookkeeping, joined, of, tick

DAY0 = at(0, 0)


def stage_events(events: list[Message]) -> list[tuple[str, str, int]]:
    """(from, to, day) of each stage change, the day counted from 2026-01-01."""
    return [(e.previous, e.stage, (e.changed_at - DAY0) // 86_400_000) for e in events if isinstance(e, StageChanged)]


def ticks(sc: Scenario[Loyalty], first: int, last: int) -> list[Message]:
    out: list[Message] = []
    for day in range(first, last + 1):
        out += tick(sc, day)
    return out


def day(n: int) -> int:
    return day_start(D0 + n, Loyalty().config)


# --- stages (R-LOY-3) ---------------------------------------------------------------------------------


def test_r_loy_3_new_for_30_days_after_the_first_purchase_then_growing() -> None:
    sc = joined("ann")
    assert stage_events(buy(sc, "ann", "o1", 5_000, 0)) == [("prospect", "new", 0)]
    assert stage_events(ticks(sc, 1, 31)) == [("new", "growing", 31)]
    check_bookkeeping(sc.state)


def test_r_loy_3_a_single_purchase_declines_after_90_days_and_churns_after_180() -> None:
    sc = joined("ann")
    buy(sc, "ann", "o1", 5_000, 0)
    events = ticks(sc, 1, 200)
    assert stage_events(events) == [("new", "growing", 31), ("growing", "declining", 91), ("declining", "churned", 181)]
    # no usual interval yet: the default of 60 days (1.5 × 60 = 90, 3 × 60 = 180)
    assert of(events, ChurnWarningRaised) == [
        ChurnWarningRaised(
            member_id="ann", last_purchase_at=day(0), usual_interval_days=60, gap_days=91, purchases=1, raised_at=day(91)
        )
    ]


def test_r_loy_3_the_usual_interval_is_the_mean_gap_between_purchase_days() -> None:
    sc = joined("ann")
    for n, d in enumerate((0, 20, 40, 60)):
        buy(sc, "ann", f"o{n}", 5_000, d)
    assert usual_interval(sc.state.config, D0, D0 + 60, 4) == 20
    events = ticks(sc, 61, 130)
    # declining when the gap exceeds 30 days (day 91), churned past 60 days (day 121)
    assert stage_events(events) == [("growing", "declining", 91), ("declining", "churned", 121)]
    assert of(events, ChurnWarningRaised) == [
        ChurnWarningRaised(
            member_id="ann", last_purchase_at=day(60), usual_interval_days=20, gap_days=31, purchases=4, raised_at=day(91)
        )
    ]


def test_r_loy_3_six_purchases_make_a_mature_member() -> None:
    sc = joined("ann")
    for n in range(5):
        buy(sc, "ann", f"o{n}", 5_000, 10 * n)
    assert sc.state.member("ann").stage == 2  # type: ignore[union-attr]  # growing
    assert stage_events(buy(sc, "ann", "o5", 5_000, 50)) == [("growing", "mature", 50)]


def test_r_loy_3_a_prospect_without_any_purchase_churns_after_180_days() -> None:
    sc = joined("ann")
    events = ticks(sc, 1, 181)
    assert stage_events(events) == [("prospect", "churned", 181)]
    assert of(events, ChurnWarningRaised) == []


def test_r_loy_3_one_churn_warning_per_entry_into_declining() -> None:
    sc = joined("ann")
    buy(sc, "ann", "o1", 5_000, 0)
    buy(sc, "ann", "o2", 5_000, 10)  # usual interval 10: declining past 15 days
    first = ticks(sc, 11, 30)
    assert len(of(first, ChurnWarningRaised)) == 1
    assert of(ticks(sc, 26, 30), ChurnWarningRaised) == []  # the same entry: nothing more
    back = buy(sc, "ann", "o3", 5_000, 31)
    assert stage_events(back) == [("declining", "growing", 31)]
    second = ticks(sc, 32, 60)  # interval (31 − 0) / 2 = 15.5 → 16: declining from a 25-day gap
    assert [w.raised_at for w in of(second, ChurnWarningRaised)] == [day(56)]  # type: ignore[attr-defined]
    check_bookkeeping(sc.state)


def test_r_loy_3_purchases_days_apart_do_not_make_a_one_day_interval() -> None:
    sc = joined("ann")
    buy(sc, "ann", "o1", 5_000, 0)
    buy(sc, "ann", "o2", 5_000, 1)
    assert usual_interval(sc.state.config, D0, D0 + 1, 2) == 7  # at least a week
    assert stage_events(ticks(sc, 2, 12)) == [("new", "declining", 12)]


def test_two_orders_on_one_day_are_one_purchase_day() -> None:
    sc = joined("ann")
    buy(sc, "ann", "o1", 5_000, 0)
    buy(sc, "ann", "o2", 5_000, 0)
    m = sc.state.member("ann")
    assert m is not None and (m.orders, m.purchase_days) == (2, 1)


def test_r_x_1_a_tick_far_ahead_emits_every_stage_in_order_with_its_own_day() -> None:
    sc = joined("ann")
    buy(sc, "ann", "o1", 5_000, 0)
    events = tick(sc, 400)
    assert stage_events(events) == [("new", "growing", 31), ("growing", "declining", 91), ("declining", "churned", 181)]
    assert of(events, ChurnWarningRaised)[0].raised_at == day(91)  # type: ignore[attr-defined]
    assert tick(sc, 400, 12) == []  # evaluated: a later tick the same day has nothing to do


def test_r_x_1_a_purchase_first_catches_up_what_was_due_before_it() -> None:
    sc = joined("ann")
    buy(sc, "ann", "o1", 5_000, 0)
    events = buy(sc, "ann", "o2", 5_000, 100)  # no tick since day 0
    assert stage_events(events) == [("new", "growing", 31), ("growing", "declining", 91), ("declining", "growing", 100)]
    assert len(of(events, ChurnWarningRaised)) == 1
    assert stage_events(tick(sc, 100)) == []
    check_bookkeeping(sc.state)


def test_a_tick_with_nothing_due_writes_nothing() -> None:
    sc = joined("ann")
    assert of(tick(sc, 1), MembersEvaluated) == []  # no purchase, nothing due yet


# --- replenishment (R-LOY-4) ---------------------------------------------------------------------------


def with_cycle(sc: Scenario[Loyalty], sku: str, days: int) -> None:
    sc.when(ConfigureUsageCycle(sku=sku, cycle_days=days), at(0)).then(UsageCycleConfigured(sku=sku, cycle_days=days))
    sc.when(ApplyUsageCycle(sku=sku, cycle_days=days), at(0)).then(UsageCycleApplied(sku=sku, cycle_days=days))
    assert sc.when(ApplyUsageCycle(sku=sku, cycle_days=days), at(0)).events == []  # already in use


def test_r_loy_4_a_reminder_seven_days_before_the_estimated_run_out() -> None:
    sc = joined("ann")
    with_cycle(sc, "water", 10)
    recorded = buy(sc, "ann", "o1", 5_000, 0, ("water", 3), ("mug", 1))  # 3 × 10 days: runs out on day 30
    assert recorded[0].run_outs == [RunOut(sku="water", run_out_at=day(30))]  # type: ignore[attr-defined]
    assert of(ticks(sc, 1, 22), ReplenishmentReminderRaised) == []
    assert of(tick(sc, 23), ReplenishmentReminderRaised) == [
        ReplenishmentReminderRaised(member_id="ann", sku="water", order_id="o1", run_out_at=day(30), remind_at=day(23))
    ]
    assert of(ticks(sc, 24, 60), ReplenishmentReminderRaised) == []
    check_bookkeeping(sc.state)


def test_r_loy_4_buying_again_before_the_run_out_adds_to_the_supply() -> None:
    sc = joined("ann")
    with_cycle(sc, "water", 10)
    buy(sc, "ann", "o1", 5_000, 0, ("water", 2))  # runs out on day 20
    assert buy(sc, "ann", "o2", 5_000, 5, ("water", 1))[0].run_outs == [RunOut(sku="water", run_out_at=day(30))]  # type: ignore[attr-defined]
    events = ticks(sc, 6, 40)
    assert of(events, ReplenishmentReminderRaised) == [
        ReplenishmentReminderRaised(member_id="ann", sku="water", order_id="o2", run_out_at=day(30), remind_at=day(23))
    ]


def test_r_loy_4_no_reminder_without_a_usage_cycle_and_a_bad_cycle_is_refused() -> None:
    sc = joined("ann")
    buy(sc, "ann", "o1", 5_000, 0, ("water", 2))
    assert of(ticks(sc, 1, 60), ReplenishmentReminderRaised) == []
    sc.when(ConfigureUsageCycle(sku="water", cycle_days=-1), at(1)).refused("cycle_days")
    sc.when(ConfigureUsageCycle(sku="water", cycle_days=99_999), at(1)).refused("cycle_days")
    assert sc.when(ApplyUsageCycle(sku="water", cycle_days=0), at(1)).events == []  # 0: not a consumable, already so


def test_r_loy_4_a_supply_shorter_than_the_lead_time_is_reminded_at_the_next_tick() -> None:
    sc = joined("ann")
    with_cycle(sc, "tissue", 3)
    buy(sc, "ann", "o1", 5_000, 0, ("tissue", 1))
    assert of(tick(sc, 0, 12), ReplenishmentReminderRaised) == [
        ReplenishmentReminderRaised(member_id="ann", sku="tissue", order_id="o1", run_out_at=day(3), remind_at=day(-4))
    ]
