"""Given/when/then on R-PRE-8 (a ≥ 30 % material price rise shared half/half, every buyer offered to
accept or leave with a full refund) and R-PRE-9 (red / yellow / green signals once per cause, buyer
notices after 5 days late, supplier penalties after 14)."""

from __future__ import annotations

from decimal import Decimal

from presale_builders import CID, EARLY_END, START, campaign, launched, of, ok, pay, pledge, tick

from services.presale.messages import (
    AnswerPriceRise,
    AskSupplier,
    BuyerNoticeRequired,
    CloseCampaign,
    EscrowRefunded,
    PlanMilestone,
    PledgeReleased,
    PresaleRefundIssued,
    PriceRiseAccepted,
    PriceRiseOffered,
    PriceRiseOfferExpired,
    PriceRiseRecorded,
    RecordMilestone,
    RecordOrderRefund,
    RecordPriceRise,
    RecordSupplierAnswer,
    ReleasePledge,
    RiskSignalCleared,
    RiskSignalRaised,
    SupplierPenaltyIncurred,
)
from services.presale.rules import DAY_MS, HOUR_MS

# --- R-PRE-8 ---------------------------------------------------------------------------------------


def _pledged() -> object:
    w = launched()
    pledge(w, "o1", 3, START, "ann")
    pledge(w, "o2", 1, START, "bo")
    pay(w, "o1", 7_200, START + 1)
    return w


def test_r_pre_8_a_rise_of_30_percent_is_shared_and_every_buyer_gets_an_offer() -> None:
    w = _pledged()
    events = ok(
        w, RecordPriceRise(campaign_id=CID, rise_id="r1", new_unit_cost=2_600, evidence="supplier quote"), START + 2
    )  # +600 = 30 %
    (rise,) = of(events, PriceRiseRecorded)
    assert rise.shared and rise.rise_rate == Decimal("0.3000") and rise.buyer_share_per_unit == Decimal("300.0")
    offers = {o.order_id: o.extra_amount for o in of(events, PriceRiseOffered)}
    assert offers == {"o1": 900, "o2": 300}, "half the rise per unit × units"
    assert campaign(w).unit_cost == 2_600, "new pledges are priced from the new cost"


def test_r_pre_8_a_smaller_rise_is_borne_by_the_creator_without_offers() -> None:
    w = _pledged()
    events = ok(w, RecordPriceRise(campaign_id=CID, rise_id="r1", new_unit_cost=2_599, evidence="quote"), START + 2)
    assert not of(events, PriceRiseRecorded)[0].shared and of(events, PriceRiseOffered) == []


def test_r_pre_8_a_buyer_who_leaves_is_refunded_in_full_and_one_who_stays_owes_the_share() -> None:
    w = _pledged()
    ok(w, RecordPriceRise(campaign_id=CID, rise_id="r1", new_unit_cost=3_000, evidence="quote"), START + 2)
    stay = ok(w, AnswerPriceRise(campaign_id=CID, rise_id="r1", order_id="o2", accept=True), START + 3)
    assert of(stay, PriceRiseAccepted) == [PriceRiseAccepted(campaign_id=CID, rise_id="r1", order_id="o2", extra_amount=500)]
    leave = ok(w, AnswerPriceRise(campaign_id=CID, rise_id="r1", order_id="o1", accept=False), START + 3)
    assert of(leave, PresaleRefundIssued)[0].amount == 7_200 and of(leave, EscrowRefunded)[0].requested == 7_200
    assert of(leave, PledgeReleased)[0].units == 3
    assert campaign(w).held == 0 and campaign(w).tally.pledged_units == 1
    assert (
        "no open offer" in w.when(AnswerPriceRise(campaign_id=CID, rise_id="r1", order_id="o1", accept=True), START + 4).refused()
    )


def test_r_pre_8_an_unanswered_offer_expires_and_the_buyer_keeps_the_old_price() -> None:
    w = _pledged()
    ok(w, RecordPriceRise(campaign_id=CID, rise_id="r1", new_unit_cost=3_000, evidence="quote"), START + 2)
    answer_by = START + 2 + 72 * HOUR_MS
    assert "expired" in w.when(AnswerPriceRise(campaign_id=CID, rise_id="r1", order_id="o1", accept=False), answer_by).refused()
    expired = of(tick(w, answer_by), PriceRiseOfferExpired)
    assert {e.order_id for e in expired} == {"o1", "o2"} and campaign(w).pledges["o1"].status == "open"
    assert of(tick(w, answer_by + 1), PriceRiseOfferExpired) == []


