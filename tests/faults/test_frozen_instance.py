"""A frozen instance (issue 12, items 1 and 9): two instances of a service share the partitions while
commands stream in; one is frozen with SIGSTOP — a GC pause, a throttled container, a VM migration —
and thawed with SIGCONT. Whatever happened meanwhile (its partitions moved to the other instance, or
the transaction coordinator aborted its open transaction), the frozen instance must not commit
anything when it resumes: every command is answered exactly once, no event is written twice, and
what both instances show over HTTP equals what the log says.

The pauses are chosen against the two timeouts that matter: the group session timeout (past it, the
partitions move) and the transaction timeout (past it, the coordinator aborts the open transaction).
`FLEXCHAIN_FAULT_COMMIT_DELAY_MS` holds every transaction open a while, and marks it open with a file
in the instance's data dir meanwhile: the freeze is sent while one is open — the case the fence
exists for (a freeze sent at a random moment could land between two transactions and prove nothing).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from flexchain.messages import Envelope, Enveloped
from flexchain.procs import ServiceProcess
from services.commission.plan import commission
from services.inventory.messages import ReserveStock
from services.order.messages import OrderLine, OrderPaid
from tests.faults.checks import check_reservations, owned, two_instances
from tests.faults.history import check_history, log_of
from tests.faults.support import longer
from tests.support import CODEC, Suite, envelope_for, eventually, get, http, post

pytestmark = [pytest.mark.broker, pytest.mark.faults]

SKUS = [f"fz-{i:02d}" for i in range(24)]
N = int(os.environ.get("FLEXCHAIN_FAULT_COMMANDS", "12000"))


class Feeder(threading.Thread):
    """A thread publishing records; `join` raises what stopped it, so a feeder that gave up (the
    broker away longer than it waits) fails the test as what it is, not as missing answers."""

    def __init__(self, go: Callable[[], Coroutine[Any, Any, None]]) -> None:
        super().__init__(daemon=True)
        self._go = go
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            asyncio.run(self._go())
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise AssertionError(f"the feeder stopped: {self.error!r}") from self.error


def stream(bootstrap: str, topic: str, commands: list[ReserveStock], seconds: float) -> Feeder:
    """Publish the commands evenly over `seconds`, from a thread (the test goes on meanwhile). A
    client that waits out a broker outage: its sends may wait up to 3 minutes for the broker (a
    broker killed and restarted on a busy machine took 27 s to answer again)."""

    async def go() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, request_timeout_ms=180_000
        )
        await producer.start()
        try:
            t0 = time.monotonic()
            chunk = max(1, len(commands) // int(seconds * 20))
            for i in range(0, len(commands), chunk):
                for cmd in commands[i : i + chunk]:
                    env = envelope_for(cmd, at=int(time.time() * 1000))
                    value = CODEC.encode(Enveloped(envelope=env, message=cmd))
                    await producer.send(topic, value, key=cmd.key.encode(), headers=[("type", b"ReserveStock")])
                delay = t0 + seconds * (i + chunk) / len(commands) - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await producer.flush()
        finally:
            await producer.stop()

    return Feeder(go)


def freeze(proc: ServiceProcess, seconds: float) -> None:
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(seconds)  # the fault itself is a duration: the process is frozen this long
    finally:
        proc.proc.send_signal(signal.SIGCONT)


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@pytest.mark.parametrize(
    ("pause", "session_ms", "txn_ms"),
    [
        # partitions move to the other instance; the frozen one's transaction is still open when it
        # resumes and is fenced by the new owner's InitProducerId
        pytest.param(9.0, 6000, 15000, id="past-session-timeout"),
        # nothing moves, but the coordinator aborts the open transaction (and bumps the epoch); the
        # test broker looks for timed-out transactions every second (tests/conftest.py)
        pytest.param(8.0, 20000, 3000, id="past-transaction-timeout"),
        # both: moved and aborted
        longer(12.0, 6000, 5000, id="past-both"),
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
        inv0, inv1 = two_instances(suite, data_dir, SKUS)
        eventually(lambda: len(owned(inv0.url)) in range(1, 6), what="inv0 owns some")
        commands = [ReserveStock(sku=rng.choice(SKUS), order_id=f"fz-{i:07d}", qty=1) for i in range(N)]
        feeder = stream(kafka_bootstrap, suite.topic("inventory.commands"), commands, seconds=12.0)
        eventually(lambda: metric(inv0.url, "flexchain_inventory_events_out_total") > 100, what="inv0 is working")
        # freeze it while a transaction is open (its marker file exists), not between two
        eventually(lambda: list((data_dir / "i0").glob("in-transaction.*")), interval=0.005, what="inv0 inside a transaction")
        freeze(inv0, pause)
        feeder.join(timeout=120)
        assert not feeder.is_alive()

        check_reservations(kafka_bootstrap, prefix, commands, [inv0, inv1])
        assert inv0.running and inv1.running
        # the fault really hit a transaction: the frozen instance found its transaction fenced or aborted
        failed = metric(inv0.url, "flexchain_inventory_transactions_failed_total")
        assert failed >= 1, "the freeze did not land inside a transaction: the test proved nothing"
    finally:
        suite.stop_all()


RATES = (Decimal("0.15"), Decimal("0.05"), Decimal("0.02"))
CHAINS = 30
ORDERS = int(os.environ.get("FLEXCHAIN_FAULT_ORDERS", "3000"))
T0 = 1_790_035_200_000


@pytest.mark.parametrize(
    ("pause", "txn_ms"),
    [
        # the partitions (of the router and of the processor) move; the open transactions are fenced
        longer(9.0, 15000, id="past-session-timeout"),
        # moved, and the coordinator has aborted the open transactions before the instance resumes
        pytest.param(12.0, 5000, id="past-both"),
    ],
)
def test_frozen_commission_instance_accrues_every_order_once(
    kafka_bootstrap: str, prefix: str, data_dir: Path, pause: float, txn_ms: int
) -> None:
    """The two-hop case: OrderPaid on `order.events` → the router → RecordOrderPaid → the processor's
    split up three levels, with a referral bonus for each new member. Frozen past the session timeout
    (6 s), for less and for more than the transaction timeout."""
    suite = Suite(
        kafka_bootstrap,
        prefix,
        data_dir,
        FLEXCHAIN_SESSION_TIMEOUT_MS="6000",
        FLEXCHAIN_TRANSACTION_TIMEOUT_MS=str(txn_ms),
        FLEXCHAIN_FAULT_COMMIT_DELAY_MS="150",
        FLEXCHAIN_SNAPSHOT_EVERY="500",
    )
    rng = random.Random(5)
    try:
        c0 = suite.start("commission", instance="0", FLEXCHAIN_DATA_DIR=str(data_dir / "c0"))
        c1 = suite.start("commission", instance="1", FLEXCHAIN_DATA_DIR=str(data_dir / "c1"))
        assert http("PUT", f"{c0.url}/plan/levels", json={"levels": 3, "max_chain_depth": 3}, timeout=15).status_code == 200
        chains = [(f"sel{i}", f"mid{i}", f"top{i}") for i in range(CHAINS)]
        for sel, mid, top in chains:
            for who, up in ((top, None), (mid, top), (sel, mid)):
                assert post(f"{c0.url}/distributors", {"distributor_id": who, "upline_id": up}).status_code == 200
        for c in (c0, c1):  # the network is replicated to every partition: both instances know it
            eventually(lambda c=c: get(f"{c.url}/distributors/sel{CHAINS - 1}")["chain"], what="network replicated")

        expected: dict[str, int] = Counter()
        paid: list[OrderPaid] = []
        for n in range(ORDERS):
            sel, mid, top = rng.choice(chains)
            amount = rng.randint(100, 50_000)
            member = f"m{n // 3}"  # a new member every third order: a referral bonus each
            paid.append(
                OrderPaid(
                    order_id=f"o{n:06d}",
                    amount=amount,
                    payment_ref="p",
                    paid_at=T0 + n,
                    member_id=member,
                    distributor_id=sel,
                    campaign_id=None,
                    lines=[OrderLine(sku="sku", qty=1, unit_price=amount)],
                )
            )
            for rate, who in zip(RATES, (sel, mid, top), strict=True):
                expected[who] += commission(rate, amount)
        feeder = stream_events(kafka_bootstrap, suite.topic("order.events"), paid, seconds=12.0)
        eventually(lambda: metric(c0.url, "flexchain_commission_events_out_total") > 50, what="c0 is working")
        eventually(lambda: list((data_dir / "c0").glob("in-transaction.*")), interval=0.005, what="c0 inside a transaction")
        freeze(c0, pause)
        feeder.join(timeout=120)
        assert not feeder.is_alive()

        def accrued() -> list:
            log = log_of(kafka_bootstrap, suite.topic("commission.events"))
            return log if sum(1 for x in log if x.type == "CommissionAccrued") >= ORDERS else []

        log = eventually(accrued, timeout=180, interval=1.0, what=f"all {ORDERS} orders accrued")
        problems = check_history(log)
        assert not problems, problems
        per_order = Counter(x.item.message.order_id for x in log if x.type == "CommissionAccrued")
        assert len(per_order) == ORDERS and set(per_order.values()) == {1}, "each order accrued exactly once"
        bonuses = Counter(x.item.message.member_id for x in log if x.type == "ReferralBonusAwarded")
        assert bonuses and set(bonuses.values()) == {1}, "each new member's referral bonus paid once"
        for c in (c0, c1):
            for sel, mid, top in chains:
                for who in (sel, mid, top):
                    eventually(
                        lambda c=c, who=who: get(f"{c.url}/distributors/{who}")["balances"]["commission"] == expected[who],
                        timeout=60,
                        what=f"{c.url}: {who}'s commission exact to the cent",
                    )
        assert log_of(kafka_bootstrap, suite.topic("commission.dlq")) == []
        assert c0.running and c1.running
        failed = metric(c0.url, "flexchain_commission_transactions_failed_total")
        assert failed >= 1, "the freeze did not land inside a transaction: the test proved nothing"
    finally:
        suite.stop_all()


def stream_events(bootstrap: str, topic: str, events: list[OrderPaid], seconds: float) -> Feeder:
    """Order events as the order service writes them (producer `order`, versions from 1 per order)."""

    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
        await producer.start()
        try:
            t0 = time.monotonic()
            for i, ev in enumerate(events):
                env = Envelope(
                    event_id=str(uuid.uuid4()),
                    event_type="OrderPaid",
                    aggregate_id=ev.key,
                    aggregate_version=1,
                    business_time=ev.paid_at,
                    correlation_id=ev.key,
                    causation_id=None,
                    producer="order",
                )
                value = CODEC.encode(Enveloped(envelope=env, message=ev))
                await producer.send(topic, value, key=ev.key.encode(), headers=[("type", b"OrderPaid")])
                delay = t0 + seconds * (i + 1) / len(events) - time.monotonic()
                if delay > 0.01:
                    await asyncio.sleep(delay)
            await producer.flush()
        finally:
            await producer.stop()

    return Feeder(go)
