"""Given/when/then on the loyalty decider: joining, the tier discount (R-LOY-1) and the points ledger
(R-LOY-2) — earning, pending until the return window closes, refunds, behaviour points, redemption
and per-batch expiry — and the refusals that change nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from flexchain.testing import Scenario
from services.loyalty import policy
from services.loyalty.domain import CANCELLED
from services.loyalty.messages import (
    BatchPoints,
    BehaviourRecorded,
    CompletePurchase,
    JoinMember,
    MemberDiscountQuoted,
    MemberJoined,
    PointsEarned,
    PointsExpired,
    PointsRedeemed,
    PointsReleased,
    PointsReversed,
    PurchaseCompleted,
    PurchaseRecorded,
    PurchaseReversed,
    QuoteMemberDiscount,
    RecordBehaviour,
    RedeemPoints,
    ReversePurchase,
    RewardReferrer,
    StageChanged,
    TierChanged,
)
from services.loyalty.rules import add_months, day_start, iso
from services.loyalty.state import batch_day, batch_points
from services.order.messages import OrderCancelled
from tests.unit.loyalty.builders import (
    D0,
    LOYALTY,
    at,
    bought_and_completed,
    buy,
    check_bookkeeping,
    joined,
    of,
    tick,
    totals,
)


def expiry_of(day: int) -> int:
    """Points credited on day `day` expire at the start of the same date 12 months later."""
    return day_start(add_months(D0 + day, 12), LOYALTY.new_state().config)


# --- joining and the tier discount (R-LOY-1) ----------------------------------------------------


def test_a_member_joins_as_a_regular_prospect() -> None:
    sc = Scenario(LOYALTY)
    sc.when(JoinMember(member_id="ann"), at(0)).then(MemberJoined(member_id="ann", referrer_id=None, joined_at=at(0), via="api"))
    m = sc.state.member("ann")
    assert m is not None and (m.tier, m.stage, m.growth) == (0, 0, 0)


def test_joining_twice_or_referring_oneself_is_refused() -> None:
    sc = joined("ann")
    sc.when(JoinMember(member_id="ann"), at(1)).refused("already joined")
    sc.when(JoinMember(member_id="bob", referrer_id="bob"), at(1)).refused("cannot refer themselves")


def test_r_loy_1_a_non_member_is_quoted_the_regular_price_and_does_not_join() -> None:
    sc = Scenario(LOYALTY)
    sc.when(QuoteMemberDiscount(member_id="zoe", order_id="o1"), at(0)).then(
        MemberDiscountQuoted(member_id="zoe", order_id="o1", tier="regular", discount_rate=Decimal("1.0"))
    )
    assert sc.state.rows == {}


def test_r_loy_1_spend_raises_the_tier_and_the_quote_follows_it() -> None:
    sc = joined("ann")
    events = buy(sc, "ann", "o1", 100_000, 1)  # 1 000 CNY → growth 1 000 → silver
    assert of(events, TierChanged) == [
        TierChanged(
            member_id="ann", previous="regular", tier="silver", growth=1_000, discount_rate=Decimal("0.9"), changed_at=at(1)
        )
    ]
    sc.when(QuoteMemberDiscount(member_id="ann", order_id="o2"), at(2)).then(
        MemberDiscountQuoted(member_id="ann", order_id="o2", tier="silver", discount_rate=Decimal("0.9"))
    )
    assert of(buy(sc, "ann", "o2", 400_000, 2), TierChanged)[0].tier == "gold"
    assert of(buy(sc, "ann", "o3", 1_500_000, 3), TierChanged)[0].tier == "diamond"
    quoted = sc.when(QuoteMemberDiscount(member_id="ann", order_id="o4"), at(4)).events[0]
    assert quoted == MemberDiscountQuoted(member_id="ann", order_id="o4", tier="diamond", discount_rate=Decimal("0.7"))


def test_r_loy_1_interactions_add_growth_value() -> None:
    sc = joined("ann")
    buy(sc, "ann", "o1", 99_800, 1)  # 998 growth
    assert sc.when(RecordBehaviour(member_id="ann", action="share"), at(1)).events[-1] == TierChanged(
        member_id="ann", previous="regular", tier="silver", growth=1_000, discount_rate=Decimal("0.9"), changed_at=at(1)
    )


def test_r_loy_1_r_x_3_a_refund_takes_the_tier_down() -> None:
    sc = joined("ann")
    buy(sc, "ann", "o1", 500_000, 1)
    assert sc.state.member("ann").tier == 2  # type: ignore[union-attr]
    events = sc.when(
        ReversePurchase(member_id="ann", order_id="o1", refund_id="r1", amount=200_000, fully_refunded=False), at(3)
    ).events
    assert of(events, TierChanged) == [
        TierChanged(member_id="ann", previous="gold", tier="silver", growth=3_000, discount_rate=Decimal("0.9"), changed_at=at(3))
    ]
    assert sc.when(QuoteMemberDiscount(member_id="ann", order_id="o2"), at(3)).events[0].tier == "silver"  # type: ignore[attr-defined]


# --- earning and pending (R-LOY-2) ----------------------------------------------------------------


def test_r_loy_2_one_point_per_whole_cny_paid_pending_until_the_window_closes() -> None:
    sc = joined("ann")
    events = buy(sc, "ann", "o1", 150_099, 1, ("mask", 2))  # 1 500.99 CNY: the cents earn nothing
    assert events[:2] == [
        PurchaseRecorded(
            member_id="ann", order_id="o1", amount=150_099, points=1_500, paid_at=at(1), lines=events[0].lines, run_outs=[]
        ),  # type: ignore[attr-defined]
        PointsEarned(member_id="ann", points=1_500, reason="order", source="OrderPaid:o1", pending=True, expires_at=None),
    ]
    m = sc.state.member("ann")
    assert m is not None and (m.pending, m.available(D0 + 1)) == (1_500, 0)
    events = sc.when(CompletePurchase(member_id="ann", order_id="o1", completed_at=at(10)), at(10)).events
    assert events == [
        PurchaseCompleted(member_id="ann", order_id="o1", completed_at=at(10)),
        PointsReleased(member_id="ann", order_id="o1", points=1_500, source="OrderCompleted:o1", expires_at=expiry_of(10)),
    ]
    m = sc.state.member("ann")
    assert m is not None and (m.pending, m.available(D0 + 10)) == (0, 1_500)
    assert iso(D0 + 10) == "2026-01-11" and expiry_of(10) == day_start(D0 + 375, sc.state.config)  # 2027-01-11
    check_bookkeeping(sc.state)


def test_an_order_under_one_cny_earns_no_points_but_counts_as_a_purchase() -> None:
    sc = joined("ann")
    events = buy(sc, "ann", "o1", 99, 1)
    assert of(events, PointsEarned) == [] and of(events, PurchaseRecorded)[0].points == 0  # type: ignore[attr-defined]
    assert sc.state.member("ann").orders == 1  # type: ignore[union-attr]


def test_a_customer_joins_with_a_first_paid_order() -> None:
    sc = Scenario(LOYALTY)
    events = buy(sc, "zoe", "o1", 5_000, 0)
    assert events[0] == MemberJoined(member_id="zoe", referrer_id=None, joined_at=at(0), via="order")
    assert of(events, StageChanged) == [StageChanged(member_id="zoe", previous="prospect", stage="new", changed_at=at(0))]


def test_completing_twice_or_an_unknown_order_is_refused() -> None:
    sc = joined("ann")
    bought_and_completed(sc, "ann", "o1", 10_000, 1, 9)
    sc.when(CompletePurchase(member_id="ann", order_id="o1", completed_at=at(10)), at(10)).refused("no pending points")
    sc.when(CompletePurchase(member_id="ann", order_id="o9", completed_at=at(10)), at(10)).refused("no pending points")
    sc.when(CompletePurchase(member_id="bob", order_id="o1", completed_at=at(10)), at(10)).refused("unknown member bob")


# --- refunds (R-LOY-2, R-X-3) -----------------------------------------------------------------------


def test_r_loy_2_a_partial_refund_while_pending_takes_back_its_share_rounded_down() -> None:
    sc = joined("ann")
    buy(sc, "ann", "o1", 150_050, 1)  # 1 500 points
    events = sc.when(
        ReversePurchase(member_id="ann", order_id="o1", refund_id="r1", amount=50_000, fully_refunded=False), at(2)
    ).events
    # 1 500 × 500.00 / 1 500.50 = 499.8 → 499
    assert events == [
        PurchaseReversed(member_id="ann", order_id="o1", refund_id="r1", amount=50_000, fully_refunded=False),
        PointsReversed(
            member_id="ann",
            order_id="o1",
            refund_id="r1",
            points=499,
            from_pending=499,
            shortfall=0,
            source="OrderRefunded:o1/r1",
            taken=[],
        ),
    ]
    events = sc.when(
        ReversePurchase(member_id="ann", order_id="o1", refund_id="r2", amount=50_000, fully_refunded=False), at(3)
    ).events
    assert of(events, PointsReversed)[0].points == 500  # type: ignore[attr-defined]  # cumulative 999.6 → 999
    released = of(sc.when(CompletePurchase(member_id="ann", order_id="o1", completed_at=at(10)), at(10)).events, PointsReleased)
    assert released[0].points == 1_500 - 999  # type: ignore[attr-defined]
    check_bookkeeping(sc.state)


def test_r_loy_2_a_cancellation_after_payment_takes_back_every_pending_point() -> None:
    sc = joined("ann")
    buy(sc, "ann", "o1", 12_345, 1)
    events = sc.when(
        ReversePurchase(member_id="ann", order_id="o1", refund_id=CANCELLED, amount=12_345, fully_refunded=True), at(1)
    ).events
    assert of(events, PointsReversed) == [
        PointsReversed(
            member_id="ann",
            order_id="o1",
            refund_id=CANCELLED,
            points=123,
            from_pending=123,
            shortfall=0,
            source="OrderCancelled:o1",
            taken=[],
        )
    ]
    assert sc.state.member("ann").pending == 0 and "o1" not in sc.state.open_orders  # type: ignore[union-attr]
    sc.when(CompletePurchase(member_id="ann", order_id="o1", completed_at=at(9)), at(9)).refused("no pending points")


def test_r_x_3_an_order_paid_nothing_and_cancelled_is_closed_not_left_pending() -> None:
    """A free order (every line at 0 cents) is still a purchase; its cancellation refunds 0 cents, and
    the order must close all the same, or it stays open for ever (found by the property test below)."""
    sc = joined("ann")
    buy(sc, "ann", "o1", 0, 1)
    assert "o1" in sc.state.open_orders
    (cancel,) = policy.react(
        OrderCancelled(
            order_id="o1",
            reason="changed mind",
            release_skus=[],
            refund_amount=0,
            member_id="ann",
            distributor_id=None,
            campaign_id=None,
        )
    )
    events = sc.when(cancel, at(1)).events
    assert [type(e) for e in events] == [PurchaseReversed]
    assert "o1" not in sc.state.open_orders and sc.state.member("ann").pending == 0  # type: ignore[union-attr]


def test_r_x_3_a_cancellation_before_payment_changes_nothing_and_refuses_nothing() -> None:
    sc = joined("ann")
    for member in ("ann", "bob"):  # bob never paid, so he is no member
        (cancel,) = policy.react(
            OrderCancelled(
                order_id=f"o-{member}",
                reason="payment hold expired",
                release_skus=[],
                refund_amount=0,
                member_id=member,
                distributor_id=None,
                campaign_id=None,
            )
        )
        sc.when(cancel, at(1)).unchanged()
        assert sc.events == []


def test_r_loy_2_a_refund_after_completion_takes_points_soonest_expiring_first() -> None:
    sc = joined("ann")
    sc.when(RecordBehaviour(member_id="ann", action="checkin"), at(0))  # 5 points, expiring first
    bought_and_completed(sc, "ann", "o1", 20_000, 1, 9)  # 200 points
    events = sc.when(
        ReversePurchase(
            member_id="ann",
            order_id="o1",
            refund_id="r1",
            amount=10_050,
            fully_refunded=False,
            paid_total=20_000,
            refunded_before=0,
        ),
        at(20),
    ).events  # a defect: 200 × ½ → 100
    assert of(events, PointsReversed) == [
        PointsReversed(
            member_id="ann",
            order_id="o1",
            refund_id="r1",
            points=100,
            from_pending=0,
            shortfall=0,
            source="OrderRefunded:o1/r1",
            taken=[BatchPoints(expires_at=expiry_of(0), points=5), BatchPoints(expires_at=expiry_of(9), points=95)],
        )
    ]
    assert sc.state.member("ann").available(D0 + 20) == 105  # type: ignore[union-attr]


def test_r_loy_2_points_already_spent_are_a_shortfall_never_a_negative_balance() -> None:
    sc = joined("ann")
    bought_and_completed(sc, "ann", "o1", 30_000, 1, 9)  # 300 points
    sc.when(RedeemPoints(member_id="ann", redemption_id="rd1", points=250, reward="mug"), at(10))
    events = sc.when(
        ReversePurchase(
            member_id="ann",
            order_id="o1",
            refund_id="r1",
            amount=30_000,
            fully_refunded=True,
            paid_total=30_000,
            refunded_before=0,
        ),
        at(11),
    ).events
    reversed_ = of(events, PointsReversed)[0]
    assert (reversed_.points, reversed_.shortfall) == (50, 250)  # type: ignore[attr-defined]
    assert sc.state.member("ann").available(D0 + 11) == 0  # type: ignore[union-attr]
    t = totals(events)["ann"]
    assert t["shortfall"] == 250


def test_r_loy_2_a_full_refund_across_completion_takes_back_every_point_the_order_earned() -> None:
    # given an order of 500.35 CNY (500 points), 376.90 of it refunded while its points are pending
    sc = joined("ann")
    buy(sc, "ann", "o1", 50_035, 1)
    events = sc.when(
        ReversePurchase(
            member_id="ann",
            order_id="o1",
            refund_id="r1",
            amount=37_690,
            fully_refunded=False,
            paid_total=50_035,
            refunded_before=0,
        ),
        at(2),
    ).events
    assert of(events, PointsReversed)[0].points == 376  # type: ignore[attr-defined]  # 500 × 37 690 / 50 035 = 376.6
    assert (
        of(sc.when(CompletePurchase(member_id="ann", order_id="o1", completed_at=at(10)), at(10)).events, PointsReleased)[
            0
        ].points
        == 124
    )  # type: ignore[attr-defined]
    # when the rest (123.45 CNY) is refunded for a defect after completion
    events = sc.when(
        ReversePurchase(
            member_id="ann",
            order_id="o1",
            refund_id="r2",
            amount=12_345,
            fully_refunded=True,
            paid_total=50_035,
            refunded_before=37_690,
        ),
        at(20),
    ).events
    # then it takes back the 124 points left, not 123 (1 per whole CNY of its own amount): none is kept
    assert of(events, PointsReversed) == [
        PointsReversed(
            member_id="ann",
            order_id="o1",
            refund_id="r2",
            points=124,
            from_pending=0,
            shortfall=0,
            source="OrderRefunded:o1/r2",
            taken=[BatchPoints(expires_at=expiry_of(10), points=124)],
        )
    ]
    m = sc.state.member("ann")
    assert m is not None and (m.available(D0 + 20), m.pending, m.batches) == (0, 0, [])
    check_bookkeeping(sc.state)


def test_r_loy_2_defect_refunds_after_completion_add_up_to_every_point_the_order_earned() -> None:
    # given an order of 599.70 CNY (599 points), completed
    sc = joined("ann")
    bought_and_completed(sc, "ann", "o1", 59_970, 1, 9)
    # when its three lines of 199.90 CNY are refunded one by one for a defect
    got = []
    for i in range(3):
        cmd = ReversePurchase(
            member_id="ann",
            order_id="o1",
            refund_id=f"r{i + 1}",
            amount=19_990,
            fully_refunded=i == 2,
            paid_total=59_970,
            refunded_before=i * 19_990,
        )
        got += [e.points for e in of(sc.when(cmd, at(20 + i)).events, PointsReversed)]  # type: ignore[attr-defined]
    # then each takes the cumulative share less what the others took (⌊599 / 3⌋ = 199, ⌊599 × ⅔⌋ = 399):
    # 599 in all, where 1 point per whole CNY of each refund would leave 2 with the member
    assert got == [199, 200, 200]
    assert sc.state.member("ann").available(D0 + 22) == 0  # type: ignore[union-attr]
    check_bookkeeping(sc.state)


def test_r_loy_2_what_was_spent_of_an_order_refunded_in_parts_is_a_shortfall() -> None:
    sc = joined("ann")
    bought_and_completed(sc, "ann", "o1", 59_970, 1, 9)  # 599 points
    events = sc.when(
        ReversePurchase(
            member_id="ann",
            order_id="o1",
            refund_id="r1",
            amount=19_990,
            fully_refunded=False,
            paid_total=59_970,
            refunded_before=0,
        ),
        at(20),
    ).events  # 199 back
    events += sc.when(RedeemPoints(member_id="ann", redemption_id="rd1", points=300, reward="mug"), at(21)).events  # 100 left
    events += sc.when(
        ReversePurchase(
            member_id="ann",
            order_id="o1",
            refund_id="r2",
            amount=39_980,
            fully_refunded=True,
            paid_total=59_970,
            refunded_before=19_990,
        ),
        at(22),
    ).events  # 400 owed
    last = of(events, PointsReversed)[-1]
    assert (last.points, last.shortfall) == (100, 300)  # type: ignore[attr-defined]
    t = totals(events)["ann"]
    assert t["reversed"] + t["shortfall"] == 599 and sc.state.member("ann").available(D0 + 22) == 0  # type: ignore[union-attr]


def test_r_loy_2_a_refund_without_the_orders_figures_takes_1_point_per_whole_cny() -> None:
    """A record written before OrderRefunded carried `paid_total` and `refunded_before` (0): each
    refund after completion takes back its own whole CNY, as before."""
    sc = joined("ann")
    bought_and_completed(sc, "ann", "o1", 59_970, 1, 9)
    got = [
        of(
            sc.when(
                ReversePurchase(member_id="ann", order_id="o1", refund_id=f"r{i}", amount=19_990, fully_refunded=i == 2),
                at(20 + i),
            ).events,
            PointsReversed,
        )[0].points  # type: ignore[attr-defined]
        for i in range(3)
    ]
    assert got == [199, 199, 199]


def test_a_refund_with_negative_order_figures_is_refused() -> None:
    sc = joined("ann")
    bought_and_completed(sc, "ann", "o1", 10_000, 1, 9)
    sc.when(
        ReversePurchase(
            member_id="ann",
            order_id="o1",
            refund_id="r1",
            amount=5_000,
            fully_refunded=False,
            paid_total=10_000,
            refunded_before=-1,
        ),
        at(20),
    ).refused("cannot be negative")
    sc.when(
        ReversePurchase(
            member_id="ann",
            order_id="o1",
            refund_id="r1",
            amount=5_000,
            fully_refunded=False,
            paid_total=-10_000,
            refunded_before=0,
        ),
        at(20),
    ).refused("cannot be negative")


def test_a_refund_for_an_unknown_member_is_refused() -> None:
    joined("ann").when(
        ReversePurchase(member_id="bob", order_id="o1", refund_id="r1", amount=100, fully_refunded=False), at(1)
    ).refused("unknown member bob")


# --- behaviour points (R-LOY-2) --------------------------------------------------------------------


def test_r_loy_2_behaviour_points_at_most_once_per_business_day_each() -> None:
    sc = joined("ann")
    assert sc.when(RecordBehaviour(member_id="ann", action="checkin"), at(1, 9)).events == [
        BehaviourRecorded(member_id="ann", action="checkin", reference="", growth=1, recorded_at=at(1, 9)),
        PointsEarned(
            member_id="ann", points=5, reason="checkin", source=f"checkin:{iso(D0 + 1)}", pending=False, expires_at=expiry_of(1)
        ),
    ]
    sc.when(RecordBehaviour(member_id="ann", action="checkin"), at(1, 23)).refused(
        "checkin already recorded on 2026-01-02", "once per day"
    )
    assert (
        of(sc.when(RecordBehaviour(member_id="ann", action="share", reference="video-7"), at(1, 23)).events, PointsEarned)[
            0
        ].points
        == 10
    )  # type: ignore[attr-defined]
    assert (
        of(sc.when(RecordBehaviour(member_id="ann", action="review", reference="o1"), at(1, 23)).events, PointsEarned)[0].points
        == 20
    )  # type: ignore[attr-defined]
    assert of(
        sc.when(RecordBehaviour(member_id="ann", action="checkin"), at(2, 0)).events, PointsEarned
    )  # midnight UTC+8: a new day


def test_the_business_day_is_the_merchants_not_utcs() -> None:
    sc = joined("ann")
    sc.when(RecordBehaviour(member_id="ann", action="checkin"), at(1, 7))  # 23:00 UTC on day 0, 07:00 in UTC+8 on day 1
    sc.when(RecordBehaviour(member_id="ann", action="checkin"), at(1, 20)).refused("already recorded")


@pytest.mark.parametrize(("member", "action", "fragment"), [("bob", "checkin", "unknown member"), ("ann", "like", "action")])
def test_bad_behaviour_commands_are_refused(member: str, action: str, fragment: str) -> None:
    joined("ann").when(RecordBehaviour(member_id=member, action=action), at(1)).refused(fragment)


# --- redemption and expiry (R-LOY-2) ------------------------------------------------------------------


def test_r_loy_2_redeem_more_than_available_is_refused_and_changes_nothing() -> None:
    sc = joined("ann")
    buy(sc, "ann", "o1", 50_000, 1)  # 500 pending: not redeemable yet
    sc.when(RedeemPoints(member_id="ann", redemption_id="rd1", points=1, reward="coupon"), at(2)).refused(
        "cannot redeem 1 points: 0 available"
    )
    sc.when(CompletePurchase(member_id="ann", order_id="o1", completed_at=at(9)), at(9))
    sc.when(RedeemPoints(member_id="ann", redemption_id="rd1", points=501, reward="coupon"), at(9)).refused(
        "cannot redeem 501 points: 500 available"
    )
    sc.when(RedeemPoints(member_id="ann", redemption_id="rd1", points=0, reward="coupon"), at(9)).refused("positive")
    sc.when(RedeemPoints(member_id="bob", redemption_id="rd1", points=5, reward="coupon"), at(9)).refused("unknown member bob")
    assert sc.when(RedeemPoints(member_id="ann", redemption_id="rd1", points=500, reward="coupon"), at(9)).events == [
        PointsRedeemed(
            member_id="ann",
            redemption_id="rd1",
            points=500,
            reward="coupon",
            source="redemption:rd1",
            taken=[BatchPoints(expires_at=expiry_of(9), points=500)],
        )
    ]


def test_r_loy_2_redemption_spends_the_soonest_expiring_batch_first() -> None:
    sc = joined("ann")
    bought_and_completed(sc, "ann", "o1", 10_000, 1, 40)  # 100, expiring later
    sc.when(RecordBehaviour(member_id="ann", action="review"), at(5))  # 20, expiring first
    events = sc.when(RedeemPoints(member_id="ann", redemption_id="rd1", points=50, reward="mug"), at(41)).events
    assert events[0].taken == [BatchPoints(expires_at=expiry_of(5), points=20), BatchPoints(expires_at=expiry_of(40), points=30)]  # type: ignore[attr-defined]
    assert [(batch_day(b), batch_points(b)) for b in sc.state.member("ann").batches] == [  # type: ignore[union-attr]
        (add_months(D0 + 40, 12), 70)
    ]


def test_r_loy_2_each_batch_expires_on_its_own_day() -> None:
    sc = joined("ann")
    sc.when(RecordBehaviour(member_id="ann", action="checkin"), at(0))
    sc.when(RecordBehaviour(member_id="ann", action="share"), at(31))
    expires_first = add_months(D0, 12) - D0  # 2027-01-01
    assert not of(tick(sc, expires_first - 1), PointsExpired)
    events = tick(sc, expires_first)
    assert of(events, PointsExpired) == [
        PointsExpired(
            member_id="ann", points=5, source="expiry:2027-01-01", batches=[BatchPoints(expires_at=expiry_of(0), points=5)]
        )
    ]
    assert sc.state.member("ann").available(D0 + expires_first) == 10  # type: ignore[union-attr]
    assert of(tick(sc, expires_first + 31), PointsExpired)[0].points == 10  # type: ignore[attr-defined]
    check_bookkeeping(sc.state)


def test_a_batch_past_its_expiry_is_not_spent_even_before_the_tick_books_it_off() -> None:
    sc = joined("ann")
    sc.when(RecordBehaviour(member_id="ann", action="checkin"), at(0))
    sc.when(RedeemPoints(member_id="ann", redemption_id="rd1", points=5, reward="mug"), at(add_months(D0, 12) - D0, 1)).refused(
        "0 available"
    )


def test_r_loy_5_a_referrer_is_rewarded_and_an_unknown_referrer_refused() -> None:
    sc = joined("ann")
    assert sc.when(RewardReferrer(member_id="ann", referred_id="bob", order_id="o1"), at(3)).events == [
        PointsEarned(
            member_id="ann", points=200, reason="referral", source="referral:bob", pending=False, expires_at=expiry_of(3)
        )
    ]
    sc.when(RewardReferrer(member_id="zed", referred_id="bob", order_id="o1"), at(3)).refused("unknown referrer zed")
