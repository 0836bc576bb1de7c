"""`host.bootstrap` builds an instance and connects nothing: its clients come from the factories it
is given (production defaults otherwise), and only `run` calls them."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition
from fastapi.testclient import TestClient

from flexchain import kafka
from flexchain.asof import PastStates
from flexchain.host import Factories, bootstrap
from flexchain.settings import Settings
from services.inventory.api import build_api
from services.inventory.app import declared


def _no_kafka(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("bootstrap must not build a Kafka client")


def test_bootstrap_builds_from_the_factories_and_connects_nothing(tmp_path: Any) -> None:
    made: list[tuple[str, Any]] = []

    def store(settings: Settings, service: str) -> Any:
        made.append(("store", service))
        return object()

    def server(app: Any, settings: Settings, port: int) -> Any:
        made.append(("server", port))
        return type("FakeServer", (), {"app": app})()

    factories = Factories(
        kafka_clients=kafka.Clients(producer=_no_kafka, consumer=_no_kafka, ensure_topics=_no_kafka),
        snapshot_store=store,
        api_server=server,
        ops_server=server,
    )
    settings = Settings(flexchain_topic_prefix="t-", flexchain_ops_port=9191, flexchain_data_dir=tmp_path)
    svc, view = declared()
    inst = bootstrap(svc, view, build_api, settings, default_port=8082, factories=factories)
    assert made == [("server", 8082), ("server", 9191), ("store", "inventory")]
    assert inst.port == 8082 and inst.rt.producer is None and inst.rt.processor is None
    assert {"t-inventory.commands", "t-inventory.events", "t-clock.ticks"} <= set(inst.topics)
    assert inst.factories.kafka_clients.producer is _no_kafka
    # the app answers without a broker: not ready, nothing owned
    with TestClient(inst.app) as client:
        assert client.get("/health").json() == {"status": "up"}
        assert client.get("/ready").status_code == 503


def test_the_default_factories_are_the_production_clients() -> None:
    clients = Factories().kafka_clients
    assert (clients.producer, clients.consumer, clients.ensure_topics) == (kafka.producer, kafka.consumer, kafka.ensure_topics)


class FakeConsumer:
    """A consumer of topics that hold nothing: every topic has one partition, empty."""

    def __init__(self) -> None:
        self.started = self.stopped = False
        self._client = self  # `force_metadata_update` is asked of the client

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def force_metadata_update(self) -> None:
        return None

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assign(self, tps: list[TopicPartition]) -> None:
        return None

    def unsubscribe(self) -> None:
        return None

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        return None

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 0)

    async def position(self, tp: TopicPartition) -> int:
        return 0


def test_the_read_models_and_as_of_reads_take_their_consumers_from_the_factory(tmp_path: Any) -> None:
    """The projection, the own view and the as-of reads ask the factory, with their own settings
    (no group, read_committed by default; the catch-up reader alone reads uncommitted), and only
    when they start: an instance is built, and its read side started, with no Kafka at all."""
    asked: list[tuple[str, dict[str, Any]]] = []
    consumers: list[FakeConsumer] = []

    def consumer(settings: Settings, *topics: str, **opts: Any) -> Any:
        asked.append(("consumer", {"topics": topics, **opts}))
        consumers.append(FakeConsumer())
        return consumers[-1]

    def recorded(kind: str) -> Any:
        def make(*args: Any, **kwargs: Any) -> Any:
            asked.append((kind, kwargs))
            raise AssertionError(f"no {kind} is needed to read")

        return make

    clients = kafka.Clients(producer=recorded("producer"), consumer=consumer, ensure_topics=recorded("ensure_topics"))

    def store(settings: Settings, service: str) -> Any:
        asked.append(("store", {"service": service}))
        return object()

    def server(app: Any, settings: Settings, port: int) -> Any:
        asked.append(("server", {"port": port}))
        return type("FakeServer", (), {"app": app})()

    factories = Factories(kafka_clients=clients, snapshot_store=store, api_server=server)
    settings = Settings(flexchain_topic_prefix="t-", flexchain_data_dir=tmp_path)
    svc, view = declared()
    inst = bootstrap(svc, view, build_api, settings, default_port=8082, factories=factories)
    rt = inst.rt
    assert asked == [("server", {"port": 8082}), ("store", {"service": "inventory"})]  # built: no Kafka client asked for
    del asked[:]
    assert rt.clients is clients and rt.own.clients is clients and rt.projection.clients is clients

    async def read_side() -> PastStates:
        await rt.projection.start()
        await rt.own.start()
        assert await rt.projection.catch_up(5.0)
        past = await rt.as_of(0)
        await rt.projection.stop()
        await rt.own.stop()
        assert rt.history is not None
        await rt.history.close()
        return past

    past = asyncio.run(read_side())
    assert past.all() and past.replayed.summary()["events_folded"] == 0
    read = {"topics": (), "group_id": None, "max_poll_records": 5000}
    assert asked == [
        ("consumer", read),  # the projection
        ("consumer", read),  # the own view
        ("consumer", {"topics": (), "group_id": None, "isolation_level": "read_uncommitted"}),  # catch-up's end offsets
        ("consumer", read),  # the as-of reads
    ]
    assert all(c.started and c.stopped for c in consumers)
