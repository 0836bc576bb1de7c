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
    placed = sc.when(
        PlaceOrder(
            order_id="p1",
            member_id="m1",
            channel="live",
            lines=[OrderLine(sku="tee", qty=2, unit_price=0)],
            distributor_id=None,
            campaign_id="camp-1",
        )
    ).events
    assert placed[0].awaiting == ["presale"]
    assert sc.when(RecordLineReservation(order_id="p1", sku="tee", reserved=True, reason="")).events == [], (
        "no stock step for a presale order"
    )
    events = sc.when(RecordPresaleAnswer(order_id="p1", accepted=True, unit_price=3600, phase="early_bird", reason="")).events
    assert events == [
        OrderPresaleAnswered(order_id="p1", accepted=True, unit_price=3600, phase="early_bird", reason=""),
        OrderConfirmed(order_id="p1", pay_by=T0 + HOLD, total=7200, lines=[OrderLine(sku="tee", qty=2, unit_price=3600)]),
    ]
    assert sc.when(PayOrder(order_id="p1", amount=7200, payment_ref="pay")).events[0].lines == [
        OrderLine(sku="tee", qty=2, unit_price=3600)
    ]


def test_a_refused_pledge_rejects_the_order_with_the_campaigns_reason() -> None:
    sc = Scenario(ORDER, at=T0)
    sc.when(
        PlaceOrder(
            order_id="p2",
            member_id="m1",
            channel="live",
            lines=[OrderLine(sku="tee", qty=1, unit_price=0)],
            distributor_id=None,
            campaign_id="camp-1",
        )
    )
    events = sc.when(
        RecordPresaleAnswer(order_id="p2", accepted=False, unit_price=0, phase="", reason="intake closed at 80 % of capacity")
    ).events
    assert isinstance(events[-1], OrderRejected)
    assert "presale refused" in events[-1].reason and "80 % of capacity" in events[-1].reason
    assert events[-1].release_skus == []


def test_the_tier_discount_in_force_at_order_time_applies_per_unit_rounded_half_up() -> None:
    sc = Scenario(service(OrderConfig(member_discounts=True)), at=T0)
    sc.when(
        PlaceOrder(
            order_id="d1",
            member_id="m1",
            channel="mini_program",
            lines=[OrderLine(sku="mask", qty=3, unit_price=1995), OrderLine(sku="eye", qty=1, unit_price=500)],
        )
    )
    assert sc.when(RecordLineReservation(order_id="d1", sku="mask", reserved=True, reason="")).events == [
        OrderLineReserved(order_id="d1", sku="mask")
    ]
    events = sc.when(RecordLineReservation(order_id="d1", sku="eye", reserved=True, reason="")).events
    assert not any(isinstance(e, OrderConfirmed) for e in events), "still waiting for the member discount"
    events = sc.when(RecordMemberDiscount(order_id="d1", tier="gold", discount_rate=Decimal("0.8"))).events
    assert events[0] == OrderDiscountApplied(order_id="d1", tier="gold", discount_rate=Decimal("0.8"))
    confirmed = events[1]
    assert isinstance(confirmed, OrderConfirmed)
    assert confirmed.lines == [
        OrderLine(sku="mask", qty=3, unit_price=1596),
        OrderLine(sku="eye", qty=1, unit_price=400),
    ]  # 1995 × 0.8 = 1596
    assert confirmed.total == 3 * 1596 + 400
    assert price(1999, Decimal("0.9")) == 1799  # 1799.1 → 1799
    assert price(1995, Decimal("0.9")) == 1796  # 1795.5 → 1796 (half up)
    assert sc.when(RecordMemberDiscount(order_id="d1", tier="diamond", discount_rate=Decimal("0.7"))).events == [], (
        "a second answer changes nothing"
    )


def test_a_failed_campaign_refund_refunds_a_paid_order_once_and_cancels_an_unpaid_one() -> None:
    sc = Scenario(ORDER, at=T0)
    for oid in ("r1", "r2"):
        sc.when(
            PlaceOrder(
                order_id=oid,
                member_id="m1",
                channel="live",
                lines=[OrderLine(sku="tee", qty=2, unit_price=0)],
                distributor_id="d9",
                campaign_id="camp-1",
            )
        )
        sc.when(RecordPresaleAnswer(order_id=oid, accepted=True, unit_price=3000, phase="regular", reason=""))
    sc.when(PayOrder(order_id="r1", amount=6000, payment_ref="pay"))
    refund = RecordPresaleRefund(order_id="r1", refund_id="presale-camp-1-r1", amount=6000, reason="below MOQ")
    events = sc.when(refund).events
    assert events == [
        OrderRefunded(
            order_id="r1",
            refund_id="presale-camp-1-r1",
            lines=[RefundedLine(sku="tee", qty=2, reason="campaign_failed", amount=6000, goods_returned=False)],
            amount=6000,
            fully_refunded=True,
            member_id="m1",
            distributor_id="d9",
            campaign_id="camp-1",
            paid_total=6000,
            refunded_before=0,
        )
    ]
    assert sc.when(refund).events == [], "the same refund twice changes nothing"
    events = sc.when(RecordPresaleRefund(order_id="r2", refund_id="presale-camp-1-r2", amount=0, reason="below MOQ")).events
    assert isinstance(events[0], OrderCancelled) and events[0].refund_amount == 0 and events[0].release_skus == []
    assert sc.state.orders["r1"].status == "refunded" and sc.state.orders["r2"].status == "cancelled"


def test_a_group_order_without_a_campaign_is_refused() -> None:
    sc = Scenario(ORDER, at=T0)
    events = sc.when(
        PlaceOrder(
            order_id="g1",
            member_id="m1",
            channel="live",
            lines=[OrderLine(sku="tee", qty=1, unit_price=0)],
            distributor_id=None,
            campaign_id=None,
            group_id="grp-1",
        )
    ).events
    assert len(events) == 1 and "presale campaign" in events[0].reason
    assert sc.state.orders == {}
