"""Each service fuzzed from its own OpenAPI document (schemathesis), on the real broker.

For every route: no input gives a 5xx; every 4xx says why (`detail`); and a request the API refuses
publishes nothing — the command topic's end offsets are the same before and after it. Schema-invalid
requests (schemathesis' negative mode) must all be refused; schema-valid ones (positive mode) may be
applied, refused by the rules (409), or answered 404 for what does not exist.

Bounded for CI (`FLEXCHAIN_FUZZ_EXAMPLES`, default 6 per route and mode); the Idempotency-Key header
and every parameter are generated too (huge integers, long and odd unicode strings, deep JSON).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, settings

from flexchain import kafka
from tests.support import Suite

pytestmark = pytest.mark.broker

SERVICES = ("order", "inventory", "presale", "commission", "loyalty")
EXAMPLES = int(os.environ.get("FLEXCHAIN_FUZZ_EXAMPLES", "6"))
REFUSED = {400, 401, 403, 404, 405, 409, 413, 415, 422}
NO_WAIT = 0  # answers without waiting for events: the fuzz is about the contract, not the saga


class Offsets:
    """End offsets of a topic, asked on one consumer kept for the module (its own event loop)."""

    def __init__(self, bootstrap: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        self.loop.run_until_complete(self.consumer.start())
        self.partitions: dict[str, list[TopicPartition]] = {}

    def end(self, topic: str) -> int:
        async def ask() -> int:
            if topic not in self.partitions:
                parts = await kafka.partitions_of(self.consumer, topic)
                self.partitions[topic] = [TopicPartition(topic, p) for p in sorted(parts)]
            return sum((await self.consumer.end_offsets(self.partitions[topic])).values())

        return self.loop.run_until_complete(ask())

    def close(self) -> None:
        self.loop.run_until_complete(self.consumer.stop())
        self.loop.close()


@dataclass
class Stack:
    suite: Suite
    urls: dict[str, str]
    offsets: Offsets


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prefix = f"fz{uuid.uuid4().hex[:8]}-"
    suite = Suite(kafka_bootstrap, prefix, Path(tmp_path_factory.mktemp("fuzz")) / "data")
    offsets = Offsets(kafka_bootstrap)
    try:
        urls = {name: suite.start(name).url for name in SERVICES}
        yield Stack(suite, urls, offsets)
    finally:
        suite.stop_all()
        offsets.close()


def _schema(stack: Stack, service: str, mode: str) -> Any:
    schema = schemathesis.openapi.from_url(stack.urls[service] + "/openapi.json")
    schema.config.generation.update(modes=[mode], max_examples=EXAMPLES)
    return schema


def _check(stack: Stack, service: str, case: Any, negative: bool) -> None:
    if "wait" in (case.query or {}):
        case.query["wait"] = NO_WAIT
    topic = stack.suite.topic(f"{service}.commands")
    before = stack.offsets.end(topic) if case.method != "GET" else None
    response = case.call(timeout=60)
    where = f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    if negative:
        assert response.status_code in REFUSED, f"a request outside the schema was not refused: {where}"
    if response.status_code >= 400:
        assert response.status_code in REFUSED, where
        detail = response.json().get("detail")
        assert detail, f"a refusal without a reason: {where}"
        answered = response.json().get("command_id") is not None  # refused by the rules after publishing
        if before is not None and not answered:
            assert stack.offsets.end(topic) == before, f"a refused request published a command: {where}"


def _tests(service: str) -> tuple[Any, Any]:
    """Two tests per service: schema-invalid requests, then schema-valid ones."""
    negative = schemathesis.pytest.from_fixture(f"{service}_negative")
    positive = schemathesis.pytest.from_fixture(f"{service}_positive")

    @negative.parametrize()
    @settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def refused(case: Any, stack: Stack) -> None:
        _check(stack, service, case, negative=True)

    @positive.parametrize()
    @settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def applied(case: Any, stack: Stack) -> None:
        _check(stack, service, case, negative=False)

    return refused, applied


def _fixtures(service: str) -> tuple[Any, Any]:
    @pytest.fixture
    def negative(stack: Stack) -> Any:
        return _schema(stack, service, "negative")

    @pytest.fixture
    def positive(stack: Stack) -> Any:
        return _schema(stack, service, "positive")

    return negative, positive


order_negative, order_positive = _fixtures("order")
inventory_negative, inventory_positive = _fixtures("inventory")
presale_negative, presale_positive = _fixtures("presale")
commission_negative, commission_positive = _fixtures("commission")
loyalty_negative, loyalty_positive = _fixtures("loyalty")

test_order_refuses_what_is_outside_its_schema, test_order_never_fails_on_what_is_inside = _tests("order")
test_inventory_refuses_what_is_outside_its_schema, test_inventory_never_fails_on_what_is_inside = _tests("inventory")
test_presale_refuses_what_is_outside_its_schema, test_presale_never_fails_on_what_is_inside = _tests("presale")
test_commission_refuses_what_is_outside_its_schema, test_commission_never_fails_on_what_is_inside = _tests("commission")
test_loyalty_refuses_what_is_outside_its_schema, test_loyalty_never_fails_on_what_is_inside = _tests("loyalty")
