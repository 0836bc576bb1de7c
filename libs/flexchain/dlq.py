"""Dead letters: list, show and redrive what a service parked in ``<service>.dlq``.

A dead letter is addressed by its coordinates in the DLQ topic, ``<partition>:<offset>``. Its headers
(written by :func:`flexchain.step.dlq_headers`, or by any service that uses the same names, such
as ``notify``) say why it was parked and where it was read; its key and value are the record as it
was received.

Redrive sends a dead letter back with its original key, value (so its original command or event id)
and headers, plus ``flexchain.redrive.count`` (one more than the dead letter's) and
``flexchain.redrive.from`` (``<dlq topic>:<partition>:<offset>``):

* a command of ``<service>.commands`` goes back to its topic and partition; the processor's dedup by
  command id makes that safe even if it was applied meanwhile;
* a record of any other topic — another service's event log, which is append-only and owned by its
  producer: every subscriber would read it twice — is NEVER appended there. It goes to
  ``<service>.redrive``, which the service's router reads as if from its first topic (headers
  ``flexchain.redrive.topic|partition|offset``) and routes with the same derived command ids. A
  service without that topic takes no such redrive: it is refused.

In the same Kafka transaction as the redriven records, one marker per dead letter is appended to the
DLQ (same partition, header ``flexchain.redrive.marker = <partition>:<offset>``), so a later listing
shows it as redriven and a second redrive of the same selection skips it (``--force`` sends it
again: dedup still holds). A redriven record that fails again is parked again with its count; a dead
letter redriven ``max_redrives`` times is refused (raise the maximum to go on).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from aiokafka import TopicPartition

from flexchain import kafka
from flexchain.messages import Enveloped
from flexchain.serde import Codec
from flexchain.settings import Settings
from flexchain.step import (
    DLQ_REASON_HEADER,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TIMESTAMP,
    DLQ_SOURCE_TOPIC,
    ORIGINAL_PREFIX,
    REDRIVE_COUNT_HEADER,
    REDRIVE_FROM_HEADER,
    REDRIVE_OFFSET_HEADER,
    REDRIVE_PARTITION_HEADER,
    REDRIVE_TOPIC_HEADER,
    TARGET_PREFIX,
)

MARKER_HEADER = "flexchain.redrive.marker"  # on a marker record in the DLQ: the dead letter redriven
MARKER_TO_HEADER = "flexchain.redrive.to"  # where it was sent: `<topic>:<partition>:<offset>`
MAX_REDRIVES = 3
UNREADABLE = "unreadable"


class DlqError(Exception):
    """Something the operator must fix before the command can do anything (a missing topic, a bad id)."""


def text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


def _int(value: bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _header(headers: Iterable[tuple[str, bytes]], name: str) -> bytes | None:
    for k, v in headers:
        if k == name:
            return bytes(v)
    return None


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat(timespec="seconds")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@dataclass(frozen=True)
class DeadLetter:
    """One record of `<service>.dlq`, with what its headers say (None: the header is missing)."""

    partition: int
    offset: int
    timestamp: int  # when it was parked (ms)
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    message_type: str = UNREADABLE
    redriven_to: str | None = None  # set by a later marker: where a redrive sent it

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    def _h(self, name: str) -> bytes | None:
        return _header(self.headers, name)

    @property
    def reason(self) -> str:
        return text(self._h(DLQ_REASON_HEADER)) or "(no reason header)"

    @property
    def source_topic(self) -> str | None:
        return text(self._h(DLQ_SOURCE_TOPIC))

    @property
    def source_partition(self) -> int | None:
        return _int(self._h(DLQ_SOURCE_PARTITION))

    @property
    def source_offset(self) -> int | None:
        return _int(self._h(DLQ_SOURCE_OFFSET))

    @property
    def source_timestamp(self) -> int | None:
        return _int(self._h(DLQ_SOURCE_TIMESTAMP))

    @property
    def redrive_count(self) -> int:
        return _int(self._h(REDRIVE_COUNT_HEADER)) or 0

    @property
    def source(self) -> str:
        return f"{self.source_topic}:{self.source_partition}:{self.source_offset}" if self.source_topic else "-"

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the record had when it was read (before it was parked)."""
        return [(k.removeprefix(ORIGINAL_PREFIX), v) for k, v in self.headers if k.startswith(ORIGINAL_PREFIX)]

    def row(self, now_ms: int, full: bool = False) -> dict[str, Any]:
        """A line of `dlq list` (`full`: with the parking time, for --json and `show`)."""
        when = {"parked_at": _iso(self.timestamp)} if full else {}
        return {
            "id": self.id,
            "age": _age(max(0, now_ms - self.timestamp) / 1000),
            **when,
            "type": self.message_type,
            "reason": self.reason,
            "source": self.source,
            "redrives": self.redrive_count,
            "status": f"redriven to {self.redriven_to}" if self.redriven_to else "parked",
        }


