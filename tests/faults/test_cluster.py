"""The three-node cluster is production's topology, and its nodes can be killed -9 and brought back:
leadership and the transaction coordinator move, writes go on, the node rejoins with a full ISR."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from flexchain import kafka
from flexchain.settings import Settings
from tests.faults.support import KafkaCluster, aeventually, coordinator_partition, timed
from tests.support import read_all

pytestmark = [pytest.mark.broker, pytest.mark.faults]

TXN_TOPIC, OFFSETS_TOPIC = "__transaction_state", "__consumer_offsets"


def _settings(cluster: KafkaCluster) -> Settings:
    # how a service is configured for this cluster: every topic it creates with three replicas
    return Settings(kafka_bootstrap_servers=cluster.bootstrap, flexchain_replication_factor=3)


async def _topic_config(bootstrap: str, topic: str, name: str) -> str | None:
    """A topic's effective config value; None while the broker asked does not know the topic yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [resource] = response.resources
        if resource[0] != 0:  # e.g. UNKNOWN_TOPIC_OR_PARTITION from a broker a moment behind
            return None
        return next((str(entry[1]) for entry in resource[4] if entry[0] == name), None)
    finally:
        await admin.close()


async def _commit_one(s: Settings, transactional_id: str, topic: str, value: bytes) -> None:
    producer = kafka.producer(s, transactional_id)
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, value, key=b"k")
    finally:
        await producer.stop()


async def test_topology_replication_and_who_leads_what(kafka_cluster: KafkaCluster) -> None:
    c = kafka_cluster
    s = _settings(c)
    assert sorted(c.state().brokers) == [1, 2, 3]
    topic, group, tid = f"topo-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}", f"tx-{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(s, [topic], partitions=3)
    min_isr = await aeventually(lambda: _topic_config(c.bootstrap, topic, "min.insync.replicas"), 30, 0.5, "topic config")
    assert min_isr == "2"  # the cluster default

    # a transaction and a group commit create both internal topics, replicated like every other
    await _commit_one(s, tid, topic, b"v")
    consumer = kafka.consumer(s, topic, group_id=group)
    await consumer.start()
    try:
        await aeventually(lambda: consumer.getmany(timeout_ms=500), 60, what="the committed record is read")
        await consumer.commit()
        client_leader = consumer._client.cluster.leader_for_partition(TopicPartition(topic, 0))
    finally:
        await consumer.stop()
    c.wait_healthy()
    st = c.state()
    for name, partitions in ((topic, 3), (TXN_TOPIC, 6), (OFFSETS_TOPIC, 6)):
        for p in range(partitions):
            ps = st.partitions[(name, p)]
            assert sorted(ps.replicas) == [1, 2, 3] and sorted(ps.isr) == [1, 2, 3], (name, p, ps)
    assert c.leader(topic, 0) == client_leader  # our metadata reader agrees with aiokafka's

    # the coordinators are where Kafka puts them: the leader of the key's internal partition
    assert await c.transaction_coordinator(tid) == c.leader(TXN_TOPIC, coordinator_partition(tid))
    assert await c.group_coordinator(group) == c.leader(OFFSETS_TOPIC, coordinator_partition(group))


async def test_node_killed_mid_stream_moves_leader_and_coordinator(kafka_cluster: KafkaCluster) -> None:
    """kill -9 of the node that both leads the partition a transactional producer writes to and holds
    that producer's transaction coordinator: another in-sync replica takes the partition, the
    coordinator moves to a surviving node, the producer's transactions go on (same transactional
    id), nothing acknowledged is lost or doubled, and the node comes back into the ISR."""
    c = kafka_cluster
    s = _settings(c)
    topic = f"kill-{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(s, [topic], partitions=1)
    committed = [b"warm-up"]
    await _commit_one(s, f"warm-{uuid.uuid4().hex[:8]}", topic, committed[0])  # creates __transaction_state
    c.wait_healthy()

    victim = c.leader(topic, 0)
    # a transactional id whose coordinator lives on the same node: one kill moves both
    tid = next(t for i in range(1000) if c.leader(TXN_TOPIC, coordinator_partition(t := f"tx-{topic}-{i}")) == victim)
    assert await c.transaction_coordinator(tid) == victim

    stop = asyncio.Event()

    async def produce() -> None:
        producer = kafka.producer(s, tid, request_timeout_ms=10000)
        await producer.start()
        try:
            n = 0
            while not stop.is_set():
                batch = [f"{n}-{i}".encode() for i in range(10)]
                async with producer.transaction():
                    for v in batch:
                        await producer.send(topic, v, key=b"k", partition=0)
                committed.extend(batch)  # only once the commit is acknowledged
                n += 1
        finally:
            await producer.stop()

    task = asyncio.create_task(produce())
    try:
        await aeventually(lambda: len(committed) >= 50, 60, what="transactions commit before the kill")
        c.kill(victim)
        t_kill, before = time.monotonic(), len(committed)
        assert await asyncio.to_thread(c.wait_leader, topic, 0, not_on=victim, timeout=60) != victim
        timed("partition leader moved after kill -9", time.monotonic() - t_kill)

        async def coordinator_moved() -> int:
            node = await c.transaction_coordinator(tid, timeout=10)
            return node if node != victim else 0

        coordinator = await aeventually(coordinator_moved, 60, 0.5, "the transaction coordinator moves off the killed node")
        timed("transaction coordinator moved after kill -9", time.monotonic() - t_kill)
        assert coordinator in c.running()
        await aeventually(lambda: len(committed) >= before + 50, 90, what="transactions go on without the node")
        assert not task.done()
        isr = c.state().partitions[(topic, 0)].isr
        assert victim not in isr and len(isr) == 2  # min.insync.replicas 2: acks=all still satisfied

        c.start(victim)
        t_start = time.monotonic()
        await asyncio.to_thread(c.wait_healthy, 180)
        timed("killed node restarted, cluster healthy", time.monotonic() - t_start)
        assert sorted(c.state().partitions[(topic, 0)].isr) == [1, 2, 3]
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)
    assert task.exception() is None
    got = [r.value for r in await read_all(c.bootstrap, topic, decode=False)]
    assert sorted(got) == sorted(committed)  # read_committed: every commit once, no aborted record
