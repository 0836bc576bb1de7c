"""The shell around a pure domain: consume → decide → produce, exactly once, rebuilt from the log.

A service is described by a :class:`ServiceDef` (its messages, `decide`, `evolve`, `new_state` and
the routes of its saga policies). Three loops run it:

* :class:`Processor` — consumer group ``<service>`` on ``<service>.commands``. Partition *p* of the
  command topic owns partition *p* of ``<service>.events`` (both keyed by aggregate id). For each
  batch and partition: decode, skip commands already applied (dedup by command id), ``decide``,
  fold the events into the state, and in ONE Kafka transaction produce the events (to partition
  *p*), any dead letters, and the input offset. On every assignment the owned partitions are
  rebuilt by folding ``<service>.events`` from the latest snapshot (or from offset 0).
* :class:`Router` — consumer group ``<service>-router`` on the topics of other services (and
  ``clock.ticks``). Its pure policy turns each event into commands for ``<service>.commands``,
  re-keyed by this service's aggregate id; a command with an empty key goes to every partition.
  Also transactional: a routed command is written once per event, with an id derived from it.
* :class:`Projection` — no group; folds whole topics into a read model for the HTTP API.

Zombie fencing. Each input partition has its own transactional id, ``<group>-<topic>-<p>``, and so
its own producer. A loop that is assigned a partition first starts that partition's producer —
Kafka's InitProducerId bumps the id's epoch, completes (aborts) any transaction the previous owner
left open, and refuses every later request of the previous epoch — and only THEN reads the
committed offset and rebuilds the state. So whatever the previous owner does after its partitions
moved (a SIGSTOPped process resuming, a network partition healing), it cannot commit: its produce,
offset commit and commit requests carry a fenced epoch. (aiokafka sends no consumer-group
generation with its offsets — no KIP-447 — so the per-partition transactional id is the fence, as
in Kafka Streams' exactly-once before 2.6.)

A transaction that fails (fenced, timed out by the coordinator, aborted) leaves state in memory that
never reached the log: those partitions' states are dropped (never snapshotted) and the loop starts
again from the committed offsets and the log (:func:`supervise`).

Decode failures and records that are not commands of the service go to ``<service>.dlq`` in the
same transaction, with the reason, source topic, partition and offset in headers. An own-log event
that cannot be read stops its partition (see :class:`flexchain.fold.UnreadableEvent`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.partitioner import DefaultPartitioner

from flexchain import kafka
from flexchain.commits import commit_metadata
from flexchain.fold import ORIGIN_HEADER, Applied, PartitionState, UnreadableEvent, fold_record
from flexchain.messages import Envelope, Enveloped, Message, derived_id
from flexchain.metrics import ServiceMetrics
from flexchain.serde import Codec, DecodeError
from flexchain.settings import Settings
from flexchain.snapshots import SnapshotStore
from flexchain.step import (
    REDRIVE_OFFSET_HEADER,
    REDRIVE_PARTITION_HEADER,
    REDRIVE_TOPIC_HEADER,
    SOURCE_OFFSET_HEADER,
    CommandStep,
    OutRecord,
    dead_letter,
)

if TYPE_CHECKING:
    from flexchain.views import OwnView, Waiters

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


class LoopFailed(Exception):
    """A loop must start again from what is committed (a transaction failed, a take-over failed)."""


class NotOwned(Exception):
    """A forced rebuild asked for partitions this instance does not own (now)."""

    def __init__(self, partitions: list[int]) -> None:
        super().__init__(f"partitions not owned by this instance: {partitions}")
        self.partitions = partitions


class PartitionPoisoned(Exception):
    """A command whose events could not be folded: the partition's state may be half-changed."""


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


def state_digest(ps: PartitionState) -> str:
    """A digest of a partition's state, versions and dedup memory: equal digests = equal states."""
    body = canonical({"state": ps.state, "versions": ps.versions, "seen": ps.seen})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# The `reason` label of the DLQ counter: a fixed set, so no record can create new series.
REASONS = (
    "not in the wire format",
    "unknown schema id",
    "schema id",
    "body does not match schema",
    "not a command",
    "decide failed",
    "encode failed",
    "evolve failed",
    "policy failed",
    "idempotency key reused",
    "stale command",
    "not a route",
)


def _reason_label(reason: str) -> str:
    for known in REASONS:
        if reason.startswith(known):
            return known
    return "other"


def _failure_kind(exc: BaseException) -> str:
    if isinstance(exc, ProducerFenced):
        return "fenced"
    if isinstance(exc, PartitionPoisoned):
        return "poison"
    if isinstance(exc, InjectedFault):
        return "injected"
    if isinstance(exc, KafkaError):
        return "kafka"
    if isinstance(exc, DecodeError):
        return "registry"
    return "error"


class _AbortOrphans(Exception):
    """Raised inside a transaction to abort it (see `Processor._clear_orphans`)."""


class StoreUnavailable(Exception):
    """The snapshot store is not answering (the processor folds from the log instead)."""


STORE_TIMEOUT_S = 10.0  # a snapshot call longer than this is abandoned (its thread finishes on its own)
ORPHAN_WAIT_S = 30.0  # how long a take-over waits for orphaned records to be aborted
MARKER_WAIT_S = 2.0  # how long a snapshot waits for its events' commit marker to be in the log
STORE_BACKOFF_S = 30.0  # after a failed call, the store is not asked for this long


#: Transactions begun per loop stage and input partition in this process, kept across loop restarts:
#: `FLEXCHAIN_FAULT_ABORT_EVERY` aborts every Nth of each partition. (Counted per loop, reset by each
#: restart, the Nth transaction of a batch spanning N partitions fell on the same partition after
#: every restart: that partition never advanced.)
_TRANSACTIONS: collections.Counter[tuple[str, TopicPartition]] = collections.Counter()


