#!/usr/bin/env python
"""flexchain benchmark: the inventory service against a raw aiokafka passthrough, on a real Kafka.

One run, one machine, one broker, the same record sizes:

1. **B** — raw aiokafka passthrough (consumer group → producer → commit per batch), with the same
   client settings as :mod:`flexchain.kafka`; **B_txn** — the same, one transaction per batch.
2. **S** — the inventory service (a child process) working through a backlog of ReserveStock
   commands, exactly-once; sustained rate from its consumer group's committed offsets.
3. **Rebuild** — the service folding M events of its own log at start, against one raw consumer
   reading the same log.
4. **Latency** — command → event through the inventory processor at half of S; the whole order
   saga (5 hops over 2 services) at a modest rate.
5. **Peers** (``--peers``) — the same job on Kafka Streams, quixstreams and faust-streaming
   (bench/peers/), each measured as S; and, for S and each peer, a kill -9 mid-backlog and a restart:
   commands answered twice or never, read read_committed.

Starts its own broker (fresh dir under .cache/bench-broker, free ports) unless
KAFKA_BOOTSTRAP_SERVERS is set. Prints a table and one ``BENCH_JSON {...}`` line.
Usage: ``.venv/bin/python bench/run.py [--records N] [--events M] [--latency-seconds S] [--quick] [--peers [LIST]]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import random
import shutil
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiokafka  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402
from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402
from prometheus_client.samples import Sample  # noqa: E402

from bench.peers import harness as peers  # noqa: E402
from flexchain import kafka  # noqa: E402
from flexchain.auth import bearer, ensure_local_auth  # noqa: E402
from flexchain.messages import Envelope, Enveloped, Message, derived_id  # noqa: E402
from flexchain.procs import ServiceProcess, free_port  # noqa: E402
from flexchain.procs import free_port_pair as free_pair  # noqa: E402
from flexchain.serde import Codec, DecodeError  # noqa: E402
from flexchain.settings import PROJECT_ROOT, Settings  # noqa: E402
from flexchain.ticks import MESSAGES as CLOCK_MESSAGES  # noqa: E402
from flexchain.tools import broker as kbroker  # noqa: E402
from flexchain.tools.scrape import metric_sum, samples  # noqa: E402
from services.inventory.messages import MESSAGES as INVENTORY_MESSAGES  # noqa: E402
from services.inventory.messages import (  # noqa: E402
    Allocation,
    ReceiveStock,
    RegisterSku,
    ReservationCommitted,
    ReservationRejected,
    ReserveStock,
    SkuRegistered,
    StockReceived,
    StockReserved,
)
from services.order.messages import MESSAGES as ORDER_MESSAGES  # noqa: E402
from services.order.messages import OrderLine, PlaceOrder  # noqa: E402

CODEC = Codec([*CLOCK_MESSAGES, *ORDER_MESSAGES, *INVENTORY_MESSAGES])  # the two services the bench runs
CACHE = PROJECT_ROOT / ".cache"
BIG_QTY = 10**12  # stock per sku: reservations never run out, no low-stock alerts
Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


def say(text: str = "") -> None:
    print(text, flush=True)


class ClientLog(logging.Handler):
    """aiokafka's warnings of the bench process go to a file (not the table); retries are counted."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.retries = 0
        self.file: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if "NotEnoughReplicas" in record.getMessage():
            self.retries += 1
        if self.file is not None:
            self.file.emit(record)

    def install(self, path: Path) -> None:
        self.file = logging.FileHandler(path)
        self.file.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        log = logging.getLogger("aiokafka")
        log.setLevel(logging.WARNING)
        log.propagate = False
        log.addHandler(self)


CLIENT_LOG = ClientLog()
RETRY_MARK = "NotEnoughReplicas"  # a transactional produce the broker asked to retry (aiokafka logs each)


def service_retries(proc: ServiceProcess) -> int:
    try:
        return proc.log_path.read_text(errors="replace").count(RETRY_MARK)
    except OSError:
        return 0


# --- records -----------------------------------------------------------------------------------


def envelope_for(cmd: Message, command_id: str | None = None, at: int = 0, producer: str = "bench") -> Envelope:
    """As tests/support.envelope_for: what a client puts around a command (a producer ending in
    `-router` is a router's: its command's body is not digested)."""
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


def command_record(cmd: Message, command_id: str | None = None) -> tuple[str, Record]:
    env = envelope_for(cmd, command_id, int(time.time() * 1000))
    name = type(cmd).__name__
    return env.event_id, (cmd.key.encode(), CODEC.encode(Enveloped(envelope=env, message=cmd)), [("type", name.encode())])


def sku_names(n: int) -> list[str]:
    return [f"sku-{i:05d}" for i in range(n)]


def setup_commands(skus: list[str]) -> list[Record]:
    out = []
    for sku in skus:
        out.append(command_record(RegisterSku(sku=sku, name=f"bench {sku}"))[1])
        out.append(command_record(ReceiveStock(sku=sku, warehouse="w1", qty=BIG_QTY, reference="bench"))[1])
    return out


def order_id(tag: str, i: int) -> str:
    return f"o-{tag}-{i:09d}"


def reserve_commands(n: int, skus: list[str], tag: str, rng: random.Random) -> list[tuple[str, Record]]:
    """n ReserveStock commands (unique order ids of one width, random skus, qty 1): all the same size."""
    return [command_record(ReserveStock(sku=rng.choice(skus), order_id=order_id(tag, i), qty=1)) for i in range(n)]


def log_events(m: int, skus: list[str], rng: random.Random) -> Iterator[Record]:
    """M events of inventory's own log: per sku registered + big receipt, then per order a
    reservation and its commit (so the state stays small). Envelopes as the processor writes them."""
    versions = dict.fromkeys(skus, 0)
    t0 = int(time.time() * 1000)

    def ev(msg: Message, cause: str, corr: str, i: int) -> Record:
        agg = msg.key
        versions[agg] += 1
        name = type(msg).__name__
        env = Envelope(
            event_id=derived_id(cause, 0),
            event_type=name,
            aggregate_id=agg,
            aggregate_version=versions[agg],
            business_time=t0 + i,
            correlation_id=corr,
            causation_id=cause,
            producer="inventory",
        )
        return agg.encode(), CODEC.encode(Enveloped(envelope=env, message=msg)), [("type", name.encode())]

    i = 0
    for sku in skus:
        for msg in (
            SkuRegistered(sku=sku, name=f"bench {sku}", is_gift=False, low_stock_floor=50),
            StockReceived(sku=sku, warehouse="w1", qty=BIG_QTY, reference="bench"),
        ):
            if i >= m:
                return
            yield ev(msg, str(uuid.uuid4()), sku, i)
            i += 1
    order = 0
    while i < m:
        sku = rng.choice(skus)
        oid = f"o-rb-{order:09d}"
        alloc = [Allocation(warehouse="w1", qty=1)]
        yield ev(StockReserved(sku=sku, order_id=oid, qty=1, allocations=alloc), str(uuid.uuid4()), oid, i)
        i += 1
        if i < m:
            yield ev(ReservationCommitted(sku=sku, order_id=oid, allocations=alloc), str(uuid.uuid4()), oid, i)
            i += 1
        order += 1


# --- Kafka helpers -----------------------------------------------------------------------------


def settings(bootstrap: str, prefix: str = "") -> Settings:
    return Settings(kafka_bootstrap_servers=bootstrap, flexchain_topic_prefix=prefix)


def service_topics(s: Settings) -> list[str]:
    base = [*kafka.topic_names("inventory").values(), *kafka.topic_names("order").values(), "clock.ticks"]
    return [s.name(t) for t in base]


async def produce_all(s: Settings, topic: str, records: Iterable[Record]) -> tuple[int, float]:
    """Keyed records with the default partitioner and flexchain's producer settings; (count, seconds)."""
    producer = kafka.producer(s)
    await producer.start()
    n = 0
    try:
        t0 = time.perf_counter()
        futs = []
        for key, value, headers in records:
            futs.append(await producer.send(topic, value, key=key, headers=headers))
            n += 1
            if len(futs) >= 20_000:
                await asyncio.gather(*futs)
                futs.clear()
        await asyncio.gather(*futs)
        return n, time.perf_counter() - t0
    finally:
        await producer.stop()


