"""Metric labels come from a closed set (README "Limits"): records with garbage `type` headers,
bodies that are not in the wire format and unknown schema ids are parked or skipped, and move
counters — but add no series to `/metrics`, however many distinct values they carry."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Suite, eventually, run

pytestmark = pytest.mark.broker

#: Per-partition gauges: their label values are partition numbers (bounded by the partition count),
#: exported as the loops come to each partition — not fed by records.
PER_PARTITION = {"consumer_lag_records", "rebuild_progress_ratio", "partition_stopped"}


def series(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        if not any(fam.name.endswith(p) for p in PER_PARTITION)
        for s in fam.samples
    }


def total(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and all((k, labels[k]) in ls for k in labels))


async def produce(bootstrap: str, records: list[tuple[str, bytes, list[tuple[str, bytes]]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, value, headers in records:
            await producer.send_and_wait(topic, value, key=uuid.uuid4().hex.encode(), headers=headers)
    finally:
        await producer.stop()


def garbage(n: int) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    """`n` records, each with a `type` header never seen before: half not in the wire format, half
    in it with a schema id nobody registered (a different one each)."""
    out = []
    for i in range(n):
        kind = f"Evil{uuid.uuid4().hex}".encode()
        schema_id = (0x7F000000 + i).to_bytes(4, "big")  # a different unknown id each time
        value = b"not avro at all" if i % 2 else b"\x00" + schema_id + b"\x02junk"
        out.append((value, [("type", kind)]))
    return out


def test_garbage_records_do_not_grow_metrics(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        url = suite.start("order").url
        commands, foreign = suite.topic("order.commands"), suite.topic("inventory.events")
        name = "flexchain_order_dlq_records_total"
        skipped = "flexchain_order_records_skipped_total"

        # one of each first: the first transaction of each loop exports its latency and batch series
        run(produce(kafka_bootstrap, [(commands, b"junk", [("type", b"PlaceOrder")]), (foreign, b"junk", [])]))
        eventually(
            lambda: total(series(url), name) >= 2 and total(series(url), skipped, loop="order-view") >= 1,
            timeout=60,
            what="the first garbage parked and skipped",
        )
        before = series(url)

        n = 40
        records = [(commands, v, h) for v, h in garbage(n)]
        records += [(foreign, v, []) for v, _ in garbage(4)]  # no header: decoded, skipped, parked by the router
        records += [(foreign, v, h) for v, h in garbage(4)]  # a type the router and view do not read: ignored
        run(produce(kafka_bootstrap, records))
        expected = total(before, name) + n + 4

        def all_parked() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            found = series(url)
            return found if total(found, name) >= expected else None

        after = eventually(all_parked, timeout=60, what=f"{n + 4} more dead letters")
        assert total(after, skipped, loop="order-view") >= total(before, skipped, loop="order-view") + 4
        assert sorted(set(after) - set(before)) == [], "a record added series"
        assert set(after) == set(before)
        assert not any("Evil" in v for _, ls in after for _, v in ls)
    finally:
        suite.stop_all()
