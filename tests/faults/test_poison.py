"""Poison at every position (issue 12, items 4 and 7), on the real kernel and broker with a toy
service whose domain fails on demand (`tests/faults/toy.py`):

* a record that makes the router's policy or encode, or the processor's decide, encode or evolve
  raise goes to the DLQ with its reason — the process never crash-loops, everything else is applied;
  an evolve that failed half-way leaves no trace (the partition is rebuilt from what is committed);
* a read model whose fold raises skips that record loudly (a metric, an error), and goes on;
* an event of the service's OWN log that cannot be read stops its partition — not ready, a metric,
  `/ready` naming topic, partition, offset and why — instead of being folded past; the other
  partitions go on, and an as-of question over it answers 503 rather than a wrong past.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from flexchain.messages import Enveloped, Message
from flexchain.serde import Codec
from flexchain.ticks import ClockTicked
from tests.faults.history import read_log
from tests.faults.test_frozen_instance import metric
from tests.faults.toy import Poke, Poked, Source, write_toy_schemas
from tests.support import Suite, envelope_for, eventually, get, http, read_all, run

pytestmark = [pytest.mark.broker, pytest.mark.faults]

TOY = "tests.faults.toy"


@pytest.fixture
def schemas_dir(tmp_path: Path) -> Path:
    d = tmp_path / "schemas"
    write_toy_schemas(d)
    return d


def publish(bootstrap: str, topic: str, codec: Codec, messages: list[Message], partition: int | None = None) -> None:
    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for m in messages:
                value = codec.encode(Enveloped(envelope=envelope_for(m), message=m))
                await producer.send_and_wait(topic, value, key=m.key.encode(), partition=partition)
        finally:
            await producer.stop()

    run(go())


def append_raw(bootstrap: str, topic: str, partition: int, value: bytes, key: bytes = b"x") -> int:
    """Append a record as is; its offset."""

    async def go() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            md = await producer.send_and_wait(topic, value, key=key, partition=partition)
            return int(md.offset)
        finally:
            await producer.stop()

    offset: int = run(go())
    return offset


def item(url: str, key: str) -> int | None:
    r = http("GET", f"{url}/items/{key}", timeout=10)
    return None if r.status_code == 404 else int(r.json()["value"])


def test_poison_at_every_position_is_parked_and_nothing_else_stops(
    kafka_bootstrap: str, prefix: str, data_dir: Path, schemas_dir: Path
) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SCHEMAS_DIR=str(schemas_dir))
    codec = Codec([Poke, Poked, Source, ClockTicked], root=schemas_dir)
    try:
        toy = suite.start("toy", module=TOY)
        commands = [
            Poke("a", 1, "ok"),
            Poke("b", 1, "decide"),
            Poke("c", 1, "encode"),
            Poke("d", 1, "evolve"),
            Poke("e", 1, "ok"),
        ]
        sources = [Source(f"s{i}", 1, mode) for i, mode in enumerate(("ok", "policy", "encode", "view", "ok"), start=1)]
        publish(kafka_bootstrap, suite.topic("toy.commands"), codec, commands)
        publish(kafka_bootstrap, suite.topic("toysrc.events"), codec, sources)
        for key in ("a", "e", "s1", "s4", "s5"):
            eventually(lambda key=key: item(toy.url, key) == 1, timeout=60, what=f"{key} applied")
        dlq = eventually(
            lambda: (r := run(read_all(kafka_bootstrap, suite.topic("toy.dlq"), decode=False))) and len(r) >= 5 and r,
            timeout=60,
            what="five dead letters",
        )
        reasons = sorted(
            (dict(r.headers)["flexchain.source.topic"].decode(), dict(r.headers)["flexchain.dlq.reason"].decode().split(":")[0])
            for r in dlq
        )
        assert reasons == sorted(
            [
                (suite.topic("toy.commands"), "decide failed"),
                (suite.topic("toy.commands"), "encode failed"),
                (suite.topic("toy.commands"), "evolve failed"),
                (suite.topic("toysrc.events"), "policy failed"),
                (suite.topic("toysrc.events"), "encode failed"),
            ]
        ), reasons
        for key in ("b", "c", "d", "s2", "s3"):
            assert item(toy.url, key) is None, f"{key}: a parked record changed nothing"
        # the evolve that failed half-way (it had set d = -1) left no trace: the partition was rebuilt
        publish(kafka_bootstrap, suite.topic("toy.commands"), codec, [Poke("d", 5, "ok")])
        eventually(lambda: item(toy.url, "d") == 5, what="d applied from a clean state")
        assert sorted(get(f"{toy.url}/sources")) == ["s1", "s2", "s3", "s5"], "the view skipped only the record it cannot fold"
        assert metric(toy.url, 'flexchain_toy_records_skipped_total{loop="toy-view",reason="fold failed"}') == 1
        assert metric(toy.url, 'flexchain_toy_loop_restarts_total{loop="processor"}') >= 1
        assert toy.running and get(f"{toy.url}/ready")["ready"]
        assert not [
            x for x in run(read_log(kafka_bootstrap, suite.topic("toy.events"), codec)) if x.item.message.mode == "evolve"
        ]
    finally:
        suite.stop_all()


def test_an_unreadable_own_event_stops_its_partition_loudly(
    kafka_bootstrap: str, prefix: str, data_dir: Path, schemas_dir: Path
) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SCHEMAS_DIR=str(schemas_dir), FLEXCHAIN_SESSION_TIMEOUT_MS="6000")
    codec = Codec([Poke, Poked, Source, ClockTicked], root=schemas_dir)
    try:
        toy = suite.start("toy", module=TOY, FLEXCHAIN_DATA_DIR=str(data_dir / "t0"))
        keys = [f"k{i}" for i in range(12)]
        publish(kafka_bootstrap, suite.topic("toy.commands"), codec, [Poke(k, 1, "ok") for k in keys])
        for k in keys:
            eventually(lambda k=k: item(toy.url, k) == 1, what=f"{k} applied")
        log = run(read_log(kafka_bootstrap, suite.topic("toy.events"), codec))
        where = {x.item.message.item: x.partition for x in log}
        bad = where["k0"]
        others = [k for k in keys if where[k] != bad]
        end = append_raw(kafka_bootstrap, suite.topic("toy.events"), bad, b"\x00\x00\x00\x00\x07garbage", key=b"k0")

        toy.stop()
        toy = suite.start("toy", module=TOY, wait=False, FLEXCHAIN_DATA_DIR=str(data_dir / "t0"))

        def stopped(url: str) -> list:
            try:
                r = httpx.get(f"{url}/ready", timeout=5)
            except httpx.HTTPError:
                return []
            return (r.status_code == 503 and r.json().get("stopped_partitions")) or []

        found = eventually(lambda: stopped(toy.url), timeout=90, what="the partition reported stopped")
        assert found == [{"topic": suite.topic("toy.events"), "partition": bad, "offset": end, "reason": found[0]["reason"]}]
        assert found[0]["reason"].startswith("unknown schema id")
        assert metric(toy.url, f'flexchain_toy_partition_stopped{{loop="processor",partition="{bad}"}}') == 1
        # the other partitions go on; the stopped one applies nothing (its commands wait in the topic)
        publish(kafka_bootstrap, suite.topic("toy.commands"), codec, [Poke("k0", 10, "ok"), Poke(others[0], 10, "ok")])
        eventually(lambda: item(toy.url, others[0]) == 11, what="another partition still works")
        r = http("GET", f"{toy.url}/items/k0", timeout=10)
        assert r.status_code == 503 and "cannot be read" in r.json()["detail"], "no answer from a log read half-way"
        written = run(read_log(kafka_bootstrap, suite.topic("toy.events"), codec, strict=False))
        applied = [x for x in written if x.item.message.n == 10]
        assert [x.item.message.item for x in applied] == [others[0]], "nothing applied on the stopped partition"
        r = http("GET", f"{toy.url}/items/k0", params={"as_of": 4_000_000_000_000}, timeout=30)
        assert r.status_code == 503 and "cannot be read" in r.json()["detail"]
        # a second instance: whichever owns the bad partition stops it; the other's view stops it too
        toy1 = suite.start("toy", instance="1", module=TOY, wait=False, FLEXCHAIN_DATA_DIR=str(data_dir / "t1"))
        for url in (toy.url, toy1.url):
            eventually(lambda url=url: [s["partition"] for s in stopped(url)] == [bad], timeout=90, what=f"{url} reports it too")
        assert toy.running and toy1.running
    finally:
        suite.stop_all()
