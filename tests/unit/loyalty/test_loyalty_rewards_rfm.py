"""Given/when/then on streak gifts and referrals (R-LOY-5), RFM segments (R-LOY-6), and the saga
policy that turns order events, clock ticks and two of loyalty's own events into commands."""

from __future__ import annotations

from flexchain.ticks import ClockTicked
from services.loyalty import policy
from services.loyalty.domain import CANCELLED
from services.loyalty.messages import (
    ApplyUsageCycle,
    CheckMemberTimers,
    CompletePurchase,
    JoinMember,
    MembersEvaluated,
    PointsEarned,
    PurchasedLine,
    QuoteMemberDiscount,
    RecordPurchase,
    ReferralCompleted,
    ReversePurchase,
    RewardReferrer,
    RfmSegmentChanged,
    StreakGiftEarned,
    UsageCycleConfigured,
)
from services.loyalty.rules import quintile_scores, rfm_code, segment
from services.order.messages import (
    OrderCancelled,
    OrderCompleted,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    RefundedLine,
)
from tests.unit.loyalty.builders import at, bought_and_completed, buy, check_bookkeeping, joined, of, tick

# --- streak gift (R-LOY-5) ---------------------------------------------------------------------------


def test_r_loy_5_completed_purchases_in_three_consecutive_months_earn_a_gift() -> None:
    sc = joined("ann")
    assert of(bought_and_completed(sc, "ann", "o1", 5_000, 10, 20), StreakGiftEarned) == []  # January
    assert of(bought_and_completed(sc, "ann", "o2", 5_000, 40, 50), StreakGiftEarned) == []  # February
    gift = of(bought_and_completed(sc, "ann", "o3", 5_000, 70, 80), StreakGiftEarned)  # March
    assert gift == [
        StreakGiftEarned(member_id="ann", months=["2026-01", "2026-02", "2026-03"], gift_sku="streak-gift", order_id="o3")
    ]
    assert of(bought_and_completed(sc, "ann", "o4", 5_000, 100, 110), StreakGiftEarned) == []  # April starts anew
    assert of(bought_and_completed(sc, "ann", "o5", 5_000, 130, 140), StreakGiftEarned) == []
    assert of(bought_and_completed(sc, "ann", "o6", 5_000, 160, 170), StreakGiftEarned)[0].months == [  # type: ignore[attr-defined]
        "2026-04",
        "2026-05",
        "2026-06",
    ]


def test_r_loy_5_a_gap_month_breaks_the_streak_and_completion_order_does_not_matter() -> None:
    sc = joined("ann")
    for n, d in enumerate((10, 70, 100)):  # January, March, April
        assert of(bought_and_completed(sc, "ann", f"o{n}", 5_000, d, d + 10), StreakGiftEarned) == []
    buy(sc, "ann", "f1", 5_000, 40)  # February, completed last
    assert of(sc.when(CompletePurchase(member_id="ann", order_id="f1", completed_at=at(120)), at(120)).events, StreakGiftEarned)[
        0
    ].months == [  # type: ignore[attr-defined]
        "2026-01",
        "2026-02",
        "2026-03",
    ]


def test_a_refunded_order_never_completes_so_its_month_does_not_count() -> None:
    sc = joined("ann")
    bought_and_completed(sc, "ann", "o1", 5_000, 10, 20)
    buy(sc, "ann", "o2", 5_000, 40)
    sc.when(ReversePurchase(member_id="ann", order_id="o2", refund_id=CANCELLED, amount=5_000, fully_refunded=True), at(41))
    assert of(bought_and_completed(sc, "ann", "o3", 5_000, 70, 80), StreakGiftEarned) == []


# --- referral (R-LOY-5) -------------------------------------------------------------------------------


def test_r_loy_5_the_referred_members_first_completed_purchase_rewards_both_sides() -> None:
    sc = joined("ann")
    sc.when(JoinMember(member_id="bob", referrer_id="ann"), at(1))
    assert of(buy(sc, "bob", "o1", 5_000, 2), ReferralCompleted) == []  # paid is not enough
    events = sc.when(CompletePurchase(member_id="bob", order_id="o1", completed_at=at(12)), at(12)).events
    assert of(events, ReferralCompleted) == [ReferralCompleted(member_id="bob", referrer_id="ann", order_id="o1", points=200)]
    assert [e.points for e in of(events, PointsEarned) if e.reason == "referral"] == [200]  # type: ignore[attr-defined]
    assert policy.react(events[-1]) == [
        RewardReferrer(member_id="ann", referred_id="bob", order_id="o1")
    ]  # the referrer's side, in its partition
    assert of(bought_and_completed(sc, "bob", "o2", 5_000, 20, 30), ReferralCompleted) == []  # once
    check_bookkeeping(sc.state)