def describe(codec: Codec, value: bytes) -> tuple[str, Enveloped | None]:
    try:
        item = codec.decode(value)
    except Exception:  # anything that does not decode is shown as bytes
        return UNREADABLE, None
    return item.envelope.event_type, item


def dlq_topic(settings: Settings, service: str) -> str:
    return settings.name(kafka.topic_names(service)["dlq"])


async def read_dead_letters(
    settings: Settings, service: str, codec: Codec, on_progress: Callable[[int, int], None] | None = None
) -> list[DeadLetter]:
    """Every dead letter of `<service>.dlq` from its start to its end offsets at call time
    (read_committed), in partition-then-offset order, with the markers of earlier redrives applied."""
    topic = dlq_topic(settings, service)
    consumer = kafka.consumer(settings, group_id=None, max_poll_records=2000)
    await consumer.start()
    try:
        try:
            partitions = await kafka.partitions_of(consumer, topic, timeout=10)
        except RuntimeError as exc:
            raise DlqError(f"no topic {topic}: is {service!r} a service that ran on this cluster?") from exc
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        total = sum(ends[tp] - starts[tp] for tp in tps)
        letters: list[DeadLetter] = []
        redriven: dict[str, str] = {}
        todo = [tp for tp in tps if ends[tp] > starts[tp]]
        for tp in todo:
            consumer.seek(tp, starts[tp])
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=500)
            for tp, records in batch.items():
                for rec in records:
                    if rec.offset >= ends[tp]:
                        break
                    headers = tuple((k, bytes(v)) for k, v in rec.headers)
                    marker = _header(headers, MARKER_HEADER)
                    if marker is not None:
                        redriven[marker.decode()] = text(_header(headers, MARKER_TO_HEADER)) or "?"
                        continue
                    value = rec.value or b""
                    kind, _ = describe(codec, value)
                    letters.append(DeadLetter(rec.partition, rec.offset, rec.timestamp, rec.key, value, headers, kind))
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:  # markers of aborted transactions take offsets too
                    todo.remove(tp)
            if on_progress is not None:
                done = 0
                for tp in tps:
                    done += min(ends[tp], await consumer.position(tp)) - starts[tp]
                on_progress(done, total)
        return [replace(d, redriven_to=redriven[d.id]) if d.id in redriven else d for d in letters]
    finally:
        await consumer.stop()


# --- selecting -----------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, now_ms: int) -> int:
    """A point in time (ms): ISO 8601 (`2026-12-03T10:00:00Z`; no zone = UTC), a time ago (`90s`,
    `15m`, `2h`, `3d`, `1w`), or milliseconds since the epoch."""
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        return now_ms - int(float(m.group(1)) * _UNITS[m.group(2)] * 1000)
    if text.isdigit():
        return int(text)
    try:
        at = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise DlqError(f"not a time: {text!r} (ISO 8601, or a time ago like 15m, 2h, 3d)") from exc
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.UTC)
    return int(at.timestamp() * 1000)


def parse_id(text: str) -> tuple[int, int]:
    try:
        p, o = text.split(":")
        return int(p), int(o)
    except ValueError as exc:
        raise DlqError(f"not a dead-letter id: {text!r} (expected <partition>:<offset>, as `dlq list` shows)") from exc


@dataclass(frozen=True)
class Selection:
    """Dead letters by id (`partition:offset`) and/or by filters; every given criterion must hold."""

    ids: frozenset[tuple[int, int]] = frozenset()
    reason: str | None = None  # a substring, case-insensitive
    message_type: str | None = None
    since: int | None = None  # parked at or after (ms)
    until: int | None = None  # parked before (ms)

    def is_empty(self) -> bool:
        return not self.ids and self.reason is None and self.message_type is None and self.since is None and self.until is None

    def matches(self, d: DeadLetter) -> bool:
        return (
            (not self.ids or (d.partition, d.offset) in self.ids)
            and (self.reason is None or self.reason.lower() in d.reason.lower())
            and (self.message_type is None or d.message_type == self.message_type)
            and (self.since is None or d.timestamp >= self.since)
            and (self.until is None or d.timestamp < self.until)
        )


# --- redriving -----------------------------------------------------------------------------------


