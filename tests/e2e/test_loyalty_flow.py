"""Order → loyalty end to end on business time: the order and inventory services run an order
through its life cycle and loyalty reads their real events (R-LOY-1, R-LOY-2, R-X-3): points
pending at payment, available once the return window closes on a tick, a defect refund after it
taken back from the available points; and, when the order service routes loyalty's quote back,
the tier discount is applied to an order placed by a silver member."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexchain.clock import ClockPublisher
from flexchain.settings import Settings
from services.order.app import service as order_service
from tests.support import Suite, eventually, get, post, run

pytestmark = pytest.mark.broker

T0 = 1_767_196_800_000  # 2026-01-01 00:00 UTC+8
MIN = 60_000
DAY = 24 * 60 * MIN
ORDER_ROUTES_LOYALTY = any(r.topic == "loyalty.events" for r in order_service().routes)


def _tick(suite: Suite, at: int, *urls: str) -> None:
    """Business time moves to `at`; returns once each service in `urls` stamps its commands with it
    (FLEXCHAIN_CLOCK=log: the last tick its API read, which `/clock` tells)."""

    async def go() -> None:
        async with ClockPublisher(Settings(kafka_bootstrap_servers=suite.bootstrap, flexchain_topic_prefix=suite.prefix)) as c:
            await c.tick(at)

    run(go())
    for url in urls:
        eventually(lambda url=url: get(f"{url}/clock")["business_time"] >= at, what=f"{url} sees the tick {at}")


def _start(suite: Suite, **order_env: str) -> tuple[str, str, str]:
    inv, order, loyalty = suite.start("inventory").url, suite.start("order", **order_env).url, suite.start("loyalty").url
    _tick(suite, T0, inv, order)
    post(f"{inv}/skus", {"sku": "cream", "name": "Cream", "low_stock_floor": 0})
    post(f"{inv}/skus/cream/receipts", {"warehouse": "w1", "qty": 100})
    return inv, order, loyalty


def _order(order: str, oid: str, member: str, qty: int, price: int) -> None:
    body = {"order_id": oid, "member_id": member, "channel": "live", "lines": [{"sku": "cream", "qty": qty, "unit_price": price}]}
    eventually(lambda: post(f"{order}/orders", body).status_code == 200, what=f"{oid} placed")
    eventually(lambda: get(f"{order}/orders/{oid}")["status"] == "confirmed", what=f"{oid} confirmed")


def test_points_follow_the_real_order_life_cycle(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        _, order, loyalty = _start(suite)
        _order(order, "o1", "ann", 4, 30_050)  # 1 202.00 CNY
        assert post(f"{order}/orders/o1/payment", {"amount": 120_200, "payment_ref": "p1"}).status_code == 200
        eventually(lambda: get(f"{loyalty}/members/ann")["points"]["pending"] == 1_202, what="pending points")
        ann = get(f"{loyalty}/members/ann")
        assert ann["tier"]["name"] == "silver" and ann["purchases"]["orders"] == 1  # joined with the order
        assert post(f"{order}/orders/o1/shipment", {"tracking": "SF1"}).status_code == 200
        _tick(suite, T0 + DAY, order)
        assert post(f"{order}/orders/o1/delivery").status_code == 200
        _tick(suite, T0 + 8 * DAY + MIN, order)  # the return window closes: OrderCompleted
        eventually(lambda: get(f"{loyalty}/members/ann")["points"]["available"] == 1_202, what="points available")
        _tick(suite, T0 + 20 * DAY, order)
        r = post(f"{order}/orders/o1/refunds", {"lines": [{"sku": "cream", "qty": 1, "reason": "defect"}]})
        assert r.status_code == 200
        eventually(lambda: get(f"{loyalty}/members/ann")["points"]["available"] == 1_202 - 300, what="taken back")
        ann = get(f"{loyalty}/members/ann")
        assert ann["purchases"]["net_spend"] == 90_150 and ann["tier"]["name"] == "regular"  # 901 growth: down again
        sources = [e["source"] for e in get(f"{loyalty}/members/ann/ledger")["entries"]]
        assert sources == ["OrderPaid:o1", "OrderCompleted:o1", sources[2]] and sources[2].startswith("OrderRefunded:o1/")
    finally:
        suite.stop_all()


@pytest.mark.skipif(not ORDER_ROUTES_LOYALTY, reason="the order service does not route loyalty.events (MemberDiscountQuoted) yet")
def test_an_order_is_priced_with_the_members_tier_when_placed(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        _, order, loyalty = _start(suite, FLEXCHAIN_ORDER_MEMBER_DISCOUNTS="true")
        _order(order, "o1", "ann", 4, 30_000)  # a regular member: 1.0
        assert get(f"{order}/orders/o1")["total"] == 120_000
        assert post(f"{order}/orders/o1/payment", {"amount": 120_000, "payment_ref": "p1"}).status_code == 200
        eventually(lambda: get(f"{loyalty}/members/ann")["tier"]["name"] == "silver", what="silver")
        _order(order, "o2", "ann", 1, 10_000)  # silver: 0.9
        assert get(f"{order}/orders/o2")["total"] == 9_000
    finally:
        suite.stop_all()
