"""Given/when/then on pledges: R-PRE-3 phased prices on business time (exact boundaries, half-up
rounding, three-person groups in the last 48 h, an incomplete group refunded at the close), R-PRE-4
the 80 % capacity cap, and a replay of the log deciding the very same prices."""

from __future__ import annotations

import copy

import pytest
from presale_builders import CID, EARLY_END, END, GROUP_START, START, campaign, created, launched, of, ok, pay, pledge, tick

from flexchain.testing import Scenario
from services.presale.app import SERVICE as PRESALE
from services.presale.messages import (
    CheckCampaignTimers,
    EscrowRefunded,
    GroupCompleted,
    GroupDissolved,
    GroupJoined,
    IntakeClosed,
    PhaseChanged,
    PledgeAccepted,
    PledgeRejected,
    PledgeReleased,
    PresaleCommandRejected,
    PresaleRefundIssued,
    RecordPledge,
    ReleasePledge,
)
from services.presale.rules import PresaleConfig, unit_price

EARLY, REGULAR, GROUP = 2_400, 3_600, 3_000  # cost 2000 × 1.2 / 1.8 / 1.5


def accepted(events: list) -> PledgeAccepted:
    (a,) = of(events, PledgeAccepted)
    return a


# --- R-PRE-3 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "phase", "price"),
    [
        (START, "early_bird", EARLY),
        (EARLY_END - 1, "early_bird", EARLY),  # 1 ms before the 72 h mark: still the early price
        (EARLY_END, "regular", REGULAR),
        (GROUP_START - 1, "regular", REGULAR),
        (GROUP_START, "group", REGULAR),  # in the group phase a buyer without a group pays regular
        (END - 1, "group", REGULAR),
    ],
)
def test_r_pre_3_the_price_is_the_phase_in_force_at_the_orders_business_time(at: int, phase: str, price: int) -> None:
    w = launched()
    a = accepted(pledge(w, "o1", 2, at))
    assert (a.phase, a.unit_price, a.units) == (phase, price, 2)


def test_r_pre_3_a_group_in_the_last_48_h_pays_cost_x_1_5_and_completes_with_three_members() -> None:
    w = launched()
    first = pledge(w, "o1", 1, GROUP_START, "ann", "g1")
    assert accepted(first).unit_price == GROUP and of(first, GroupJoined)[0].members == 1
    assert "already in group g1" in of(pledge(w, "o2", 1, GROUP_START + 1, "ann", "g1"), PledgeRejected)[0].reason
    pledge(w, "o3", 1, GROUP_START + 2, "bo", "g1")
    third = pledge(w, "o4", 1, GROUP_START + 3, "cy", "g1")
    assert of(third, GroupCompleted) == [GroupCompleted(campaign_id=CID, group_id="g1", order_ids=["o1", "o3", "o4"])]
    assert "group g1 is full" in of(pledge(w, "o5", 1, GROUP_START + 4, "di", "g1"), PledgeRejected)[0].reason


def test_r_pre_3_a_group_id_before_the_group_phase_is_ignored_and_the_phase_price_holds() -> None:
    w = launched()
    events = pledge(w, "o1", 1, START, "ann", "g1")
    assert accepted(events).unit_price == EARLY and of(events, GroupJoined) == [] and campaign(w).groups == {}


def test_r_pre_3_an_incomplete_group_at_the_close_is_refunded_in_full_and_its_units_released() -> None:
    w = launched(moq=1)
    pledge(w, "solo", 5, START)
    pay(w, "solo", 5 * EARLY, START + 1)
    pledge(w, "g-a", 1, GROUP_START, "ann", "g1")
    pledge(w, "g-b", 1, GROUP_START, "bo", "g1")
    pay(w, "g-a", GROUP, GROUP_START + 1)
    events = tick(w, END)
    assert of(events, GroupDissolved)[0].order_ids == ["g-a", "g-b"]
    assert {(e.order_id, e.amount) for e in of(events, PresaleRefundIssued)} == {("g-a", GROUP), ("g-b", 0)}
    assert [(e.order_id, e.requested) for e in of(events, EscrowRefunded)] == [("g-a", GROUP)]
    assert campaign(w).status == "succeeded" and campaign(w).tally.pledged_units == 5, "the group's units do not count"
    assert campaign(w).held == 5 * EARLY


def test_r_pre_3_a_member_cancelling_leaves_an_incomplete_group_with_a_free_seat() -> None:
    w = launched()
    pledge(w, "o1", 1, GROUP_START, "ann", "g1")
    pledge(w, "o2", 1, GROUP_START, "bo", "g1")
    ok(w, ReleasePledge(campaign_id=CID, order_id="o1", refund_amount=0, reason="changed mind"), GROUP_START + 1)
    assert campaign(w).groups["g1"].members == ["bo"]
    pledge(w, "o3", 1, GROUP_START + 2, "cy", "g1")
    assert of(pledge(w, "o4", 1, GROUP_START + 3, "di", "g1"), GroupCompleted)[0].order_ids == ["o2", "o3", "o4"]