def test_r_pre_8_bad_price_rises_are_refused() -> None:
    w = _pledged()
    assert (
        "not a rise"
        in w.when(RecordPriceRise(campaign_id=CID, rise_id="r1", new_unit_cost=2_000, evidence="quote"), START + 2).refused()
    )
    assert (
        "needs evidence"
        in w.when(RecordPriceRise(campaign_id=CID, rise_id="r1", new_unit_cost=3_000, evidence=""), START + 2).refused()
    )
    ok(w, RecordPriceRise(campaign_id=CID, rise_id="r1", new_unit_cost=3_000, evidence="quote"), START + 2)
    assert (
        "already recorded"
        in w.when(RecordPriceRise(campaign_id=CID, rise_id="r1", new_unit_cost=4_000, evidence="quote"), START + 3).refused()
    )
    assert (
        "still has open offers"
        in w.when(RecordPriceRise(campaign_id=CID, rise_id="r2", new_unit_cost=4_000, evidence="quote"), START + 3).refused()
    )


# --- R-PRE-9 ---------------------------------------------------------------------------------------


def raised(events: list) -> list[str]:
    return [e.signal_id for e in of(events, RiskSignalRaised)]


def cleared(events: list) -> list[str]:
    return [e.signal_id for e in of(events, RiskSignalCleared)]


def test_r_pre_9_red_pledges_below_0_8_percent_of_the_fan_base_after_the_early_bird_once() -> None:
    w = launched(fan_base=1_000)  # 0.8 % = 8 pledges
    for i in range(7):
        pledge(w, f"o{i}", 1, START + i)
    assert "red:pledge-rate" not in campaign(w).signals, "not judged during the early bird"
    assert raised(tick(w, EARLY_END)) == ["red:pledge-rate"]
    assert raised(tick(w, EARLY_END + HOUR_MS)) == [], "once per cause"
    ok(w, ReleasePledge(campaign_id=CID, order_id="o0", refund_amount=0, reason="unpaid"), EARLY_END + HOUR_MS)
    assert cleared(pledge(w, "o7", 1, EARLY_END + 2 * HOUR_MS)) == []  # 7 pledges
    assert cleared(pledge(w, "o8", 1, EARLY_END + 3 * HOUR_MS)) == ["red:pledge-rate"]  # 8 = 0.8 %: no longer below


def test_r_pre_9_red_refunds_in_one_day_above_2_percent_of_pledged_units() -> None:
    w = launched(fan_base=100)
    pledge(w, "big", 100, START)
    pay(w, "big", 240_000, START + 1)
    ok(
        w,
        RecordOrderRefund(campaign_id=CID, order_id="big", refund_id="r1", amount=4_800, units=2, fully_refunded=False),
        START + 2,
    )  # 2 of 100: not above 2 %
    assert not [s for s in campaign(w).signals if s.startswith("red:refund-rate")]
    events = ok(
        w,
        RecordOrderRefund(campaign_id=CID, order_id="big", refund_id="r2", amount=2_400, units=1, fully_refunded=False),
        START + 3,
    )
    assert raised(events) == ["red:refund-rate:2026-01-02"]
    assert cleared(tick(w, START + DAY_MS)) == ["red:refund-rate:2026-01-02"], "a new day starts afresh"


def test_r_pre_9_yellow_average_order_value_below_1_5_x_unit_cost() -> None:
    w = launched(fan_base=100)
    pledge(w, "o1", 1, START)
    assert raised(pay(w, "o1", 2_400, START + 1)) == ["yellow:order-value"]  # 2400 < 3000
    pledge(w, "o2", 2, START)
    assert cleared(pay(w, "o2", 4_800, START + 2)) == ["yellow:order-value"]  # (2400 + 4800) / 2 = 3600 ≥ 3000