async def partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic) or set()
    if not parts:
        raise RuntimeError(f"topic {topic} has no partitions")
    return [TopicPartition(topic, p) for p in sorted(parts)]


async def group_committed(admin: Any, group: str, topic: str) -> int:
    offsets = await admin.list_consumer_group_offsets(group)
    return sum(max(0, om.offset) for tp, om in offsets.items() if tp.topic == topic)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def latency_summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50_ms": pct(ms, 0.50), "p99_ms": pct(ms, 0.99), "max_ms": max(ms) if ms else float("nan")}


# --- processes ---------------------------------------------------------------------------------


class RssSampler:
    """Peak resident set size of some processes, sampled every `interval` seconds in a thread."""

    def __init__(self, pids: dict[str, int], interval: float = 0.1) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = dict.fromkeys(pids, 0)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, p in self.procs.items():
                with contextlib.suppress(psutil.Error):
                    self.peak[name] = max(self.peak[name], p.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mib(self, name: str) -> float:
        return round(self.peak[name] / 2**20, 1)


#: the local broker of each bench run (bootstrap → its JVM's pid); an external broker is not here
BROKER_PIDS: dict[str, int] = {}


class CpuMeter:
    """CPU time (user + system) some processes used while inside, in cores (CPU-seconds per wall
    second): how much of the machine the broker and the services took during a phase. On 2 cores the
    broker's share is what limits the transactional figures (README "Benchmarks")."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items() if pid is not None}
        self.used: dict[str, float] = {}
        self._start: dict[str, float] = {}
        self._t0 = 0.0
        self.seconds = 0.0

    @staticmethod
    def _cpu(p: psutil.Process) -> float:
        t = p.cpu_times()
        return float(t.user + t.system)

    def __enter__(self) -> CpuMeter:
        self._t0 = time.monotonic()
        for name, p in self.procs.items():
            with contextlib.suppress(psutil.Error):
                self._start[name] = self._cpu(p)
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self._t0
        for name, p in self.procs.items():
            with contextlib.suppress(psutil.Error):
                self.used[name] = self._cpu(p) - self._start[name]

    def cores(self) -> dict[str, float]:
        return {name: round(used / self.seconds, 2) for name, used in self.used.items()} if self.seconds else {}


def broker_meter(bootstrap: str) -> CpuMeter:
    return CpuMeter({"broker": BROKER_PIDS.get(bootstrap)})


async def warm_broker(s: Settings, seconds: float, producers: int = 6) -> dict[str, Any]:
    """Run the broker's transactional and read_committed paths for `seconds` before anything is
    measured. A fresh broker JVM spends minutes compiling its hot paths (C2): on 2 cores that took up
    to half of the broker's CPU, so whichever phase came first (B) ran on a slower broker than the
    later ones. Transactions of one record with their offsets (as a loop's, at a low rate) from
    `producers` transactional producers, read by one read_committed consumer. Returns transactions/s
    and the broker's cores in the first and the last third."""
    topic = s.name("warmup")
    await kafka.ensure_topics(s, [topic], partitions=6)
    stop = asyncio.Event()
    done = [0] * producers

    async def txns(i: int) -> None:
        producer = kafka.producer(s, transactional_id=s.name(f"warmup-{i}"))
        await producer.start()
        try:
            while not stop.is_set():
                async with producer.transaction():
                    await producer.send(topic, b"w" * 200, key=str(done[i]).encode(), partition=i % 6)
                    await producer.send_offsets_to_transaction({TopicPartition(topic, i % 6): (done[i], "")}, s.name("warmup"))
                done[i] += 1
        finally:
            await producer.stop()

    async def read() -> None:
        consumer = kafka.consumer(s, topic, group_id=None)
        await consumer.start()
        try:
            while not stop.is_set():
                await consumer.getmany(timeout_ms=100)
        finally:
            await consumer.stop()

    tasks = [asyncio.create_task(txns(i)) for i in range(producers)] + [asyncio.create_task(read())]
    thirds: list[dict[str, Any]] = []
    try:
        for _ in range(3):
            before = sum(done)
            with broker_meter(s.kafka_bootstrap_servers) as meter:
                await asyncio.sleep(seconds / 3)
            rate = round((sum(done) - before) / meter.seconds, 1)
            thirds.append({"txn_per_s": rate, "broker_cores": meter.cores().get("broker")})
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    return {"seconds": seconds, "first": thirds[0], "last": thirds[-1]}


async def warm_up(s: Settings, seconds: float, label: str) -> dict[str, Any]:
    """`warm_broker`, saying what it does and what it saw."""
    say(f"{label} the broker's transactional and read_committed paths for {seconds:.0f} s ...")
    w = await warm_broker(s, seconds)
    say(
        f"      {w['first']['txn_per_s']:,.0f} → {w['last']['txn_per_s']:,.0f} transactions/s, broker "
        f"{w['first']['broker_cores']} → {w['last']['broker_cores']} cores (first → last third)"
    )
    return w


@dataclass
class Services:
    """Service child processes of one bench phase, isolated by topic prefix, data dir and port."""

    bootstrap: str
    prefix: str
    root: Path
    procs: list[ServiceProcess] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # more settings for every service

    def start(self, service: str) -> ServiceProcess:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "FLEXCHAIN_TOPIC_PREFIX": self.prefix,
            "FLEXCHAIN_DATA_DIR": str(self.root / "data"),
            "FLEXCHAIN_LOG_LEVEL": "INFO",
            **self.env,
        }
        proc = ServiceProcess(service, env, self.root / "logs", free_port()).start()
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in self.procs:
            p.stop()
        self.procs.clear()


class Child(Protocol):
    """A child process the bench watches: a service (ServiceProcess) or a peer (peers.PeerProcess)."""

    service: str

    @property
    def running(self) -> bool: ...

    def kill9(self) -> None: ...

    def tail(self, lines: int = 30) -> str: ...


async def wait_ready(
    proc: ServiceProcess, timeout: float, interval: float = 0.1, clock: Callable[[], float] = time.monotonic
) -> float:
    """Poll /ready until 200; the time (`clock`: monotonic, or `time.time` to compare with log lines) it was first seen ready."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5, headers=bearer()) as http:
        while time.monotonic() < deadline:
            if not proc.running:
                raise RuntimeError(f"{proc.service} exited: {proc.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(proc.url + "/ready")).status_code == 200:
                    return clock()
            await asyncio.sleep(interval)
    raise TimeoutError(f"{proc.service} not ready after {timeout:.0f}s: {proc.tail()}")


async def scrape(proc: ServiceProcess) -> list[Sample]:
    """The samples of the service's /metrics (read them with `flexchain.tools.scrape.metric_sum`)."""
    async with httpx.AsyncClient(timeout=10, headers=bearer()) as http:
        return samples((await http.get(proc.url + "/metrics")).text)


# --- 1. the raw passthrough baseline -----------------------------------------------------------


async def passthrough(s: Settings, src: str, dst: str, group: str, n: int, batch_max: int, txn: bool) -> dict[str, Any]:
    """Consume `n` records with a consumer group, produce each to `dst`, commit per batch.

    Plain: send every record, then commit the consumer's offsets (acks are collected at the end; the
    clock stops when the last one is acknowledged). Transactional: one transaction per batch with
    the input offsets in it — the service's loop without decode, decide and encode."""
    consumer = kafka.consumer(s, group_id=group, max_poll_interval_ms=600_000)
    producer = kafka.producer(s, transactional_id=f"{group}-txn") if txn else kafka.producer(s)
    await producer.start()
    await consumer.start()
    consumer.subscribe([src])
    done = batches = 0
    first: float | None = None
    futs: list[asyncio.Future[Any]] = []
    deadline = time.monotonic() + 120 + n / 200
    try:
        while done < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"passthrough {group}: {done}/{n} records")
            batch = await consumer.getmany(timeout_ms=200, max_records=batch_max)
            if not batch:
                continue
            if first is None:
                first = time.perf_counter()
            if txn:
                offsets = {}
                async with producer.transaction():
                    for tp, recs in batch.items():
                        for r in recs:
                            await producer.send(dst, r.value, key=r.key, headers=list(r.headers))
                        offsets[tp] = recs[-1].offset + 1
                    await producer.send_offsets_to_transaction(offsets, group)
            else:
                for recs in batch.values():
                    for r in recs:
                        futs.append(await producer.send(dst, r.value, key=r.key, headers=list(r.headers)))
                await consumer.commit()
            done += sum(len(r) for r in batch.values())
            batches += 1
        if futs:
            await asyncio.gather(*futs)
        assert first is not None
        elapsed = time.perf_counter() - first
    finally:
        await consumer.stop()
        await producer.stop()
    return {"records": done, "seconds": elapsed, "rate": done / elapsed, "batches": batches}


