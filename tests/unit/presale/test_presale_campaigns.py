"""Given/when/then on the campaign life cycle: R-PRE-1 (create, schedule), R-PRE-2 (intent deposits and
the 1.5 % launch signal), R-PRE-7 (the close: fail below MOQ with every cent refunded, or succeed with
a first batch of 70 %), and the refusals that change nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from presale_builders import CID, COST, DELIVERY, END, START, T0, campaign, created, launched, of, ok, pay, pledge, tick, world

from flexchain.testing import Scenario
from services.presale.messages import (
    CampaignClosed,
    CampaignCreated,
    CampaignLaunched,
    CheckCampaignTimers,
    CloseCampaign,
    CollectDeposit,
    CreateCampaign,
    DepositRefunded,
    EscrowRefunded,
    FinalBatchConfirmed,
    FirstBatchPlanned,
    IntakeClosed,
    LaunchCampaign,
    LaunchThresholdReached,
    PledgeReleased,
    PresaleRefundIssued,
    RecordPayment,
    ScheduleCampaign,
)
from services.presale.rules import DAY_MS, DEFAULT_MILESTONES
from services.presale.state import PresaleBook

# --- R-PRE-1 ---------------------------------------------------------------------------------------


def test_r_pre_1_a_campaign_has_product_cost_fan_base_moq_capacity_and_default_milestones() -> None:
    w = world()
    events = ok(
        w, CreateCampaign(campaign_id=CID, product="glow notebook", unit_cost=COST, fan_base=38_000, moq=30, max_capacity=500), T0
    )
    assert events == [
        CampaignCreated(
            campaign_id=CID,
            product="glow notebook",
            unit_cost=COST,
            fan_base=38_000,
            moq=30,
            max_capacity=500,
            split="standard",
            milestone_shares=DEFAULT_MILESTONES,
            created_at=T0,
        )
    ]
    assert campaign(w).status == "draft"


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (CreateCampaign(campaign_id=CID, product="", unit_cost=COST, fan_base=1000, moq=30, max_capacity=500), "needs a product"),
        (
            CreateCampaign(campaign_id=CID, product="x", unit_cost=-5, fan_base=1000, moq=30, max_capacity=500),
            "unit_cost must be positive",
        ),
        (
            CreateCampaign(campaign_id=CID, product="x", unit_cost=COST, fan_base=0, moq=30, max_capacity=500),
            "fan_base must be positive",
        ),
        (
            CreateCampaign(campaign_id=CID, product="x", unit_cost=COST, fan_base=1000, moq=0, max_capacity=500),
            "moq must be positive",
        ),
        (
            CreateCampaign(campaign_id=CID, product="x", unit_cost=COST, fan_base=1000, moq=450, max_capacity=500),
            "MOQ 450 must fit under the intake cap 400",
        ),
        (
            CreateCampaign(campaign_id=CID, product="x", unit_cost=COST, fan_base=1000, moq=30, max_capacity=500, split="fancy"),
            "split must be one of standard, simple",
        ),
        (
            CreateCampaign(
                campaign_id=CID,
                product="x",
                unit_cost=COST,
                fan_base=1000,
                moq=30,
                max_capacity=500,
                split="standard",
                milestone_shares={"a": Decimal("0.5")},
            ),
            "must add up to 1",
        ),
    ],
)
def test_r_pre_1_a_bad_campaign_is_refused_with_its_reason(cmd: CreateCampaign, reason: str) -> None:
    assert reason in world().when(cmd, T0).refused()


def test_r_pre_1_schedule_runs_at_least_the_early_bird_plus_the_group_phase() -> None:
    w = created()
    assert (
        "at least 120 h"
        in w.when(ScheduleCampaign(campaign_id=CID, starts_at=START, ends_at=START + 119 * 3_600_000), T0).refused()
    )
    assert (
        "ends in the past"
        in w.when(ScheduleCampaign(campaign_id=CID, starts_at=T0 - 10 * DAY_MS, ends_at=T0 - DAY_MS), T0).refused()
    )
    assert (
        "delivery must come after"
        in w.when(ScheduleCampaign(campaign_id=CID, starts_at=START, ends_at=END, delivery_at=END), T0).refused()
    )
    ok(w, ScheduleCampaign(campaign_id=CID, starts_at=START, ends_at=END, delivery_at=DELIVERY), T0)
    assert (campaign(w).status, campaign(w).starts_at, campaign(w).ends_at) == ("scheduled", START, END)


def test_r_pre_1_a_command_for_an_unknown_campaign_is_refused() -> None:
    assert "unknown campaign nope" in world().when(LaunchCampaign(campaign_id="nope"), T0).refused()


# --- R-PRE-2 ---------------------------------------------------------------------------------------


def test_r_pre_2_deposits_signal_a_launch_once_depositors_reach_1_5_percent_of_the_fan_base() -> None:
    w = created(fan_base=200)  # 1.5 % of 200 = 3 depositors
    ok(w, ScheduleCampaign(campaign_id=CID, starts_at=START, ends_at=END), T0)
    reason = w.when(LaunchCampaign(campaign_id=CID), T0).refused()
    assert "demand not validated: 0 depositors, 3 needed" in reason
    assert (
        of(ok(w, CollectDeposit(campaign_id=CID, deposit_id="d1", member_id="m1", amount=2000), T0), LaunchThresholdReached) == []
    )
    ok(w, CollectDeposit(campaign_id=CID, deposit_id="d2", member_id="m2", amount=3000), T0)
    third = ok(w, CollectDeposit(campaign_id=CID, deposit_id="d3", member_id="m3", amount=2500), T0)
    assert third[-1] == LaunchThresholdReached(campaign_id=CID, depositors=3, needed=3, fan_base=200)
    assert (
        of(ok(w, CollectDeposit(campaign_id=CID, deposit_id="d4", member_id="m4", amount=2500), T0), LaunchThresholdReached) == []
    ), "once"
    assert campaign(w).buckets["deposits"] == 10_000 and campaign(w).received == 10_000
    launched_ev = ok(w, LaunchCampaign(campaign_id=CID), T0)
    assert launched_ev == [CampaignLaunched(campaign_id=CID, launched_at=T0, depositors=4, validated=True, phase="upcoming")]


@pytest.mark.parametrize(
    ("deposit", "reason"),
    [
        (CollectDeposit(campaign_id=CID, deposit_id="d9", member_id="m9", amount=-2500), "amount must be positive"),
        (CollectDeposit(campaign_id=CID, deposit_id="d9", member_id="m9", amount=1999), "an intent deposit is 2000–3000 cents"),
        (CollectDeposit(campaign_id=CID, deposit_id="d9", member_id="m9", amount=3001), "an intent deposit is 2000–3000 cents"),
        (CollectDeposit(campaign_id=CID, deposit_id="d1", member_id="m9", amount=2500), "deposit d1 was already collected"),
        (CollectDeposit(campaign_id=CID, deposit_id="d9", member_id="m1", amount=2500), "member m1 already left deposit d1"),
    ],
)
def test_r_pre_2_a_bad_deposit_is_refused(deposit: CollectDeposit, reason: str) -> None:
    w = created()
    ok(w, CollectDeposit(campaign_id=CID, deposit_id="d1", member_id="m1", amount=2500), T0)
    assert reason in w.when(deposit, T0).refused()


def test_r_pre_2_deposits_are_taken_only_before_the_launch() -> None:
    w = launched()
    assert (
        "collected before the launch"
        in w.when(CollectDeposit(campaign_id=CID, deposit_id="d1", member_id="m1", amount=2500), START).refused()
    )


def test_r_pre_2_launch_is_refused_twice_before_a_schedule_and_after_the_end() -> None:
    w = created()
    assert "schedule the campaign before" in w.when(LaunchCampaign(campaign_id=CID, force=True), T0).refused()
    ok(w, ScheduleCampaign(campaign_id=CID, starts_at=START, ends_at=END), T0)
    assert "the schedule already ended" in w.when(LaunchCampaign(campaign_id=CID, force=True), END).refused()
    ok(w, LaunchCampaign(campaign_id=CID, force=True), T0)
    assert "it can be launched once" in w.when(LaunchCampaign(campaign_id=CID, force=True), T0).refused()


# --- R-PRE-7 the close -------------------------------------------------------------------------------


def _with_orders(moq: int) -> Scenario[PresaleBook]:
    """Deposits, then 4 orders of 5 units (20 units), 3 paid; one paid and later cancelled."""
    w = created(moq=moq)
    ok(w, ScheduleCampaign(campaign_id=CID, starts_at=START, ends_at=END, delivery_at=DELIVERY), T0)
    ok(w, CollectDeposit(campaign_id=CID, deposit_id="d1", member_id="m1", amount=2000), T0)
    ok(w, CollectDeposit(campaign_id=CID, deposit_id="d2", member_id="m2", amount=3000), T0)
    ok(w, LaunchCampaign(campaign_id=CID, force=True), T0)
    tick(w, START)
    for i in range(1, 5):
        pledge(w, f"o{i}", 5, START + i)
    pay(w, "o1", 12_000, START + 10)
    pay(w, "o2", 12_000, START + 11)
    pay(w, "o3", 12_001, START + 12)  # whatever the order service charged is what escrow holds
    return w


def test_r_pre_7_below_moq_the_campaign_fails_and_every_payment_and_deposit_is_refunded_in_full() -> None:
    w = _with_orders(moq=21)
    received = campaign(w).received
    events = tick(w, END)
    assert of(events, IntakeClosed)[0].reason == "the schedule ended"
    assert of(events, CampaignClosed) == [
        CampaignClosed(campaign_id=CID, outcome="failed", pledged_units=20, moq=21, reason="the schedule ended", closed_at=END)
    ]
    issued = {e.order_id: e for e in of(events, PresaleRefundIssued)}
    assert {o: e.amount for o, e in issued.items()} == {"o1": 12_000, "o2": 12_000, "o3": 12_001, "o4": 0}
    assert all(e.refund_id == f"presale-{CID}-{o}" for o, e in issued.items())
    taken = {e.order_id: sum(e.taken.values()) for e in of(events, EscrowRefunded)}
    assert taken == {"o1": 12_000, "o2": 12_000, "o3": 12_001}, "o4 was never paid: nothing to take"
    assert {(e.deposit_id, e.amount) for e in of(events, DepositRefunded)} == {("d1", 2000), ("d2", 3000)}
    assert sum(e.units for e in of(events, PledgeReleased)) == 20
    assert campaign(w).refunded == received and campaign(w).held == 0 and campaign(w).uncovered == 0


def test_r_pre_7_a_payment_arriving_after_the_failure_is_escrowed_and_sent_straight_back() -> None:
    w = _with_orders(moq=21)
    tick(w, END)
    events = pay(w, "o4", 12_000, END + 60_000)
    assert [type(e).__name__ for e in events] == ["PaymentEscrowed", "PresaleRefundIssued", "EscrowRefunded"]
    assert events[1].amount == 12_000 and campaign(w).held == 0 and campaign(w).refunded == campaign(w).received


def test_r_pre_7_at_moq_the_campaign_succeeds_with_a_first_batch_of_70_percent_rounded_up() -> None:
    w = _with_orders(moq=20)
    events = ok(w, CloseCampaign(campaign_id=CID, reason="merchant closes early"), START + DAY_MS)
    assert of(events, CampaignClosed)[0].outcome == "succeeded"
    assert of(events, FirstBatchPlanned) == [
        FirstBatchPlanned(
            campaign_id=CID, pledged_units=20, first_batch_units=14, remaining_units=6, confirm_by=DELIVERY - 7 * DAY_MS
        )
    ]
    assert of(events, PresaleRefundIssued) == [] and of(events, EscrowRefunded) == []
    assert len(of(events, DepositRefunded)) == 2, "an intent deposit goes back either way (README)"
    assert campaign(w).held == 36_001, "the payments stay in escrow"
    tick(w, DELIVERY - 7 * DAY_MS - 1)
    final = of(tick(w, DELIVERY - 7 * DAY_MS), FinalBatchConfirmed)
    assert final == [
        FinalBatchConfirmed(
            campaign_id=CID, pledged_units=20, first_batch_units=14, final_batch_units=6, at=DELIVERY - 7 * DAY_MS
        )
    ]
    assert of(tick(w, DELIVERY), FinalBatchConfirmed) == [], "once"


def test_r_pre_7_close_twice_is_refused_and_changes_nothing() -> None:
    w = _with_orders(moq=21)
    tick(w, END)
    assert "already closed (failed)" in w.when(CloseCampaign(campaign_id=CID, reason="again"), END + 1).refused()
    assert of(tick(w, END + 1), CampaignClosed) == [], "a later tick closes nothing either"


def test_r_pre_7_a_campaign_closed_before_its_launch_is_cancelled_and_its_deposits_go_back() -> None:
    w = created()
    ok(w, CollectDeposit(campaign_id=CID, deposit_id="d1", member_id="m1", amount=2500), T0)
    events = ok(w, CloseCampaign(campaign_id=CID, reason="changed plans"), T0)
    assert [type(e).__name__ for e in events] == ["CampaignClosed", "DepositRefunded"]
    assert events[0].outcome == "cancelled" and campaign(w).held == 0 and campaign(w).refunded == 2500


def test_pay_a_closed_campaign_without_a_pledge_is_refused_and_changes_nothing() -> None:
    w = _with_orders(moq=20)
    tick(w, END)
    assert (
        "no accepted pledge for order o9"
        in w.when(RecordPayment(campaign_id=CID, order_id="o9", amount=5000, payment_ref="p9"), END + 1).refused()
    )
    assert (
        "already paid"
        in w.when(RecordPayment(campaign_id=CID, order_id="o1", amount=12_000, payment_ref="again"), END + 1).refused()
    )
    assert (
        "amount must be positive"
        in w.when(RecordPayment(campaign_id=CID, order_id="o4", amount=-1, payment_ref="neg"), END + 1).refused()
    )


def test_a_tick_before_the_end_does_not_close() -> None:
    w = _with_orders(moq=21)
    events = ok(w, CheckCampaignTimers(time=END - 1), END - 1)
    assert of(events, CampaignClosed) == [] and campaign(w).status == "open"
