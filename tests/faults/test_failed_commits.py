"""Commits that fail (issue 12, item 5): transactions aborted on purpose every few batches
(`FLEXCHAIN_FAULT_ABORT_EVERY`), and the services' producers fenced from outside (another producer
initialises their transactional id, as a new owner would) while orders stream through the saga
order → inventory → order. A failed transaction leaves state in memory that never reached the log;
the partitions must be rebuilt from what is committed before processing resumes. So: every order is
decided exactly once, every line answered once, reserved stock equals the confirmed demand, and the
state each service shows is exactly the fold of its own log (digests)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from services.inventory.app import SERVICE as INVENTORY
from services.order.app import service as order_service
from services.order.messages import OrderLine, PlaceOrder
from tests.faults.history import check_history, folded_digests, log_of
from tests.faults.test_frozen_instance import metric
from tests.support import Suite, digests, envelope_for, eventually, get, post, publish, run

pytestmark = [pytest.mark.broker, pytest.mark.faults]

SKUS = [f"fc-{i}" for i in range(8)]


async def fence(bootstrap: str, transactional_id: str) -> None:
    """Start a producer with a service's transactional id: Kafka fences the service's producer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id, enable_idempotence=True)
    await producer.start()
    await producer.stop()


def test_failed_and_fenced_commits_leave_no_trace(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    rng = random.Random(3)
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_FAULT_ABORT_EVERY="6", FLEXCHAIN_SNAPSHOT_EVERY="25")
    try:
        inv = suite.start("inventory")
        order = suite.start("order")
        for sku in SKUS:
            assert post(f"{inv.url}/skus", {"sku": sku, "name": sku}).status_code in (200, 202)
            eventually(
                lambda sku=sku: post(f"{inv.url}/skus/{sku}/receipts", {"warehouse": "w1", "qty": 150}).status_code == 200,
                what=f"{sku} received",
            )
        orders = {
            f"fc{i:04d}": [OrderLine(sku=s, qty=rng.randint(1, 6), unit_price=100) for s in rng.sample(SKUS, rng.randint(1, 3))]
            for i in range(400)
        }

        stop = threading.Event()
        fenced: list[str] = []

        def fencer() -> None:  # a few outside fences of random partitions of both services' loops
            while not stop.is_set() and len(fenced) < 6:
                time.sleep(1.5)
                p = rng.randrange(6)
                tid = rng.choice(
                    [
                        f"{prefix}inventory-inventory.commands-{p}",
                        f"{prefix}order-order.commands-{p}",
                        f"{prefix}inventory-router-order.events-{p}",
                    ]
                )
                run(fence(kafka_bootstrap, tid))
                fenced.append(tid)

        t = threading.Thread(target=fencer, daemon=True)
        t.start()
        items = [PlaceOrder(order_id=oid, member_id="m", channel="live", lines=lines) for oid, lines in orders.items()]
        for start in range(0, len(items), 25):
            chunk = [(c, envelope_for(c)) for c in items[start : start + 25]]
            run(publish(kafka_bootstrap, suite.topic("order.commands"), chunk))
            time.sleep(0.3)
        t.join(timeout=60)
        stop.set()
        assert len(fenced) == 6

        def decided() -> list:
            log = log_of(kafka_bootstrap, suite.topic("order.events"))
            done = {x.item.message.order_id for x in log if x.type in ("OrderConfirmed", "OrderRejected")}
            return log if done >= set(orders) else []

        order_log = eventually(decided, timeout=180, interval=1.0, what="every order decided")
        inv_log = log_of(kafka_bootstrap, suite.topic("inventory.events"))
        for name, log in (("order", order_log), ("inventory", inv_log)):
            problems = check_history(log)
            assert not problems, (name, problems)
        outcome = Counter(x.item.message.order_id for x in order_log if x.type in ("OrderConfirmed", "OrderRejected"))
        assert set(outcome.values()) == {1}, "each order decided exactly once"
        answers = Counter(
            (x.item.message.order_id, x.item.message.sku) for x in inv_log if x.type in ("StockReserved", "ReservationRejected")
        )
        assert set(answers) == {(o, line.sku) for o, lines in orders.items() for line in lines}
        assert set(answers.values()) == {1}, "each line answered exactly once"
        confirmed = {x.item.message.order_id for x in order_log if x.type == "OrderConfirmed"}
        assert 0 < len(confirmed) < len(orders), "both outcomes exercised"
        want: dict[str, int] = defaultdict(int)
        for oid in confirmed:
            for line in orders[oid]:
                want[line.sku] += line.qty
        eventually(
            lambda: all(get(f"{inv.url}/skus/{s}")["reserved"] == want[s] for s in SKUS), what="reserved == confirmed demand"
        )
        # what each service holds is exactly the fold of its own log, partition by partition
        for svc, proc in ((INVENTORY, inv), (order_service(), order)):
            expected = folded_digests(svc, log_of(kafka_bootstrap, suite.topic(f"{svc.name}.events")))
            eventually(
                lambda proc=proc, expected=expected: {p: d["digest"] for p, d in digests(proc.url).items()} == expected,
                timeout=60,
                what=f"{svc.name}: live state == fold of the log",
            )
            # the faults really happened, and were survived without leaving the process
            assert metric(proc.url, f"flexchain_{svc.name}_transactions_failed_total") >= 3
            assert proc.running
        assert log_of(kafka_bootstrap, suite.topic("inventory.dlq")) == []
        assert log_of(kafka_bootstrap, suite.topic("order.dlq")) == []
    finally:
        suite.stop_all()