class InjectedFault(Exception):
    """`FLEXCHAIN_FAULT_ABORT_EVERY`: a transaction aborted on purpose, to test recovery."""


class Written(NamedTuple):
    """Where a record of a committed transaction was written."""

    topic: str
    partition: int
    offset: int


class _Outbox:
    """Records to produce in the current transaction."""

    def __init__(self) -> None:
        self.records: list[OutRecord] = []

    def add(
        self, topic: str, partition: int | None, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]], kind: str
    ) -> None:
        self.records.append(OutRecord(topic, partition, key, value, headers, kind))


class _Gate:
    """Who may touch a loop's state. Transactions share it — one per input partition at a time, any
    number of partitions at once (`shared()`); a reader of the state, a rebalance, a rebuild or a stop
    takes it alone (`async with gate`): it waits until the open transactions have ended and holds new
    ones back meanwhile, so it never sees a batch decided but not yet committed. A waiting exclusive
    holder goes before transactions that arrive after it (no reader starves under load). Releasing
    never awaits, so a holder cancelled on its way out (a query whose client left) cannot leave the
    gate shut."""

    def __init__(self) -> None:
        self._shared = 0
        self._exclusive = False
        self._waiting = 0  # exclusive holders waiting
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()  # wakes every waiter; each checks again
        self._changed = asyncio.Event()

    async def _until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            await self._changed.wait()

    async def open(self) -> None:
        """Until no exclusive holder has or waits for the gate (a rebalance in progress has finished)."""
        await self._until(lambda: not self._exclusive and not self._waiting)

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        await self.open()
        self._shared += 1
        try:
            yield
        finally:
            self._shared -= 1
            self._notify()

    async def __aenter__(self) -> None:
        self._waiting += 1
        try:
            await self._until(lambda: not self._exclusive and not self._shared)
        finally:
            self._waiting -= 1
            self._notify()  # (a cancelled waiter no longer holds transactions back)
        self._exclusive = True

    async def __aexit__(self, *exc: object) -> None:
        self._exclusive = False
        self._notify()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: _TransactionalLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.loop.revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.loop.assigned(list(assigned))


