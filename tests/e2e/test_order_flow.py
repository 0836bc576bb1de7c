"""The suite end to end through its HTTP APIs and topics, on business time from `clock.ticks`:
the payment hold (R-ORD-2), shipping commits stock, returns grade A/B (R-INV-2), the return
window closes on a tick, a defect refund after it, back-in-stock (R-INV-6a), and the demo."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from flexchain.clock import ClockPublisher
from flexchain.settings import Settings
from services.order.app import service as order_service
from tests.support import Suite, events, eventually, get, post, run, settled

pytestmark = pytest.mark.broker

T0 = 1_790_000_000_000
MIN = 60_000
DAY = 24 * 60 * MIN


def _tick(suite: Suite, at: int, *urls: str) -> None:
    """Business time moves to `at`; returns once each service in `urls` stamps its commands with it
    (FLEXCHAIN_CLOCK=log: the last tick its API read, which `/clock` tells)."""

    async def go() -> None:
        async with ClockPublisher(Settings(kafka_bootstrap_servers=suite.bootstrap, flexchain_topic_prefix=suite.prefix)) as c:
            await c.tick(at)

    run(go())
    for url in urls:
        eventually(lambda url=url: get(f"{url}/clock")["business_time"] >= at, what=f"{url} sees the tick {at}")


def _status(order: str, oid: str) -> str:
    return str(get(f"{order}/orders/{oid}")["status"])


def test_order_life_cycle_on_business_time(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        inv, order = suite.start("inventory").url, suite.start("order").url
        _tick(suite, T0, inv, order)
        post(f"{inv}/skus", {"sku": "cream", "name": "Cream", "low_stock_floor": 0})
        post(f"{inv}/skus/cream/receipts", {"warehouse": "w1", "qty": 10})
        eventually(
            lambda: (
                post(
                    f"{order}/orders",
                    {
                        "order_id": "keep",
                        "member_id": "m",
                        "channel": "article",
                        "lines": [{"sku": "cream", "qty": 4, "unit_price": 2500}],
                    },
                ).status_code
                == 200
            )
        )
        post(
            f"{order}/orders",
            {"order_id": "idle", "member_id": "m", "channel": "live", "lines": [{"sku": "cream", "qty": 6, "unit_price": 2500}]},
        )
        eventually(lambda: _status(order, "idle") == "confirmed" and _status(order, "keep") == "confirmed")
        assert get(f"{inv}/skus/cream")["available"] == 0

        # pay one; the other stays unpaid past the 30-minute hold
        _tick(suite, T0 + 10 * MIN, inv, order)
        assert post(f"{order}/orders/keep/payment", {"amount": 10000, "payment_ref": "p1"}).status_code == 200
        _tick(suite, T0 + 29 * MIN, inv, order)
        # still confirmed once the order service has handled that tick (not merely before it has)
        eventually(lambda: settled(kafka_bootstrap, prefix, order_service()), what="the order service settled")
        assert _status(order, "idle") == "confirmed"
        _tick(suite, T0 + 31 * MIN, inv, order)
        eventually(lambda: _status(order, "idle") == "cancelled", what="unpaid hold cancelled")
        eventually(lambda: get(f"{inv}/skus/cream")["available"] == 6, what="its stock released")
        back = [
            e for e in events(kafka_bootstrap, suite.topic("inventory.events")) if e.envelope.event_type == "StockBecameAvailable"
        ]
        assert len(back) == 1 and back[0].message.available == 6

        # ship, deliver; a no-reason return of 1 (grade A) inside the window, a damaged one (grade B)
        assert post(f"{order}/orders/keep/shipment", {"tracking": "SF1"}).status_code == 200
        eventually(lambda: get(f"{inv}/skus/cream")["on_hand"] == 6, what="shipping commits the reservation")
        _tick(suite, T0 + DAY, inv, order)
        assert post(f"{order}/orders/keep/delivery").status_code == 200
        _tick(suite, T0 + 3 * DAY, inv, order)
        r = post(f"{order}/orders/keep/refunds", {"lines": [{"sku": "cream", "qty": 1, "reason": "no_reason"}]})
        assert r.status_code == 200 and r.json()["events"][0]["amount"] == 2500
        r = post(f"{order}/orders/keep/refunds", {"lines": [{"sku": "cream", "qty": 1, "reason": "damaged"}]})
        assert r.status_code == 200
        eventually(
            lambda: get(f"{inv}/skus/cream")["warehouses"]["w1"] == {"on_hand": 7, "reserved": 0, "available": 7, "clearance": 1}
        )

        # the window closes on a tick: completed; afterwards only a defect is refunded
        _tick(suite, T0 + 8 * DAY + MIN, inv, order)
        eventually(lambda: _status(order, "keep") == "completed", what="return window closed")
        late = post(f"{order}/orders/keep/refunds", {"lines": [{"sku": "cream", "qty": 1, "reason": "no_reason"}]})
        assert late.status_code == 409 and "window closed" in late.json()["detail"]["reason"]
        too_much = post(f"{order}/orders/keep/refunds", {"lines": [{"sku": "cream", "qty": 3, "reason": "defect"}]})
        assert too_much.status_code == 409 and "only 2 paid and not refunded" in too_much.json()["detail"]["reason"]
        defect = post(f"{order}/orders/keep/refunds", {"lines": [{"sku": "cream", "qty": 2, "reason": "defect"}]})
        assert defect.status_code == 200
        kept = get(f"{order}/orders/keep")
        assert kept["refunded_amount"] == 10000 and kept["status"] == "refunded"
        assert [h["event_type"] for h in kept["history"]][:4] == [
            "OrderPlaced",
            "OrderLineReserved",
            "OrderConfirmed",
            "OrderPaid",
        ]
    finally:
        suite.stop_all()


def test_the_demo_runs_end_to_end(kafka_bootstrap: str, prefix: str) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "FLEXCHAIN_TOPIC_PREFIX": prefix,
        "FLEXCHAIN_DEMO_RUN": uuid.uuid4().hex[:6],
    }
    out = subprocess.run(
        [sys.executable, "-m", "flexchain.cli", "demo", "--no-wait"], env=env, capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    for expected in ("delivered", "rejected — stock not available", "LOW-STOCK ALERT", "HTTP 409", "cancelled", "Stopped."):
        assert expected in text, text
    run = env["FLEXCHAIN_DEMO_RUN"]
    assert f"order E-{run} as of then: confirmed (now cancelled)" in text, text  # R-X-4: the past, asked afterwards
