"""Scale-out: two inventory instances share the partitions; when one stops, the other takes its
partitions over and rebuilds them from the log, to the same state; results stay correct."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from services.order.messages import OrderLine, PlaceOrder
from tests.support import Suite, digests, envelope_for, events, eventually, get, post, publish, run

pytestmark = pytest.mark.broker

SKUS = [f"s{i}" for i in range(12)]


def _stream(suite: Suite, orders: dict[str, list[OrderLine]]) -> None:
    items = [PlaceOrder(order_id=oid, member_id="m", channel="mini_program", lines=lines) for oid, lines in orders.items()]
    run(publish(suite.bootstrap, suite.topic("order.commands"), [(c, envelope_for(c)) for c in items]))


def _decided(suite: Suite, n: int) -> list:
    evs = events(suite.bootstrap, suite.topic("order.events"))
    done = [e for e in evs if e.envelope.event_type in ("OrderConfirmed", "OrderRejected")]
    return evs if len(done) >= n else []


def _settle(url: str, orders: dict[str, list[OrderLine]], order_events: list) -> None:
    """Wait until reserved stock per sku equals the demand of the confirmed orders."""
    confirmed = {e.message.order_id for e in order_events if e.envelope.event_type == "OrderConfirmed"}
    want: dict[str, int] = defaultdict(int)
    for oid in confirmed:
        for line in orders[oid]:
            want[line.sku] += line.qty
    eventually(
        lambda: all(get(f"{url}/skus/{s}")["reserved"] == want[s] for s in SKUS), timeout=30, what="reserved == confirmed demand"
    )


def test_two_instances_share_partitions_and_survive_one_leaving(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    rng = random.Random(11)
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        inv0 = suite.start("inventory", instance="0", FLEXCHAIN_DATA_DIR=str(data_dir / "i0"))
        inv1 = suite.start("inventory", instance="1", FLEXCHAIN_DATA_DIR=str(data_dir / "i1"))
        suite.start("order")
        for sku in SKUS:
            post(f"{inv0.url}/skus", {"sku": sku, "name": sku})
            post(f"{inv0.url}/skus/{sku}/receipts", {"warehouse": "w1", "qty": 60})
        eventually(lambda: len(get(f"{inv1.url}/skus")) == len(SKUS), what="both read models see the catalogue")

        def owned() -> tuple[set[str], set[str]]:
            return set(digests(inv0.url)), set(digests(inv1.url))

        p0, p1 = eventually(lambda: (o := owned()) and o[0] and o[1] and o, what="both instances own partitions")
        assert p0 | p1 == {str(p) for p in range(6)} and not p0 & p1

        orders = {
            f"a{i:03d}": [OrderLine(sku=s, qty=rng.randint(1, 6), unit_price=100) for s in rng.sample(SKUS, 2)]
            for i in range(150)
        }
        _stream(suite, orders)
        first = eventually(lambda: _decided(suite, 150), timeout=60, what="first wave decided")
        _settle(inv0.url, orders, first)  # rejected orders' releases done: the state is quiet
        before = digests(inv1.url)

        inv1.stop()
        eventually(
            lambda: len(digests(inv0.url)) == 6 and get(f"{inv0.url}/ready")["ready"],
            timeout=60,
            what="instance 0 owns all partitions",
        )
        after = digests(inv0.url)
        for p, d in before.items():
            assert after[p]["digest"] == d["digest"], f"partition {p} rebuilt by instance 0 differs"

        more = {
            f"b{i:03d}": [OrderLine(sku=s, qty=rng.randint(1, 6), unit_price=100) for s in rng.sample(SKUS, 2)]
            for i in range(100)
        }
        _stream(suite, more)
        order_events = eventually(lambda: _decided(suite, 250), timeout=60, what="second wave decided")
        orders.update(more)
        outcome = Counter(
            e.message.order_id for e in order_events if e.envelope.event_type in ("OrderConfirmed", "OrderRejected")
        )
        assert set(outcome) == set(orders) and set(outcome.values()) == {1}
        _settle(inv0.url, orders, order_events)
        assert all(get(f"{inv0.url}/skus/{s}")["available"] >= 0 for s in SKUS)
    finally:
        suite.stop_all()
