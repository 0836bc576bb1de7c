"""One node of production's topology fails under the services (issue 12, item 9): two inventory
instances run on the three-node cluster (``kafka_cluster``: three combined broker+controller nodes,
every topic with three replicas and ``min.insync.replicas`` 2, the services' own topics created
with ``FLEXCHAIN_REPLICATION_FACTOR=3``) while ~6000 ``ReserveStock`` commands stream in over
~10 s; mid-stream one node is killed with SIGKILL:

* ``partition-leader`` — the node leading a busy partition of ``inventory.events`` whose commands
  keep coming (their partition led by another node) and whose transactions are coordinated by
  another node: the processor keeps opening transactions that must write to the dead leader, and
  loses the fetches, writes and coordinators the node also held, until the controller elects other
  in-sync replicas; the node is started again a few seconds later.
* ``txn-coordinator`` — the node that is transaction coordinator for one of the processor's
  transactional ids (``<prefix>inventory-inventory.commands-<p>``), chosen, where possible, leading
  neither partition ``p`` of ``inventory.commands`` nor of ``inventory.events``: the transactions in
  flight lose their coordinator, which moves with the leadership of its ``__transaction_state``
  partition; the node is started again a few seconds later.
* ``controller-down`` — the node that is the active KRaft controller (it also leads partitions and
  coordinators): the quorum elects another controller, and the cluster runs on two nodes until every
  command is answered; only then is the node started again.

Whichever node dies, every partition stalls: the dead node stays in the ISR of every partition it
replicates (all of them, at RF 3) until the controller fences it when its broker session times out
(``broker.session.timeout.ms``, 9 s), so every ``acks=all`` write — events, offsets, the coordinators'
own logs — waits that long, and leadership moves only then. A transaction caught in it stays open
as long. With the production transaction timeout (15 s) it usually outlives the failover and
commits; the ``-past-txn-timeout`` variants (5 s) make the coordinator abort it, so the instances
also go through their failure path (producer fenced, state dropped, rejoin, rebuild from the log).
Usually, not always — a transaction held up before its coordinator accepted it (the coordinator was
on the dead node, its own log write waits too, or its previous commit's markers still wait for a
dead leader) never times out — so whether the path was hit is printed, not asserted.

What must hold, as when nothing fails: every command answered exactly once, a clean log (history
checker), both instances' HTTP state equal to the fold of the log (``check_reservations``), nothing
dead-lettered, and both instances still running and ready — they ride the failover out. The
failover times (leadership, coordinator, controller, every event partition committing again, all
commands answered, the node back in the ISR) are recorded in the tier's timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from services.inventory.messages import ReserveStock
from tests.faults.checks import check_reservations, two_instances
from tests.faults.history import log_of
from tests.faults.support import KafkaCluster, aeventually, longer, timed
from tests.faults.test_frozen_instance import metric, stream
from tests.support import Suite, eventually

pytestmark = [pytest.mark.broker, pytest.mark.faults]

PARTITIONS = 6
N = 6000
STREAM_SECONDS = 10.0
DOWN_SECONDS = 5.0  # partition-leader / txn-coordinator: how long the node stays down


def _partition(key: str) -> int:
    """The partition the producers' default partitioner (murmur2, as Java's) puts ``key`` in."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


def _balanced_skus(per_partition: int = 4) -> list[str]:
    """SKUs spread evenly over the partitions: every partition busy, so every partition's failover shows."""
    skus: list[str] = []
    count: Counter[int] = Counter()
    i = 0
    while len(skus) < per_partition * PARTITIONS:
        sku, i = f"cf-{i:03d}", i + 1
        if count[_partition(sku)] < per_partition:
            count[_partition(sku)] += 1
            skus.append(sku)
    return skus


SKUS = _balanced_skus()


def active_controller(c: KafkaCluster) -> tuple[int, int]:
    """(node id, epoch) of the active KRaft controller, as the running nodes' quorum-state files say
    (the Metadata response's controller id is some live broker in KRaft, not the active controller)."""
    best = (-1, -1)
    for n in c.running():
        with contextlib.suppress(OSError, ValueError, KeyError):
            state = json.loads((c.node(n).kraft_dir / "__cluster_metadata-0" / "quorum-state").read_text())
            if state["leaderId"] >= 0 and state["leaderEpoch"] > best[1]:
                best = (state["leaderId"], state["leaderEpoch"])
    return best


