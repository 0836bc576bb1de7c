"""The read side of a service: what its HTTP API answers from.

* :class:`OwnView` — the service's whole state: the partitions the local processor owns are read
  from its live state; the others are folded here from `<service>.events` with the kernel's
  idempotent fold (`flexchain.fold`).
* :class:`Projection` — folds other services' topics (and `clock.ticks`) into a read model.
* :class:`Waiters` — API requests waiting for the events their command caused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from flexchain import kafka
from flexchain.fold import (
    Applied,
    PartitionState,
    UnreadableEvent,
    first_time,
    fold_record,
)
from flexchain.messages import Enveloped
from flexchain.metrics import ServiceMetrics
from flexchain.serde import Codec, DecodeError
from flexchain.settings import Settings

if TYPE_CHECKING:
    from flexchain.runtime import Processor, ServiceDef


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
    `<service>.events` with the same idempotent fold. When the processor loses a partition it hands
    its state over (with the offset it had reached), so the switch never re-reads the log. An event
    it cannot read stops that partition here (not ready, a metric, an error), never skipped."""

    def __init__(
        self,
        svc: ServiceDef[Any],
        settings: Settings,
        codec: Codec,
        waiters: Waiters,
        metrics: ServiceMetrics | None = None,
        clients: kafka.Clients | None = None,
    ) -> None:
        self.svc = svc
        self.settings = settings
        self.codec = codec
        self.waiters = waiters
        self.metrics = metrics
        self.clients = clients or kafka.Clients()  # where its consumer comes from
        self.topic = settings.name(svc.topics["events"])
        self.processor: Processor | None = None
        self.states: dict[int, PartitionState] = {}
        self.stopped: dict[int, UnreadableEvent] = {}
        self._handover: dict[int, PartitionState] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[int] = []
        self.caught_up = asyncio.Event()
        self._partitioner = DefaultPartitioner()
        self._horizon = int(settings.flexchain_dedup_horizon_hours * 3_600_000)
        self.log = structlog.get_logger().bind(service=svc.name, stage="own-view")

    async def start(self) -> None:
        self._consumer = self.clients.consumer(self.settings, group_id=None, max_poll_records=5000)
        await self._consumer.start()
        self._partitions = sorted(await kafka.partitions_of(self._consumer, self.topic))

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

    def _partition_state(self, p: int) -> PartitionState | None:
        proc = self.processor
        if proc is not None and p in proc.states:
            return proc.states[p]
        return self.states.get(p)

    def _state(self, p: int) -> Any:
        ps = self._partition_state(p)
        if ps is None:
            stopped = self.stopped.get(p) or (self.processor.stopped.get(p) if self.processor is not None else None)
            if stopped is not None:  # an honest "cannot say", not the state of a log read half-way
                raise stopped
        return ps.state if ps is not None else self.svc.new_state()

    def applied(self, key: str, command_id: str) -> Applied | None:
        """Whether command `command_id` (for aggregate `key`) is applied, as far as this instance knows."""
        ps = self._partition_state(self.partition_of(key))
        return ps.seen.get(command_id) if ps is not None else None

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
        for p in list(self.stopped):
            if p not in mine:
                self._unstop(p)
        for p in mine:
            if p in self.states or p in self.stopped:
                continue  # kept: continues where it was
            ps = self._handover.pop(p, None)
            self.states[p] = ps if ps is not None else PartitionState(self.svc.new_state())
        self._handover.clear()
        tps = [TopicPartition(self.topic, p) for p in mine if p in self.states]
        self._consumer.assign(tps)  # a new assignment forgets positions: seek every partition
        for tp in tps:
            self._consumer.seek(tp, self.states[tp.partition].next_offset)

    def _unstop(self, p: int) -> None:
        self.stopped.pop(p, None)
        if self.metrics is not None:
            self.metrics.partition_stopped.labels("own-view", str(p)).set(0)

    def _stop(self, exc: UnreadableEvent) -> None:
        assert self._consumer is not None
        self.stopped[exc.partition] = exc
        self.states.pop(exc.partition, None)
        self._consumer.pause(TopicPartition(self.topic, exc.partition))
        if self.metrics is not None:
            self.metrics.partition_stopped.labels("own-view", str(exc.partition)).set(1)
        self.log.error(
            "view partition stopped: an event of the service's own log cannot be read",
            topic=exc.topic,
            partition=exc.partition,
            offset=exc.offset,
            reason=exc.reason,
        )

    def _fold(self, ps: PartitionState, rec: ConsumerRecord[bytes, bytes]) -> Enveloped:
        return fold_record(self.codec.decode, self.svc.evolve, ps, rec, self._horizon)

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
                ps = self.states.get(tp.partition)
                if ps is None:
                    continue  # moved to the processor (or stopped) while this batch was fetched
                for rec in records:
                    if rec.offset < ps.next_offset:
                        continue
                    try:
                        item = self._fold(ps, rec)
                    except UnreadableEvent as exc:
                        self._stop(exc)
                        break
                    except DecodeError:  # transient (the registry): read this record again later
                        self._consumer.seek(tp, rec.offset)
                        await asyncio.sleep(1.0)
                        break
                    if self.waiters.wanted(item.envelope.causation_id):
                        caused.setdefault(item.envelope.causation_id or "", []).append(item)
            if caused:
                self.waiters.resolve(caused)
            if not self.caught_up.is_set():
                tps = [tp for tp in self._consumer.assignment() if tp.partition in self.states]
                ends = await self._consumer.end_offsets(tps)
                if all([await self._consumer.position(tp) >= ends[tp] for tp in tps]):
                    self.caught_up.set()


