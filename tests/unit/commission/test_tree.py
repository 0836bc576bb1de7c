"""Given/when/then on the referral network: R-COM-1 (levels, no cycle, recruitment at any depth unless
capped), R-COM-2
(rates), R-COM-5a (default sponsor) and R-COM-6 (qualification warning and expiry).

*Given* commands accepted by the real decider and folded with ``evolve``, *when* one more command is
decided at business time ``now``, *then* exactly these events follow. A refused command is one
``CommissionCommandRejected`` with the reason, and folding it leaves the state unchanged.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from flexchain.messages import Message
from flexchain.testing import Scenario
from services.commission.messages import (
    NETWORK,
    CheckNetworkTimers,
    CommissionPlanChanged,
    DistributorLinked,
    DistributorRecord,
    DistributorRegistered,
    LinkDistributor,
    QualificationExpired,
    QualificationExpiryWarned,
    RegisterDistributor,
    RenewQualification,
    SetCommissionLevels,
    SetDefaultSponsor,
    SetDistributorGrade,
    SetLevelRates,
)
from services.commission.plan import DAY_MS
from services.commission.state import CommissionState
from tests.unit.commission.builders import COMMISSION, T0, reg


def chain_abc(levels: int = 2, depth: int | None = None) -> Scenario[CommissionState]:
    """a ← b ← c (c recruited by b, b by a); `depth`: a cap on recruitment depth."""
    plan: list[Message] = (
        [SetCommissionLevels(network_id=NETWORK, levels=levels, max_chain_depth=depth)] if (levels, depth) != (2, None) else []
    )
    return Scenario(COMMISSION, at=T0).given(*plan, reg("a"), reg("b", "a"), reg("c", "b"))


# --- R-COM-1: the tree -----------------------------------------------------------------------------


def test_a_distributor_joins_under_their_recruiter() -> None:
    sc = Scenario(COMMISSION, at=T0).given(reg("a"))
    events = sc.when(reg("b", "a", name="Bea", grade="gold"), T0 + 5).events
    assert events == [
        DistributorRegistered(
            network_id=NETWORK,
            seq=2,
            distributor=DistributorRecord(
                distributor_id="b", name="Bea", upline_id="a", grade="gold", qualified_until=None, registered_at=T0 + 5
            ),
            sponsored=False,
        )
    ]
    assert sc.state.network.children == {"a": {"b"}}


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (reg("a"), "already registered"),
        (reg("x", "nobody"), "unknown upline nobody"),
        (reg("x", "x"), "cannot be their own upline"),
        (reg("x", grade="platinum"), "unknown grade platinum"),
        (reg("x", qualified_until=T0), "already have expired"),
    ],
)
def test_a_registration_is_refused_with_a_reason(cmd: RegisterDistributor, reason: str) -> None:
    assert reason in Scenario(COMMISSION, at=T0).given(reg("a")).when(cmd).refused()


def test_recruitment_goes_deeper_than_the_commission_levels() -> None:
    """R-COM-1 limits how far commission flows up, not how deep the network grows: with 3 levels a
    third-level distributor recruits, and so on down; a cycle is still refused at any depth."""
    sc = chain_abc(levels=3)
    for i, (who, upline) in enumerate([("d", "c"), ("e", "d"), ("f", "e"), ("g", "f")]):
        [e] = sc.when(reg(who, upline)).events
        assert isinstance(e, DistributorRegistered) and e.seq == 5 + i and e.distributor.upline_id == upline
    cycle = sc.when(LinkDistributor(network_id=NETWORK, distributor_id="a", upline_id="g")).refused()
    assert cycle == "linking a under g would make a cycle: a → g → f → e → d → c → b → a"
    assert "cycle" in sc.when(LinkDistributor(network_id=NETWORK, distributor_id="c", upline_id="e")).refused()


def test_a_merchant_may_cap_recruitment_depth() -> None:
    sc = chain_abc(depth=3)  # depth 3 = the cap
    reason = sc.when(reg("d", "c")).refused()
    assert reason == "chain too deep: d → c → b → a would be 4 levels, the recruitment depth cap is 3 (max_chain_depth, R-COM-1)"
    shallow = Scenario(COMMISSION, at=T0).given(
        SetCommissionLevels(network_id=NETWORK, levels=2, max_chain_depth=2), reg("a"), reg("b", "a")
    )
    assert "would be 3 levels, the recruitment depth cap is 2" in shallow.when(reg("c", "b")).refused()
    # the cap cannot go below a chain the tree holds; 0 lifts it; leaving it out keeps it
    assert "chains of 3 levels" in sc.when(SetCommissionLevels(network_id=NETWORK, levels=2, max_chain_depth=2)).refused()
    [kept] = sc.when(SetCommissionLevels(network_id=NETWORK, levels=3)).events
    assert isinstance(kept, CommissionPlanChanged) and kept.plan.max_chain_depth == 3 and kept.plan.levels == 3
    [lifted] = sc.when(SetCommissionLevels(network_id=NETWORK, levels=3, max_chain_depth=0)).events
    assert isinstance(lifted, CommissionPlanChanged) and lifted.plan.max_chain_depth == 0
    assert isinstance(sc.when(reg("d", "c")).events[0], DistributorRegistered)


def test_a_link_that_would_make_a_cycle_is_refused_with_the_path() -> None:
    sc = chain_abc()
    assert (
        sc.when(LinkDistributor(network_id=NETWORK, distributor_id="a", upline_id="c")).refused()
        == "linking a under c would make a cycle: a → c → b → a"
    )
    assert "cycle" in sc.when(LinkDistributor(network_id=NETWORK, distributor_id="a", upline_id="b")).refused()
    assert "(a cycle)" in sc.when(LinkDistributor(network_id=NETWORK, distributor_id="a", upline_id="a")).refused()


def test_a_link_is_checked_with_the_whole_downline_it_moves() -> None:
    sc = Scenario(COMMISSION, at=T0).given(
        SetCommissionLevels(network_id=NETWORK, levels=2, max_chain_depth=3), reg("a"), reg("b", "a"), reg("x"), reg("y", "x")
    )
    # moving x (with y below) under b would make y the 4th level
    reason = sc.when(LinkDistributor(network_id=NETWORK, distributor_id="x", upline_id="b")).refused()
    assert reason.startswith("chain too deep: under b → a, x and their downline would reach 4 levels")
    assert sc.when(LinkDistributor(network_id=NETWORK, distributor_id="x", upline_id="a")).events == [
        DistributorLinked(
            network_id=NETWORK,
            seq=6,
            distributor=DistributorRecord(
                distributor_id="x", name="", upline_id="a", grade="standard", qualified_until=None, registered_at=T0
            ),
            previous_upline_id=None,
        )
    ]
    assert sc.state.network.children == {"a": {"b", "x"}, "x": {"y"}}
    assert "already linked" in sc.when(LinkDistributor(network_id=NETWORK, distributor_id="x", upline_id="a")).refused()


def test_commission_never_flows_more_than_three_levels() -> None:
    sc = chain_abc()
    assert "never flows more than 3 levels" in sc.when(SetCommissionLevels(network_id=NETWORK, levels=4)).refused()
    assert "never flows more than 3 levels" in sc.when(SetCommissionLevels(network_id=NETWORK, levels=0)).refused()
    [changed] = sc.when(SetCommissionLevels(network_id=NETWORK, levels=3), T0 + 1).events
    assert isinstance(changed, CommissionPlanChanged) and changed.plan.levels == 3 and changed.effective_from == T0 + 1


# --- R-COM-2: rates ----------------------------------------------------------------------------------


def test_level_rates_keep_level_one_within_15_to_20_percent_and_deeper_levels_smaller() -> None:
    sc = Scenario(COMMISSION, at=T0).given()
    d = Decimal
    assert "within 0.15–0.20" in sc.when(SetLevelRates(network_id=NETWORK, rates=[d("0.25"), d("0.05"), d("0.02")])).refused()
    assert (
        "smaller than level 2's" in sc.when(SetLevelRates(network_id=NETWORK, rates=[d("0.18"), d("0.05"), d("0.05")])).refused()
    )
    [changed] = sc.when(SetLevelRates(network_id=NETWORK, rates=[d("0.18"), d("0.06"), d("0.03")])).events
    assert isinstance(changed, CommissionPlanChanged) and changed.plan.level_rates == [d("0.18"), d("0.06"), d("0.03")]


def test_a_grade_must_exist_and_change() -> None:
    sc = Scenario(COMMISSION, at=T0).given(reg("a"))
    assert "unknown grade" in sc.when(SetDistributorGrade(network_id=NETWORK, distributor_id="a", grade="platinum")).refused()
    assert "already standard" in sc.when(SetDistributorGrade(network_id=NETWORK, distributor_id="a", grade="standard")).refused()
    sc.when(SetDistributorGrade(network_id=NETWORK, distributor_id="a", grade="gold"))
    assert sc.state.network.distributors["a"].grade == "gold"


# --- R-COM-5a: default sponsor ---------------------------------------------------------------------


def test_a_distributor_joining_without_an_upline_gets_the_default_sponsor() -> None:
    sc = Scenario(COMMISSION, at=T0).given(reg("house"), SetDefaultSponsor(network_id=NETWORK, distributor_id="house"))
    [e] = sc.when(reg("solo")).events
    assert isinstance(e, DistributorRegistered) and e.distributor.upline_id == "house" and e.sponsored
    [e] = sc.when(reg("recruit", "solo")).events
    assert isinstance(e, DistributorRegistered) and e.distributor.upline_id == "solo" and not e.sponsored
    assert "unknown distributor" in sc.when(SetDefaultSponsor(network_id=NETWORK, distributor_id="ghost")).refused()
    sc.when(SetDefaultSponsor(network_id=NETWORK, distributor_id=None))
    [e] = sc.when(reg("alone")).events
    assert isinstance(e, DistributorRegistered) and e.distributor.upline_id is None


# --- R-COM-6: qualification ---------------------------------------------------------------------------


def test_a_qualification_warning_comes_once_30_days_before_then_the_expiry_once() -> None:
    until = T0 + 100 * DAY_MS
    sc = Scenario(COMMISSION, at=T0).given(reg("a", qualified_until=until), reg("b"))
    sc.when(CheckNetworkTimers(network_id=NETWORK, time=until - 31 * DAY_MS)).then()
    sc.when(CheckNetworkTimers(network_id=NETWORK, time=until - 30 * DAY_MS)).then(
        QualificationExpiryWarned(network_id=NETWORK, distributor_id="a", qualified_until=until, days_left=30)
    )
    sc.when(CheckNetworkTimers(network_id=NETWORK, time=until - 29 * DAY_MS)).then()
    sc.when(CheckNetworkTimers(network_id=NETWORK, time=until)).then(
        QualificationExpired(network_id=NETWORK, distributor_id="a", qualified_until=until)
    )
    sc.when(CheckNetworkTimers(network_id=NETWORK, time=until + DAY_MS)).then()
    # renewed: a new expiry, a new warning
    later = until + 200 * DAY_MS
    sc.when(RenewQualification(network_id=NETWORK, distributor_id="a", qualified_until=later), until + DAY_MS)
    sc.when(CheckNetworkTimers(network_id=NETWORK, time=later - 10 * DAY_MS)).then(
        QualificationExpiryWarned(network_id=NETWORK, distributor_id="a", qualified_until=later, days_left=10)
    )
    assert (
        "must end in the future"
        in sc.when(RenewQualification(network_id=NETWORK, distributor_id="a", qualified_until=T0), T0 + DAY_MS).refused()
    )