# --- RFM (R-LOY-6) --------------------------------------------------------------------------------------


def test_r_loy_6_quintile_scores_by_mid_rank_ties_share_a_score() -> None:
    assert quintile_scores({v: 1 for v in range(10)}) == {0: 1, 1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4, 8: 5, 9: 5}
    assert quintile_scores({1: 60, 2: 20, 3: 20}) == {1: 2, 2: 4, 3: 5}
    assert quintile_scores({7: 1}) == {7: 3}  # alone: the middle


def test_r_loy_6_segments_from_recency_against_frequency_and_money() -> None:
    assert segment(-1) == "prospect"
    assert segment(rfm_code(5, 5, 5)) == "champions"
    assert segment(rfm_code(4, 3, 4)) == "champions"  # frequency-and-money (3 + 4) / 2 rounds up to 4
    assert segment(rfm_code(3, 5, 5)) == segment(rfm_code(5, 3, 3)) == "loyal"
    assert segment(rfm_code(5, 1, 2)) == "promising"  # recent, not yet frequent nor big
    assert segment(rfm_code(2, 5, 5)) == "at_risk"  # valuable, slipping away
    assert segment(rfm_code(1, 1, 1)) == "hibernating"


def test_r_loy_6_scores_are_recomputed_once_a_day_over_the_partitions_base() -> None:
    sc = joined("ann", "bob", "cat", "dan", "eve", "fay")
    for n, (member, cents, last) in enumerate(
        [("ann", 900_000, 60), ("bob", 400_000, 50), ("cat", 150_000, 40), ("dan", 60_000, 30), ("eve", 10_000, 20)]
    ):
        buy(sc, member, f"o{n}", cents, last)
    buy(sc, "ann", "o9", 10_000, 61)
    events = tick(sc, 62)
    changed = {e.member_id: (e.recency, e.frequency, e.monetary, e.segment) for e in of(events, RfmSegmentChanged)}  # type: ignore[attr-defined]
    # recency and money rank the five apart; frequency: ann's 2 orders score 5, the four 1s tie on 3
    assert changed == {
        "ann": (5, 5, 5, "champions"),
        "bob": (4, 3, 4, "champions"),
        "cat": (3, 3, 3, "loyal"),
        "dan": (2, 3, 2, "at_risk"),
        "eve": (1, 3, 1, "hibernating"),
    }  # fay has bought nothing: still a prospect
    marker = of(events, MembersEvaluated)[0]
    assert (marker.rfm_recomputed, marker.rfm_members, marker.frequency_cuts) == (True, 5, [1, 1, 2, 2])  # type: ignore[attr-defined]
    assert of(tick(sc, 63), RfmSegmentChanged) == []  # nothing changed: no pass
    buy(sc, "fay", "o10", 2_000_000, 63)  # the base changes: a new big spender
    events = tick(sc, 64)
    changed = {e.member_id: (e.recency, e.monetary) for e in of(events, RfmSegmentChanged)}  # type: ignore[attr-defined]
    assert changed["fay"] == (5, 5) and "ann" in changed  # fay out-ranks ann on money and recency
    check_bookkeeping(sc.state)


def test_r_loy_6_a_member_alone_in_its_partition_is_in_the_middle() -> None:
    sc = joined("ann")
    buy(sc, "ann", "o1", 5_050, 1)  # 50.50 CNY: the money bucket is 50 CNY, the spend above it
    assert of(tick(sc, 2), RfmSegmentChanged) == [
        RfmSegmentChanged(member_id="ann", recency=3, frequency=3, monetary=3, segment="loyal", previous_segment="prospect")
    ]
    check_bookkeeping(sc.state)


# --- the policy -----------------------------------------------------------------------------------------


LINES = [OrderLine(sku="water", qty=2, unit_price=1_000), OrderLine(sku="mug", qty=1, unit_price=3_000)]


