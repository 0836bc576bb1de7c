"""Given/when/then on the money: R-PRE-5 escrow splits exact to the cent (both schemes), refunds out of
the buckets (which buckets, and the order service's echo moving nothing twice), R-PRE-6 milestone
releases (never more than held), and R-PRE-10 after every event (checked by `Scenario[PresaleBook].fold`)."""

from __future__ import annotations

import pytest
from presale_builders import CID, END, START, campaign, launched, of, ok, pay, pledge, tick

from services.presale.messages import (
    CloseCampaign,
    EscrowRefunded,
    FundsReleased,
    MilestoneReached,
    PaymentEscrowed,
    PledgeReleased,
    RecordMilestone,
    RecordOrderRefund,
    ReleasePledge,
)
from services.presale.rules import split, take_refund

# --- R-PRE-5 ---------------------------------------------------------------------------------------


def test_r_pre_5_a_payment_is_split_40_25_20_15_exact_to_the_cent_with_the_remainder_to_production() -> None:
    w = launched()
    pledge(w, "o1", 1, START)
    (paid,) = of(pay(w, "o1", 10_001, START + 1), PaymentEscrowed)
    # 25 % of 10001 = 2500.25 → 2500; 20 % = 2000.2 → 2000; 15 % = 1500.15 → 1500; production gets the rest
    assert paid.buckets == {"production": 4001, "risk": 2500, "marketing": 2000, "operations": 1500}
    assert campaign(w).buckets == {"production": 4001, "risk": 2500, "marketing": 2000, "operations": 1500, "deposits": 0}


def test_r_pre_5_the_simpler_50_30_20_split_is_chosen_per_campaign() -> None:
    w = launched(split="simple")
    pledge(w, "o1", 1, START)
    (paid,) = of(pay(w, "o1", 999, START + 1), PaymentEscrowed)
    assert paid.buckets == {"production": 501, "risk": 299, "marketing": 0, "operations": 199}


@pytest.mark.parametrize("amount", [1, 3, 7, 99, 101, 10_001, 123_457])
@pytest.mark.parametrize("scheme", ["standard", "simple"])
def test_r_pre_5_every_split_sums_to_the_amount(amount: int, scheme: str) -> None:
    parts = split(amount, scheme)
    assert sum(parts.values()) == amount and min(parts.values()) >= 0


def test_r_pre_5_a_refund_takes_its_own_split_back_and_a_shortfall_from_the_risk_buffer_first() -> None:
    held = {"production": 100, "risk": 500, "marketing": 400, "operations": 300}
    taken, short = take_refund(held, 1000, "standard")  # wants 400 / 250 / 200 / 150; production short by 300
    # the 300 come from the risk buffer (its other 250), then operations (50)
    assert taken == {"production": 100, "risk": 500, "marketing": 200, "operations": 200} and short == 0
    taken, short = take_refund({"production": 0, "risk": 10, "marketing": 0, "operations": 5}, 100, "standard")
    assert taken == {"production": 0, "risk": 10, "marketing": 0, "operations": 5} and short == 85


# --- refunds the order service makes ---------------------------------------------------------------


def test_a_paid_order_cancelled_is_refunded_out_of_escrow_and_its_units_released() -> None:
    w = launched()
    pledge(w, "o1", 3, START)
    pay(w, "o1", 7_200, START + 1)
    events = ok(w, ReleasePledge(campaign_id=CID, order_id="o1", refund_amount=7_200, reason="member cancelled"), START + 2)
    refund = of(events, EscrowRefunded)[0]
    assert (refund.refund_id, refund.requested, refund.initiated_by, refund.uncovered) == ("cancel-o1", 7_200, "buyer", 0)
    assert refund.taken == split(7_200, "standard")
    assert of(events, PledgeReleased)[0].units == 3 and campaign(w).tally.pledged_units == 0 and campaign(w).held == 0


def test_a_partial_refund_returns_its_amount_and_units_and_never_more_than_was_paid() -> None:
    w = launched()
    pledge(w, "o1", 3, START)
    pay(w, "o1", 7_200, START + 1)
    ok(
        w,
        RecordOrderRefund(campaign_id=CID, order_id="o1", refund_id="r1", amount=2_400, units=1, fully_refunded=False),
        START + 2,
    )
    assert campaign(w).pledges["o1"].net == 4_800 and campaign(w).tally.pledged_units == 2
    events = ok(
        w,
        RecordOrderRefund(campaign_id=CID, order_id="o1", refund_id="r2", amount=9_999, units=5, fully_refunded=True),
        START + 3,
    )
    assert of(events, EscrowRefunded)[0].requested == 4_800, "capped at what the order still has"
    assert campaign(w).held == 0 and campaign(w).refunded == 7_200 and campaign(w).pledges["o1"].status == "released"


