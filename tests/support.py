"""Helpers for the broker tiers: run the suite as processes, read and write topics directly."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from flexchain.catalog import all_messages
from flexchain.messages import Envelope, Enveloped, Message
from flexchain.procs import ServiceProcess
from flexchain.serde import Codec
from flexchain.settings import Settings

CODEC = Codec(all_messages())


class Suite:
    """The services of one test, isolated by topic prefix, data dir and ports."""

    def __init__(self, bootstrap: str, prefix: str, data_dir: Path, **env: str) -> None:
        from tests.conftest import free_port

        self.bootstrap = bootstrap
        self.prefix = prefix
        self.data_dir = data_dir
        self.env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "FLEXCHAIN_TOPIC_PREFIX": prefix,
            "FLEXCHAIN_DATA_DIR": str(data_dir),
            "FLEXCHAIN_CLOCK": "log",
            "FLEXCHAIN_LOG_LEVEL": "INFO",
            **env,
        }
        self.free_port = free_port
        self.procs: list[ServiceProcess] = []

    def topic(self, name: str) -> str:
        return self.prefix + name

    def start(
        self, service: str, instance: str = "0", wait: bool = True, module: str | None = None, port: int | None = None, **env: str
    ) -> ServiceProcess:
        """Start a service process (`port`: a given one, e.g. the port of the instance it replaces)."""
        port = port or self.free_port()
        proc = ServiceProcess(service, {**self.env, **env}, self.data_dir.parent / "logs", port, instance, module)
        proc.start()
        self.procs.append(proc)
        if wait:
            proc.wait_ready()
        return proc

    def stop_all(self) -> None:
        for p in self.procs:
            p.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def settings(bootstrap: str, prefix: str) -> Settings:
    return Settings(kafka_bootstrap_servers=bootstrap, flexchain_topic_prefix=prefix)


def envelope_for(cmd: Message, command_id: str | None = None, at: int = 0) -> Envelope:
    cid = command_id or str(uuid.uuid4())
    return Envelope(cid, type(cmd).__name__, cmd.key, 0, at, cmd.key or cid, None, "test")


async def publish_raw(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def publish(bootstrap: str, topic: str, items: list[tuple[Message, Envelope]]) -> None:
    await publish_raw(bootstrap, topic, [(m.key.encode(), CODEC.encode(Enveloped(e, m))) for m, e in items])


async def read_all(bootstrap: str, topic: str, decode: bool = True) -> list[Any]:
    """Every committed record of a topic, all partitions, in partition-then-offset order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            await asyncio.sleep(0.01)  # aiokafka: stop() right after start() raises CancelledError
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=500)
                for rec in batch.get(tp, []):
                    out.append(CODEC.decode(rec.value) if decode else rec)
        return out
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            await asyncio.sleep(0.01)  # aiokafka: stop() right after start() raises CancelledError
            return 0
        consumer.assign(tps)
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


def events(bootstrap: str, topic: str) -> list[Enveloped]:
    result: list[Enveloped] = run(read_all(bootstrap, topic))
    return result


def eventually(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, what: str = "") -> Any:
    """Poll `check` until it returns a truthy value (returned) or raise after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (AssertionError, httpx.HTTPStatusError, KeyError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"not reached in {timeout}s: {what} (last: {last!r})")


def get(url: str) -> Any:
    r = httpx.get(url, timeout=10)
    r.raise_for_status()
    return r.json()


def post(url: str, body: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
    return httpx.post(url, json=body, timeout=15, **kw)


def digests(url: str) -> dict[str, Any]:
    data: dict[str, Any] = get(url + "/internal/partitions")["partitions"]
    return data
