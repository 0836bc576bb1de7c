#!/usr/bin/env python
"""End-to-end check of the local real Kafka broker (flexchain.tools.broker) + aiokafka transactions.

    .venv/bin/python scripts/check_broker.py

Fetches the Kafka jars into .cache/kafka, formats + starts a fresh broker in .cache/broker-check on
127.0.0.1:19092 (controller 19093), then with aiokafka:
  * creates in.topic / out.topic (3 partitions each) with AIOKafkaAdminClient,
  * produces 100 records to in.topic,
  * runs a transactional consume -> produce loop (send_offsets_to_transaction),
  * verifies out.topic holds exactly those 100 records (read_committed) and the group committed 100,
  * verifies an aborted transaction's records are invisible to read_committed (but were written),
and stops the broker.  Exit code 0 on success.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO = Path(__file__).resolve().parents[1]
try:
    from flexchain.tools import broker
except ImportError:  # not installed in this interpreter: use the source tree
    sys.path.insert(0, str(REPO / "libs"))
    from flexchain.tools import broker

CACHE = REPO / ".cache" / "kafka"
DATA = REPO / ".cache" / "broker-check"
PORT, CONTROLLER_PORT = 19092, 19093
BOOTSTRAP = f"127.0.0.1:{PORT}"

IN_TOPIC, OUT_TOPIC, PARTITIONS = "in.topic", "out.topic", 3
N = 100
GROUP = "check-pipeline"
N_ABORTED, N_AFTER_ABORT = 10, 5

timings: dict[str, float] = {}


@contextmanager
def timed(name: str) -> Iterator[None]:
    t0 = time.monotonic()
    try:
        yield
    finally:
        timings[name] = time.monotonic() - t0
        print(f"  {name:<28} {timings[name]:7.2f}s", flush=True)


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)
    print(f"  OK  {msg}", flush=True)


async def read_all(topic: str, isolation_level: str, expect: int, timeout: float = 20.0) -> list[bytes]:
    """Read ``topic`` from the beginning (no group) until ``expect`` records arrive, then drain briefly."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        isolation_level=isolation_level,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(values) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            values += [m.value for msgs in batch.values() for m in msgs if m.value is not None]
        # make sure nothing *extra* shows up
        for _ in range(3):
            batch = await consumer.getmany(timeout_ms=300)
            values += [m.value for msgs in batch.values() for m in msgs if m.value is not None]
        return values
    finally:
        await consumer.stop()


