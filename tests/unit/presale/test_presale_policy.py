"""Presale's saga policy (STYLE 2): what order events and clock ticks ask of the presale service."""

from __future__ import annotations

from flexchain.ticks import ClockTicked
from services.order.messages import (
    OrderCancelled,
    OrderCompleted,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    RefundedLine,
)
from services.presale.messages import (
    CheckCampaignTimers,
    RecordOrderRefund,
    RecordPayment,
    RecordPledge,
    ReleasePledge,
    presale_refund_id,
)
from services.presale.policy import react

LINES = [OrderLine(sku="notebook", qty=2, unit_price=2400), OrderLine(sku="notebook-gold", qty=1, unit_price=3600)]


def placed(campaign: str | None) -> OrderPlaced:
    return OrderPlaced(
        order_id="o1",
        member_id="m1",
        channel="live",
        lines=LINES,
        distributor_id=None,
        campaign_id=campaign,
        total=8400,
        placed_at=1,
    )


def refunded(refund_id: str, campaign: str | None = "c1") -> OrderRefunded:
    line = RefundedLine(sku="notebook", qty=2, reason="no_reason", amount=4800, goods_returned=False)
    return OrderRefunded(
        order_id="o1",
        refund_id=refund_id,
        lines=[line],
        amount=4800,
        fully_refunded=False,
        member_id="m1",
        distributor_id=None,
        campaign_id=campaign,
    )


def test_a_campaign_order_placed_becomes_a_pledge_of_its_units_keyed_by_campaign() -> None:
    (cmd,) = react(placed("c1"))
    assert cmd == RecordPledge(campaign_id="c1", order_id="o1", member_id="m1", units=3, group_id=None) and cmd.key == "c1"


def test_orders_without_a_campaign_are_ignored() -> None:
    assert react(placed(None)) == []
    assert react(refunded("r1", None)) == []


def test_payment_cancellation_and_refund_are_routed_to_the_campaign() -> None:
    paid = OrderPaid(
        order_id="o1",
        amount=8400,
        payment_ref="pay-1",
        paid_at=5,
        member_id="m1",
        distributor_id=None,
        campaign_id="c1",
        lines=LINES,
    )
    assert react(paid) == [RecordPayment(campaign_id="c1", order_id="o1", amount=8400, payment_ref="pay-1")]
    cancelled = OrderCancelled(
        order_id="o1",
        reason="changed mind",
        release_skus=[],
        refund_amount=8400,
        member_id="m1",
        distributor_id=None,
        campaign_id="c1",
    )
    assert react(cancelled) == [ReleasePledge(campaign_id="c1", order_id="o1", refund_amount=8400, reason="changed mind")]
    assert react(refunded("r1")) == [
        RecordOrderRefund(campaign_id="c1", order_id="o1", refund_id="r1", amount=4800, units=2, fully_refunded=False)
    ]


def test_the_echo_of_a_refund_presale_issued_is_dropped() -> None:
    assert react(refunded(presale_refund_id("c1", "o1"))) == []
    assert react(refunded(presale_refund_id("c2", "o1"))) != [], "another campaign's id is not this order's echo"


def test_a_clock_tick_reaches_every_partition_and_other_events_nothing() -> None:
    (cmd,) = react(ClockTicked(clock_id="main", time=42))
    assert cmd == CheckCampaignTimers(time=42) and cmd.key == ""
    assert react(OrderCompleted(order_id="o1", completed_at=9, member_id="m1", distributor_id=None, campaign_id="c1")) == []
