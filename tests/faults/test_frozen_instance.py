"""A frozen instance (issue 12, items 1 and 9): two instances of a service share the partitions while
commands stream in; one is frozen with SIGSTOP — a GC pause, a throttled container, a VM migration —
and thawed with SIGCONT. Whatever happened meanwhile (its partitions moved to the other instance, or
the transaction coordinator aborted its open transaction), the frozen instance must not commit
anything when it resumes: every command is answered exactly once, no event is written twice, and
what both instances show over HTTP equals what the log says.

The pauses are chosen against the two timeouts that matter: the group session timeout (past it, the
partitions move) and the transaction timeout (past it, the coordinator aborts the open transaction).
`FLEXCHAIN_FAULT_COMMIT_DELAY_MS` holds every transaction open a while, so the freeze almost always
lands inside one: the case the fence exists for.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from flexchain.messages import Enveloped
from flexchain.procs import ServiceProcess
from services.inventory.messages import ReserveStock
from tests.faults.history import check_history, log_of
from tests.support import CODEC, Suite, envelope_for, eventually, get, post

pytestmark = [pytest.mark.broker, pytest.mark.faults]

SKUS = [f"fz-{i:02d}" for i in range(24)]
N = int(os.environ.get("FLEXCHAIN_FAULT_COMMANDS", "12000"))


def stream(bootstrap: str, topic: str, commands: list[ReserveStock], seconds: float) -> threading.Thread:
    """Publish the commands evenly over `seconds`, from a thread (the test goes on meanwhile)."""

    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
        await producer.start()
        try:
            t0 = time.monotonic()
            chunk = max(1, len(commands) // int(seconds * 20))
            for i in range(0, len(commands), chunk):
                for cmd in commands[i : i + chunk]:
                    env = envelope_for(cmd, at=int(time.time() * 1000))
                    value = CODEC.encode(Enveloped(env, cmd))
                    await producer.send(topic, value, key=cmd.key.encode(), headers=[("type", b"ReserveStock")])
                delay = t0 + seconds * (i + chunk) / len(commands) - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await producer.flush()
        finally:
            await producer.stop()

    t = threading.Thread(target=lambda: asyncio.run(go()), daemon=True)
    t.start()
    return t


def freeze(proc: ServiceProcess, seconds: float) -> None:
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(seconds)  # the fault itself is a duration: the process is frozen this long
    finally:
        proc.proc.send_signal(signal.SIGCONT)


def metric(url: str, name: str) -> float:
    import httpx

    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@pytest.mark.parametrize(
    ("pause", "session_ms", "txn_ms"),
    [
        # partitions move to the other instance; the frozen one's transaction is still open when it
        # resumes and is fenced by the new owner's InitProducerId
        pytest.param(9.0, 6000, 15000, id="past-session-timeout"),
        # nothing moves, but the coordinator aborts the open transaction (and bumps the epoch)
        pytest.param(7.0, 20000, 3000, id="past-transaction-timeout"),
        # both: moved and aborted
        pytest.param(12.0, 6000, 5000, id="past-both"),
    ],
)
def test_frozen_inventory_instance_applies_nothing_twice(
    kafka_bootstrap: str, prefix: str, data_dir: Path, pause: float, session_ms: int, txn_ms: int
) -> None:
    suite = Suite(
        kafka_bootstrap,
        prefix,
        data_dir,
        FLEXCHAIN_SESSION_TIMEOUT_MS=str(session_ms),
        FLEXCHAIN_TRANSACTION_TIMEOUT_MS=str(txn_ms),
        FLEXCHAIN_FAULT_COMMIT_DELAY_MS="150",
        FLEXCHAIN_SNAPSHOT_EVERY="2000",
    )
    rng = random.Random(pause)
    try:
        inv0 = suite.start("inventory", instance="0", FLEXCHAIN_DATA_DIR=str(data_dir / "i0"))
        inv1 = suite.start("inventory", instance="1", FLEXCHAIN_DATA_DIR=str(data_dir / "i1"))
        for sku in SKUS:
            assert post(f"{inv0.url}/skus", {"sku": sku, "name": sku}).status_code == 200
            assert post(f"{inv0.url}/skus/{sku}/receipts", {"warehouse": "w1", "qty": 1_000_000}).status_code == 200
        eventually(lambda: len(get(f"{inv0.url}/internal/partitions")["partitions"]) in range(1, 6), what="inv0 owns some")
        commands = [ReserveStock(rng.choice(SKUS), f"fz-{i:07d}", 1) for i in range(N)]
        feeder = stream(kafka_bootstrap, suite.topic("inventory.commands"), commands, seconds=12.0)
        eventually(lambda: metric(inv0.url, "flexchain_inventory_events_out_total") > 100, what="inv0 is working")
        freeze(inv0, pause)
        feeder.join(timeout=120)
        assert not feeder.is_alive()

        def answered() -> list:
            log = log_of(kafka_bootstrap, suite.topic("inventory.events"))
            n = sum(1 for x in log if x.type in ("StockReserved", "ReservationRejected"))
            return log if n >= N else []

        log = eventually(answered, timeout=180, interval=1.0, what=f"all {N} commands answered")
        problems = check_history(log)
        assert not problems, problems
        reserved = Counter(x.item.message.order_id for x in log if x.type == "StockReserved")
        assert len(reserved) == N and set(reserved.values()) == {1}, "each command answered exactly once"
        assert not [x for x in log if x.type == "ReservationRejected"], "stock was plenty: nothing to reject"
        want = Counter(c.sku for c in commands)
        for url in (inv0.url, inv1.url):
            eventually(
                lambda url=url: all(get(f"{url}/skus/{s}")["reserved"] == want[s] for s in SKUS),
                timeout=60,
                what=f"{url}: reserved == commands per sku (not oversold)",
            )
        assert log_of(kafka_bootstrap, suite.topic("inventory.dlq")) == []
        assert inv0.running and inv1.running
        # the fault really hit a transaction: the frozen instance found its transaction fenced or aborted
        failed = metric(inv0.url, "flexchain_inventory_transactions_failed_total")
        assert failed >= 1, "the freeze did not land inside a transaction: the test proved nothing"
    finally:
        suite.stop_all()
