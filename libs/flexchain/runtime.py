"""The shell around a pure domain: consume → decide → produce, exactly once, rebuilt from the log.

A service is described by a :class:`ServiceDef` (its messages, `decide`, `evolve`, `new_state` and
the routes of its saga policies). Three loops run it:

* :class:`Processor` — consumer group ``<service>`` on ``<service>.commands``. Partition *p* of the
  command topic owns partition *p* of ``<service>.events`` (both keyed by aggregate id). For each
  batch: decode, skip commands already applied (dedup by command id), ``decide``, ``evolve``, and
  in ONE Kafka transaction produce the events (to partition *p*), any dead letters, and the input
  offsets. On every assignment the owned partitions are rebuilt by folding ``<service>.events``
  from the latest snapshot (or from offset 0).
* :class:`Router` — consumer group ``<service>-router`` on the topics of other services (and
  ``clock.ticks``). Its pure policy turns each event into commands for ``<service>.commands``,
  re-keyed by this service's aggregate id; a command with an empty key goes to every partition.
  Also transactional: a routed command is written once per event, with an id derived from it.
* :class:`Projection` — no group; folds whole topics into a read model for the HTTP API.

Decode failures and records that are not commands of the service go to ``<service>.dlq`` in the
same transaction, with the reason, source topic, partition and offset in headers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.partitioner import DefaultPartitioner

from flexchain import kafka
from flexchain.messages import Envelope, Enveloped, Message, derived_id
from flexchain.metrics import ServiceMetrics
from flexchain.serde import Codec, DecodeError
from flexchain.settings import Settings
from flexchain.snapshots import Snapshot, SnapshotStore

S = TypeVar("S")


@dataclass(frozen=True)
class Route:
    """Events on `topic` (of the given types) turned into this service's commands by `react`."""

    topic: str
    messages: tuple[type[Message], ...]
    react: Callable[[Message], list[Message]]


@dataclass(frozen=True)
class ServiceDef(Generic[S]):
    name: str
    commands: tuple[type[Message], ...]
    events: tuple[type[Message], ...]
    new_state: Callable[[], S]
    decide: Callable[[S, Message, int], list[Message]]
    evolve: Callable[[S, Message], S]
    routes: tuple[Route, ...] = ()
    state_format: str = "1"

    @property
    def topics(self) -> dict[str, str]:
        return kafka.topic_names(self.name)

    def all_messages(self) -> list[type[Message]]:
        out = dict.fromkeys([*self.commands, *self.events])
        for r in self.routes:
            out.update(dict.fromkeys(r.messages))
        return list(out)


@dataclass
class PartitionState:
    """What a processor keeps per owned partition; pickled whole into a snapshot."""

    state: Any
    seen: dict[str, None] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    next_offset: int = 0
    since_snapshot: int = 0

    def remember(self, command_id: str, window: int) -> None:
        self.seen[command_id] = None
        if len(self.seen) > window:
            del self.seen[next(iter(self.seen))]


