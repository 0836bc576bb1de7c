"""`host.bootstrap` builds an instance and connects nothing: its clients come from the factories it
is given (production defaults otherwise), and only `run` calls them."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from flexchain import kafka
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