@dataclass
class Step:
    """What a redrive does (or would do) with one dead letter."""

    dead: DeadLetter
    topic: str | None  # None: refused
    partition: int | None = None  # None: by key
    note: str = ""
    sent_to: str | None = field(default=None)

    def row(self) -> dict[str, Any]:
        target = self.sent_to or (f"{self.topic}:{'by key' if self.partition is None else self.partition}" if self.topic else "-")
        return {
            "id": self.dead.id,
            "type": self.dead.message_type,
            "source": self.dead.source,
            "action": "redrive" if self.topic else "refuse",
            "to": target,
            "redrives": self.dead.redrive_count + (1 if self.topic else 0),
            "note": self.note,
        }


def plan(
    settings: Settings,
    service: str,
    dead_letters: list[DeadLetter],
    selection: Selection,
    *,
    redrive_topic_exists: bool,
    max_redrives: int = MAX_REDRIVES,
    force: bool = False,
) -> list[Step]:
    """Where each selected dead letter goes, or why it is refused (pure: nothing is sent)."""
    commands = settings.name(kafka.topic_names(service)["commands"])
    redrive = settings.name(kafka.topic_names(service)["redrive"])
    steps: list[Step] = []
    for d in dead_letters:
        if not selection.matches(d):
            continue
        if d.redriven_to and not force:
            steps.append(Step(d, None, note=f"already redriven to {d.redriven_to} (--force sends it again)"))
        elif d.redrive_count >= max_redrives:
            steps.append(Step(d, None, note=f"redriven {d.redrive_count} times already (max {max_redrives}: --max-redrives)"))
        elif d.source_topic is None or d.source_partition is None or d.source_offset is None:
            steps.append(Step(d, None, note="no source headers: where it came from is unknown"))
        elif d.source_topic == commands:
            steps.append(Step(d, commands, d.source_partition, "back to its command partition"))
        elif redrive_topic_exists:
            steps.append(Step(d, redrive, None, f"{d.source_topic} is another log: read from {redrive} as if from it"))
        else:
            steps.append(
                Step(
                    d,
                    None,
                    note=f"{d.source_topic} is an event log owned by its producer and is never appended to; "
                    f"{redrive} does not exist, so {service} takes no redriven records from it",
                )
            )
    return steps


def redrive_headers(settings: Settings, service: str, step: Step) -> list[tuple[str, bytes]]:
    d = step.dead
    headers = [*d.original_headers(), (REDRIVE_COUNT_HEADER, str(d.redrive_count + 1).encode())]
    headers += [(k, v) for k, v in d.headers if k.startswith(TARGET_PREFIX)]  # where the parker wants it again
    headers.append((REDRIVE_FROM_HEADER, f"{dlq_topic(settings, service)}:{d.partition}:{d.offset}".encode()))
    if step.topic == settings.name(kafka.topic_names(service)["redrive"]):
        assert d.source_topic is not None
        headers += [
            (REDRIVE_TOPIC_HEADER, d.source_topic.encode()),
            (REDRIVE_PARTITION_HEADER, str(d.source_partition).encode()),
            (REDRIVE_OFFSET_HEADER, str(d.source_offset).encode()),
        ]
    return headers


async def topic_exists(settings: Settings, topic: str) -> bool:
    client = kafka.admin(settings)
    await client.start()
    try:
        return topic in set(await client.list_topics())
    finally:
        await client.close()


def redrive_transactional_id(service: str) -> str:
    """The redrive's transactional id (unprefixed): one per service, so two redrives fence each other."""
    return f"flexchain-dlq-redrive-{service}"


async def execute(settings: Settings, service: str, steps: list[Step]) -> list[Step]:
    """Send the planned redrives and their markers in ONE transaction: all of them or none. The
    transactional id is one per service, so two redrives at once fence each other."""
    todo = [s for s in steps if s.topic is not None]
    if not todo:
        return steps
    producer = kafka.producer(settings, transactional_id=settings.name(redrive_transactional_id(service)))
    await producer.start()
    try:
        async with producer.transaction():
            for s in todo:
                assert s.topic is not None
                d = s.dead
                fut = await producer.send(
                    s.topic,
                    d.value,
                    key=d.key,
                    partition=s.partition,
                    headers=redrive_headers(settings, service, s),
                    timestamp_ms=d.source_timestamp,  # the origin stays the original's: dedup's horizon holds
                )
                md = await fut
                s.sent_to = f"{md.topic}:{md.partition}:{md.offset}"
            for s in todo:
                d = s.dead
                marker = [
                    (MARKER_HEADER, d.id.encode()),
                    (MARKER_TO_HEADER, (s.sent_to or "").encode()),
                    (REDRIVE_COUNT_HEADER, str(d.redrive_count + 1).encode()),
                ]
                await producer.send(dlq_topic(settings, service), b"", key=None, partition=d.partition, headers=marker)
    finally:
        await producer.stop()
    return steps
