"""Balances *as of* a past business time (R-X-4), folded from the event log.

A service's state is a fold of its event topic, so its state at business time T is a fold of a
prefix of it. Which prefix: for each partition, every event up to (not including) the first one
whose envelope carries a business time after T — the state the partition actually had just before
its log first moved past T. (Filtering out the later events instead could fold an event without
the one it followed, e.g. the release of a reservation without the reservation.) Business time is
carried by the log (R-X-1), so the same query gives the same answer on every replay and instance.

Nothing of the live state is touched: a fresh model (the service's own state folded with its
`evolve`, or any read model with a `fold`) is folded from offset 0. That reads the partition's whole
history — the cost of a rebuild without snapshots (README "Benchmarks") — so the last answers are
kept (`AsOf`), each reused only while it is still exact: a partition whose prefix ended on an event
after T cannot change any more; one read to its end is re-checked against its end offset.

A later time continues an earlier answer: the prefix for T extends the prefix for any T' < T on
every partition, so a question for T takes the kept answer of the latest T' ≤ T and folds on from
where each of its partitions stopped. A time series asked in order (a day's close for each day of a
quarter) reads the log once instead of once a day. The continued answer is T's; T' is asked afresh.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from flexchain import kafka
from flexchain.fold import UnreadableEvent, first_time
from flexchain.messages import Enveloped
from flexchain.serde import Codec, DecodeError
from flexchain.settings import Settings


class AsOfTimeout(RuntimeError):
    """The log could not be read to business time T in the time allowed."""


class Model(Protocol):
    def fold(self, partition: int, item: Enveloped) -> None: ...


M = TypeVar("M", bound=Model)


@dataclass
class Replayed:
    """What an as-of fold read, per partition: the events folded, where the prefix ended, the end
    offset the log had then, and whether the prefix ended on an event after T (`closed`: final)."""

    at: int
    folded: dict[int, int] = field(default_factory=dict)
    next_offset: dict[int, int] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    closed: set[int] = field(default_factory=set)
    #: per partition, the last aggregate version folded (a repeat is skipped): what a continuation needs
    versions: dict[int, dict[str, int]] = field(default_factory=dict, repr=False)
    #: events this question read from the log (its own work; `folded` counts the whole answer)
    read: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "business_time": self.at,
            "events_folded": sum(self.folded.values()),
            "partitions": {str(p): {"events": n, "next_offset": self.next_offset[p]} for p, n in sorted(self.folded.items())},
        }


async def replay_until(
    consumer: AIOKafkaConsumer,
    codec: Codec,
    topic: str,
    partitions: list[int],
    at: int,
    fold: Callable[[int, Enveloped], None],
    timeout: float,
    after: Replayed | None = None,
) -> Replayed:
    """Fold `partitions` of `topic` up to business time `at`: `fold(partition, item)` gets every
    committed event of each prefix, in log order, once (a repeated aggregate version is skipped, as
    the live fold skips it). An event that cannot be read or folded raises `UnreadableEvent`: an
    answer that silently missed part of the history would be wrong.

    `after`: what was read for an earlier time (`after.at <= at`, the same partitions) into the
    model `fold` folds into — each partition is read on from where that read stopped."""
    if after is not None and (after.at > at or set(after.next_offset) != set(partitions)):
        raise ValueError(f"an answer as of {after.at} cannot be continued to {at} on partitions {partitions}")
    out = Replayed(at, dict.fromkeys(partitions, 0), dict.fromkeys(partitions, 0))
    out.versions = {p: {} for p in partitions}
    if after is not None:
        out.folded, out.next_offset, out.versions = dict(after.folded), dict(after.next_offset), after.versions
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer.assign(tps)
    if after is None:
        await consumer.seek_to_beginning(*tps)
    else:
        for tp in tps:
            consumer.seek(tp, out.next_offset[tp.partition])
    ends = await consumer.end_offsets(tps)  # read_committed: the last stable offset
    out.ends = {tp.partition: ends[tp] for tp in tps}
    reading = {tp for tp in tps if ends[tp] > out.next_offset[tp.partition]}
    versions = out.versions
    deadline = time.monotonic() + timeout
    while reading:
        if time.monotonic() > deadline:
            raise AsOfTimeout(f"{topic}: not read to business time {at} in {timeout:.0f}s")
        batch = await consumer.getmany(*reading, timeout_ms=200)
        for tp, records in batch.items():
            p = tp.partition
            for rec in records:
                if tp not in reading or rec.offset >= ends[tp]:
                    break
                out.read += 1
                try:
                    item = codec.decode(rec.value)
                except DecodeError as exc:
                    if exc.transient:
                        raise AsOfTimeout(f"{topic}: {exc.reason}") from exc
                    raise UnreadableEvent(rec.topic, p, rec.offset, exc.reason) from exc
                if item.envelope.business_time > at:
                    out.closed.add(p)
                    reading.discard(tp)
                    break
                out.next_offset[p] = rec.offset + 1
                if not first_time(versions[p], item.envelope):
                    continue
                try:
                    fold(p, item)
                except Exception as exc:
                    raise UnreadableEvent(rec.topic, p, rec.offset, f"fold failed: {exc!r}") from exc
                out.folded[p] += 1
        for tp in list(reading):
            if await consumer.position(tp) >= ends[tp]:
                reading.discard(tp)
    return out


class PastStates:
    """Every partition's state as of a business time, with the `state_for`/`all` of the live view,
    so a query handler reads it exactly as it reads the present."""

    def __init__(self, partitions: list[int], new_state: Callable[[], Any], evolve: Callable[[Any, Any], Any]) -> None:
        self.states = {p: new_state() for p in partitions}
        self.evolve = evolve
        self.replayed = Replayed(0)
        self._partitions = sorted(partitions)
        self._partitioner = DefaultPartitioner()

    def fold(self, partition: int, item: Enveloped) -> None:
        self.states[partition] = self.evolve(self.states[partition], item.message)

    def state_for(self, key: str) -> Any:
        p: int = self._partitioner(key.encode(), self._partitions, self._partitions)
        return self.states[p]

    def all(self) -> list[Any]:
        return [self.states[p] for p in self._partitions]


class AsOf:
    """Folds models of one event topic as of a business time, keeping the last `size` answers.

    One consumer (no group) serves every query, one query at a time: an as-of read is an audit,
    and two at once would only compete for the same CPU."""

    def __init__(
        self,
        settings: Settings,
        codec: Codec,
        topic: str,
        size: int = 16,
        timeout: float = 120.0,
        clients: kafka.Clients | None = None,
    ) -> None:
        self.settings = settings
        self.codec = codec
        self.topic = topic
        self.size = size
        self.timeout = timeout
        self.clients = clients or kafka.Clients()  # where its consumer comes from (opened on first use)
        self._kept: OrderedDict[tuple[Hashable, int], tuple[Any, Replayed]] = OrderedDict()
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def model(self, kind: Hashable, at: int, new_model: Callable[[list[int]], M]) -> tuple[M, Replayed]:
        """`new_model(partitions)` folded up to business time `at`; `kind` names the model for reuse."""
        async with self._lock:
            consumer = await self._open()
            parts = sorted(consumer.partitions_for_topic(self.topic) or ())
            kept = self._kept.get((kind, at))
            if kept is not None and await self._still_exact(consumer, kept[1]):
                self._kept.move_to_end((kind, at))
                return kept
            earlier = self._latest(kind, at, parts)
            model, after = self._kept.pop(earlier) if earlier is not None else (new_model(parts), None)
            try:
                replayed = await replay_until(consumer, self.codec, self.topic, parts, at, model.fold, self.timeout, after)
            finally:
                consumer.unsubscribe()  # no fetching in the background between questions
            self._kept[(kind, at)] = (model, replayed)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
            return model, replayed

    def _latest(self, kind: Hashable, at: int, parts: list[int]) -> tuple[Hashable, int] | None:
        """The kept answer of `kind` to continue for `at`: the latest at or before it, on the same
        partitions. It is taken out (its model goes on to `at`): a caller holds an answer only until
        its reply is written, and one question is folded at a time."""
        found = [k for k, (_, r) in self._kept.items() if k[0] == kind and k[1] <= at and sorted(r.next_offset) == parts]
        return max(found, key=lambda k: k[1]) if found else None

    async def _open(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = self.clients.consumer(self.settings, group_id=None, max_poll_records=5000)
            await consumer.start()
            if not consumer.partitions_for_topic(self.topic):
                await consumer._client.force_metadata_update()
            self._consumer = consumer
        return self._consumer

    async def _still_exact(self, consumer: AIOKafkaConsumer, r: Replayed) -> bool:
        """Exact while every partition read to its end then has the same end now (nothing was
        appended that could extend its prefix); a closed prefix never changes."""
        open_ = [TopicPartition(self.topic, p) for p in r.ends if p not in r.closed]
        if not open_:
            return True
        ends = await consumer.end_offsets(open_)
        return all(ends[tp] == r.ends[tp.partition] for tp in open_)