#: The `reason` label of `records_skipped_total`: a fixed set.
SKIP_REASONS = ("undecodable", "fold failed")


class Projection:
    """Folds whole topics (every partition, no group) into an in-memory read model.

    With `types`, only records whose `type` header names one of them are decoded (a read model that
    needs, say, the sku catalogue from another service's busy topic does not decode the rest).
    A repeated event (an aggregate version already folded) is skipped. A record of another service
    that cannot be decoded or folded is skipped LOUDLY — an error naming topic, partition, offset and
    why, and `records_skipped_total{loop,reason}` — never a crash: the router that reads the same
    topic parks it in the DLQ with its reason."""

    def __init__(
        self,
        settings: Settings,
        codec: Codec,
        topics: list[str],
        fold: Callable[[Enveloped], None],
        name: str,
        waiters: Waiters | None = None,
        types: set[str] | None = None,
        metrics: ServiceMetrics | None = None,
        clients: kafka.Clients | None = None,
    ) -> None:
        self.settings = settings
        self.codec = codec
        self.topics = topics
        self.fold = fold
        self.name = name
        self.metrics = metrics
        self.clients = clients or kafka.Clients()  # where its consumers come from
        if metrics is not None:  # every reason exported at 0: a skipped record moves a value, adds no series
            for label in SKIP_REASONS:
                metrics.records_skipped.labels(name, label)
        self.caught_up = asyncio.Event()
        self.waiters = waiters or Waiters()
        self._moved = asyncio.Condition()  # notified after each batch is folded (see `catch_up`)
        self._written: AIOKafkaConsumer | None = None  # opened by the first `catch_up`
        self._types = {t.encode() for t in types} if types is not None else None
        self._consumer: AIOKafkaConsumer | None = None
        self._versions: dict[TopicPartition, dict[str, int]] = {}
        self.log = structlog.get_logger().bind(projection=name)

    async def start(self) -> None:
        self._consumer = self.clients.consumer(self.settings, group_id=None, max_poll_records=5000)
        await self._consumer.start()
        tps = []
        for t in self.topics:
            tps += [TopicPartition(t, p) for p in sorted(await kafka.partitions_of(self._consumer, t))]
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
        if self._written is not None:
            await self._written.stop()

    async def catch_up(self, timeout: float) -> bool:
        """Read-your-writes for the read model: return once it has folded every record written to
        its topics before this call and since decided (committed, or aborted), or False after
        `timeout` s. What another service has answered (its POST returned 200) is then in the model.

        The target is each partition's high watermark, not its last stable offset: a service answers
        once its transaction is committed, and the commit markers reach the partitions a moment
        later — until then the LSO is still before the records it has answered for."""
        if self._consumer is None or not self._ends:
            return True
        consumer = self._consumer
        if self._written is None:  # a reader of what is written, decided or not: its end is the HWM
            self._written = self.clients.consumer(self.settings, group_id=None, isolation_level="read_uncommitted")
            await self._written.start()
        targets = await self._written.end_offsets(list(self._ends))

        async def reached() -> bool:
            return all([await consumer.position(tp) >= end for tp, end in targets.items()])

        async def wait() -> None:
            async with self._moved:
                while not await reached():
                    await self._moved.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _wanted(self, rec: ConsumerRecord[bytes, bytes]) -> bool:
        if self._types is None:
            return True
        kinds = [v for k, v in rec.headers if k == "type"]
        return not kinds or kinds[0] in self._types  # no header (another producer): decode to see

    def _skip(self, rec: ConsumerRecord[bytes, bytes], reason: str, label: str) -> None:
        if self.metrics is not None:
            self.metrics.records_skipped.labels(self.name, label).inc()
        where = {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset}
        self.log.error("record skipped by a read model", reason=reason, **where)

    async def run(self, stopping: asyncio.Event) -> None:
        assert self._consumer is not None
        if not self._ends:
            await stopping.wait()
            return
        while not stopping.is_set():
            batch = await self._consumer.getmany(timeout_ms=200)
            caused: dict[str, list[Enveloped]] = {}
            for tp, records in batch.items():
                versions = self._versions.setdefault(tp, {})
                for rec in records:
                    if not self._wanted(rec):
                        continue
                    try:
                        item = self.codec.decode(rec.value)
                    except DecodeError as exc:
                        if exc.transient:  # the registry: read this record again later
                            self._consumer.seek(tp, rec.offset)
                            await asyncio.sleep(1.0)
                            break
                        self._skip(rec, exc.reason, SKIP_REASONS[0])
                        continue
                    if not first_time(versions, item.envelope):
                        continue
                    try:
                        self.fold(item)
                    except Exception as exc:
                        self._skip(rec, f"fold failed: {exc!r}", SKIP_REASONS[1])
                        continue
                    cause = item.envelope.causation_id
                    if self.waiters.wanted(cause):
                        caused.setdefault(cause or "", []).append(item)
            if caused:
                self.waiters.resolve(caused)
            async with self._moved:
                self._moved.notify_all()
            if not self.caught_up.is_set():
                positions = [await self._consumer.position(tp) for tp in self._ends]
                if all(pos >= self._ends[tp] for pos, tp in zip(positions, self._ends, strict=True)):
                    self.caught_up.set()
