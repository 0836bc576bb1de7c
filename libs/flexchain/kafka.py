"""Kafka clients with safe defaults, and topic creation.

aiokafka's defaults are wrong for an event store: acks=1, auto-commit, read_uncommitted. Every
producer here is idempotent with acks=all; every consumer reads committed data only and never
auto-commits (offsets are committed inside the processing transaction).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition, errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from flexchain.settings import Settings

UNLIMITED = "-1"
TOPIC_ALREADY_EXISTS = 36


def topic_names(service: str) -> dict[str, str]:
    """A service's own topics. `redrive`: dead letters of other services' events sent back by
    `flexchain dlq redrive`, read by the service's router as if from their first topic."""
    return {
        "commands": f"{service}.commands",
        "events": f"{service}.events",
        "dlq": f"{service}.dlq",
        "redrive": f"{service}.redrive",
    }


def _security(s: Settings) -> dict[str, Any]:
    opts: dict[str, Any] = {"bootstrap_servers": s.kafka_bootstrap_servers, "security_protocol": s.kafka_security_protocol}
    if s.kafka_security_protocol.startswith("SASL"):
        opts.update(
            sasl_mechanism=s.kafka_sasl_mechanism,
            sasl_plain_username=s.kafka_sasl_username,
            sasl_plain_password=s.kafka_sasl_password,
        )
    if s.kafka_security_protocol in ("SSL", "SASL_SSL"):
        opts["ssl_context"] = ssl.create_default_context(cafile=s.kafka_ssl_cafile)
    return opts


def producer(s: Settings, transactional_id: str | None = None, **extra: Any) -> AIOKafkaProducer:
    opts: dict[str, Any] = dict(
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        compression_type=None,
        transaction_timeout_ms=s.flexchain_transaction_timeout_ms,
        # Kafka 4 answers an older client's first transactional write to a partition with a retriable
        # NOT_ENOUGH_REPLICAS while it verifies the transaction (KIP-890); aiokafka's default 100 ms
        # back-off then stalls the whole transaction.
        retry_backoff_ms=20,
    )
    if transactional_id:
        opts["transactional_id"] = transactional_id
    opts.update(extra)
    return AIOKafkaProducer(**_security(s), **opts)


def consumer(s: Settings, *topics: str, group_id: str | None = None, **extra: Any) -> AIOKafkaConsumer:
    opts: dict[str, Any] = dict(
        group_id=group_id,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_wait_ms=100,
    )
    opts.update(extra)
    return AIOKafkaConsumer(*topics, **_security(s), **opts)


def admin(s: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**_security(s))


async def ensure_topics(s: Settings, names: Iterable[str], partitions: int | None = None) -> str:
    """Create missing topics (event stores keep everything: retention unlimited); return the cluster id."""
    client = admin(s)
    await client.start()
    try:
        existing = set(await client.list_topics())
        wanted = []
        for name in dict.fromkeys(names):
            if name in existing:
                continue
            n = 1 if name.endswith("clock.ticks") else (partitions or s.flexchain_partitions)
            config = {"retention.ms": UNLIMITED, "retention.bytes": UNLIMITED}
            wanted.append(
                NewTopic(name, num_partitions=n, replication_factor=s.flexchain_replication_factor, topic_configs=config)
            )
        if wanted:
            resp = await client.create_topics(wanted)
            for entry in resp.topic_errors:
                name, code = entry[0], entry[1]
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    why = errors.for_code(code).__name__  # e.g. TopicAuthorizationFailedError: an ACL is missing
                    raise RuntimeError(f"cannot create topic {name}: error {code} {why} {entry[2:]}")
        cluster = await client.describe_cluster()
        return str(cluster.get("cluster_id") or "unknown")
    finally:
        await client.close()


async def partitions_of(consumer: AIOKafkaConsumer, topic: str, timeout: float = 30.0) -> set[int]:
    """The partitions of a topic, waiting for the metadata of a topic that was just created."""
    deadline = time.monotonic() + timeout
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return set(parts)
        if time.monotonic() > deadline:
            raise RuntimeError(f"no metadata for topic {topic} after {timeout:.0f}s")
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)


async def read_to_end(s: Settings, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every committed record of `topic` (read_committed), from its start to its end offsets at call
    time, in partition-then-offset order; none if the topic does not exist."""
    c = consumer(s, group_id=None)
    await c.start()
    try:
        await c._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        if not tps:
            await asyncio.sleep(0.01)  # aiokafka: stop() right after start() raises CancelledError
            return []
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        ends = await c.end_offsets(tps)
        out: list[ConsumerRecord[bytes, bytes]] = []
        for tp in tps:
            while await c.position(tp) < ends[tp]:  # markers of transactions take offsets too
                out += (await c.getmany(tp, timeout_ms=500)).get(tp, [])
        return out
    finally:
        await c.stop()


def header(rec: ConsumerRecord[bytes, bytes], name: str) -> bytes | None:
    for k, v in rec.headers:
        if k == name:
            return bytes(v)
    return None


@dataclass(frozen=True)
class Clients:
    """Where the kernel's Kafka clients come from. The defaults are the production ones (aiokafka
    built from the settings: `producer`, `consumer`, `ensure_topics` above); a test, or another
    transport, passes its own to `flexchain.host.bootstrap`."""

    producer: Callable[..., AIOKafkaProducer] = producer
    consumer: Callable[..., AIOKafkaConsumer] = consumer
    ensure_topics: Callable[[Settings, list[str]], Awaitable[str]] = ensure_topics  # the admin client's one job