class _TransactionalLoop:
    """Shared machinery of Processor and Router: a consumer group, and one transactional producer
    per assigned input partition (the zombie fence, see the module docstring)."""

    stage = ""

    def __init__(
        self,
        svc: ServiceDef[Any],
        settings: Settings,
        codec: Codec,
        metrics: ServiceMetrics,
        group: str,
        topics: list[str],
        clients: kafka.Clients | None = None,
    ) -> None:
        self.svc = svc
        self.clients = clients or kafka.Clients()  # where its consumer and producers come from
        self.settings = settings
        self.codec = codec
        self.metrics = metrics
        self.base_group = group
        self.group_id = settings.name(group)
        self.topics = [settings.name(t) for t in topics]
        self.names = {k: settings.name(v) for k, v in svc.topics.items()}
        self.log = structlog.get_logger().bind(service=svc.name, stage=self.stage)
        self.lock = _Gate()
        self.consumer: AIOKafkaConsumer | None = None
        self.producers: dict[TopicPartition, AIOKafkaProducer] = {}
        self._next: dict[TopicPartition, int] = {}  # per owned partition: the next offset to process
        self._queued: dict[TopicPartition, int] = {}  # per owned partition: the next offset to queue
        self._pending: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}  # fetched, not yet taken
        self._workers: dict[TopicPartition, asyncio.Task[None]] = {}  # per partition: its transactions, in turn
        self._paused: set[TopicPartition] = set()
        self._closing = False
        self._partitions_by_key: dict[tuple[str, bytes], int] = {}
        self._failure: LoopFailed | None = None  # set: `run` raises it and the loop starts again
        self._last_lag = 0.0
        self._debug = settings.flexchain_log_level.upper() == "DEBUG"
        self._in: dict[tuple[str, str], Any] = {}  # metric children by label, looked up once
        self._out: dict[tuple[str, str], Any] = {}
        for reason in (*REASONS, "other"):  # every reason exported at 0: the first dead letter is an increase
            metrics.dlq.labels(reason)

    def transactional_id(self, tp: TopicPartition) -> str:
        """One per consumer group and input partition: `<group>-<topic>-<partition>` (prefixed)."""
        topic = tp.topic.removeprefix(self.settings.flexchain_topic_prefix)
        return self.settings.name(f"{self.base_group}-{topic}-{tp.partition}")

    def count_in(self, topic: str, kind: str) -> None:
        child = self._in.get((topic, kind))
        if child is None:  # (`topic` is one this loop subscribed to; `kind` a decoded class, or "other")
            child = self._in[(topic, kind)] = self.metrics.messages_in.labels(topic, self.metrics.type_label(kind))
        child.inc()

    async def start(self) -> None:
        # Static membership (KIP-345): the group knows this instance by name, so after a crash its
        # restart takes its partitions back at once, instead of waiting for the session timeout to
        # drop the dead member before the group can rebalance.
        static = self.settings.flexchain_static_membership
        self.consumer = self.clients.consumer(
            self.settings,
            group_id=self.group_id,
            group_instance_id=f"{self.group_id}-{self.settings.flexchain_instance_id}" if static else None,
            max_poll_interval_ms=600_000,
            session_timeout_ms=self.settings.flexchain_session_timeout_ms,
            heartbeat_interval_ms=max(100, self.settings.flexchain_session_timeout_ms // 3),
        )
        await self.consumer.start()
        # A topic created a moment ago may not be in this client's metadata yet: the group would then
        # be assigned none of its partitions, the processor would call itself ready owning nothing,
        # and nothing would be processed until the next metadata refresh (5 minutes). Wait for it.
        for topic in self.topics:
            await kafka.partitions_of(self.consumer, topic)
        self.consumer.subscribe(self.topics, listener=_Listener(self))

    async def stop(self) -> None:
        if self.consumer is not None:
            # A clean stop leaves the group at once, static member or not, so its partitions move to
            # the other instances now (scaling down, a rolling update) — not a session timeout later.
            # aiokafka sends no LeaveGroup for a static member: for this last step it is not one.
            coordinator = getattr(self.consumer, "_coordinator", None)
            if coordinator is not None:
                coordinator._group_instance_id = None
            await self.consumer.stop()
        await self._close_producers(list(self.producers))

    # --- partitions moving -------------------------------------------------------------------------

    async def revoked(self, tps: list[TopicPartition]) -> None:
        async with self.lock:  # wait for the transaction in flight: the next owner must see it
            try:
                await self.lose(tps)
            except Exception:
                self.log.exception("giving partitions up failed", partitions=[tp.partition for tp in tps])
            await self._close_producers(tps)

    async def assigned(self, tps: list[TopicPartition]) -> None:
        """Fence, then read: the producers of the new partitions are started (which fences and
        completes whatever their previous owner left open) before the committed offsets are read
        and the state is rebuilt. aiokafka swallows a listener's exception, so a failure here is
        kept and raised by `run`: the loop then starts again."""
        async with self.lock:
            try:
                new = [tp for tp in tps if tp not in self.producers]
                await self._open_producers(new)
                await self._seek_committed(new)
                await self.gain(new)
            except Exception as exc:
                self.log.exception("taking over partitions failed", partitions=[tp.partition for tp in tps])
                self._failure = self._failed("taking over partitions failed", exc)

    async def lose(self, tps: list[TopicPartition]) -> None:
        """Hook: partitions are leaving (called under the lock, before their producers close)."""

    async def gain(self, tps: list[TopicPartition]) -> None:
        """Hook: partitions arrived, fenced and positioned at their committed offsets."""

    async def _open_producers(self, tps: list[TopicPartition]) -> None:
        async def open_one(tp: TopicPartition) -> None:
            producer = self.clients.producer(self.settings, transactional_id=self.transactional_id(tp))
            try:
                await asyncio.wait_for(producer.start(), timeout=self.settings.flexchain_transaction_timeout_ms / 1000 * 4)
            except BaseException:
                await _force_stop(producer)
                raise
            self.producers[tp] = producer

        results = await asyncio.gather(*(open_one(tp) for tp in tps), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def _close_producers(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self._next.pop(tp, None)
            self._queued.pop(tp, None)
            self._pending.pop(tp, None)
            self._paused.discard(tp)
        producers = [p for tp in tps if (p := self.producers.pop(tp, None)) is not None]
        await asyncio.gather(*(_force_stop(p) for p in producers), return_exceptions=True)

    async def _seek_committed(self, tps: list[TopicPartition]) -> None:
        """Position each partition at its committed offset, read after the fence. `getmany` runs
        while a rebalance does, so a batch fetched from an older position may still arrive: `_next`
        says where processing really stands, and `_transact` drops whatever comes before it."""
        assert self.consumer is not None
        for tp in tps:
            offset = await self.consumer.committed(tp)
            if offset is None:
                await self.consumer.seek_to_beginning(tp)
                offset = 0
            self.reposition(tp, offset)

    def reposition(self, tp: TopicPartition, offset: int) -> None:
        """Read the partition again from `offset`: whatever was queued after it is dropped."""
        assert self.consumer is not None
        self.consumer.seek(tp, offset)
        self._next[tp] = self._queued[tp] = offset
        self._pending.pop(tp, None)

    # --- the loop ----------------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        """Fetch without waiting for transactions: each partition's records queue up for that
        partition's worker, which runs one transaction after another (in offset order), so a
        partition's next transaction starts as soon as its last one ended — not when the slowest
        partition's has, and not after the next fetch. A partition with two batches queued is paused
        until its worker catches up. The first failed transaction ends the loop (LoopFailed): the
        other partitions' open transactions end first, and `supervise` starts again from what is
        committed."""
        assert self.consumer is not None
        self._closing = False
        try:
            while not stopping.is_set():
                if self._failure is not None:
                    raise self._failure from self._failure.__cause__
                batch = await self.consumer.getmany(timeout_ms=200, max_records=self.settings.flexchain_batch_max)
                if batch:
                    # records of a partition being taken over are fetched while `assigned` still
                    # fences it: queue them once that is done (before, they would look unowned)
                    await self.lock.open()
                for tp, records in batch.items():
                    self._enqueue(tp, records)
                await self._report_lag()
        finally:
            self._closing = True
            workers = list(self._workers.values())
            if workers:
                await asyncio.gather(*workers, return_exceptions=True)

    def _failed(self, what: str, exc: BaseException) -> LoopFailed:
        """The loop's failure, kept in `_failure`: `run` raises it (from `exc`) and ends the loop."""
        failure = LoopFailed(f"{self.stage}: {what}")
        failure.__cause__ = exc
        return failure

    def _enqueue(self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        if not self.owns(tp) or tp not in self._queued:
            return  # revoked while the batch was fetched: the next owner reads it
        start = self._queued[tp]
        fresh = [r for r in records if r.offset >= start] if records[0].offset < start else records
        if not fresh:
            return
        self._queued[tp] = fresh[-1].offset + 1
        pending = self._pending.setdefault(tp, [])
        pending += fresh
        if len(pending) >= 2 * self.settings.flexchain_batch_max and tp not in self._paused:
            assert self.consumer is not None
            self.consumer.pause(tp)
            self._paused.add(tp)
        if tp not in self._workers:
            self._workers[tp] = asyncio.create_task(self._work(tp), name=f"{self.stage}-{tp.partition}")

    async def _work(self, tp: TopicPartition) -> None:
        """One partition's transactions, one after another, while it has records queued."""
        try:
            while not self._closing and self._failure is None:
                async with self.lock.shared():
                    pending = self._pending.get(tp)
                    if not pending or not self.owns(tp):
                        return
                    n = self.settings.flexchain_batch_max
                    records, self._pending[tp] = pending[:n], pending[n:]
                    try:
                        await self._transact_one(tp, records)
                    except Exception as exc:
                        self._pending.pop(tp, None)
                        self._discard(tp)
                        kind = _failure_kind(exc)
                        self.metrics.transactions_failed.labels(self.stage, kind).inc()
                        self.log.warning("transaction failed", partition=tp.partition, topic=tp.topic, kind=kind, error=repr(exc))
                        if self._failure is None:
                            self._failure = self._failed(f"transaction failed on {[tp.partition]}", exc)
                        return
                if tp in self._paused and len(self._pending.get(tp, ())) < self.settings.flexchain_batch_max:
                    self._paused.discard(tp)
                    if self.consumer is not None and tp in self.consumer.assignment() and self.owns(tp):
                        self.consumer.resume(tp)
        finally:
            if self._workers.get(tp) is asyncio.current_task():
                del self._workers[tp]
                # records queued while this worker was leaving (its last await) need a worker
                if self._pending.get(tp) and not self._closing and self._failure is None and self.owns(tp):
                    self._workers[tp] = asyncio.create_task(self._work(tp), name=f"{self.stage}-{tp.partition}")

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

    def owns(self, tp: TopicPartition) -> bool:
        return tp in self.producers

    def _handle(self, tp: TopicPartition, rec: ConsumerRecord[bytes, bytes], out: _Outbox) -> None:
        raise NotImplementedError

    async def _after_commit(self, tp: TopicPartition, metadata: list[tuple[str, Any]]) -> None:
        """Hook: the partition's transaction is committed (with the metadata of its records)."""

    def _discard(self, tp: TopicPartition) -> None:
        """Hook: the partition's transaction failed; forget whatever it changed in memory."""

    def dead_letter(
        self, rec: ConsumerRecord[bytes, bytes], reason: str, out: _Outbox, source: tuple[str, int, int] | None = None
    ) -> None:
        self.log.warning("dead letter", reason=reason, topic=rec.topic, partition=rec.partition, offset=rec.offset)
        out.records.append(dead_letter(self.names["dlq"], rec, reason, source))

    async def _produce(self, producer: AIOKafkaProducer, out: _Outbox) -> list[tuple[str, str, int, asyncio.Future[Any], int]]:
        """The outbox's records, in order, as one batch per topic partition (another when one is full):
        a batch costs the producer about what one `send` does. Per record: its kind, topic,
        partition, its batch's future and its place in that batch (offset = the batch's base + place)."""
        by_tp: dict[tuple[str, int], list[int]] = {}
        for i, (topic, partition, key, _value, _headers, _kind) in enumerate(out.records):
            if partition is None:
                partition = await self._partition_of(producer, topic, key)
            by_tp.setdefault((topic, partition), []).append(i)
        sent: list[tuple[str, str, int, asyncio.Future[Any], int]] = []
        for (topic, partition), indices in by_tp.items():
            batch, placed = producer.create_batch(), list[str]()
            for i in indices:
                _topic, _partition, key, value, headers, kind = out.records[i]
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # full
                    if not placed:
                        raise ValueError(f"a record of {len(value)} bytes does not fit an empty batch of {topic}")
                    fut = await producer.send_batch(batch, topic, partition=partition)
                    sent += [(k, topic, partition, fut, n) for n, k in enumerate(placed)]
                    batch, placed = producer.create_batch(), []
                    if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                        raise ValueError(f"a record of {len(value)} bytes does not fit an empty batch of {topic}")
                placed.append(kind)
            fut = await producer.send_batch(batch, topic, partition=partition)
            sent += [(k, topic, partition, fut, n) for n, k in enumerate(placed)]
        return sent

    async def _partition_of(self, producer: AIOKafkaProducer, topic: str, key: bytes | None) -> int:
        """The partition the producer's default partitioner would pick (murmur2 of the key, as Java's),
        remembered per key: aiokafka hashes in pure Python on every `send`."""
        if key is not None and (known := self._partitions_by_key.get((topic, key))) is not None:
            return known
        every = sorted(await producer.partitions_for(topic))
        partition: int = DefaultPartitioner()(key, every, every)
        if key is not None:
            if len(self._partitions_by_key) >= 100_000:
                self._partitions_by_key.clear()
            self._partitions_by_key[(topic, key)] = partition
        return partition

    async def _transact_one(self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        producer = self.producers[tp]
        out = _Outbox()
        for rec in records:
            self._handle(tp, rec, out)
        every = self.settings.flexchain_fault_abort_every
        async with producer.transaction():
            sent = await self._produce(producer, out)
            # the commit's time and instance ride in its metadata: `flexchain lag` tells its age (commits.py)
            offset = (records[-1].offset + 1, commit_metadata(self.settings.flexchain_instance_id))
            await producer.send_offsets_to_transaction({tp: offset}, self.group_id)
            if self.settings.flexchain_fault_commit_delay_ms:  # a test widens the window a freeze can hit
                # and sees when a transaction is open: a marker file per stage and partition meanwhile
                marker = self.settings.flexchain_data_dir / f"in-transaction.{self.stage}.{tp.partition}"
                marker.touch()
                try:
                    await asyncio.sleep(self.settings.flexchain_fault_commit_delay_ms / 1000)
                finally:
                    marker.unlink(missing_ok=True)
            if every:  # per partition, across restarts: see _TRANSACTIONS
                _TRANSACTIONS[(self.stage, tp)] += 1
                if (n := _TRANSACTIONS[(self.stage, tp)]) % every == 0:
                    raise InjectedFault(f"FLEXCHAIN_FAULT_ABORT_EVERY={every}: transaction {n} of {tp} aborted")
        done = time.time() * 1000
        hist = self.metrics.latency.labels(self.stage)
        for rec in records:
            hist.observe(max(0.0, (done - rec.timestamp) / 1000))
        self.metrics.batch_size.labels(self.stage).observe(len(records))
        self._next[tp] = records[-1].offset + 1
        results = [(kind, Written(topic, partition, fut.result().offset + i)) for kind, topic, partition, fut, i in sent]
        for kind, md in results:
            if kind.startswith("dlq:"):
                self.metrics.dlq.labels(_reason_label(kind[4:])).inc()
            else:
                child = self._out.get((md.topic, kind))
                if child is None:
                    child = self._out[(md.topic, kind)] = self.metrics.events_out.labels(md.topic, self.metrics.type_label(kind))
                child.inc()
        await self._after_commit(tp, results)


def _in_daemon_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """`fn(*args)` in a daemon thread of its own, as a future of the running loop. Not the default
    executor: a call abandoned on its timeout (a frozen database: no client timeout covers a pooled
    connection's ping) would be joined when the process exits, so a clean stop would wait for the
    database to answer again. A daemon thread is left behind instead."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)

    def run() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="snapshot-store", daemon=True).start()
    return fut


async def _force_stop(producer: AIOKafkaProducer) -> None:
    """Stop a producer even if its broker is gone (aiokafka's stop waits for undelivered batches)."""
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    if task is not None and not task.done():
        task.cancel()
    with contextlib.suppress(Exception):  # a producer being thrown away
        await asyncio.wait_for(producer.stop(), timeout=10)


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
        poison: dict[tuple[str, int, int], str] | None = None,
        clients: kafka.Clients | None = None,
    ) -> None:
        super().__init__(svc, settings, codec, metrics, svc.name, [svc.topics["commands"]], clients)
        self.store = store
        self.cluster_id = cluster_id
        self.states: dict[int, PartitionState] = {}
        self.stopped: dict[int, UnreadableEvent] = {}  # partitions whose own log cannot be read
        self.poison = poison if poison is not None else {}  # command records whose events failed to fold
        self.ready = asyncio.Event()
        self._events_topic = self.names["events"]
        self._horizon = int(settings.flexchain_dedup_horizon_hours * 3_600_000)
        # what each command record comes to (no I/O: unit-tested without Kafka)
        self.step = CommandStep(svc, codec, self._events_topic, self.names["dlq"], settings.flexchain_dedup_horizon_hours)
        self._rebuilder: AIOKafkaConsumer | None = None
        self._uncommitted: AIOKafkaConsumer | None = None
        self._store_down_until = 0.0
        self.view: OwnView | None = None
        self.waiters: Waiters | None = None
        self._caused: dict[int, dict[str, list[Enveloped]]] = {}

    async def start(self) -> None:
        self._rebuilder = self.clients.consumer(self.settings, group_id=None, max_poll_records=5000)
        await self._rebuilder.start()
        self._uncommitted = self.clients.consumer(self.settings, group_id=None, isolation_level="read_uncommitted")
        await self._uncommitted.start()
        await super().start()

    async def stop(self) -> None:
        async with self.lock:  # hand every partition over, as a revocation does: queries go on
            await self.lose([TopicPartition(self.topics[0], p) for p in list(self.states)])
        await super().stop()
        if self._rebuilder is not None:
            await self._rebuilder.stop()
        if self._uncommitted is not None:
            await self._uncommitted.stop()

    def owns(self, tp: TopicPartition) -> bool:
        return tp in self.producers and tp.partition in self.states

    def is_ready(self) -> bool:
        return self.ready.is_set() and not self.stopped

    # --- assignment and rebuild ----------------------------------------------------------------

    async def lose(self, tps: list[TopicPartition]) -> None:
        self.ready.clear()
        self.metrics.ready.set(0)
        for tp in tps:
            self.stopped.pop(tp.partition, None)
            self.metrics.partition_stopped.labels(self.stage, str(tp.partition)).set(0)
            ps = self.states.pop(tp.partition, None)
            if ps is None:
                continue
            await self._snapshot(tp.partition, ps)
            if self.view is not None:
                self.view.handover(tp.partition, ps)

    async def gain(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            await self._clear_orphans(tp)
        partitions = sorted(tp.partition for tp in tps if tp.partition not in self.states)
        if partitions:
            await self.rebuild(partitions)
        if self.view is not None:
            self.view.sync(set(self.states) | set(self.stopped))
        self.ready.set()
        self.metrics.ready.set(0 if self.stopped else 1)

    async def _clear_orphans(self, tp: TopicPartition) -> None:
        """After the fence, no transaction of ours is open on our event partition, so its last stable
        offset must equal its end. If it does not, a transaction was completed without its marker on
        this partition — Kafka's coordinator skips markers for a partition without a leader at that
        moment (seen on a single broker killed with SIGKILL) — and its records are orphans: the next
        marker our producer id writes here would commit them along with our own, although the
        transaction's input offsets may never have been committed (every command answered twice).
        So they are aborted now, by a transaction that writes one record here and aborts, and the
        input is read again from the first command whose events they were: the events of commands
        already in the log are skipped as duplicates, the others are made again, once."""
        assert self._rebuilder is not None and self._uncommitted is not None and self.consumer is not None
        events = TopicPartition(self._events_topic, tp.partition)
        stable = (await self._rebuilder.end_offsets([events]))[events]
        end = (await self._uncommitted.end_offsets([events]))[events]
        if stable >= end:
            return
        sources = await self._orphan_sources(events, stable, end)
        self.log.error(
            "orphaned transaction records on the event partition (a transaction marker was lost): aborting them",
            partition=tp.partition,
            first_offset=stable,
            end_offset=end,
            commands_from=min(sources) if sources else None,
        )
        producer = self.producers[tp]
        with contextlib.suppress(_AbortOrphans):
            async with producer.transaction():
                await producer.send(events.topic, b"", partition=events.partition, headers=[("flexchain.orphans", b"aborted")])
                raise _AbortOrphans
        end = (await self._uncommitted.end_offsets([events]))[events]  # past the abort marker
        if not await self._stable_through(tp.partition, end, wait_s=ORPHAN_WAIT_S):
            raise RuntimeError(f"{events}: orphaned transaction records could not be aborted")
        if sources and min(sources) < self._next.get(tp, 0):
            self.reposition(tp, min(sources))

    async def _orphan_sources(self, events: TopicPartition, start: int, end: int) -> list[int]:
        """The input offsets of the commands whose events lie in [start, end) of the event partition."""
        assert self._uncommitted is not None
        self._uncommitted.assign([events])
        self._uncommitted.seek(events, start)
        sources: list[int] = []
        try:
            while await self._uncommitted.position(events) < end:
                for rec in (await self._uncommitted.getmany(events, timeout_ms=500)).get(events, []):
                    if rec.offset >= end:
                        break
                    source = kafka.header(rec, SOURCE_OFFSET_HEADER)
                    if source is not None:
                        sources.append(int(source))
        finally:
            self._uncommitted.unsubscribe()
        return sources

    async def rebuild(self, partitions: list[int], from_log: bool = False) -> None:
        """Fold the partitions' state from their snapshot (unless `from_log`) and the event log."""
        assert self._rebuilder is not None and self.consumer is not None
        started = time.monotonic()
        states: dict[int, PartitionState] = {}
        tps = [TopicPartition(self._events_topic, p) for p in partitions]
        ends = await self._rebuilder.end_offsets(tps)
        for p in partitions:
            ps = None if from_log else await self._load_snapshot(p)
            if ps is None or ps.next_offset > ends[TopicPartition(self._events_topic, p)]:
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
                # short: the last "records" of a partition are often only its commit marker, which
                # moves the position without returning anything — a long wait here is dead time
                batch = await self._rebuilder.getmany(*remaining, timeout_ms=100)
                for tp, records in batch.items():
                    if tp not in remaining:
                        continue
                    ps = states[tp.partition]
                    try:
                        for rec in records:
                            self._fold(ps, rec)
                            ps.since_snapshot += 1  # folded, not in a snapshot: the next one takes them
                    except UnreadableEvent as exc:
                        self._stop_partition(exc)
                        del remaining[tp]
                        del states[tp.partition]
                        continue
                    folded += len(records)
                if self.settings.flexchain_fault_rebuild_delay_ms:  # a test widens the window to act in
                    await asyncio.sleep(self.settings.flexchain_fault_rebuild_delay_ms / 1000)
                for tp in list(remaining):
                    pos = await self._rebuilder.position(tp)
                    total = max(1, todo[tp] - starts[tp])
                    self.metrics.rebuild_progress.labels(str(tp.partition)).set(min(1.0, (pos - starts[tp]) / total))
                    if pos >= remaining[tp]:
                        states[tp.partition].next_offset = pos
                        del remaining[tp]
            self._rebuilder.unsubscribe()
        self.metrics.rebuild_events.inc(folded)
        for p, ps in states.items():
            self.metrics.rebuild_progress.labels(str(p)).set(1.0)
            self.states[p] = ps
        elapsed = time.monotonic() - started
        self.metrics.rebuild_duration.set(elapsed)
        self.log.info("rebuild finished", partitions=partitions, events=folded, seconds=round(elapsed, 3))

    async def rebuild_from_log(self, partitions: list[int]) -> dict[int, dict[str, Any]]:
        """A forced rebuild (`POST /internal/rebuild`): drop the partitions' snapshots, then fold their
        state again from offset 0 of the event log; answers their digests. All of it under the loop's
        lock, as a rebuild on assignment: no transaction of this instance is open meanwhile, commands
        arriving wait in their topic and are then decided once, on the rebuilt state. Raises
        `NotOwned` or a failure before anything changed (the state is kept); a failure after the
        state is dropped makes the loop start again from what is committed, as a failed transaction
        does."""
        async with self.lock:
            missing = [p for p in partitions if TopicPartition(self.topics[0], p) not in self.producers]
            if missing:
                raise NotOwned(missing)
            for p in partitions:  # the last transaction's markers must be in the log the rebuild reads
                ps = self.states.get(p)
                if ps is not None and not await self._stable_through(p, ps.next_offset, wait_s=ORPHAN_WAIT_S):
                    raise RuntimeError(f"partition {p}: its last events are not decided in the log (try again)")
            await self._store_call(self.store.drop, self.group_id, partitions)  # raises: nothing has changed yet
            self.ready.clear()
            self.metrics.ready.set(0)
            for p in partitions:
                tp = TopicPartition(self.topics[0], p)
                self._discard(tp)
                self.metrics.rebuild_progress.labels(str(p)).set(0.0)
                if self.stopped.pop(p, None) is not None:  # a stopped partition is tried again
                    assert self.consumer is not None
                    self.metrics.partition_stopped.labels(self.stage, str(p)).set(0)
                    self.reposition(tp, self._next.get(tp, 0))
                    self.consumer.resume(tp)
            self.log.warning("forced rebuild from the log: snapshots dropped", partitions=partitions)
            try:
                await self.rebuild(partitions, from_log=True)
            except BaseException as exc:
                # the partitions have no state: the loop starts again from the log
                self._failure = self._failed("forced rebuild failed", exc)
                raise
            self.ready.set()
            self.metrics.ready.set(0 if self.stopped else 1)
            return {p: d for p, d in self.digests().items() if p in partitions}

    def _fold(self, ps: PartitionState, rec: ConsumerRecord[bytes, bytes]) -> None:
        fold_record(self.codec.decode, self.svc.evolve, ps, rec, self._horizon)

    def _stop_partition(self, exc: UnreadableEvent) -> None:
        """An own-log event that cannot be read: this partition stops (its commands wait in the
        topic), loudly; the others go on. A fix (an upcaster, a schema, a code fix) and a restart
        resume it."""
        assert self.consumer is not None
        self.stopped[exc.partition] = exc
        self.consumer.pause(TopicPartition(self.topics[0], exc.partition))
        self.metrics.partition_stopped.labels(self.stage, str(exc.partition)).set(1)
        self.log.error(
            "partition stopped: an event of the service's own log cannot be read",
            topic=exc.topic,
            partition=exc.partition,
            offset=exc.offset,
            reason=exc.reason,
        )

    def digests(self) -> dict[int, dict[str, Any]]:
        """Per owned partition: its event offset and a digest of its state (rebuild == live check)."""
        out: dict[int, dict[str, Any]] = {}
        for p, ps in sorted(self.states.items()):
            out[p] = {"next_offset": ps.next_offset, "aggregates": len(ps.versions), "digest": state_digest(ps)}
        return out

    async def _load_snapshot(self, partition: int) -> PartitionState | None:
        try:
            ps: PartitionState | None = await self._store_call(
                self.store.load, self.group_id, partition, self.cluster_id, self.svc.state_format, type(self.svc.new_state())
            )
            return ps
        except Exception as exc:  # the store is only a shortcut: without it, fold the whole log
            self.log.warning("snapshot store unavailable; rebuilding from the log", partition=partition, error=repr(exc))
            return None

    async def _snapshot(self, partition: int, ps: PartitionState) -> None:
        """Save a partition's COMMITTED state (never called between a change and its commit)."""
        if ps.since_snapshot == 0:
            return
        if not await self._stable_through(partition, ps.next_offset):
            # The state holds events whose commit marker is not in the log (yet, or ever: see
            # `_clear_orphans`). A snapshot of it could outlive their abort; try again later.
            self.log.warning("snapshot deferred: the log is not stable up to the state", partition=partition)
            return
        ps.since_snapshot = 0
        try:
            await self._store_call(
                self.store.save, self.group_id, partition, self.cluster_id, self.svc.state_format, ps, type(ps.state)
            )
        except Exception as exc:
            self.log.warning("snapshot not saved", partition=partition, error=repr(exc))

    async def _stable_through(self, partition: int, offset: int, wait_s: float = MARKER_WAIT_S) -> bool:
        """Whether the event partition's last stable offset reaches `offset` within `wait_s` (the
        coordinator writes markers just after the commit returns)."""
        assert self._rebuilder is not None
        events = TopicPartition(self._events_topic, partition)
        try:
            async with asyncio.timeout(wait_s):
                while (await self._rebuilder.end_offsets([events]))[events] < offset:
                    await asyncio.sleep(0.05)
        except (TimeoutError, KafkaError):
            return False
        return True

    async def _store_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A call to the snapshot store, in a thread and bounded in time: a store that hangs (a frozen
        database answers no query, and no client timeout covers that) must not hold a rebuild or a
        rebalance. After a failure the store is left alone for a while: its calls fail at once."""
        if time.monotonic() < self._store_down_until:
            raise StoreUnavailable("the snapshot store failed a moment ago")
        try:
            return await asyncio.wait_for(_in_daemon_thread(fn, *args), timeout=STORE_TIMEOUT_S)
        except Exception:
            self._store_down_until = time.monotonic() + STORE_BACKOFF_S
            raise

    # --- processing ----------------------------------------------------------------------------

    def _discard(self, tp: TopicPartition) -> None:
        self.states.pop(tp.partition, None)
        self._caused.pop(tp.partition, None)

    def _handle(self, tp: TopicPartition, rec: ConsumerRecord[bytes, bytes], out: _Outbox) -> None:
        """The step's outcome (`flexchain.step`) into the transaction, the logs and the metrics."""
        where = (rec.topic, rec.partition, rec.offset)
        done = self.step(self.states[tp.partition], rec, self.poison.get(where))
        cmd = done.command
        if cmd is not None:
            self.count_in(rec.topic, type(cmd.message).__name__)
        if done.error is not None:
            assert cmd is not None
            name = type(cmd.message).__name__
            what = {"decide": "decide failed", "encode": "encoding an event failed"}.get(done.failed, "evolve failed")
            extra = {"offset": rec.offset} if done.poisoned is not None else {}
            self.log.error(what, exc_info=done.error, correlation_id=cmd.envelope.correlation_id, command=name, **extra)
        if done.poisoned is not None:  # the state may be half-changed: drop it, rebuild, park the command
            self.poison[where] = done.poisoned
            raise PartitionPoisoned(done.poisoned) from done.error
        if done.dead_letter is not None:
            self.log.warning("dead letter", reason=done.dead_letter, topic=rec.topic, partition=rec.partition, offset=rec.offset)
        elif done.duplicate:
            self.metrics.duplicates.inc()
        out.records += done.records
        if cmd is None or not done.decided:
            return
        if done.events and self.waiters is not None and self.waiters.wanted(cmd.envelope.event_id):
            self._caused.setdefault(tp.partition, {}).setdefault(cmd.envelope.event_id, []).extend(done.events)
        if self._debug:
            self.log.debug(
                "command decided",
                correlation_id=cmd.envelope.correlation_id,
                command=type(cmd.message).__name__,
                command_id=cmd.envelope.event_id,
                events=[e.envelope.event_type for e in done.events],
            )

    async def _after_commit(self, tp: TopicPartition, metadata: list[tuple[str, Any]]) -> None:
        caused = self._caused.pop(tp.partition, None)
        if caused:
            assert self.waiters is not None
            self.waiters.resolve(caused)
        ps = self.states.get(tp.partition)
        if ps is None:
            return
        for _kind, md in metadata:
            if md.topic == self._events_topic:
                ps.next_offset = max(ps.next_offset, md.offset + 1)
                ps.since_snapshot += 1
        if ps.since_snapshot >= self.settings.flexchain_snapshot_every:
            await self._snapshot(tp.partition, ps)  # committed: the transaction just ended

    def applied(self, partition: int, command_id: str) -> Applied | None:
        ps = self.states.get(partition)
        return ps.seen.get(command_id) if ps is not None else None


class Router(_TransactionalLoop):
    stage = "router"

    def __init__(
        self,
        svc: ServiceDef[Any],
        settings: Settings,
        codec: Codec,
        metrics: ServiceMetrics,
        clients: kafka.Clients | None = None,
    ) -> None:
        # `<service>.redrive`: dead letters of the routed topics sent back by `flexchain dlq redrive`,
        # read as if from their first topic (never re-appended there: another service owns that log)
        topics = [r.topic for r in svc.routes] + [svc.topics["redrive"]]
        super().__init__(svc, settings, codec, metrics, f"{svc.name}-router", topics, clients)
        self._redrive_topic = self.names["redrive"]
        self._react = {settings.name(r.topic): r.react for r in svc.routes}
        # the `type` header of each routed message: its name, and the names old records of it carry
        self._types = {
            settings.name(r.topic): {n.encode() for m in r.messages for n in (m.__name__, *m.FORMERLY)} for r in svc.routes
        }
        self._commands_topic = self.names["commands"]
        self._partitions: list[int] = []

    async def start(self) -> None:
        await super().start()
        # the partitions of the command topic (a broadcast goes to each): the consumer's metadata covers
        # only what it reads, so ask a producer, which fetches any topic's metadata on demand
        probe = self.clients.producer(self.settings)
        await probe.start()
        try:
            self._partitions = sorted(await probe.partitions_for(self._commands_topic))
        finally:
            await probe.stop()

    def _redriven_from(self, rec: ConsumerRecord[bytes, bytes]) -> tuple[str, int, int] | None:
        """Where a record of `<service>.redrive` was first read (topic, partition, offset); None if its
        headers do not say."""
        topic = kafka.header(rec, REDRIVE_TOPIC_HEADER)
        partition = kafka.header(rec, REDRIVE_PARTITION_HEADER)
        offset = kafka.header(rec, REDRIVE_OFFSET_HEADER)
        try:
            return (topic.decode(), int(partition), int(offset)) if topic and partition and offset else None
        except (UnicodeDecodeError, ValueError):
            return None

    def _handle(self, tp: TopicPartition, rec: ConsumerRecord[bytes, bytes], out: _Outbox) -> None:
        topic, source = rec.topic, None
        if topic == self._redrive_topic:
            source = self._redriven_from(rec)
            if source is None or source[0] not in self._react:
                self.dead_letter(rec, f"not a route of {self.svc.name}: a redriven record from {source}", out, source)
                return
            topic = source[0]
        kinds = [v for k, v in rec.headers if k == "type"]
        if kinds and kinds[0] not in self._types[topic]:
            return  # a type the policy does not route: not even decoded
        try:
            item = self.codec.decode(rec.value)
        except DecodeError as exc:
            if exc.transient:  # the registry did not answer: try again later, park nothing
                raise
            self.dead_letter(rec, exc.reason, out, source)
            return
        ev, eenv = item.message, item.envelope
        self.count_in(topic, type(ev).__name__)
        try:
            # the command ids derive from the event's id only: a redriven event routes the same ids
            # again, so the processor's dedup applies each command once, however often it is redriven
            commands = self._react[topic](ev)
        except Exception as exc:
            self.log.exception("policy failed", correlation_id=eenv.correlation_id, event_type=eenv.event_type)
            self.dead_letter(rec, f"policy failed: {exc!r}", out, source)
            return
        routed: list[tuple[Message, bytes]] = []
        try:
            for i, cmd in enumerate(commands):
                env = Envelope(
                    event_id=derived_id(eenv.event_id, i, f"{self.svc.name}-router"),
                    event_type=type(cmd).__name__,
                    aggregate_id=cmd.key,
                    aggregate_version=0,
                    business_time=eenv.business_time,
                    correlation_id=eenv.correlation_id,
                    causation_id=eenv.event_id,
                    producer=f"{self.svc.name}-router",
                )
                routed.append((cmd, self.codec.encode(Enveloped(envelope=env, message=cmd))))
        except Exception as exc:  # a command that does not fit its schema: nothing routed, event parked
            self.log.exception("encoding a routed command failed", correlation_id=eenv.correlation_id, event_type=eenv.event_type)
            self.dead_letter(rec, f"encode failed: {exc!r}", out, source)
            return
        stamp = str(rec.timestamp).encode()  # the origin of a routed command: its event's record time
        for cmd, value in routed:
            name = type(cmd).__name__
            headers = [("type", name.encode()), (ORIGIN_HEADER, stamp)]
            if cmd.key:
                out.add(self._commands_topic, None, cmd.key.encode(), value, headers, name)
            else:
                for p in self._partitions:
                    out.add(self._commands_topic, p, None, value, headers, name)


async def supervise(
    name: str, make: Callable[[], Awaitable[Any]], stopping: asyncio.Event, metrics: ServiceMetrics | None = None
) -> None:
    """Run a loop; on failure, log, back off and start it again from scratch (which fences and
    rebuilds from what is committed)."""
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
                log.exception("loop failed; starting it again from what is committed")
                if metrics is not None:
                    metrics.loop_restarts.labels(name).inc()
                raise