def test_order_events_become_loyalty_commands_keyed_by_member() -> None:
    placed = OrderPlaced(
        order_id="o1",
        member_id="ann",
        channel="live",
        lines=LINES,
        distributor_id=None,
        campaign_id=None,
        total=5_000,
        placed_at=at(0),
    )
    assert policy.react(placed) == [QuoteMemberDiscount(member_id="ann", order_id="o1")]
    paid = OrderPaid(
        order_id="o1",
        amount=4_500,
        payment_ref="p1",
        paid_at=at(1),
        member_id="ann",
        distributor_id="d1",
        campaign_id=None,
        lines=LINES,
    )
    assert policy.react(paid) == [
        RecordPurchase(
            member_id="ann",
            order_id="o1",
            amount=4_500,
            paid_at=at(1),
            lines=[PurchasedLine(sku="water", qty=2), PurchasedLine(sku="mug", qty=1)],
        )
    ]
    assert policy.react(
        OrderCompleted(order_id="o1", completed_at=at(9), member_id="ann", distributor_id=None, campaign_id=None)
    ) == [CompletePurchase(member_id="ann", order_id="o1", completed_at=at(9))]
    line = RefundedLine(sku="mug", qty=1, reason="defect", amount=3_000, goods_returned=True)
    refunded = OrderRefunded(
        order_id="o1",
        refund_id="r1",
        lines=[line],
        amount=3_000,
        fully_refunded=False,
        member_id="ann",
        distributor_id=None,
        campaign_id=None,
        paid_total=4_500,
        refunded_before=1_000,
    )
    assert policy.react(refunded) == [
        ReversePurchase(
            member_id="ann",
            order_id="o1",
            refund_id="r1",
            amount=3_000,
            fully_refunded=False,
            paid_total=4_500,
            refunded_before=1_000,
        )
    ]  # the order's figures
    old = OrderRefunded(
        order_id="o1",
        refund_id="r1",
        lines=[line],
        amount=3_000,
        fully_refunded=False,
        member_id="ann",
        distributor_id=None,
        campaign_id=None,
    )  # a record written before the figures
    assert policy.react(old) == [
        ReversePurchase(
            member_id="ann", order_id="o1", refund_id="r1", amount=3_000, fully_refunded=False, paid_total=0, refunded_before=0
        )
    ]
    cancelled = OrderCancelled(
        order_id="o1",
        reason="changed mind",
        release_skus=["water"],
        refund_amount=4_500,
        member_id="ann",
        distributor_id=None,
        campaign_id=None,
    )
    assert policy.react(cancelled) == [
        ReversePurchase(member_id="ann", order_id="o1", refund_id=CANCELLED, amount=4_500, fully_refunded=True)
    ]
    assert policy.react(
        OrderCancelled(
            order_id="o1",
            reason="unpaid",
            release_skus=["water"],
            refund_amount=0,
            member_id="ann",
            distributor_id=None,
            campaign_id=None,
        )
    ) == [
        ReversePurchase(member_id="ann", order_id="o1", refund_id=CANCELLED, amount=0, fully_refunded=True)
    ]  # nothing refunded, but an order paid 0 must close too; one never paid is ignored by decide (test_loyalty_points)


def test_ticks_and_own_events_cross_partitions() -> None:
    assert policy.react(ClockTicked(clock_id="main", time=at(3))) == [CheckMemberTimers(time=at(3))]
    assert CheckMemberTimers(time=0).key == "" and ApplyUsageCycle(sku="water", cycle_days=1).key == ""  # every partition
    assert policy.react(UsageCycleConfigured(sku="water", cycle_days=10)) == [ApplyUsageCycle(sku="water", cycle_days=10)]
    assert policy.react(ReferralCompleted(member_id="bob", referrer_id="ann", order_id="o1", points=200)) == [
        RewardReferrer(member_id="ann", referred_id="bob", order_id="o1")
    ]


def test_an_order_without_a_member_is_not_broadcast() -> None:
    assert (
        policy.react(
            OrderPlaced(
                order_id="o1",
                member_id="",
                channel="live",
                lines=LINES,
                distributor_id=None,
                campaign_id=None,
                total=5_000,
                placed_at=at(0),
            )
        )
        == []
    )