async def _committed_end(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The last stable offset of one partition (read_committed end offset); None while it has no leader."""
    try:
        return (await asyncio.wait_for(consumer.end_offsets([tp]), 3.0))[tp]
    except Exception:  # leaderless for now: asked again
        return None


async def _event_ends(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", request_timeout_ms=5000)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await asyncio.gather(*(_committed_end(consumer, tp) for tp in tps))
        return {tp.partition: e for tp, e in zip(tps, ends, strict=True) if e is not None}
    finally:
        await consumer.stop()


async def _until_every_partition_commits(bootstrap: str, topic: str, before: dict[int, int], t_kill: float) -> float:
    """Seconds from the kill until every partition of ``topic`` has committed past ``before`` again
    (by a margin: what was in flight at the kill does not count)."""
    margin = 100  # ~1 s of one partition's share of the stream
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", request_timeout_ms=5000)
    await consumer.start()
    try:
        waiting = {TopicPartition(topic, p) for p in range(PARTITIONS)}

        async def moved() -> bool:
            ends = await asyncio.gather(*(_committed_end(consumer, tp) for tp in waiting))
            for tp, end in zip(list(waiting), ends, strict=True):
                if end is not None and end >= before[tp.partition] + margin:
                    waiting.discard(tp)
            return not waiting

        await aeventually(moved, 120, 0.25, f"every partition of {topic} commits again after the kill")
        return time.monotonic() - t_kill
    finally:
        await consumer.stop()


def _answered(bootstrap: str, topic: str) -> int:
    return sum(1 for x in log_of(bootstrap, topic) if x.type in ("StockReserved", "ReservationRejected"))


@pytest.mark.parametrize(
    ("fault", "txn_ms"),
    [
        # the production default: a transaction stuck on the dead node outlives the failover (~9 s, the
        # brokers' session timeout) and commits
        pytest.param("partition-leader", 15000, id="partition-leader"),
        pytest.param("txn-coordinator", 15000, id="txn-coordinator"),
        longer("controller-down", 15000, id="controller-down"),
        # a transaction timeout shorter than the failover: the coordinator aborts the stuck
        # transactions (their producers fenced), the instances drop those partitions' states and rebuild
        longer("partition-leader", 5000, id="partition-leader-past-txn-timeout"),
        longer("txn-coordinator", 5000, id="txn-coordinator-past-txn-timeout"),
    ],
)
def test_node_killed_mid_stream_services_ride_the_failover_out(
    kafka_cluster: KafkaCluster, prefix: str, data_dir: Path, fault: str, txn_ms: int
) -> None:
    c = kafka_cluster
    bootstrap = c.bootstrap
    suite = Suite(bootstrap, prefix, data_dir, FLEXCHAIN_REPLICATION_FACTOR="3", FLEXCHAIN_TRANSACTION_TIMEOUT_MS=str(txn_ms))
    commands_topic, events_topic = suite.topic("inventory.commands"), suite.topic("inventory.events")
    label = fault if txn_ms >= 15000 else f"{fault}-past-txn-timeout"
    rng = random.Random(label)
    restart: threading.Timer | None = None
    try:
        inv0, inv1 = two_instances(suite, data_dir, SKUS)
        state = c.state()
        for topic in (commands_topic, events_topic):
            for p in range(PARTITIONS):
                assert sorted(state.partitions[(topic, p)].replicas) == [1, 2, 3], "the services' topics: three replicas"

        # the victim, chosen before the stream (leadership does not move while every node runs; it
        # is wherever earlier tests left it: a node killed before leads less until Kafka rebalances it)
        commands = [ReserveStock(sku=rng.choice(SKUS), order_id=f"cf-{i:07d}", qty=1) for i in range(N)]
        load = Counter(_partition(cmd.sku) for cmd in commands)
        tids = {p: f"{prefix}inventory-inventory.commands-{p}" for p in range(PARTITIONS)}
        coordinators = {p: asyncio.run(c.transaction_coordinator(tid)) for p, tid in tids.items()}
        group_coordinator = asyncio.run(c.group_coordinator(prefix + "inventory"))
        if fault == "partition-leader":
            # the leader of a busy event partition whose commands keep coming (led elsewhere) and whose
            # transactions' coordinator lives elsewhere: the processor keeps opening transactions that
            # must write to the dead leader. Preferably a node coordinating little else, so transactions
            # are not all held up before they start
            def fit(p: int) -> tuple[bool, bool, int, bool, int]:
                node = state.leader(events_topic, p)
                return (
                    state.leader(commands_topic, p) != node,
                    coordinators[p] != node,
                    -sum(1 for n in coordinators.values() if n == node),
                    group_coordinator != node,
                    load[p],
                )

            p = max(range(PARTITIONS), key=fit)
            victim = state.leader(events_topic, p)
            what = f"leader of {events_topic}-{p} (its commands led by {state.leader(commands_topic, p)})"
        elif fault == "txn-coordinator":
            # preferably leading neither partition p of the commands nor of the events: the fault is the
            # coordinator, not the data
            apart = [
                p
                for p in range(PARTITIONS)
                if coordinators[p] not in (state.leader(commands_topic, p), state.leader(events_topic, p))
            ]
            p = max(apart or range(PARTITIONS), key=lambda p: load[p])
            victim = coordinators[p]
            what = f"transaction coordinator of {tids[p]}"
        else:
            victim, epoch = active_controller(c)
            assert victim in c.node_ids, "an active controller is known"
            what = f"active controller (epoch {epoch})"
        coordinated = sorted(p for p, n in coordinators.items() if n == victim)
        what += f"; it coordinates the transactions of command partitions {coordinated}"
        what += ", and the group" if group_coordinator == victim else ""
        print(f"\n{fault}: killing node {victim}, {what}; load per partition {dict(sorted(load.items()))}")

        feeder = stream(bootstrap, commands_topic, commands, seconds=STREAM_SECONDS)
        for proc in (inv0, inv1):
            eventually(
                lambda proc=proc: metric(proc.url, "flexchain_inventory_events_out_total") > 100,
                timeout=60,
                what="both instances work",
            )
        before = asyncio.run(_event_ends(bootstrap, events_topic))
        assert len(before) == PARTITIONS
        c.kill(victim)
        t_kill = time.monotonic()
        if fault != "controller-down":
            restart = threading.Timer(DOWN_SECONDS, c.start, args=(victim,))
            restart.start()

        # the cluster's side of the failover
        if fault == "partition-leader":
            assert c.wait_leader(events_topic, p, not_on=victim, timeout=90) != victim
            timed(f"[{label}] partition leader moved", time.monotonic() - t_kill)
        elif fault == "txn-coordinator":
            tid = tids[p]

            async def coordinator_moved() -> int:
                node = await c.transaction_coordinator(tid, timeout=10)
                return node if node != victim else 0

            asyncio.run(aeventually(coordinator_moved, 90, 0.25, "the transaction coordinator moves off the killed node"))
            timed(f"[{label}] transaction coordinator moved", time.monotonic() - t_kill)
        else:
            eventually(lambda: active_controller(c)[0] not in (-1, victim), timeout=90, what="another node is elected controller")
            timed(f"[{label}] new active controller", time.monotonic() - t_kill)

        # the services' side: every event partition commits again (the killed node's included)
        live = ",".join(c.address(n) for n in c.node_ids if n != victim)
        timed(
            f"[{label}] every event partition commits again",
            asyncio.run(_until_every_partition_commits(live, events_topic, before, t_kill)),
        )

        feeder.join(timeout=180)
        assert not feeder.is_alive(), "the test's producer rode the failover out too"
        if fault == "controller-down":
            # the cluster on two nodes answers everything; only then does the node come back
            eventually(
                lambda: _answered(live, events_topic) >= N, timeout=180, interval=2.0, what=f"all {N} answered on two nodes"
            )
            timed(f"[{label}] all commands answered on two nodes", time.monotonic() - t_kill)
            assert victim not in c.running(), "the node stayed down until every command was answered"
            c.start(victim)
        else:
            assert restart is not None
            restart.join()
        t_start = time.monotonic()
        c.wait_healthy(180)
        timed(f"[{label}] node restarted, cluster healthy (full ISR)", time.monotonic() - t_start)

        for proc in (inv0, inv1):
            proc.wait_ready(120)
        check_reservations(bootstrap, prefix, commands, [inv0, inv1])
        assert log_of(bootstrap, suite.topic("inventory.dlq")) == []
        for proc in (inv0, inv1):
            proc.wait_ready(30)
        assert inv0.running and inv1.running, "both instances rode the failover out, no crash"
        failed = {proc.instance: metric(proc.url, "flexchain_inventory_transactions_failed_total") for proc in (inv0, inv1)}
        print(f"{label}: transactions failed per instance {failed}")
        if txn_ms < 15000:
            # usually the failover outlasted the transaction timeout: stuck transactions were aborted
            # and the instances went through their failure path (fenced, dropped, rejoined, rebuilt).
            # Not always: a transaction held up before its coordinator accepted it never times out
            print(f"{label}: failure path {'hit' if sum(failed.values()) else 'NOT hit'}")
    finally:
        if restart is not None:
            restart.cancel()
        suite.stop_all()
