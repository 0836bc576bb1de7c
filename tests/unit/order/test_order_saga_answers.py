"""The order saga's other participants: a campaign prices a presale order (R-PRE-3, R-PRE-4), the
loyalty service's tier discount applies at order time (R-LOY-1), a failed campaign's escrow refund
refunds or cancels the order (R-PRE-7). Given/when/then on the pure decider."""

from __future__ import annotations

from decimal import Decimal

from flexchain.testing import Scenario
from services.order.app import service
from services.order.domain import MINUTE_MS, OrderConfig, price
from services.order.messages import (
    OrderCancelled,
    OrderConfirmed,
    OrderDiscountApplied,
    OrderLine,
    OrderLineReserved,
    OrderPresaleAnswered,
    OrderRefunded,
    OrderRejected,
    PayOrder,
    PlaceOrder,
    RecordLineReservation,
    RecordMemberDiscount,
    RecordPresaleAnswer,
    RecordPresaleRefund,
    RefundedLine,
)

T0 = 1_767_225_600_000
HOLD = 30 * MINUTE_MS
ORDER = service()


def test_a_presale_order_reserves_no_stock_and_takes_the_campaign_price() -> None:
    sc = Scenario(ORDER, at=T0)
    placed = sc.when(PlaceOrder("p1", "m1", "live", [OrderLine("tee", 2, 0)], None, "camp-1")).events
    assert placed[0].awaiting == ["presale"]
    assert sc.when(RecordLineReservation("p1", "tee", True, "")).events == [], "no stock step for a presale order"
    events = sc.when(RecordPresaleAnswer("p1", True, 3600, "early_bird", "")).events
    assert events == [
        OrderPresaleAnswered("p1", True, 3600, "early_bird", ""),
        OrderConfirmed("p1", T0 + HOLD, 7200, [OrderLine("tee", 2, 3600)]),
    ]
    assert sc.when(PayOrder("p1", 7200, "pay")).events[0].lines == [OrderLine("tee", 2, 3600)]


def test_a_refused_pledge_rejects_the_order_with_the_campaigns_reason() -> None:
    sc = Scenario(ORDER, at=T0)
    sc.when(PlaceOrder("p2", "m1", "live", [OrderLine("tee", 1, 0)], None, "camp-1"))
    events = sc.when(RecordPresaleAnswer("p2", False, 0, "", "intake closed at 80 % of capacity")).events
    assert isinstance(events[-1], OrderRejected)
    assert "presale refused" in events[-1].reason and "80 % of capacity" in events[-1].reason
    assert events[-1].release_skus == []


def test_the_tier_discount_in_force_at_order_time_applies_per_unit_rounded_half_up() -> None:
    sc = Scenario(service(OrderConfig(member_discounts=True)), at=T0)
    sc.when(PlaceOrder("d1", "m1", "mini_program", [OrderLine("mask", 3, 1995), OrderLine("eye", 1, 500)]))
    assert sc.when(RecordLineReservation("d1", "mask", True, "")).events == [OrderLineReserved("d1", "mask")]
    events = sc.when(RecordLineReservation("d1", "eye", True, "")).events
    assert not any(isinstance(e, OrderConfirmed) for e in events), "still waiting for the member discount"
    events = sc.when(RecordMemberDiscount("d1", "gold", Decimal("0.8"))).events
    assert events[0] == OrderDiscountApplied("d1", "gold", Decimal("0.8"))
    confirmed = events[1]
    assert isinstance(confirmed, OrderConfirmed)
    assert confirmed.lines == [OrderLine("mask", 3, 1596), OrderLine("eye", 1, 400)]  # 1995 × 0.8 = 1596
    assert confirmed.total == 3 * 1596 + 400
    assert price(1999, Decimal("0.9")) == 1799  # 1799.1 → 1799
    assert price(1995, Decimal("0.9")) == 1796  # 1795.5 → 1796 (half up)
    assert sc.when(RecordMemberDiscount("d1", "diamond", Decimal("0.7"))).events == [], "a second answer changes nothing"


def test_a_failed_campaign_refund_refunds_a_paid_order_once_and_cancels_an_unpaid_one() -> None:
    sc = Scenario(ORDER, at=T0)
    for oid in ("r1", "r2"):
        sc.when(PlaceOrder(oid, "m1", "live", [OrderLine("tee", 2, 0)], "d9", "camp-1"))
        sc.when(RecordPresaleAnswer(oid, True, 3000, "regular", ""))
    sc.when(PayOrder("r1", 6000, "pay"))
    refund = RecordPresaleRefund("r1", "presale-camp-1-r1", 6000, "below MOQ")
    events = sc.when(refund).events
    assert events == [
        OrderRefunded(
            "r1",
            "presale-camp-1-r1",
            [RefundedLine("tee", 2, "campaign_failed", 6000, False)],
            6000,
            True,
            "m1",
            "d9",
            "camp-1",
            paid_total=6000,
            refunded_before=0,
        )
    ]
    assert sc.when(refund).events == [], "the same refund twice changes nothing"
    events = sc.when(RecordPresaleRefund("r2", "presale-camp-1-r2", 0, "below MOQ")).events
    assert isinstance(events[0], OrderCancelled) and events[0].refund_amount == 0 and events[0].release_skus == []
    assert sc.state.orders["r1"].status == "refunded" and sc.state.orders["r2"].status == "cancelled"


def test_a_group_order_without_a_campaign_is_refused() -> None:
    sc = Scenario(ORDER, at=T0)
    events = sc.when(PlaceOrder("g1", "m1", "live", [OrderLine("tee", 1, 0)], None, None, "grp-1")).events
    assert len(events) == 1 and "presale campaign" in events[0].reason
    assert sc.state.orders == {}