def test_the_order_services_echo_of_a_presale_refund_moves_no_money_twice() -> None:
    w = launched(moq=50)
    pledge(w, "o1", 2, START)
    pay(w, "o1", 4_800, START + 1)
    tick(w, END)  # fails: presale-c1-o1 refunded out of escrow
    assert campaign(w).refunded == 4_800
    assert (
        w.when(
            RecordOrderRefund(
                campaign_id=CID, order_id="o1", refund_id=f"presale-{CID}-o1", amount=4_800, units=2, fully_refunded=True
            ),
            END + 1,
        ).events
        == []
    )
    assert campaign(w).refunded == 4_800 and campaign(w).held == 0


# --- R-PRE-6 milestones ----------------------------------------------------------------------------


def _succeeded() -> object:
    w = launched(moq=2)
    pledge(w, "o1", 2, START)
    pay(w, "o1", 10_000, START + 1)  # production 4000
    ok(w, CloseCampaign(campaign_id=CID, reason="done"), START + 2)
    return w


def test_r_pre_6_each_milestone_with_evidence_releases_its_share_of_the_production_reserve() -> None:
    w = _succeeded()
    e1 = ok(w, RecordMilestone(campaign_id=CID, milestone="materials_bought", evidence="invoice #88"), START + 3)  # 30 % of 4000
    assert of(e1, FundsReleased) == [
        FundsReleased(
            campaign_id=CID,
            milestone="materials_bought",
            amount=1_200,
            evidence="invoice #88",
            production_left=2_800,
            at=START + 3,
        )
    ]
    e2 = ok(w, RecordMilestone(campaign_id=CID, milestone="sample_approved", evidence="photo"), START + 4)  # 50 % cumulative
    assert of(e2, FundsReleased)[0].amount == 800
    ok(w, RecordMilestone(campaign_id=CID, milestone="production_finished", evidence="QC report"), START + 5)
    ok(w, RecordMilestone(campaign_id=CID, milestone="shipped", evidence="SF12345"), START + 6)
    assert campaign(w).released == 4_000 and campaign(w).buckets["production"] == 0
    assert campaign(w).buckets["risk"] == 2_500, "other buckets are not released by milestones"


def test_r_pre_6_a_release_never_exceeds_what_the_bucket_holds() -> None:
    w = _succeeded()
    ok(
        w,
        RecordOrderRefund(campaign_id=CID, order_id="o1", refund_id="r1", amount=5_000, units=1, fully_refunded=False),
        START + 3,
    )  # production 4000 → 2000
    assert campaign(w).buckets["production"] == 2_000 and campaign(w).production_funded == 2_000
    assert (
        "the production reserve holds 2000"
        in w.when(RecordMilestone(campaign_id=CID, milestone="shipped", evidence="x", amount=2_001), START + 4).refused()
    )
    assert (
        "the milestones reached allow 400"
        in w.when(RecordMilestone(campaign_id=CID, milestone="shipped", evidence="x", amount=401), START + 4).refused()
    )
    assert (
        of(ok(w, RecordMilestone(campaign_id=CID, milestone="shipped", evidence="x", amount=300), START + 4), FundsReleased)[
            0
        ].amount
        == 300
    )


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (RecordMilestone(campaign_id=CID, milestone="painted", evidence="x"), "unknown milestone painted"),
        (RecordMilestone(campaign_id=CID, milestone="shipped", evidence="  "), "needs evidence"),
        (RecordMilestone(campaign_id=CID, milestone="shipped", evidence="x", amount=-5), "amount must be positive"),
    ],
)
def test_r_pre_6_bad_milestones_are_refused(cmd: RecordMilestone, reason: str) -> None:
    assert reason in _succeeded().when(cmd, START + 3).refused()


def test_r_pre_6_nothing_is_released_before_success_or_twice() -> None:
    w = launched(moq=2)
    pledge(w, "o1", 2, START)
    pay(w, "o1", 10_000, START + 1)
    assert (
        "released only after it succeeded"
        in w.when(RecordMilestone(campaign_id=CID, milestone="shipped", evidence="x"), START + 2).refused()
    )
    ok(w, CloseCampaign(campaign_id=CID, reason="done"), START + 2)
    reached = ok(w, RecordMilestone(campaign_id=CID, milestone="shipped", evidence="x"), START + 3)
    assert of(reached, MilestoneReached)[0].days_late == 0
    assert "already reached" in w.when(RecordMilestone(campaign_id=CID, milestone="shipped", evidence="x"), START + 4).refused()


def test_r_pre_6_a_refund_after_releases_takes_what_is_left_and_records_the_uncovered_rest() -> None:
    w = _succeeded()
    for m in ("materials_bought", "sample_approved", "production_finished", "shipped"):
        ok(w, RecordMilestone(campaign_id=CID, milestone=m, evidence="ok"), START + 3)
    events = ok(w, ReleasePledge(campaign_id=CID, order_id="o1", refund_amount=10_000, reason="defect"), START + 4)
    refund = of(events, EscrowRefunded)[0]
    assert sum(refund.taken.values()) == 6_000 and refund.uncovered == 4_000
    c = campaign(w)
    assert c.held == 0 and c.released == 4_000 and c.refunded == 6_000 and c.uncovered == 4_000