def test_r_pre_9_yellow_supplier_answer_time_above_24_h() -> None:
    w = launched(fan_base=100)
    ok(w, AskSupplier(campaign_id=CID, question_id="q1", topic="ink colour"), START)
    assert raised(tick(w, START + 24 * HOUR_MS)) == []
    assert raised(tick(w, START + 24 * HOUR_MS + 1)) == ["yellow:supplier-answer"]
    assert cleared(ok(w, RecordSupplierAnswer(campaign_id=CID, question_id="q1"), START + 30 * HOUR_MS)) == [], (
        "the slow answer keeps it"
    )
    ok(w, AskSupplier(campaign_id=CID, question_id="q2", topic="paper"), START + 31 * HOUR_MS)
    assert cleared(ok(w, RecordSupplierAnswer(campaign_id=CID, question_id="q2"), START + 32 * HOUR_MS)) == [
        "yellow:supplier-answer"
    ]


def test_r_pre_9_green_fund_coverage_above_1_5() -> None:
    w = launched(fan_base=100)
    pledge(w, "o1", 1, START)
    assert "green:fund-coverage" not in raised(pay(w, "o1", 3_000, START + 1))  # 3000 / 2000 = 1.5
    pledge(w, "o2", 1, START)  # payables 4000, held 3000
    pledge(w, "o3", 1, START)
    events = pay(w, "o2", 6_100, START + 2)  # held 9100 / payables 6000 > 1.5
    assert "green:fund-coverage" in raised(events)


def test_r_pre_9_supplier_late_notice_after_5_days_red_after_7_penalty_after_14_each_once() -> None:
    w = launched(moq=1, fan_base=100)
    pledge(w, "o1", 1, START)
    ok(w, CloseCampaign(campaign_id=CID, reason="ok"), START + 1)
    due = START + 2 * DAY_MS
    ok(w, PlanMilestone(campaign_id=CID, milestone="materials_bought", due_at=due), START + 1)
    assert of(tick(w, due + 5 * DAY_MS), BuyerNoticeRequired) == []
    notice = tick(w, due + 5 * DAY_MS + 1)
    assert of(notice, BuyerNoticeRequired) == [
        BuyerNoticeRequired(campaign_id=CID, milestone="materials_bought", due_at=due, days_late=5)
    ]
    assert raised(tick(w, due + 7 * DAY_MS + 1)) == ["red:milestone-late:materials_bought"]
    penalty = tick(w, due + 14 * DAY_MS + 1)
    assert of(penalty, SupplierPenaltyIncurred) == [
        SupplierPenaltyIncurred(campaign_id=CID, milestone="materials_bought", due_at=due, days_late=14)
    ]
    assert of(penalty, BuyerNoticeRequired) == []
    assert of(tick(w, due + 20 * DAY_MS), SupplierPenaltyIncurred) == [], "once"
    done = ok(w, RecordMilestone(campaign_id=CID, milestone="materials_bought", evidence="invoice"), due + 21 * DAY_MS)
    assert cleared(done) == ["red:milestone-late:materials_bought"]


def test_r_pre_9_green_on_time_delivery_above_95_percent() -> None:
    w = launched(moq=1, fan_base=100)
    pledge(w, "o1", 1, START)
    ok(w, CloseCampaign(campaign_id=CID, reason="ok"), START + 1)
    ok(w, PlanMilestone(campaign_id=CID, milestone="materials_bought", due_at=START + DAY_MS), START + 1)
    ok(w, PlanMilestone(campaign_id=CID, milestone="sample_approved", due_at=START + DAY_MS), START + 1)
    assert "green:on-time" in raised(
        ok(w, RecordMilestone(campaign_id=CID, milestone="materials_bought", evidence="x"), START + DAY_MS)
    )
    assert cleared(ok(w, RecordMilestone(campaign_id=CID, milestone="sample_approved", evidence="x"), START + DAY_MS + 1)) == [
        "green:on-time"
    ]


def test_r_pre_9_a_failed_campaign_clears_every_signal() -> None:
    w = launched(moq=10, fan_base=100)
    pledge(w, "o1", 1, START)
    pay(w, "o1", 2_400, START + 1)
    assert campaign(w).signals
    events = ok(w, CloseCampaign(campaign_id=CID, reason="stop"), START + 2)
    assert set(cleared(events)) == {"yellow:order-value"} and campaign(w).signals == {}
    assert all(e.detail == "campaign failed" for e in of(events, RiskSignalCleared))
