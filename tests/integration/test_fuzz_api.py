"""Each service fuzzed from its own OpenAPI document (schemathesis), on the real broker.

For every route: no input gives a 5xx; every 4xx says why (`detail`); and a request the API refuses
publishes nothing — no command from the API reaches the command topic meanwhile. Schema-invalid
requests (schemathesis' negative mode) must all be refused; schema-valid ones (positive mode) may be
applied, refused by the rules (409), or answered 404 for what does not exist.

Bounded for CI (`FLEXCHAIN_FUZZ_EXAMPLES`, default 4 per route and mode; 25 for a deeper run); the
Idempotency-Key header and every parameter are generated too (huge integers, long and odd unicode
strings, deep JSON). The OpenAPI document itself is checked too: an example for every request body
and for the answer of every command route.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from flexchain import kafka
from flexchain.auth import bearer
from tests.support import CODEC, Suite

pytestmark = pytest.mark.broker

SERVICES = ("order", "inventory", "presale", "commission", "loyalty")
EXAMPLES = int(os.environ.get("FLEXCHAIN_FUZZ_EXAMPLES", "4"))
REFUSED = {400, 401, 403, 404, 405, 409, 413, 415, 422}
NO_WAIT = 0  # answers without waiting for events: the fuzz is about the contract, not the saga


class Offsets:
    """What the API published to a command topic, read on one consumer kept for the module (on its
    own event loop): the end offsets now, and the commands from the API (`<service>-api`, not the
    routers, which publish on their own) written since given offsets."""

    def __init__(self, bootstrap: str) -> None:
        self.loop = asyncio.new_event_loop()

        async def start() -> AIOKafkaConsumer:
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
            await consumer.start()
            return consumer

        self.consumer = self.loop.run_until_complete(start())
        self.partitions: dict[str, list[TopicPartition]] = {}

    async def _tps(self, topic: str) -> list[TopicPartition]:
        if topic not in self.partitions:
            parts = await kafka.partitions_of(self.consumer, topic)
            self.partitions[topic] = [TopicPartition(topic, p) for p in sorted(parts)]
        return self.partitions[topic]

    def ends(self, topic: str) -> dict[TopicPartition, int]:
        async def ask() -> dict[TopicPartition, int]:
            ends: dict[TopicPartition, int] = await self.consumer.end_offsets(await self._tps(topic))
            return ends

        return self.loop.run_until_complete(ask())

    def from_api_since(self, topic: str, since: dict[TopicPartition, int]) -> list[str]:
        """The types of the commands the API wrote to `topic` after `since`."""

        async def read() -> list[str]:
            ends = await self.consumer.end_offsets(await self._tps(topic))
            todo = {tp: end for tp, end in ends.items() if end > since[tp]}
            if not todo:
                return []
            self.consumer.assign(list(todo))
            for tp in todo:
                self.consumer.seek(tp, since[tp])
            found: list[str] = []
            while todo:
                for tp, records in (await self.consumer.getmany(*todo, timeout_ms=200)).items():
                    for rec in records:
                        if rec.offset < todo.get(tp, 0):
                            env = CODEC.decode(rec.value).envelope
                            if env.producer.endswith("-api"):
                                found.append(env.event_type)
                for tp in list(todo):  # (the position passes transaction markers, which hold no record)
                    if await self.consumer.position(tp) >= todo[tp]:
                        del todo[tp]
            return found

        return self.loop.run_until_complete(read())

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


def _fuzz(stack: Stack, service: str, mode: GenerationMode) -> None:
    """Every operation of the service's OpenAPI document, `EXAMPLES` generated requests each."""
    schema = schemathesis.openapi.from_url(stack.urls[service] + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8, [op.label for op in operations]
    negative = mode is GenerationMode.NEGATIVE
    failures: list[str] = []
    tried = 0
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure names its request
        )
        def one(case: Any) -> None:
            _check(stack, service, case, negative)

        try:
            one()
            tried += 1
        except Unsatisfiable:  # nothing to negate (no parameter, no body): nothing outside the schema
            assert negative, operation.label
        except Exception as exc:  # every operation is tried, and all failures reported
            failures.append(f"{operation.label}: {_first_line(exc)}")
    assert tried >= 5, f"only {tried} operations could be fuzzed"
    assert failures == [], "\n".join(failures)


def _first_line(exc: BaseException) -> str:
    """The assertion behind a failure (Hypothesis may wrap it in a group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return str(exc).splitlines()[0] if str(exc) else repr(exc)


def _check(stack: Stack, service: str, case: Any, negative: bool) -> None:
    if not negative and "wait" in (case.query or {}):  # (a negative case may be negative by its wait)
        case.query["wait"] = NO_WAIT
    topic = stack.suite.topic(f"{service}.commands")
    before = stack.offsets.ends(topic) if case.method != "GET" else None
    # README "Security": an operator's token, unless the case is negative by its Authorization header
    # (schemathesis negates the bearer scheme too): then it is sent as generated, and must be refused
    bad_token = negative and case.operation.schema.is_security_param_negated(case)
    response = case.call(headers=None if bad_token else bearer(), timeout=60)
    sent = {"query": case.query, "headers": case.headers, "body": case.body}
    where = f"{case.method} {case.formatted_path} {sent!r:.300} → {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    if bad_token:
        assert response.status_code == 401, f"a bad token was not refused: {where}"
    if negative:
        assert response.status_code in REFUSED, f"a request outside the schema was not refused: {where}"
    if response.status_code >= 400:
        assert response.status_code in REFUSED, where
        detail = response.json().get("detail")
        assert detail, f"a refusal without a reason: {where}"
        answered = response.json().get("command_id") is not None  # refused by the rules after publishing
        if before is not None and not answered:
            published = stack.offsets.from_api_since(topic, before)
            assert published == [], f"a refused request published {published}: {where}"


@pytest.mark.parametrize("service", SERVICES)
def test_what_is_outside_the_schema_is_refused_and_publishes_nothing(stack: Stack, service: str) -> None:
    _fuzz(stack, service, GenerationMode.NEGATIVE)


@pytest.mark.parametrize("service", SERVICES)
def test_what_is_inside_the_schema_never_fails_and_every_refusal_says_why(stack: Stack, service: str) -> None:
    _fuzz(stack, service, GenerationMode.POSITIVE)


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_is_documented_by_example(stack: Stack, service: str) -> None:
    """The OpenAPI document a client reads: every request body shows an example, and every route that
    takes a command documents the answer shape (CommandAnswer / Refusal) with its example."""
    doc = httpx.get(stack.urls[service] + "/openapi.json", timeout=10).json()
    schemas = doc["components"]["schemas"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        return resolve(schemas[ref.rsplit("/", 1)[1]]) if ref else schema

    bodies = answers = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            body = op.get("requestBody")
            if body is not None:
                bodies += 1
                schema = resolve(body["content"]["application/json"]["schema"])
                assert schema.get("examples"), f"{where}: the request body has no example"
            if method in ("post", "put", "delete") and path not in ("/sandbox/plan-replay", "/internal/rebuild"):
                answers += 1
                for status in ("200", "202", "409", "422"):
                    content = op["responses"][status]["content"]["application/json"]
                    assert resolve(content["schema"]).get("examples"), f"{where} {status}: no example answer"
    assert bodies >= 4 and answers >= 4, (bodies, answers)
