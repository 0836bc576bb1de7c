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

LINES = [OrderLine("notebook", 2, 2400), OrderLine("notebook-gold", 1, 3600)]


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
    line = RefundedLine("notebook", 2, "no_reason", 4800, False)
    return OrderRefunded("o1", refund_id, [line], 4800, False, "m1", None, campaign)


def test_a_campaign_order_placed_becomes_a_pledge_of_its_units_keyed_by_campaign() -> None:
    (cmd,) = react(placed("c1"))
    assert cmd == RecordPledge("c1", "o1", "m1", 3, None) and cmd.key == "c1"


def test_orders_without_a_campaign_are_ignored() -> None:
    assert react(placed(None)) == []
    assert react(refunded("r1", None)) == []


def test_payment_cancellation_and_refund_are_routed_to_the_campaign() -> None:
    paid = OrderPaid("o1", 8400, "pay-1", 5, "m1", None, "c1", LINES)
    assert react(paid) == [RecordPayment("c1", "o1", 8400, "pay-1")]
    cancelled = OrderCancelled("o1", "changed mind", [], 8400, "m1", None, "c1")
    assert react(cancelled) == [ReleasePledge("c1", "o1", 8400, "changed mind")]
    assert react(refunded("r1")) == [RecordOrderRefund("c1", "o1", "r1", 4800, 2, False)]


def test_the_echo_of_a_refund_presale_issued_is_dropped() -> None:
    assert react(refunded(presale_refund_id("c1", "o1"))) == []
    assert react(refunded(presale_refund_id("c2", "o1"))) != [], "another campaign's id is not this order's echo"


def test_a_clock_tick_reaches_every_partition_and_other_events_nothing() -> None:
    (cmd,) = react(ClockTicked("main", 42))
    assert cmd == CheckCampaignTimers(42) and cmd.key == ""
    assert react(OrderCompleted("o1", 9, "m1", None, "c1")) == []