def canonical(obj: Any) -> Any:
    """A JSON-able form of a state that does not depend on set order or the process's hash seed."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (set, frozenset)):
        return sorted(canonical(v) for v in obj)
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _dlq_headers(rec: ConsumerRecord[bytes, bytes], reason: str) -> list[tuple[str, bytes]]:
    return [
        ("flexchain.dlq.reason", reason.encode("utf-8")[:2000]),
        ("flexchain.source.topic", rec.topic.encode()),
        ("flexchain.source.partition", str(rec.partition).encode()),
        ("flexchain.source.offset", str(rec.offset).encode()),
    ]


def _reason_label(reason: str) -> str:
    return reason.split(":")[0].split(" (")[0][:60]


class _Outbox:
    """Records to produce in the current transaction."""

    def __init__(self) -> None:
        self.records: list[tuple[str, int | None, bytes | None, bytes, list[tuple[str, bytes]], str]] = []

    def add(
        self, topic: str, partition: int | None, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]], kind: str
    ) -> None:
        self.records.append((topic, partition, key, value, headers, kind))


class _TransactionalLoop:
    """Shared machinery of Processor and Router: a consumer group and a transactional producer."""

    stage = ""

    def __init__(
        self,
        svc: ServiceDef[Any],
        settings: Settings,
        codec: Codec,
        metrics: ServiceMetrics,
        group_id: str,
        topics: list[str],
    ) -> None:
        self.svc = svc
        self.settings = settings
        self.codec = codec
        self.metrics = metrics
        self.group_id = settings.name(group_id)
        self.topics = [settings.name(t) for t in topics]
        self.names = {k: settings.name(v) for k, v in svc.topics.items()}
        self.log = structlog.get_logger().bind(service=svc.name, stage=self.stage)
        self.lock = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._last_lag = 0.0
        self._debug = settings.flexchain_log_level.upper() == "DEBUG"
        self._in: dict[tuple[str, str], Any] = {}  # metric children by label, looked up once
        self._out: dict[tuple[str, str], Any] = {}

    def count_in(self, topic: str, kind: str) -> None:
        child = self._in.get((topic, kind))
        if child is None:
            child = self._in[(topic, kind)] = self.metrics.messages_in.labels(topic, kind)
        child.inc()

    def _listener(self) -> ConsumerRebalanceListener | None:
        return None

    async def start(self) -> None:
        txn_id = f"{self.group_id}-{self.settings.flexchain_instance_id}"
        self.producer = kafka.producer(self.settings, transactional_id=txn_id)
        await self.producer.start()
        self.consumer = kafka.consumer(self.settings, group_id=self.group_id, max_poll_interval_ms=600_000)
        await self.consumer.start()
        # A topic created a moment ago may not be in this client's metadata yet: the group would then
        # be assigned none of its partitions, the processor would call itself ready owning nothing,
        # and nothing would be processed until the next metadata refresh (5 minutes). Wait for it.
        for topic in self.topics:
            await partitions_of(self.consumer, topic)
        self.consumer.subscribe(self.topics, listener=self._listener())

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def run(self, stopping: asyncio.Event) -> None:
        assert self.consumer is not None
        while not stopping.is_set():
            batch = await self.consumer.getmany(timeout_ms=200, max_records=self.settings.flexchain_batch_max)
            if batch:
                async with self.lock:
                    await self._transact(batch)
            await self._report_lag()

    async def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < 1.0 or self.consumer is None:
            return
        self._last_lag = now
        for tp in self.consumer.assignment():
            end = self.consumer.last_stable_offset(tp) or self.consumer.highwater(tp)
            if end is not None:
                pos = await self.consumer.position(tp)
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, end - pos))

    def _handle(self, tp: TopicPartition, rec: ConsumerRecord[bytes, bytes], out: _Outbox) -> None:
        raise NotImplementedError

    def _after_commit(self, metadata: list[tuple[str, Any]]) -> None:
        """Hook: the records of the transaction are committed (with their metadata)."""

    def dead_letter(self, rec: ConsumerRecord[bytes, bytes], reason: str, out: _Outbox) -> None:
        self.log.warning("dead letter", reason=reason, topic=rec.topic, partition=rec.partition, offset=rec.offset)
        out.add(self.names["dlq"], None, rec.key, rec.value or b"", _dlq_headers(rec, reason), "dlq:" + reason)

    async def _transact(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        assert self.producer is not None
        out = _Outbox()
        offsets: dict[TopicPartition, int] = {}
        first_ts: list[int] = []
        for tp, records in batch.items():
            for rec in records:
                self._handle(tp, rec, out)
                first_ts.append(rec.timestamp)
            offsets[tp] = records[-1].offset + 1
        sent: list[tuple[str, Any]] = []
        async with self.producer.transaction():
            for topic, partition, key, value, headers, kind in out.records:
                fut = await self.producer.send(topic, value, key=key, partition=partition, headers=headers)
                sent.append((kind, fut))
            await self.producer.send_offsets_to_transaction(offsets, self.group_id)
        done = time.time() * 1000
        hist = self.metrics.latency.labels(self.stage)
        for ts in first_ts:
            hist.observe(max(0.0, (done - ts) / 1000))
        self.metrics.batch_size.labels(self.stage).observe(len(first_ts))
        results = [(kind, fut.result()) for kind, fut in sent]
        for kind, md in results:
            if kind.startswith("dlq:"):
                self.metrics.dlq.labels(_reason_label(kind[4:])).inc()
            else:
                child = self._out.get((md.topic, kind))
                if child is None:
                    child = self._out[(md.topic, kind)] = self.metrics.events_out.labels(md.topic, kind)
                child.inc()
        self._after_commit(results)


class Processor(_TransactionalLoop):
    stage = "processor"

    def __init__(
        self,
        svc: ServiceDef[Any],
        settings: Settings,
        codec: Codec,
        metrics: ServiceMetrics,
        store: SnapshotStore,
        cluster_id: str,
    ) -> None:
        super().__init__(svc, settings, codec, metrics, svc.name, [svc.topics["commands"]])
        self.store = store
        self.cluster_id = cluster_id
        self.states: dict[int, PartitionState] = {}
        self.ready = asyncio.Event()
        self._commands = frozenset(svc.commands)
        self._events_topic = self.names["events"]
        self._rebuilder: AIOKafkaConsumer | None = None
        self.view: OwnView | None = None
        self.waiters: Waiters | None = None
        self._caused: dict[str, list[Enveloped]] = {}

    def _listener(self) -> ConsumerRebalanceListener:
        proc = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
                await proc.on_revoked(list(revoked))

            async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
                await proc.on_assigned(list(assigned))

        return Listener()

    async def start(self) -> None:
        self._rebuilder = kafka.consumer(self.settings, group_id=None, max_poll_records=5000)
        await self._rebuilder.start()
        await super().start()

    async def stop(self) -> None:
        async with self.lock:
            for p in list(self.states):
                self._snapshot(p)
        await super().stop()
        if self._rebuilder is not None:
            await self._rebuilder.stop()

    # --- assignment and rebuild ----------------------------------------------------------------

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.lock:  # wait for the transaction in flight: the next owner must see it
            self.ready.clear()
            self.metrics.ready.set(0)
            for tp in revoked:
                if tp.partition in self.states:
                    self._snapshot(tp.partition)
                    if self.view is not None:
                        self.view.handover(tp.partition, self.states[tp.partition])
                    del self.states[tp.partition]

    async def on_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self.lock:
            partitions = sorted(tp.partition for tp in assigned if tp.partition not in self.states)
            if partitions:
                await self.rebuild(partitions)
            if self.view is not None:
                self.view.sync(set(self.states))
            self.ready.set()
            self.metrics.ready.set(1)

    async def rebuild(self, partitions: list[int]) -> None:
        assert self._rebuilder is not None
        started = time.monotonic()
        states: dict[int, PartitionState] = {}
        tps = [TopicPartition(self._events_topic, p) for p in partitions]
        ends = await self._rebuilder.end_offsets(tps)
        for p in partitions:
            snap = self.store.load(self.group_id, p, self.cluster_id, self.svc.state_format)
            ps = snap.state if snap is not None else None
            if not isinstance(ps, PartitionState) or ps.next_offset > ends[TopicPartition(self._events_topic, p)]:
                ps = PartitionState(self.svc.new_state())
            ps.since_snapshot = 0
            states[p] = ps
        todo = {tp: ends[tp] for tp in tps if states[tp.partition].next_offset < ends[tp]}
        self.log.info(
            "rebuild started", partitions=partitions, events=sum(e - states[t.partition].next_offset for t, e in todo.items())
        )
        folded = 0
        if todo:
            self._rebuilder.assign(list(todo))
            for tp in todo:
                self._rebuilder.seek(tp, states[tp.partition].next_offset)
            remaining = dict(todo)
            starts = {tp: states[tp.partition].next_offset for tp in todo}
            while remaining:
                batch = await self._rebuilder.getmany(*remaining, timeout_ms=500)
                for tp, records in batch.items():
                    ps = states[tp.partition]
                    for rec in records:
                        self._fold(ps, rec)
                    folded += len(records)
                for tp in list(remaining):
                    pos = await self._rebuilder.position(tp)
                    total = max(1, todo[tp] - starts[tp])
                    self.metrics.rebuild_progress.labels(str(tp.partition)).set(min(1.0, (pos - starts[tp]) / total))
                    if pos >= remaining[tp]:
                        states[tp.partition].next_offset = pos
                        del remaining[tp]
            self._rebuilder.unsubscribe()
        self.metrics.rebuild_events.inc(folded)
        for p in partitions:
            self.metrics.rebuild_progress.labels(str(p)).set(1.0)
            self.states[p] = states[p]
        elapsed = time.monotonic() - started
        self.metrics.rebuild_duration.set(elapsed)
        self.log.info("rebuild finished", partitions=partitions, events=folded, seconds=round(elapsed, 3))

    def _fold(self, ps: PartitionState, rec: ConsumerRecord[bytes, bytes]) -> None:
        ps.next_offset = rec.offset + 1
        try:
            item = self.codec.decode(rec.value)
        except DecodeError as exc:  # our own log holds only what we wrote; say so loudly
            self.log.error("undecodable event in own log", reason=exc.reason, partition=rec.partition, offset=rec.offset)
            return
        self.svc.evolve(ps.state, item.message)
        env = item.envelope
        ps.versions[env.aggregate_id] = env.aggregate_version
        if env.causation_id:
            ps.remember(env.causation_id, self.settings.flexchain_dedup_window)

    def digests(self) -> dict[int, dict[str, Any]]:
        """Per owned partition: its event offset and a digest of its state (rebuild == live check)."""
        out: dict[int, dict[str, Any]] = {}
        for p, ps in sorted(self.states.items()):
            body = canonical({"state": ps.state, "versions": ps.versions, "seen": sorted(ps.seen)})
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            out[p] = {"next_offset": ps.next_offset, "aggregates": len(ps.versions), "digest": digest}
        return out

    def _snapshot(self, partition: int) -> None:
        ps = self.states.get(partition)
        if ps is None or ps.since_snapshot == 0:
            return
        ps.since_snapshot = 0
        self.store.save(self.group_id, partition, self.cluster_id, self.svc.state_format, Snapshot(ps.next_offset, ps))

    # --- processing ----------------------------------------------------------------------------

    def _handle(self, tp: TopicPartition, rec: ConsumerRecord[bytes, bytes], out: _Outbox) -> None:
        ps = self.states.get(tp.partition)
        if ps is None:  # not rebuilt: cannot happen while we hold the lock, but never guess
            raise RuntimeError(f"partition {tp.partition} has no state")
        try:
            item = self.codec.decode(rec.value)
        except DecodeError as exc:
            self.dead_letter(rec, exc.reason, out)
            return
        cmd, cenv = item.message, item.envelope
        if type(cmd) not in self._commands:
            self.dead_letter(rec, f"not a command of {self.svc.name}: {type(cmd).__name__}", out)
            return
        self.count_in(rec.topic, cenv.event_type)
        if cenv.event_id in ps.seen:
            self.metrics.duplicates.inc()
            return
        try:
            events = self.svc.decide(ps.state, cmd, cenv.business_time)
        except Exception as exc:  # a bug must not stop the partition: park the command, loudly
            self.log.exception("decide failed", correlation_id=cenv.correlation_id, command=cenv.event_type)
            self.dead_letter(rec, f"decide failed: {exc!r}", out)
            return
        # A broadcast command (empty key) has one id on every partition: its events need ids that
        # differ per partition, or what is routed from them would be dropped as duplicates.
        cause = cenv.event_id if cmd.key else f"{cenv.event_id}@{tp.partition}"
        items: list[tuple[Enveloped, bytes]] = []
        versions: dict[str, int] = {}
        try:
            for i, ev in enumerate(events):
                agg = ev.key
                versions[agg] = versions.get(agg, ps.versions.get(agg, 0)) + 1
                env = Envelope(
                    derived_id(cause, i, self.svc.name),
                    type(ev).__name__,
                    agg,
                    versions[agg],
                    cenv.business_time,
                    cenv.correlation_id,
                    cenv.event_id,
                    self.svc.name,
                )
                item = Enveloped(env, ev)
                items.append((item, self.codec.encode(item)))
        except Exception as exc:  # an event that does not fit its schema: nothing applied, command parked
            self.log.exception("encoding an event failed", correlation_id=cenv.correlation_id, command=cenv.event_type)
            self.dead_letter(rec, f"encode failed: {exc!r}", out)
            return
        ps.versions.update(versions)
        for item, value in items:
            self.svc.evolve(ps.state, item.message)
            name = item.envelope.event_type
            out.add(self._events_topic, tp.partition, item.envelope.aggregate_id.encode(), value, [("type", name.encode())], name)
            if self.waiters and self.waiters.wanted(cenv.event_id):
                self._caused.setdefault(cenv.event_id, []).append(item)
        if events:  # as a rebuild does: it learns command ids from the causation ids of events
            ps.remember(cenv.event_id, self.settings.flexchain_dedup_window)
        if self._debug:
            self.log.debug(
                "command decided",
                correlation_id=cenv.correlation_id,
                command=cenv.event_type,
                command_id=cenv.event_id,
                events=[type(e).__name__ for e in events],
            )

    def _after_commit(self, metadata: list[tuple[str, Any]]) -> None:
        if self._caused:
            assert self.waiters is not None
            self.waiters.resolve(self._caused)
            self._caused = {}
        for _kind, md in metadata:
            if md.topic == self._events_topic:
                ps = self.states.get(md.partition)
                if ps is not None:
                    ps.next_offset = max(ps.next_offset, md.offset + 1)
                    ps.since_snapshot += 1
        for p, ps in self.states.items():
            if ps.since_snapshot >= self.settings.flexchain_snapshot_every:
                self._snapshot(p)


class Router(_TransactionalLoop):
    stage = "router"

    def __init__(self, svc: ServiceDef[Any], settings: Settings, codec: Codec, metrics: ServiceMetrics) -> None:
        super().__init__(svc, settings, codec, metrics, f"{svc.name}-router", [r.topic for r in svc.routes])
        self._react = {settings.name(r.topic): r.react for r in svc.routes}
        self._types = {settings.name(r.topic): {m.__name__.encode() for m in r.messages} for r in svc.routes}
        self._commands_topic = self.names["commands"]
        self._partitions: list[int] = []

    async def start(self) -> None:
        await super().start()
        assert self.producer is not None
        self._partitions = sorted(await self.producer.partitions_for(self._commands_topic))

    def _handle(self, tp: TopicPartition, rec: ConsumerRecord[bytes, bytes], out: _Outbox) -> None:
        kinds = [v for k, v in rec.headers if k == "type"]
        if kinds and kinds[0] not in self._types[rec.topic]:
            return  # a type the policy does not route: not even decoded
        try:
            item = self.codec.decode(rec.value)
        except DecodeError as exc:
            self.dead_letter(rec, exc.reason, out)
            return
        ev, eenv = item.message, item.envelope
        self.count_in(rec.topic, eenv.event_type)
        try:
            commands = self._react[rec.topic](ev)
        except Exception as exc:
            self.log.exception("policy failed", correlation_id=eenv.correlation_id, event=eenv.event_type)
            self.dead_letter(rec, f"policy failed: {exc!r}", out)
            return
        for i, cmd in enumerate(commands):
            name = type(cmd).__name__
            env = Envelope(
                derived_id(eenv.event_id, i, f"{self.svc.name}-router"),
                name,
                cmd.key,
                0,
                eenv.business_time,
                eenv.correlation_id,
                eenv.event_id,
                f"{self.svc.name}-router",
            )
            value = self.codec.encode(Enveloped(env, cmd))
            headers = [("type", name.encode())]
            if cmd.key:
                out.add(self._commands_topic, None, cmd.key.encode(), value, headers, name)
            else:
                for p in self._partitions:
                    out.add(self._commands_topic, p, None, value, headers, name)


async def partitions_of(consumer: AIOKafkaConsumer, topic: str, timeout: float = 30.0) -> set[int]:
    """The partitions of a topic, waiting for the metadata of a topic that was just created."""
    deadline = time.monotonic() + timeout
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return set(parts)
        if time.monotonic() > deadline:
            raise RuntimeError(f"no metadata for topic {topic} after {timeout:.0f}s")
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)


class Waiters:
    """Futures of API requests waiting for the events their command caused (by causation id)."""

    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[list[Enveloped]]] = {}

    def __bool__(self) -> bool:
        return bool(self._futures)

    def expect(self, causation_id: str) -> asyncio.Future[list[Enveloped]]:
        fut: asyncio.Future[list[Enveloped]] = asyncio.get_running_loop().create_future()
        self._futures[causation_id] = fut
        return fut

    def forget(self, causation_id: str) -> None:
        self._futures.pop(causation_id, None)

    def wanted(self, causation_id: str | None) -> bool:
        return causation_id is not None and causation_id in self._futures

    def resolve(self, caused: dict[str, list[Enveloped]]) -> None:
        for cause, items in caused.items():
            fut = self._futures.pop(cause, None)
            if fut is not None and not fut.done():
                fut.set_result(items)


class OwnView:
    """The service's whole state, for queries: the partitions the local processor owns are read from
    its live state (no second decode of what it just produced); the others are folded here from
    `<service>.events` with the same `evolve`. When the processor loses a partition it hands its state
    over (with the offset it had reached), so the switch never re-reads the log."""

    def __init__(self, svc: ServiceDef[Any], settings: Settings, codec: Codec, waiters: Waiters) -> None:
        self.svc = svc
        self.settings = settings
        self.codec = codec
        self.waiters = waiters
        self.topic = settings.name(svc.topics["events"])
        self.processor: Processor | None = None
        self.states: dict[int, Any] = {}
        self._next: dict[int, int] = {}
        self._handover: dict[int, PartitionState] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[int] = []
        self._ends: dict[TopicPartition, int] = {}
        self.caught_up = asyncio.Event()
        self._partitioner = DefaultPartitioner()

    async def start(self) -> None:
        self._consumer = kafka.consumer(self.settings, group_id=None, max_poll_records=5000)
        await self._consumer.start()
        self._partitions = sorted(await partitions_of(self._consumer, self.topic))

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    # --- queries -------------------------------------------------------------------------------

    def partition_of(self, key: str) -> int:
        p: int = self._partitioner(key.encode(), self._partitions, self._partitions)
        return p

    def state_for(self, key: str) -> Any:
        """The state of the partition that holds aggregate `key` (an empty one while it is moving)."""
        return self._state(self.partition_of(key))

    def all(self) -> list[Any]:
        return [self._state(p) for p in self._partitions]

    def _state(self, p: int) -> Any:
        proc = self.processor
        if proc is not None and p in proc.states:
            return proc.states[p].state
        state = self.states.get(p)
        return state if state is not None else self.svc.new_state()

    # --- partition moves (called by the processor) ---------------------------------------------

    def handover(self, partition: int, ps: PartitionState) -> None:
        self._handover[partition] = ps

    def sync(self, owned: set[int]) -> None:
        """The processor now owns `owned`: fold every other partition here."""
        assert self._consumer is not None
        mine = [p for p in self._partitions if p not in owned]
        for p in list(self.states):
            if p not in mine:
                del self.states[p]
                del self._next[p]
        for p in mine:
            if p in self.states:
                continue  # kept: continues where it was
            ps = self._handover.pop(p, None)
            self.states[p] = ps.state if ps is not None else self.svc.new_state()
            self._next[p] = ps.next_offset if ps is not None else 0
        self._handover.clear()
        tps = [TopicPartition(self.topic, p) for p in mine]
        self._consumer.assign(tps)  # a new assignment forgets positions: seek every partition
        for tp in tps:
            self._consumer.seek(tp, self._next[tp.partition])

    async def run(self, stopping: asyncio.Event) -> None:
        assert self._consumer is not None
        while not stopping.is_set():
            if not self._consumer.assignment():
                if self.processor is not None and self.processor.ready.is_set():
                    self.caught_up.set()
                await asyncio.sleep(0.1)
                continue
            batch = await self._consumer.getmany(timeout_ms=200)
            caused: dict[str, list[Enveloped]] = {}
            for tp, records in batch.items():
                state = self.states.get(tp.partition)
                if state is None:
                    continue  # moved to the processor while this batch was fetched
                for rec in records:
                    if rec.offset < self._next[tp.partition]:
                        continue
                    self._next[tp.partition] = rec.offset + 1
                    try:
                        item = self.codec.decode(rec.value)
                    except DecodeError:
                        continue
                    self.svc.evolve(state, item.message)
                    if self.waiters.wanted(item.envelope.causation_id):
                        caused.setdefault(item.envelope.causation_id or "", []).append(item)
            if caused:
                self.waiters.resolve(caused)
            if not self.caught_up.is_set():
                tps = list(self._consumer.assignment())
                ends = await self._consumer.end_offsets(tps)
                if all([await self._consumer.position(tp) >= ends[tp] for tp in tps]):
                    self.caught_up.set()


class Projection:
    """Folds whole topics (every partition, no group) into an in-memory read model.

    With `types`, only records whose `type` header names one of them are decoded (a read model that
    needs, say, the sku catalogue from another service's busy topic does not decode the rest)."""

    def __init__(
        self,
        settings: Settings,
        codec: Codec,
        topics: list[str],
        fold: Callable[[Enveloped], None],
        name: str,
        waiters: Waiters | None = None,
        types: set[str] | None = None,
    ) -> None:
        self.settings = settings
        self.codec = codec
        self.topics = topics
        self.fold = fold
        self.caught_up = asyncio.Event()
        self.waiters = waiters or Waiters()
        self._types = {t.encode() for t in types} if types is not None else None
        self._consumer: AIOKafkaConsumer | None = None
        self.log = structlog.get_logger().bind(projection=name)

    async def start(self) -> None:
        self._consumer = kafka.consumer(self.settings, group_id=None, max_poll_records=5000)
        await self._consumer.start()
        tps = []
        for t in self.topics:
            tps += [TopicPartition(t, p) for p in sorted(await partitions_of(self._consumer, t))]
        self._ends = {}
        if not tps:
            self.caught_up.set()
            return
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._ends = await self._consumer.end_offsets(tps)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    def _wanted(self, rec: ConsumerRecord[bytes, bytes]) -> bool:
        if self._types is None:
            return True
        kinds = [v for k, v in rec.headers if k == "type"]
        return not kinds or kinds[0] in self._types  # no header (another producer): decode to see

    async def run(self, stopping: asyncio.Event) -> None:
        assert self._consumer is not None
        if not self._ends:
            await stopping.wait()
            return
        while not stopping.is_set():
            batch = await self._consumer.getmany(timeout_ms=200)
            caused: dict[str, list[Enveloped]] = {}
            for records in batch.values():
                for rec in records:
                    if not self._wanted(rec):
                        continue
                    try:
                        item = self.codec.decode(rec.value)
                    except DecodeError:
                        continue
                    self.fold(item)
                    cause = item.envelope.causation_id
                    if self.waiters.wanted(cause):
                        caused.setdefault(cause or "", []).append(item)
            if caused:
                self.waiters.resolve(caused)
            if not self.caught_up.is_set():
                positions = [await self._consumer.position(tp) for tp in self._ends]
                if all(pos >= self._ends[tp] for pos, tp in zip(positions, self._ends, strict=True)):
                    self.caught_up.set()


async def supervise(name: str, make: Callable[[], Awaitable[Any]], stopping: asyncio.Event) -> None:
    """Run a loop; on failure, log, back off and start it again from scratch (which rebuilds)."""
    from tenacity import AsyncRetrying, wait_exponential

    log = structlog.get_logger().bind(loop=name)
    async for attempt in AsyncRetrying(wait=wait_exponential(multiplier=0.5, max=10), reraise=True):
        with attempt:
            if stopping.is_set():
                return
            try:
                await make()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("loop failed; restarting")
                raise
