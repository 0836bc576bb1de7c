"""Duplicates that reach the log anyway (issue 12, item 2, the broker half): records of a live
`inventory.events` are appended a second time, byte for byte — as a zombie's write before fencing,
a mirror replaying, or an operator's mistake would — and neither the instance that folds them live
(its view of the other instance's partitions) nor a rebuild from the log alone changes by one unit:
a repeated aggregate version is skipped."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.support import Suite, digests, eventually, get, post

pytestmark = [pytest.mark.broker, pytest.mark.faults]

SKUS = [f"dl-{i}" for i in range(10)]


async def duplicate_records(bootstrap: str, topic: str) -> int:
    """Append every committed record of `topic` again to its own partition (value, key, headers)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        n = 0
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                for rec in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    await producer.send(topic, rec.value, key=rec.key, partition=tp.partition, headers=list(rec.headers))
                    n += 1
        await producer.flush()
        return n
    finally:
        await producer.stop()
        await consumer.stop()


def test_records_appended_twice_change_nothing_live_or_rebuilt(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        inv0 = suite.start("inventory", instance="0", FLEXCHAIN_DATA_DIR=str(data_dir / "i0"))
        inv1 = suite.start("inventory", instance="1", FLEXCHAIN_DATA_DIR=str(data_dir / "i1"))
        for i, sku in enumerate(SKUS):
            assert post(f"{inv0.url}/skus", {"sku": sku, "name": sku}).status_code == 200
            for q in (5, 7, 11):
                assert post(f"{inv0.url}/skus/{sku}/receipts", {"warehouse": f"w{i % 3}", "qty": q}).status_code == 200
        for url in (inv0.url, inv1.url):
            eventually(lambda url=url: all(get(f"{url}/skus/{s}")["on_hand"] == 23 for s in SKUS), what="both see the stock")
        appended = asyncio.run(duplicate_records(kafka_bootstrap, suite.topic("inventory.events")))
        assert appended >= len(SKUS) * 4  # registered, three receipts (and the low-stock signals)
        # a marker after the duplicates: once an instance shows it, it has folded past every duplicate
        assert post(f"{inv1.url}/skus/{SKUS[0]}/receipts", {"warehouse": "w9", "qty": 1}).status_code == 200
        for url in (inv0.url, inv1.url):
            eventually(lambda url=url: get(f"{url}/skus/{SKUS[0]}")["on_hand"] == 24, what=f"{url} folded the marker")
            assert all(get(f"{url}/skus/{s}")["on_hand"] == 23 for s in SKUS[1:]), "a duplicate changed the view"
        live = {p: d["digest"] for url in (inv0.url, inv1.url) for p, d in digests(url).items()}
        assert len(live) == 6

        # rebuilt from the log alone (no snapshot): the same states as a fold without the duplicates
        suite.stop_all()
        shutil.rmtree(data_dir / "i0")
        shutil.rmtree(data_dir / "i1")
        inv0 = suite.start("inventory", instance="0", FLEXCHAIN_DATA_DIR=str(data_dir / "i0"))
        after = eventually(lambda: (d := digests(inv0.url)) and len(d) == 6 and d, what="one instance owns all")
        assert {p: d["digest"] for p, d in after.items()} == live, "the rebuild folded a duplicate"
        assert all(get(f"{inv0.url}/skus/{s}")["on_hand"] == 23 for s in SKUS[1:])
        assert get(f"{inv0.url}/skus/{SKUS[0]}")["on_hand"] == 24
    finally:
        suite.stop_all()