def test_r_pre_3_prices_round_half_up_to_the_cent() -> None:
    cfg = PresaleConfig()
    assert unit_price(1_001, "early_bird", False, cfg) == 1_201  # 1201.2
    assert unit_price(1_003, "group", True, cfg) == 1_505  # 1504.5 → 1505
    assert unit_price(1_005, "regular", False, cfg) == 1_809  # 1809.0
    assert unit_price(1_007, "group", True, cfg) == 1_511  # 1510.5 → 1511


def test_r_pre_3_ticks_switch_the_phase_once_per_boundary() -> None:
    w = launched()
    assert campaign(w).phase == "early_bird"
    assert of(tick(w, EARLY_END - 1), PhaseChanged) == []
    assert of(tick(w, EARLY_END), PhaseChanged) == [
        PhaseChanged(campaign_id=CID, phase="regular", unit_price=REGULAR, at=EARLY_END)
    ]
    assert of(tick(w, EARLY_END + 1), PhaseChanged) == []
    assert of(tick(w, GROUP_START), PhaseChanged)[0].phase == "group"


@pytest.mark.parametrize(
    ("at", "reason"),
    [(START - 1, "opens at 2026-01-02T00:00:00Z"), (END, "ended at 2026-01-12T00:00:00Z")],
)
def test_r_pre_3_outside_the_schedule_a_pledge_is_rejected(at: int, reason: str) -> None:
    w = launched()
    assert reason in of(pledge(w, "o1", 1, at), PledgeRejected)[0].reason


def test_a_pledge_is_rejected_for_an_unknown_or_unlaunched_campaign_and_a_repeat_is_refused() -> None:
    w = created()
    assert (
        of(w.when(RecordPledge(campaign_id="nope", order_id="o1", member_id="m", units=1), START).events, PledgeRejected)[
            0
        ].reason
        == "unknown campaign nope"
    )
    assert "not launched" in of(pledge(w, "o1", 1, START), PledgeRejected)[0].reason
    w = launched()
    pledge(w, "o1", 1, START)
    assert isinstance(
        w.when(RecordPledge(campaign_id=CID, order_id="o1", member_id="m", units=1), START).events[0], PresaleCommandRejected
    )
    assert "units must be positive" in of(pledge(w, "o2", 0, START), PledgeRejected)[0].reason


def test_replay_of_the_log_gives_the_same_state_and_deciding_again_the_same_prices() -> None:
    w = launched()
    commands = [
        (RecordPledge(campaign_id=CID, order_id="o1", member_id="a", units=3), START),
        (RecordPledge(campaign_id=CID, order_id="o2", member_id="b", units=1), EARLY_END - 1),
        (CheckCampaignTimers(time=EARLY_END), EARLY_END),
        (RecordPledge(campaign_id=CID, order_id="o3", member_id="c", units=2), EARLY_END),
        (RecordPledge(campaign_id=CID, order_id="o4", member_id="d", units=1, group_id="g"), GROUP_START),
    ]
    before = copy.deepcopy(w.state)
    first = [w.when(cmd, at).events for cmd, at in commands]
    assert w.rebuilt() == w.state, "folding the log rebuilds the live state"
    again = [Scenario(PRESALE, state=before).decide(cmd, at) for cmd, at in commands[:1]]
    assert again[0] == first[0]
    replayed = Scenario(PRESALE, state=copy.deepcopy(before))
    second = [replayed.when(cmd, at).events for cmd, at in commands]
    assert second == first
    prices = [(a.order_id, a.unit_price) for events in first for a in of(events, PledgeAccepted)]
    assert prices == [("o1", EARLY), ("o2", EARLY), ("o3", REGULAR), ("o4", GROUP)]


# --- R-PRE-4 ---------------------------------------------------------------------------------------


def test_r_pre_4_intake_closes_at_80_percent_of_capacity_and_an_order_beyond_is_rejected() -> None:
    w = launched(moq=10, capacity=101)  # cap ⌊80.8⌋ = 80 units
    pledge(w, "o1", 70, START)
    beyond = of(pledge(w, "o2", 11, START + 1), PledgeRejected)[0]
    assert beyond.reason == "beyond the capacity cap: 11 units asked, 10 left of 80 (80 % of capacity 101)"
    reached = pledge(w, "o3", 10, START + 2)
    assert of(reached, IntakeClosed)[0].reason == "capacity cap reached: 80 of 80 units"
    assert "intake closed: capacity cap reached" in of(pledge(w, "o4", 1, START + 3), PledgeRejected)[0].reason
    ok(w, ReleasePledge(campaign_id=CID, order_id="o1", refund_amount=0, reason="unpaid"), START + 4)
    assert of(pledge(w, "o5", 1, START + 5), PledgeRejected), "intake stays closed once the cap was reached (README)"
    assert campaign(w).tally.pledged_units == 10 and of(w.log, PledgeReleased)[0].units == 70


def test_r_pre_4_the_cap_counts_units_across_orders_not_orders() -> None:
    w = launched(moq=1, capacity=10)  # cap 8
    for i in range(4):
        assert of(pledge(w, f"o{i}", 2, START + i), PledgeAccepted)
    assert of(pledge(w, "o9", 1, START + 9), PledgeRejected)