async def scenario() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        with timed("create topics"):
            await admin.create_topics([NewTopic(IN_TOPIC, PARTITIONS, 1), NewTopic(OUT_TOPIC, PARTITIONS, 1)], timeout_ms=15000)
            # Wait until the broker's metadata lists both topics.  (Leadership is applied to the replica
            # manager a few ms *after* the metadata cache, so the very first produce may still log one
            # retried NotLeaderForPartitionError -- harmless.)
            for _ in range(100):
                md = await admin.describe_topics([IN_TOPIC, OUT_TOPIC])
                if all(t["error_code"] == 0 and len(t["partitions"]) == PARTITIONS for t in md):
                    break
                await asyncio.sleep(0.1)

        with timed(f"produce {N} to {IN_TOPIC}"):
            producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
            await producer.start()
            try:
                for i in range(N):
                    await producer.send(IN_TOPIC, key=f"k{i}".encode(), value=f"v{i}".encode())
                await producer.flush()
            finally:
                await producer.stop()

        with timed("transactional pipeline"):
            consumer = AIOKafkaConsumer(
                IN_TOPIC,
                bootstrap_servers=BOOTSTRAP,
                group_id=GROUP,
                isolation_level="read_committed",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            txn_producer = AIOKafkaProducer(
                bootstrap_servers=BOOTSTRAP,
                transactional_id="check-pipeline-txn",
                enable_idempotence=True,
                acks="all",
            )
            await consumer.start()
            await txn_producer.start()
            processed, txns = 0, 0
            try:
                deadline = time.monotonic() + 60
                while processed < N:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"pipeline processed only {processed}/{N}")
                    batch = await consumer.getmany(timeout_ms=1000, max_records=25)
                    if not batch:
                        continue
                    async with txn_producer.transaction():
                        offsets: dict[TopicPartition, int] = {}
                        for tp, msgs in batch.items():
                            for m in msgs:
                                await txn_producer.send(OUT_TOPIC, key=m.key, value=b"out-" + (m.value or b""))
                            offsets[tp] = msgs[-1].offset + 1
                            processed += len(msgs)
                        await txn_producer.send_offsets_to_transaction(offsets, GROUP)
                    txns += 1
            finally:
                await txn_producer.stop()
                await consumer.stop()
            print(f"  ({processed} records in {txns} transactions)")

        with timed("verify pipeline"):
            out = await read_all(OUT_TOPIC, "read_committed", N)
            expected = {f"out-v{i}".encode() for i in range(N)}
            check(len(out) == N and set(out) == expected, f"{N} records in {OUT_TOPIC} (read_committed)")
            committed = await admin.list_consumer_group_offsets(GROUP)
            total = sum(om.offset for tp, om in committed.items() if tp.topic == IN_TOPIC)
            check(total == N, f"group {GROUP!r} committed offsets total {total} == {N}")

        with timed("verify aborted txn"):
            p2 = AIOKafkaProducer(
                bootstrap_servers=BOOTSTRAP,
                transactional_id="check-abort-txn",
                enable_idempotence=True,
                acks="all",
            )
            await p2.start()
            try:
                await p2.begin_transaction()
                for i in range(N_ABORTED):
                    await p2.send(OUT_TOPIC, key=b"a", value=f"ABORTED-{i}".encode())
                await p2.flush()  # really written to the log before we abort
                await p2.abort_transaction()
                async with p2.transaction():  # a later committed txn, so the LSO moves past the aborted one
                    for i in range(N_AFTER_ABORT):
                        await p2.send(OUT_TOPIC, key=b"c", value=f"AFTER-{i}".encode())
            finally:
                await p2.stop()
            rc = await read_all(OUT_TOPIC, "read_committed", N + N_AFTER_ABORT)
            check(not any(v.startswith(b"ABORTED-") for v in rc), "aborted records invisible to read_committed")
            check(
                len(rc) == N + N_AFTER_ABORT and sum(v.startswith(b"AFTER-") for v in rc) == N_AFTER_ABORT,
                f"read_committed sees {N} + {N_AFTER_ABORT} committed records after the abort ({len(rc)})",
            )
            ru = await read_all(OUT_TOPIC, "read_uncommitted", N + N_ABORTED + N_AFTER_ABORT)
            check(
                sum(v.startswith(b"ABORTED-") for v in ru) == N_ABORTED,
                f"read_uncommitted does see the {N_ABORTED} aborted records (they were written)",
            )
    finally:
        await admin.close()


def main() -> int:
    import argparse

    import aiokafka

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="server.properties override")
    args = ap.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)

    print(f"Kafka {broker.KAFKA_VERSION} / aiokafka {aiokafka.__version__}", flush=True)
    cfg = broker.BrokerConfig(data_dir=DATA, port=PORT, controller_port=CONTROLLER_PORT, overrides=overrides)
    broker.stop(cfg)  # leftover from an interrupted run
    shutil.rmtree(DATA, ignore_errors=True)  # always start from a fresh cluster
    ok = False
    try:
        with timed("jar fetch (ensure_jars)"):
            libs = broker.ensure_jars(CACHE)
        with timed("format storage"):
            broker.format_storage(cfg, libs)
        with timed("start -> ready"):
            pid = broker.start(cfg, libs)
            broker.wait_ready(cfg.bootstrap, timeout=90, cfg=cfg)
        print(f"  broker pid {pid} at {cfg.bootstrap}; logs in {cfg.logs}", flush=True)
        asyncio.run(asyncio.wait_for(scenario(), timeout=180))
        ok = True
    finally:
        with timed("stop"):
            stopped = broker.stop(cfg)
        print(f"  broker stopped: {stopped}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
