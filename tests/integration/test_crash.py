"""Crash: kill -9 the inventory service again and again while orders stream in. Exactly-once in
effect means every order is confirmed or rejected exactly once, every line answered exactly once,
and the reserved stock equals the sum over confirmed orders (R-INV-1, R-ORD-2)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from services.order.messages import OrderLine, PlaceOrder
from tests.support import Suite, envelope_for, events, eventually, get, post, publish, run

pytestmark = pytest.mark.broker

SKUS = ["sku-a", "sku-b", "sku-c", "sku-d"]


def test_kill_9_inventory_while_orders_stream_in(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    rng = random.Random(7)
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SNAPSHOT_EVERY="50")
    try:
        inv = suite.start("inventory")
        suite.start("order")
        for sku in SKUS:
            post(f"{inv.url}/skus", {"sku": sku, "name": sku})
            post(f"{inv.url}/skus/{sku}/receipts", {"warehouse": "w1", "qty": 200})
            post(f"{inv.url}/skus/{sku}/receipts", {"warehouse": "w2", "qty": 100})
        orders: dict[str, list[OrderLine]] = {}
        for i in range(300):
            skus = rng.sample(SKUS, rng.randint(1, 3))
            orders[f"o{i:03d}"] = [OrderLine(sku=s, qty=rng.randint(1, 8), unit_price=1000) for s in skus]

        kills = 0
        stop = threading.Event()
        current = {"inv": inv}

        def killer() -> None:
            nonlocal kills
            while not stop.is_set() and kills < 4:
                time.sleep(1.2)
                current["inv"].kill9()
                kills += 1
                current["inv"] = suite.start("inventory", wait=False)
                current["inv"].wait_ready()

        t = threading.Thread(target=killer)
        t.start()
        items = [(PlaceOrder(order_id=oid, member_id="m", channel="live", lines=lines), None) for oid, lines in orders.items()]
        for start in range(0, len(items), 20):
            chunk = [(cmd, envelope_for(cmd)) for cmd, _ in items[start : start + 20]]
            run(publish(kafka_bootstrap, suite.topic("order.commands"), chunk))
            time.sleep(0.25)
        t.join(timeout=120)
        stop.set()
        assert kills == 4
        inv_url = current["inv"].url

        def settled() -> list:
            evs = events(kafka_bootstrap, suite.topic("order.events"))
            done = [e for e in evs if e.envelope.event_type in ("OrderConfirmed", "OrderRejected")]
            return evs if len({e.message.order_id for e in done}) == len(orders) else []

        order_events = eventually(settled, timeout=120, interval=1.0, what="every order confirmed or rejected")
        outcome = Counter(
            e.message.order_id for e in order_events if e.envelope.event_type in ("OrderConfirmed", "OrderRejected")
        )
        assert set(outcome) == set(orders) and set(outcome.values()) == {1}, "each order decided exactly once"
        confirmed = {e.message.order_id for e in order_events if e.envelope.event_type == "OrderConfirmed"}
        assert 0 < len(confirmed) < len(orders), "the run must exercise both outcomes"

        inv_events = events(kafka_bootstrap, suite.topic("inventory.events"))
        answers = Counter(
            (e.message.order_id, e.message.sku)
            for e in inv_events
            if e.envelope.event_type in ("StockReserved", "ReservationRejected")
        )
        expected_lines = {(oid, line.sku) for oid, lines in orders.items() for line in lines}
        assert set(answers) == expected_lines and set(answers.values()) == {1}, "each line answered exactly once"

        want: dict[str, int] = defaultdict(int)
        for oid in confirmed:
            for line in orders[oid]:
                want[line.sku] += line.qty

        def reserved_matches() -> bool:
            got = {s: get(f"{inv_url}/skus/{s}") for s in SKUS}
            assert all(g["available"] >= 0 and g["reserved"] >= 0 for g in got.values())
            return all(got[s]["reserved"] == want[s] for s in SKUS)

        eventually(reserved_matches, timeout=60, what="reserved == sum over confirmed orders")
        for s in SKUS:
            assert get(f"{inv_url}/skus/{s}")["on_hand"] == 300
        # the processor state rebuilt after the crashes equals the read model's view of the log
        assert get(f"{inv_url}/ready")["ready"]
    finally:
        suite.stop_all()