# --- 2. the service working through a backlog --------------------------------------------------


async def observe_backlog(
    s: Settings, proc: Child, group: str, topic: str, total: int, interval: float, base: int = 0
) -> dict[str, Any]:
    """Poll the group's committed offsets (minus `base`) until `total`; rate between interior observations."""
    admin = kafka.admin(s)
    await admin.start()
    obs: list[tuple[float, float]] = []
    deadline = time.monotonic() + 120 + total / 100
    try:
        while True:
            if not proc.running:
                raise RuntimeError(f"service exited during the throughput run: {proc.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"service processed {obs[-1][1] if obs else 0}/{total} commands: {proc.tail()}")
            with contextlib.suppress(Exception):  # the group may not exist yet
                c = await group_committed(admin, group, topic) - base
                obs.append((time.perf_counter(), c))
                if c >= total:
                    break
            await asyncio.sleep(interval)
    finally:
        await admin.close()
    return progress_rate(obs, total)


def progress_rate(obs: Sequence[tuple[float, float]], total: float) -> dict[str, Any]:
    """The sustained rate from (time, records done) observations, start-up and tail left out.

    Both ends are real observations of partial progress (no rounding up to the poll interval). With
    none in between (a tiny run, or a peer that commits seconds apart) it falls back to the first
    observation of completion, or — when one commit took it from nothing to all — from the first zero
    seen, start-up included; `coarse` says so."""
    started = [o for o in obs if o[1] > 0]
    first = started[0]
    interior = [o for o in started if first[1] < o[1] < total]
    if interior:
        last = interior[-1]
    elif first[1] < total:
        last = next((o for o in started if o[1] >= total), started[-1])
    else:
        last = first
        zeros = [o for o in obs if o[1] == 0]
        first = zeros[0] if zeros else first
    elapsed = last[0] - first[0]
    processed = last[1] - first[1]
    return {
        "rate": processed / elapsed if elapsed > 0 else float("nan"),
        "records": processed,
        "seconds": elapsed,
        "observations": len(obs),
        "total_seconds": obs[-1][0] - started[0][0],
        "coarse": not interior,
    }


# --- 3. rebuild against a raw consumer ---------------------------------------------------------


async def raw_consume(s: Settings, topic: str, decode: bool = False) -> dict[str, Any]:
    """One consumer as the rebuild's (read_committed, no group, same fetch settings): assign every
    partition, seek to the beginning, getmany until the end offsets. Counts records; with `decode`
    (informational only) also runs the project's Codec.decode on each."""
    consumer = kafka.consumer(s, group_id=None, max_poll_records=5000)
    await consumer.start()
    try:
        tps = await partitions(consumer, topic)
        consumer.assign(tps)
        t0 = time.perf_counter()
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        n = 0
        while remaining:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, recs in batch.items():
                n += len(recs)
                if decode:
                    for rec in recs:
                        CODEC.decode(rec.value)
                if recs[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
            if not batch:
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        elapsed = time.perf_counter() - t0
    finally:
        await consumer.stop()
    return {"records": n, "seconds": elapsed, "rate": n / elapsed}


# --- 4. latency --------------------------------------------------------------------------------


async def paced(
    s: Settings,
    records: list[tuple[str, Record]],
    topic: str,
    rate: float,
    seconds: float,
    watch: list[str],
    match: Any,
    grace: float = 15.0,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Send `records` at `rate`/s for `seconds`, stamping each just before produce, while one
    read_committed consumer on `watch` (`watching`) hands every record to
    `match(topic, item, now, sent, pending)`, which records what it recognises and discards
    finished ids from `pending`. Returns (summary, send stamps by id)."""
    sent: dict[str, float] = {}
    pending: set[str] = set()
    async with watching(s, watch, lambda topic, item, now: match(topic, item, now, sent, pending)):
        res = await _send_paced(s, records, topic, rate, seconds, grace, sent, pending)
    return res, sent


async def _send_paced(
    s: Settings,
    records: list[tuple[str, Record]],
    topic: str,
    rate: float,
    seconds: float,
    grace: float,
    sent: dict[str, float],
    pending: set[str],
) -> dict[str, Any]:
    producer = kafka.producer(s)
    await producer.start()
    i = 0
    try:
        t0 = time.perf_counter()
        while i < len(records):
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
            due = min(len(records), int(rate * elapsed) + 1)
            while i < due:
                rid, (key, value, headers) = records[i]
                pending.add(rid)
                sent[rid] = time.perf_counter()
                await producer.send(topic, value, key=key, headers=headers)
                i += 1
            await asyncio.sleep(0.002)
        send_seconds = time.perf_counter() - t0
        await producer.flush()
        deadline = time.monotonic() + grace
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()
    return {"sent": i, "achieved_rate": i / send_seconds, "missing": len(pending)}


@contextlib.asynccontextmanager
async def watching(
    s: Settings,
    topics: list[str],
    match: Callable[[str, Enveloped, float], None],
    types: frozenset[bytes] | None = None,
    codec: Codec = CODEC,
) -> AsyncIterator[None]:
    """While inside: one read_committed consumer on `topics` (positioned at their ends first) hands
    every record — only those whose `type` header is in `types`, if given — decoded, with the
    moment it was consumed (`time.perf_counter()`), to `match(topic, item, now)`."""
    consumer = kafka.consumer(s, group_id=None)
    await consumer.start()
    stopping = asyncio.Event()
    try:
        tps = [tp for t in topics for tp in await partitions(consumer, t)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)

        async def consume() -> None:
            while not stopping.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                now = time.perf_counter()
                for recs in batch.values():
                    for rec in recs:
                        if types is None or kafka.header(rec, "type") in types:
                            match(rec.topic, codec.decode(rec.value), now)

        reader = asyncio.create_task(consume())
        try:
            yield
        finally:
            stopping.set()
            await reader
    finally:
        await consumer.stop()


async def hop_latency(
    s: Settings,
    skus: list[str],
    rate: float,
    seconds: float,
    rng: random.Random,
    source: str | None = None,
    sink: str | None = None,
) -> dict[str, Any]:
    """ReserveStock produced → its StockReserved (causation_id = command id) consumed read_committed;
    into the service's command topic and out of its event topic unless a peer's `source`/`sink` are given.
    The order ids of the commands sent are in the answer's "order_ids" (pop it before reporting)."""
    tag = "lat" + uuid.uuid4().hex[:6]
    records = reserve_commands(int(rate * seconds) + 10, skus, tag, rng)
    lat: list[float] = []

    def match(topic: str, item: Enveloped, now: float, sent: dict[str, float], pending: set[str]) -> None:
        cause = item.envelope.causation_id
        if cause in pending and item.envelope.event_type == "StockReserved":
            pending.discard(cause)
            lat.append(now - sent[cause])

    source = source or s.name("inventory.commands")
    res, _ = await paced(s, records, source, rate, seconds, [sink or s.name("inventory.events")], match)
    orders = [order_id(tag, i) for i in range(res["sent"])]
    return {**res, "target_rate": rate, **latency_summary(lat), "order_ids": orders}


SAGA_STAGES = (  # (topic, record type, who wrote it): the five hops of an order's confirmation
    ("order.events", "OrderPlaced", "order processor"),
    ("inventory.commands", "ReserveStock", "inventory router"),
    ("inventory.events", "StockReserved", "inventory processor"),
    ("order.commands", "RecordLineReservation", "order router"),
    ("order.events", "OrderConfirmed", "order processor"),
)


async def saga_latency(s: Settings, skus: list[str], rate: float, seconds: float, rng: random.Random) -> dict[str, Any]:
    """PlaceOrder (one line) produced → OrderConfirmed consumed; each hop's record seen on its topic."""
    tag = uuid.uuid4().hex[:6]
    records = []
    for i in range(int(rate * seconds) + 10):
        oid = f"so-{tag}-{i:07d}"
        records.append(
            (
                oid,
                command_record(
                    PlaceOrder(
                        order_id=oid,
                        member_id="m-bench",
                        channel="live",
                        lines=[OrderLine(sku=rng.choice(skus), qty=1, unit_price=1000)],
                    )
                )[1],
            )
        )
    stage_of = {(s.name(t), etype): k for k, (t, etype, _) in enumerate(SAGA_STAGES)}
    seen: dict[str, list[float | None]] = {}
    outcomes = {"OrderConfirmed": 0, "OrderRejected": 0}

    def match(topic: str, item: Enveloped, now: float, sent: dict[str, float], pending: set[str]) -> None:
        oid = getattr(item.message, "order_id", None)
        if oid not in sent:
            return
        etype = item.envelope.event_type
        k = stage_of.get((topic, etype))
        if k is not None:
            stamps = seen.setdefault(oid, [None] * len(SAGA_STAGES))
            if stamps[k] is None:
                stamps[k] = now
        if etype in outcomes:
            outcomes[etype] += 1
            pending.discard(oid)

    watch = list(dict.fromkeys(s.name(t) for t, _, _ in SAGA_STAGES))
    res, sent = await paced(s, records, s.name("order.commands"), rate, seconds, watch, match)
    hops: list[list[float]] = [[] for _ in SAGA_STAGES]
    end_to_end: list[float] = []
    for oid, stamps in seen.items():
        start = sent[oid]
        if stamps[-1] is not None:
            end_to_end.append(stamps[-1] - start)
        prev: float | None = start
        for k, t in enumerate(stamps):
            if t is not None and prev is not None:
                hops[k].append(t - prev)
            prev = t
    return {
        **res,
        "target_rate": rate,
        "outcomes": outcomes,
        **latency_summary(end_to_end),
        "hops": [{"hop": SAGA_STAGES[k][2], "writes": SAGA_STAGES[k][1], **latency_summary(v)} for k, v in enumerate(hops)],
    }


# --- 5. peers: the same job on other stream processors, and the kill -9 check ------------------

KILL_SECONDS = 8.0  # the kill -9 batch: about this many seconds of the target's own throughput
ANSWER_KINDS = (b"StockReserved", b"ReservationRejected")


async def topic_end(s: Settings, topic: str) -> int:
    """Sum of the topic's end offsets (its records, for a topic written without transactions)."""
    consumer = kafka.consumer(s, group_id=None)
    await consumer.start()
    try:
        tps = await partitions(consumer, topic)
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def wait_committed(
    s: Settings, proc: Child, group: str, topic: str, target: int, timeout: float, interval: float = 0.1
) -> list[tuple[float, int]]:
    """Poll the group's committed offsets on `topic` until they reach `target`; the observations
    (monotonic time, committed). Raises if the process exits or the timeout passes."""
    admin = kafka.admin(s)
    await admin.start()
    obs: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not proc.running:
                raise RuntimeError(f"{proc.service} exited: {proc.tail(5)}")
            with contextlib.suppress(Exception):  # the group may not exist yet
                obs.append((time.monotonic(), await group_committed(admin, group, topic)))
                if obs[-1][1] >= target:
                    return obs
            if time.monotonic() > deadline:
                done = obs[-1][1] if obs else 0
                raise TimeoutError(f"{proc.service}: {done}/{target} committed after {timeout:.0f}s")
            await asyncio.sleep(interval)
    finally:
        await admin.close()


async def read_answers(s: Settings, topic: str, timeout: float = 600.0) -> tuple[list[str], dict[str, int]]:
    """Every record of `topic` read_committed from the beginning to the end offsets; the order ids of
    the StockReserved / ReservationRejected among them (decoded with flexchain's Codec). The bench's
    skus never run out, so a rejection means a peer lost its state: they are counted too."""
    consumer = kafka.consumer(s, group_id=None, max_poll_records=5000)
    await consumer.start()
    answered: list[str] = []
    n = undecodable = rejected = 0
    deadline = time.monotonic() + timeout
    try:
        tps = await partitions(consumer, topic)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: {n} records after {timeout:.0f}s")
            batch = await consumer.getmany(timeout_ms=500)
            for tp, recs in batch.items():
                for rec in recs:
                    n += 1
                    kind = kafka.header(rec, "type")
                    if kind is not None and kind not in ANSWER_KINDS:
                        continue
                    try:
                        msg = CODEC.decode(rec.value).message
                    except DecodeError:
                        undecodable += 1
                        continue
                    if isinstance(msg, StockReserved | ReservationRejected):
                        answered.append(msg.order_id)
                        rejected += isinstance(msg, ReservationRejected)
                if recs and recs[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
            if not batch:
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()
    return answered, {"records": n, "undecodable": undecodable, "rejected": rejected}


async def open_transactions(s: Settings, topic: str) -> int:
    """Records of `topic` past its last stable offset: in transactions neither committed nor aborted yet."""
    lso = kafka.consumer(s, group_id=None)
    hw = kafka.consumer(s, group_id=None, isolation_level="read_uncommitted")
    await lso.start()
    await hw.start()
    try:
        tps = await partitions(lso, topic)
        stable, high = await lso.end_offsets(tps), await hw.end_offsets(tps)
        return sum(high[tp] - stable[tp] for tp in tps)
    finally:
        await lso.stop()
        await hw.stop()


async def output_audit(s: Settings, topic: str, committed_records: int) -> dict[str, Any]:
    """Are the topic's records written in transactions? Offsets that hold no record read_uncommitted
    are control records (transaction markers); records read_uncommitted but not read_committed were
    aborted."""
    consumer = kafka.consumer(s, group_id=None, isolation_level="read_uncommitted", max_poll_records=5000)
    await consumer.start()
    n = 0
    try:
        tps = await partitions(consumer, topic)
        consumer.assign(tps)
        begins, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if ends[tp] > begins[tp]}
        while remaining:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, recs in batch.items():
                n += len(recs)
                if recs and recs[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
            if not batch:
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        span = sum(ends[tp] - begins[tp] for tp in tps)
    finally:
        await consumer.stop()
    markers = span - n
    return {
        "offsets": span,
        "records_read_uncommitted": n,
        "records_read_committed": committed_records,
        "control_markers": markers,
        "aborted_records": n - committed_records,
        "transactional": markers > 0,
    }


async def crash_check(
    s: Settings,
    proc: Child,
    restart: Any,
    *,
    group: str,
    source: str,
    sink: str,
    skus: list[str],
    rng: random.Random,
    rate: float,
    expected: list[str],
    kill_records: int | None,
) -> tuple[Child, dict[str, Any]]:
    """Once `proc` has worked off its input: a batch of K ReserveStock commands, kill -9 of the
    process when a quarter of them is committed, `restart()` (the new process), wait until every
    command is committed, then read `sink` read_committed: every ReserveStock ever sent to `source`
    (`expected` + the batch) must be answered exactly once. Returns the running process and the counts."""
    end = await topic_end(s, source)
    await wait_committed(s, proc, group, source, end, timeout=180 + end / 100)
    k = kill_records or max(2000, min(100_000, int(rate * KILL_SECONDS))) if rate > 0 else 2000
    tag = "kill" + uuid.uuid4().hex[:6]
    watch = kafka.consumer(s, group_id=None, isolation_level="read_uncommitted")
    await watch.start()
    batch = [r for _, r in reserve_commands(k, skus, tag, rng)]
    producing: asyncio.Task[tuple[int, float]] | None = None
    try:  # the kill comes when a quarter of the batch's answers are in the sink, committed or not
        tps = await partitions(watch, sink)
        written = sum((await watch.end_offsets(tps)).values())
        producing = asyncio.create_task(produce_all(s, source, batch))
        deadline = time.monotonic() + 180 + k / 20
        while sum((await watch.end_offsets(tps)).values()) - written < k // 4:
            if not proc.running:
                raise RuntimeError(f"{proc.service} exited: {proc.tail(5)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{proc.service}: a quarter of the kill batch not answered after {180 + k / 20:.0f}s")
            if producing.done():
                producing.result()  # raises if producing failed
            await asyncio.sleep(0.02)
        proc.kill9()
        killed = time.monotonic()
        await producing
    finally:
        if producing is not None and not producing.done():
            producing.cancel()
            with contextlib.suppress(BaseException):
                await producing
        await watch.stop()
    admin = kafka.admin(s)
    await admin.start()
    try:
        at_kill = await group_committed(admin, group, source) - end
    finally:
        await admin.close()
    proc = restart()
    restarted = time.monotonic()
    obs = await wait_committed(s, proc, group, source, end + k, timeout=240 + k / 20)
    resumed = next((t for t, c in obs if c - end > at_kill), obs[-1][0])
    finished = time.monotonic()
    waited = 0.0  # a transaction the killed process left open holds back read_committed readers until it is aborted
    while await open_transactions(s, sink) and waited < 180:
        await asyncio.sleep(1.0)
        waited = time.monotonic() - finished
    ids = [*expected, *(order_id(tag, i) for i in range(k))]
    for attempt in range(5):  # without transactions, answers may land after their offsets are committed
        answered, stats = await read_answers(s, sink)
        counts = peers.count_answers(ids, answered)
        if counts["never"] == 0 or attempt == 4:
            break
        await asyncio.sleep(2.0)
    return proc, {
        "batch": k,
        "committed_at_kill": at_kill,
        "mid_stream": 0 <= at_kill < k,
        "restart_to_progress_s": resumed - restarted,
        "restart_to_done_s": finished - restarted,
        "kill_to_done_s": finished - killed,
        "open_transaction_wait_s": waited,
        **counts,
        "rejected": stats["rejected"],
        "undecodable": stats["undecodable"],
        "output": await output_audit(s, sink, stats["records"]),
    }


async def peer_run(
    args: argparse.Namespace,
    name: str,
    argv: list[str],
    s: Settings,
    work: Path,
    skus: list[str],
    setup: list[Record],
    records: list[tuple[str, Record]],
    s_rate: float,
    rng: random.Random,
    res: dict[str, Any],
) -> None:
    """One peer through the S run's steps, in `res` as it goes: backlog → throughput and peak RSS,
    hop latency at ½ S's rate, then the kill -9 check."""
    peer = peers.PEERS[name]
    source, sink, group = s.name(f"peer-{name}.in"), s.name(f"peer-{name}.out"), s.name(f"peer-{name}")
    await kafka.ensure_topics(s, [source, sink])
    total, _ = await produce_all(s, source, [*setup, *(r for _, r in records)])
    config = peers.write_config(
        work / name / "config.json",
        peer=name,
        codec=CODEC,
        bootstrap=s.kafka_bootstrap_servers,
        group=group,
        source=source,
        sink=sink,
        state_dir=work / name / "state",
        partitions=s.flexchain_partitions,
        replication_factor=s.flexchain_replication_factor,
        commit_interval_ms=args.peer_commit_ms,
    )
    res["commit_interval_ms"] = args.peer_commit_ms or peer.commit_default_ms
    instances: list[peers.PeerProcess] = []

    def start() -> peers.PeerProcess:
        proc = peers.PeerProcess(name, [*argv, str(config)], work / "logs", len(instances)).start()
        instances.append(proc)
        return proc

    try:
        res["stage"] = "throughput"
        proc: Child = start()
        pid = instances[-1].proc.pid if instances[-1].proc else 0
        with RssSampler({name: pid}) as rss:
            res.update(await observe_backlog(s, proc, group, source, total, args.poll))
        res["peak_rss_mib"] = rss.mib(name)
        say(f"      {name:<8} {res['rate']:,.0f} commands/s (peak RSS {res['peak_rss_mib']} MiB)")
        res["stage"] = "hop latency"
        await wait_committed(s, proc, group, source, total, timeout=120)
        hop = await hop_latency(s, skus, 0.5 * s_rate, args.latency_seconds, rng, source=source, sink=sink)
        expected = [*(order_id(res["tag"], i) for i in range(len(records))), *hop.pop("order_ids")]
        res["hop"] = hop
        say(f"      {name:<8} hop p50 {hop['p50_ms']:.1f} / p99 {hop['p99_ms']:.1f} ms @ {hop['achieved_rate']:,.0f}/s")
        res["stage"] = "kill -9 check"
        _, res["crash"] = await crash_check(
            s,
            proc,
            start,
            group=group,
            source=source,
            sink=sink,
            skus=skus,
            rng=rng,
            rate=res["rate"],
            expected=expected,
            kill_records=args.kill_records,
        )
        say(f"      {name:<8} {crash_line(res['crash'])}")
        res["status"] = "ok"
        del res["stage"]
    finally:
        for p in instances:
            p.stop()


def crash_line(c: dict[str, Any]) -> str:
    txn = "in transactions" if c["output"]["transactional"] else "NOT in transactions (no commit markers)"
    return (
        f"kill -9 at {c['committed_at_kill']:,}/{c['batch']:,}: answered twice {c['answered_twice']}, never {c['never']} "
        f"of {c['commands']:,}; output {txn}"
    )


async def peers_phase(
    args: argparse.Namespace,
    bootstrap: str,
    work: Path,
    base: str,
    skus: list[str],
    records: list[tuple[str, Record]],
    run: str,
    s_rate: float,
    rng: random.Random,
) -> dict[str, Any]:
    """Every peer asked for, one after the other, each with its own topics and group; a peer that
    cannot be built or fails is reported as "failed: <reason>" and the next one runs."""
    results: dict[str, Any] = {}
    setup = setup_commands(skus)
    for name, prepared in args.prepared.items():
        res: dict[str, Any] = {"label": peers.PEERS[name].label if name in peers.PEERS else name, "tag": run}
        results[name] = res
        if isinstance(prepared, str):
            res["status"] = f"failed: {prepared}"
            say(f"      {name:<8} {res['status']}")
            continue
        say(f"[5 peers] {name}: {res['label']}: backlog of {len(setup)} setup + {len(records)} ReserveStock commands ...")
        try:
            sp = settings(bootstrap, f"{base}peers-")
            await peer_run(args, name, prepared, sp, work / "peers", skus, setup, records, s_rate, rng, res)
        except Exception as exc:
            res["status"] = f"failed: {res.get('stage', 'start')}: {peers.failure(exc)}"
            say(f"      {name:<8} {res['status']}")
        res.pop("tag", None)
    return results


# --- the run -----------------------------------------------------------------------------------


async def wait_stocked(proc: ServiceProcess, skus: list[str], timeout: float = 60.0) -> None:
    """Until the service's read model has every sku registered with stock."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5, headers=bearer()) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                got = (await http.get(proc.url + "/skus")).json()
                if len(got) == len(skus) and all(g["on_hand"] > 0 for g in got):
                    return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"skus not stocked after {timeout}s: {proc.tail()}")


@contextlib.contextmanager
def bench_broker(name: str, keep: bool, needed: bool = True) -> Iterator[str | None]:
    """The broker a benchmark runs on: `KAFKA_BOOTSTRAP_SERVERS`, or a fresh local KRaft broker in
    `.cache/<name>` on free ports, stopped (and its data removed unless `keep`) afterwards."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not needed:
        yield None
        return
    if external:
        say(f"broker: external {external}")
        yield external
        return
    root = CACHE / name
    shutil.rmtree(root, ignore_errors=True)
    port = free_pair()
    cfg = kbroker.BrokerConfig(data_dir=root, port=port, controller_port=port + 1)
    say(f"broker: starting Apache Kafka {kbroker.KAFKA_VERSION} (KRaft) on {cfg.bootstrap} in {root} ...")
    kbroker.up(cfg, CACHE / "kafka")
    BROKER_PIDS[cfg.bootstrap] = int(cfg.pid_file.read_text().strip())
    try:
        yield cfg.bootstrap
    finally:
        BROKER_PIDS.pop(cfg.bootstrap, None)
        kbroker.stop(cfg)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


async def bench(args: argparse.Namespace, bootstrap: str, work: Path) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    base = f"bench{run}-"
    rng = random.Random(args.seed)
    skus = sku_names(args.skus)
    batch_max = settings(bootstrap).flexchain_batch_max
    out: dict[str, Any] = {"run": run, "bootstrap": bootstrap, "records": args.records, "events": args.events, "skus": args.skus}
    out["env"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "aiokafka": aiokafka.__version__,
        "kafka": kbroker.KAFKA_VERSION if not args.external else "external",
        "batch_max": batch_max,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }

    # every topic of the run up front (leaders settle while the records are generated)
    sb, ss, sg, sr = (settings(bootstrap, base + p) for p in ("b-", "svc-", "saga-", "rb-"))
    src, dst, dst_txn = sb.name("passthrough.in"), sb.name("passthrough.out"), sb.name("passthrough-txn.out")
    created = time.monotonic()
    await kafka.ensure_topics(sb, [src, dst, dst_txn], partitions=6)
    for s in (ss, sg, sr):
        await kafka.ensure_topics(s, service_topics(s))

    # the records: N ReserveStock commands, all of one size; the baseline passes the very same bytes
    records = reserve_commands(args.records, skus, run, rng)
    sizes = {len(v) for _, (_, v, _) in records}
    if len(sizes) != 1:
        raise RuntimeError(f"commands of different sizes: {sorted(sizes)}")
    size = sizes.pop()
    out["sizes"] = {"reserve_stock_value_bytes": size, "reserve_stock_key_bytes": len(records[0][1][0] or b"")}
    await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - created)))
    if args.warmup_seconds > 0:
        out["warmup"] = await warm_up(settings(bootstrap, base + "w-"), args.warmup_seconds, "[0 warm-up]")

    # 1. B and B_txn: each run twice (own group, from the start of the same input), the better counts
    say(f"[1 B] raw passthrough baseline: {args.records} records of {size} B, each variant twice ...")
    n, secs = await produce_all(sb, src, (r for _, r in records))
    out["produce"] = {"records": n, "seconds": secs, "rate": n / secs}
    for key, txn, out_topic in (("B", False, dst), ("B_txn", True, dst_txn)):
        runs = []
        for i in range(2):
            before = CLIENT_LOG.retries
            with broker_meter(bootstrap) as meter:
                runs.append(await passthrough(sb, src, out_topic, sb.name(f"{key}-{i}"), n, batch_max, txn=txn))
            runs[-1]["broker_cores"] = meter.cores().get("broker")
            runs[-1]["produce_retries"] = CLIENT_LOG.retries - before
        best = max(runs, key=lambda x: x["rate"])
        out[key] = {
            **best,
            "runs": [x["rate"] for x in runs],
            "retries": [x["produce_retries"] for x in runs],
            "broker_cores_runs": [x["broker_cores"] for x in runs],
        }
        say(f"      {key:<5} {best['rate']:,.0f} records/s (runs: {', '.join(f'{x:,.0f}' for x in out[key]['runs'])})")

    # 2. the service through a backlog, then 4a. the processor hop at half its rate
    say(f"[2 S] inventory service: backlog of {len(skus) * 2} setup + {args.records} ReserveStock commands ...")
    setup = setup_commands(skus)
    total, _ = await produce_all(ss, ss.name("inventory.commands"), [*setup, *(r for _, r in records)])
    n_records = len(records)
    if not args.peers:
        del records
    svc = Services(bootstrap, ss.flexchain_topic_prefix, work / "svc")
    try:
        inv = svc.start("inventory")
        assert inv.proc is not None
        inv_and_broker = {"broker": BROKER_PIDS.get(bootstrap), "inventory": inv.proc.pid}
        with RssSampler({"inventory": inv.proc.pid}) as rss, CpuMeter(inv_and_broker) as cpu:
            out["S"] = await observe_backlog(ss, inv, ss.name("inventory"), ss.name("inventory.commands"), total, args.poll)
        out["S"]["cores"] = cpu.cores()
        out["S"]["peak_rss_mib"] = rss.mib("inventory")
        out["S"]["produce_retries"] = service_retries(inv)
        await wait_ready(inv, 60)
        m = await scrape(inv)
        out["S"]["check"] = {
            "stock_reserved": metric_sum(m, "flexchain_inventory_events_out_total", type="StockReserved"),
            "dlq": metric_sum(m, "flexchain_inventory_dlq_records_total"),
            "duplicates": metric_sum(m, "flexchain_inventory_duplicates_skipped_total"),
        }
        say(f"      S     {out['S']['rate']:,.0f} commands/s (peak RSS {out['S']['peak_rss_mib']} MiB)")
        rate = 0.5 * out["S"]["rate"]
        say(f"[4 latency] ReserveStock → StockReserved at {rate:,.0f}/s for {args.latency_seconds} s ...")
        with CpuMeter(inv_and_broker) as cpu:
            out["hop"] = await hop_latency(ss, skus, rate, args.latency_seconds, rng)
        out["hop"]["cores"] = cpu.cores()
        hop_orders = out["hop"].pop("order_ids")
        if args.peers:  # 5. the same kill -9 check as the peers'
            say("[5 peers] inventory service: kill -9 mid-backlog, restart, every ReserveStock answered once? ...")
            _, out["S"]["crash"] = await crash_check(
                ss,
                inv,
                lambda: svc.start("inventory"),
                group=ss.name("inventory"),
                source=ss.name("inventory.commands"),
                sink=ss.name("inventory.events"),
                skus=skus,
                rng=rng,
                rate=out["S"]["rate"],
                expected=[*(order_id(run, i) for i in range(n_records)), *hop_orders],
                kill_records=args.kill_records,
            )
            say(f"      S        {crash_line(out['S']['crash'])}")
    finally:
        svc.stop_all()

    if args.peers:
        out["peers"] = await peers_phase(args, bootstrap, work, base, skus, records, run, out["S"]["rate"], rng)
        del records

    # 4b. the saga over both services
    say(f"[4 saga] PlaceOrder → OrderConfirmed at {args.saga_rate}/s for {args.latency_seconds} s ...")
    saga = Services(bootstrap, sg.flexchain_topic_prefix, work / "saga")
    try:
        inv, order = saga.start("inventory"), saga.start("order")
        await wait_ready(inv, 90)
        await wait_ready(order, 90)
        await produce_all(sg, sg.name("inventory.commands"), setup_commands(skus))
        await wait_stocked(inv, skus)
        assert inv.proc is not None and order.proc is not None
        pids = {"broker": BROKER_PIDS.get(bootstrap), "inventory": inv.proc.pid, "order": order.proc.pid}
        with RssSampler({"inventory": inv.proc.pid, "order": order.proc.pid}) as rss, CpuMeter(pids) as cpu:
            out["saga"] = await saga_latency(sg, skus, args.saga_rate, args.latency_seconds, rng)
        out["saga"]["cores"] = cpu.cores()
        out["saga"]["peak_rss_mib"] = {"inventory": rss.mib("inventory"), "order": rss.mib("order")}
        own: dict[str, float] = {}  # each service's histogram: record append time → its transaction committed
        for proc in (inv, order):
            m = await scrape(proc)
            for stage in ("processor", "router"):
                pre = f"flexchain_{proc.service}_processing_latency_seconds"
                count = metric_sum(m, f"{pre}_count", stage=stage)
                if count:
                    own[f"{proc.service} {stage}"] = 1000 * metric_sum(m, f"{pre}_sum", stage=stage) / count
        out["saga"]["service_mean_append_to_commit_ms"] = own
    finally:
        saga.stop_all()

    # 3. rebuild over M events against a raw consumer of the same log
    say(f"[3 rebuild] producing {args.events} events into inventory.events ...")
    n, secs = await produce_all(sr, sr.name("inventory.events"), log_events(args.events, skus, rng))
    out["produce_events"] = {"records": n, "seconds": secs, "rate": n / secs}
    runs = [await raw_consume(sr, sr.name("inventory.events")) for _ in range(2)]
    out["raw"] = {**max(runs, key=lambda x: x["rate"]), "runs": [x["rate"] for x in runs]}
    say(f"      raw consume {out['raw']['rate']:,.0f} records/s (runs: {', '.join(f'{x:,.0f}' for x in out['raw']['runs'])})")
    out["raw_decode"] = await raw_consume(sr, sr.name("inventory.events"), decode=True)
    say(f"      raw consume + Codec.decode {out['raw_decode']['rate']:,.0f} records/s (informational)")
    rb = Services(bootstrap, sr.flexchain_topic_prefix, work / "rebuild")
    try:
        t0 = time.monotonic()
        inv = rb.start("inventory")
        assert inv.proc is not None
        inv_and_broker = {"broker": BROKER_PIDS.get(bootstrap), "inventory": inv.proc.pid}
        with RssSampler({"inventory": inv.proc.pid}) as rss, CpuMeter(inv_and_broker) as cpu:
            ready_at = await wait_ready(inv, max(600.0, args.events / 500))
        m = await scrape(inv)
        duration = metric_sum(m, "flexchain_inventory_rebuild_duration_seconds", default=float("nan"))
        folded = metric_sum(m, "flexchain_inventory_rebuild_events_total")
        out["rebuild"] = {
            "events": folded,
            "seconds": duration,
            "rate": folded / duration if duration > 0 else float("nan"),
            "time_to_ready_s": ready_at - t0,
            "peak_rss_mib": rss.mib("inventory"),
            "complete": folded == n,
            "rebuilds": inv.tail(10_000).count('"rebuild finished"'),
            "cores": cpu.cores(),
        }
        if out["rebuild"]["rebuilds"] != 1 or not out["rebuild"]["complete"]:
            say(f"      WARNING: {out['rebuild']['rebuilds']} rebuilds, {folded:.0f}/{n} events: the gauge covers only the last")
        say(f"      rebuild {out['rebuild']['rate']:,.0f} events/s (peak RSS {out['rebuild']['peak_rss_mib']} MiB)")
    finally:
        rb.stop_all()

    out["ratios"] = {
        "S_over_B": out["S"]["rate"] / out["B"]["rate"],
        "S_over_B_txn": out["S"]["rate"] / out["B_txn"]["rate"],
        "B_txn_over_B": out["B_txn"]["rate"] / out["B"]["rate"],
        "rebuild_over_raw": out["rebuild"]["rate"] / out["raw"]["rate"],
        "rebuild_over_raw_decode": out["rebuild"]["rate"] / out["raw_decode"]["rate"],
        "raw_decode_over_raw": out["raw_decode"]["rate"] / out["raw"]["rate"],
    }
    out["targets"] = {"S_over_B": 0.6, "rebuild_over_raw": 0.9}
    out["met"] = {k: out["ratios"][k] >= v for k, v in out["targets"].items()}
    if args.peers:
        ok = {k: v for k, v in out["peers"].items() if v.get("status") == "ok" and v["rate"] > 0}
        for k, v in ok.items():
            out["ratios"][f"{k}_over_B"] = v["rate"] / out["B"]["rate"]
            out["ratios"][f"S_over_{k}"] = out["S"]["rate"] / v["rate"]
        if "kstreams" in ok:  # issue 18: S at least Kafka Streams' rate, every Python peer behind S
            out["targets"]["S_over_kstreams"] = 1.0
            out["met"]["S_over_kstreams"] = out["ratios"]["S_over_kstreams"] >= 1.0
        python = [k for k in ("quix", "faust") if k in ok]
        if python:
            out["met"]["python_peers_behind_S"] = all(out["ratios"][f"S_over_{k}"] > 1.0 for k in python)
    out["env"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


# --- report ------------------------------------------------------------------------------------


def table(r: dict[str, Any]) -> str:
    def rate(x: float, unit: str) -> str:
        return f"{x:,.0f} {unit}"

    def lat(d: dict[str, Any]) -> str:
        return f"p50 {d['p50_ms']:.1f} / p99 {d['p99_ms']:.1f} / max {d['max_ms']:.1f} ms (n={d['n']})"

    def met(key: str) -> str:
        return "yes" if r["met"][key] else "NO"

    ra, tg = r["ratios"], r["targets"]
    sz, hop, saga = r["sizes"], r["hop"], r["saga"]
    rows: list[tuple[str, str, str, str, str]] = [
        ("figure", "value", "ratio", "target", "met"),
        ("record: ReserveStock value/key", f"{sz['reserve_stock_value_bytes']} B/{sz['reserve_stock_key_bytes']} B", "", "", ""),
        ("setup produce (idempotent, linger 5 ms)", rate(r["produce"]["rate"], "rec/s"), "", "", "info"),
        ("B     raw passthrough, commit per batch", rate(r["B"]["rate"], "rec/s"), "1.00", "", ""),
        ("B_txn raw passthrough, txn per batch", rate(r["B_txn"]["rate"], "rec/s"), f"{ra['B_txn_over_B']:.2f} ×B", "", "info"),
        (
            "S     inventory service, exactly-once",
            rate(r["S"]["rate"], "cmd/s"),
            f"{ra['S_over_B']:.2f} ×B",
            f"≥ {tg['S_over_B']:.2f}",
            met("S_over_B"),
        ),
        ("      S against B_txn", "", f"{ra['S_over_B_txn']:.2f} ×B_txn", "", "info"),
        (
            "      txn produce retries B_txn runs / S",
            f"{' + '.join(str(x) for x in r['B_txn']['retries'])} / {r['S']['produce_retries']}",
            "",
            "",
            "info",
        ),
        ("      measured over", f"{r['S']['records']:,} cmds / {r['S']['seconds']:.1f} s", "", "", ""),
        ("      peak RSS inventory (throughput run)", f"{r['S']['peak_rss_mib']} MiB", "", "", ""),
        ("R     raw consume, 1 consumer", rate(r["raw"]["rate"], "rec/s"), "1.00", "", ""),
        ("      R + Codec.decode", rate(r["raw_decode"]["rate"], "rec/s"), f"{ra['raw_decode_over_raw']:.2f} ×R", "", "info"),
        (
            "RB    rebuild fold (service gauge)",
            rate(r["rebuild"]["rate"], "ev/s"),
            f"{ra['rebuild_over_raw']:.2f} ×R",
            f"≥ {tg['rebuild_over_raw']:.2f}",
            met("rebuild_over_raw"),
        ),
        ("      rebuild events / duration", f"{r['rebuild']['events']:,.0f} / {r['rebuild']['seconds']:.1f} s", "", "", ""),
        ("      start → /ready", f"{r['rebuild']['time_to_ready_s']:.1f} s", "", "", ""),
        ("      peak RSS inventory (rebuild)", f"{r['rebuild']['peak_rss_mib']} MiB", "", "", ""),
        (f"hop   ReserveStock → StockReserved @ {hop['achieved_rate']:,.0f}/s", lat(hop), "", "", f"lost {hop['missing']}"),
        (f"saga  PlaceOrder → OrderConfirmed @ {saga['achieved_rate']:,.0f}/s", lat(saga), "", "", f"lost {saga['missing']}"),
    ]
    for h in r["saga"]["hops"]:
        rows.append((f"      hop: {h['hop']} → {h['writes']}", f"p50 {h['p50_ms']:.1f} / p99 {h['p99_ms']:.1f} ms", "", "", ""))

    def cores(d: dict[str, Any]) -> str:
        return " ".join(f"{k} {v:.2f}" for k, v in d.get("cores", {}).items()) or "n/a (external broker)"

    def b_cores(key: str) -> str:
        got = [x for x in r[key].get("broker_cores_runs", []) if x is not None]
        return "/".join(f"{x:.2f}" for x in got) or "n/a"

    rows.append(("CPU   cores used (CPU-s/s): B / B_txn runs, broker", f"{b_cores('B')} / {b_cores('B_txn')}", "", "", "info"))
    for key, what in (("S", "S throughput"), ("hop", "hop latency"), ("saga", "saga latency"), ("rebuild", "rebuild")):
        rows.append((f"      {what}", cores(r[key]), "", "", "info"))
    if "warmup" in r:
        w = r["warmup"]
        rows.append(
            (
                f"      broker warm-up {w['seconds']:.0f} s: txn/s, broker cores",
                f"{w['first']['txn_per_s']:.0f} → {w['last']['txn_per_s']:.0f}, "
                f"{w['first']['broker_cores']} → {w['last']['broker_cores']}",
                "",
                "",
                "info",
            )
        )
    own = ", ".join(f"{k} {v:.0f}" for k, v in r["saga"]["service_mean_append_to_commit_ms"].items())
    rows.append(("      services' own mean append→commit ms", own, "", "", "info"))
    rss = r["saga"]["peak_rss_mib"]
    rows.append(("      peak RSS inventory / order (saga)", f"{rss['inventory']} / {rss['order']} MiB", "", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def peers_table(r: dict[str, Any]) -> str:
    """S and each peer on one line: the same job, broker and bytes; the kill -9 check's counts."""

    def crash(c: dict[str, Any] | None) -> tuple[str, str, str]:
        if not c:
            return "", "", ""
        mid = "" if c["mid_stream"] else " (killed after the end!)"
        counts = f"{c['answered_twice']} / {c['never']} of {c['commands']:,}{mid}"
        if c.get("rejected"):
            counts += f"; {c['rejected']:,} rejected (state lost)"
        out = c["output"]
        txn = f"yes ({out['control_markers']:,} markers)" if out["transactional"] else "NO (no markers)"
        if out["aborted_records"]:
            txn += f", {out['aborted_records']:,} aborted"
        return counts, f"{c['restart_to_progress_s']:.1f} s", txn

    def rate(d: dict[str, Any]) -> str:
        return ("~" if d.get("coarse") else "") + f"{d['rate']:,.0f}"

    head: tuple[str, ...] = ("", "processor", "commit", "cmd/s", "×B", "S ÷ it", "hop p50 / p99 ms @ rate", "peak RSS")
    head += ("kill -9: twice / never", "restart → progress", "output in txns")
    rows: list[tuple[str, ...]] = [head]
    hop = r["hop"]
    rows.append(
        (
            "S",
            "flexchain inventory service",
            "per batch",
            rate(r["S"]),
            f"{r['ratios']['S_over_B']:.2f}",
            "1.00",
            f"{hop['p50_ms']:.1f} / {hop['p99_ms']:.1f} @ {hop['achieved_rate']:,.0f}/s",
            f"{r['S']['peak_rss_mib']} MiB",
            *crash(r["S"].get("crash")),
        )
    )
    for name, p in r["peers"].items():
        if p.get("status") != "ok" and "rate" not in p:
            rows.append((name, p["label"], "", p.get("status", "failed"), *[""] * (len(head) - 4)))
            continue
        h = p.get("hop")
        lat = f"{h['p50_ms']:.1f} / {h['p99_ms']:.1f} @ {h['achieved_rate']:,.0f}/s" if h else ""
        if h and h["missing"]:
            lat += f", {h['missing']:,} late"
        counts, resumed, txn = crash(p.get("crash"))
        if p.get("status") != "ok":
            counts = p["status"]
        rows.append(
            (
                name,
                p["label"],
                f"{p['commit_interval_ms']} ms",
                rate(p),
                f"{p['rate'] / r['B']['rate']:.2f}",
                f"{r['S']['rate'] / p['rate']:.2f}" if p["rate"] > 0 else "",
                lat,
                f"{p['peak_rss_mib']} MiB",
                counts,
                resumed,
                txn,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def clean(obj: Any) -> Any:
    """JSON-safe: NaN → null, floats rounded."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else round(obj, 4)
    return obj


async def delete_topics(bootstrap: str, prefix: str) -> None:
    s = settings(bootstrap)
    admin = kafka.admin(s)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if prefix in t]  # quixstreams names its changelogs changelog__<group>--…
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000, help="records for B, B_txn and the service run")
    ap.add_argument("--events", type=int, default=1_000_000, help="events in the log for the rebuild run")
    ap.add_argument("--latency-seconds", type=float, default=15.0, help="duration of each paced latency run")
    ap.add_argument("--saga-rate", type=float, default=100.0, help="orders/s of the saga latency run")
    ap.add_argument(
        "--warmup-seconds", type=float, default=120.0, help="transactions through the broker before any measurement (0: none)"
    )
    ap.add_argument("--skus", type=int, default=200, help="skus registered and stocked")
    ap.add_argument("--poll", type=float, default=0.1, help="seconds between committed-offset observations")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the bench dir, broker data and (external) topics")
    ap.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test (5000 / 20000 / 3 s)")
    ap.add_argument(
        "--peers",
        nargs="?",
        const=",".join(peers.PEERS),
        default="",
        metavar="LIST",
        help=f"also run the peers (bench/peers/; default all: {','.join(peers.PEERS)}) and the kill -9 check of S and each peer",
    )
    ap.add_argument("--peer-commit-ms", type=int, default=None, help="commit interval of every peer (default: each peer's own)")
    ap.add_argument(
        "--kill-records",
        type=int,
        default=None,
        help=f"size of the kill -9 batch (default: {KILL_SECONDS:.0f} s of the target's rate)",
    )
    args = ap.parse_args(argv)
    args.peers = [p for p in args.peers.split(",") if p.strip()]
    if args.quick:
        args.records, args.events, args.latency_seconds, args.saga_rate, args.skus = 5000, 20_000, 3.0, 20.0, 50
        args.warmup_seconds = min(args.warmup_seconds, 6.0)
        args.poll = 0.05
    return args


def prepare_peers(names: list[str]) -> dict[str, list[str] | str]:
    """Build or install each peer before anything is measured: its command, or why it cannot run."""
    prepared: dict[str, list[str] | str] = {}
    for name in names:
        t0 = time.monotonic()
        say(f"peers: preparing {name} (a first build or install takes minutes) ...")
        try:
            prepared[name] = peers.prepare(name)
            say(f"      {name} ready ({time.monotonic() - t0:.0f} s)")
        except Exception as exc:
            prepared[name] = peers.failure(exc)
            say(f"      {name} failed: {prepared[name]}")
    return prepared


def main(argv: list[str] | None = None) -> int:
    ensure_local_auth(PROJECT_ROOT / ".cache" / "tokens")  # the services it starts need keys (README "Security")
    args = parse(argv)
    started = time.monotonic()
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    args.external = bool(external)
    work = CACHE / "bench" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    CLIENT_LOG.install(work / "bench-client.log")
    args.prepared = prepare_peers(args.peers)
    results: dict[str, Any] | None = None
    try:
        with bench_broker("bench-broker", args.keep, needed=True) as bootstrap:
            results = asyncio.run(bench(args, bootstrap, work))
            if external and not args.keep:
                asyncio.run(delete_topics(external, f"bench{results['run']}-"))
    finally:
        if not args.keep:
            for d in work.glob("*/data"):
                shutil.rmtree(d, ignore_errors=True)
    results["wall_seconds"] = time.monotonic() - started
    say("")
    say(
        f"flexchain bench — {results['env']['cpus']} CPUs, Python {results['env']['python']}, aiokafka "
        f"{results['env']['aiokafka']}, Kafka {results['env']['kafka']}; N={args.records:,}, M={args.events:,}, "
        f"{args.skus} skus, batch ≤ {results['env']['batch_max']}; load avg {results['env']['loadavg_start'][0]} → "
        f"{results['env']['loadavg_end'][0]}; wall {results['wall_seconds']:.0f} s; logs {work}"
    )
    say("")
    say(table(results))
    say("")
    if "peers" in results:
        say("peers: the inventory job, same broker and bytes; hop at ½ S; kill -9 mid-backlog, restart, read read_committed")
        say(peers_table(results))
        say("")
    say("BENCH_JSON " + json.dumps(clean(results), sort_keys=True, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
