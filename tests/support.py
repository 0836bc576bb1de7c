"""Helpers for the broker tiers: run the suite as processes, read and write topics directly."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from flexchain import kafka
from flexchain.auth import bearer
from flexchain.catalog import all_messages
from flexchain.messages import Envelope, Enveloped, Message
from flexchain.procs import ServiceProcess
from flexchain.runtime import ServiceDef
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


def envelope_for(cmd: Message, command_id: str | None = None, at: int = 0, producer: str = "test") -> Envelope:
    """What a client puts around a command (`producer`: not a router's, so its body is digested)."""
    cid = command_id or str(uuid.uuid4())
    return Envelope(
        event_id=cid,
        event_type=type(cmd).__name__,
        aggregate_id=cmd.key,
        aggregate_version=0,
        business_time=at,
        correlation_id=cmd.key or cid,
        causation_id=None,
        producer=producer,
    )


async def publish_raw(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def publish(bootstrap: str, topic: str, items: list[tuple[Message, Envelope]]) -> None:
    await publish_raw(bootstrap, topic, [(m.key.encode(), CODEC.encode(Enveloped(envelope=e, message=m))) for m, e in items])


async def read_all(bootstrap: str, topic: str, decode: bool = True) -> list[Any]:
    """Every committed record of a topic, all partitions, in partition-then-offset order."""
    records = await kafka.read_to_end(settings(bootstrap, ""), topic)
    return [CODEC.decode(rec.value) for rec in records] if decode else records


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


async def committed_offsets(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    """The offsets consumer group `group` has committed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: om.offset for tp, om in found.items() if om.offset >= 0}


async def unconsumed(bootstrap: str, group: str, topics: list[str]) -> dict[str, int]:
    """Per `topic:partition`, the offset of the first committed record of `topics` that consumer group
    `group` has not committed yet (-1: not read to its end in time); empty: it has consumed everything
    there is. Records are read, not counted from offsets: a transaction's commit marker takes an offset
    but is no record."""
    committed = await committed_offsets(bootstrap, group)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        found: dict[str, int] = {}
        if not tps:
            await asyncio.sleep(0.01)  # aiokafka: stop() right after start() raises CancelledError
            return found
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        reading: list[TopicPartition] = []
        for tp in tps:
            if ends[tp] > committed.get(tp, 0):
                consumer.seek(tp, committed.get(tp, 0))
                reading.append(tp)
        deadline = time.monotonic() + 30
        while reading and time.monotonic() < deadline:
            batch = await consumer.getmany(*reading, timeout_ms=200)
            for tp, records in batch.items():
                if records and tp in reading:
                    found[f"{tp.topic}:{tp.partition}"] = records[0].offset
                    reading.remove(tp)
            for tp in list(reading):
                if await consumer.position(tp) >= ends[tp]:
                    reading.remove(tp)
        found.update({f"{tp.topic}:{tp.partition}": -1 for tp in reading})
        return found
    finally:
        await consumer.stop()


def settled(bootstrap: str, prefix: str, svc: ServiceDef[Any]) -> bool:
    """Nothing of service `svc` is in flight: its router has routed every event of its input topics and
    its processor has decided every command, at one moment — what an operator reads from the consumer
    groups (a hop of a saga, a replication to other partitions, still under way: not settled). The
    router is asked before and after the processor: if it had nothing to route both times and
    committed nothing in between, no command reached the processor after it was found idle. Assumes
    nothing else (an API call, a test) writes to the service's inputs meanwhile."""
    router = (prefix + f"{svc.name}-router", [prefix + r.topic for r in svc.routes])
    processor = (prefix + svc.name, [prefix + svc.topics["commands"]])

    async def check() -> bool:
        before = await committed_offsets(bootstrap, router[0])
        for group, topics in (router, processor, router):
            if await unconsumed(bootstrap, group, topics):
                return False
        return before == await committed_offsets(bootstrap, router[0])

    result: bool = run(check())
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


def token(role: str = "operator") -> str:
    """The test session's token for `role` (tests/conftest.py puts them in the environment)."""
    return os.environ["FLEXCHAIN_TOKEN" if role == "operator" else f"FLEXCHAIN_TEST_TOKEN_{role.upper()}"]


def http(method: str, url: str, *, role: str = "operator", timeout: float = 15, **kw: Any) -> httpx.Response:
    """A request to a service, with the session's token for `role` (every route but the probes and
    /metrics needs one: README "Security")."""
    headers = {**bearer(token(role)), **kw.pop("headers", {})}
    return httpx.request(method, url, headers=headers, timeout=timeout, **kw)


def get(url: str, **kw: Any) -> Any:
    r = http("GET", url, timeout=10, **kw)
    r.raise_for_status()
    return r.json()


def post(url: str, body: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
    return http("POST", url, json=body, **kw)


def put(url: str, body: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
    return http("PUT", url, json=body, **kw)


def client(role: str = "operator", **kw: Any) -> httpx.Client:
    """An httpx client sending the session's token for `role`."""
    return httpx.Client(headers=bearer(token(role)), **kw)


def digests(url: str) -> dict[str, Any]:
    data: dict[str, Any] = get(url + "/internal/partitions")["partitions"]
    return data


def offline_service(service: str, **settings: Any) -> tuple[Any, Any]:
    """A service's runtime and HTTP app built as `serve` builds them, but not started: no broker is
    needed (the OpenAPI document, routes exercised through a TestClient)."""
    import importlib

    from flexchain.host import build_app, build_runtime

    app_module = importlib.import_module(f"services.{service}.app")
    api_module = importlib.import_module(f"services.{service}.api")
    views: dict[str, Callable[[], tuple[Any, Any]]] = {
        "order": lambda: (app_module.service(), app_module.OrderView()),
        "inventory": lambda: (app_module.SERVICE, app_module.InventoryView()),
        "presale": lambda: (app_module.SERVICE, app_module.PresaleView()),
        "commission": lambda: (app_module.service(), app_module.CommissionView()),
        "loyalty": lambda: (app_module.service(), app_module.LoyaltyView(app_module.LoyaltyConfig())),
    }
    svc, view = views[service]()
    rt = build_runtime(svc, view, Settings(**settings))
    return rt, build_app(rt, api_module.build_api)
