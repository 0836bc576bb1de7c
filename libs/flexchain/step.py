"""The processor's work on one command record, without Kafka and without asyncio.

:class:`CommandStep` takes a partition's state and one record of `<service>.commands` and answers
what the transaction must write: decode → dedup → decide → envelope → encode → fold → outbox
entries. It does no I/O, logs nothing and counts nothing — :class:`flexchain.runtime.Processor`
(the shell) produces the entries, logs and counts from the :class:`Outcome` — so every rule of the
processor can be tested without a broker (tests/unit/test_step.py).

The rules, in order:

* a record that cannot be decoded (not the wire format, unknown schema, a body that does not match
  it), or that is not a command of the service, is parked (a dead letter, reason in its headers);
  a decode error marked transient (the registry did not answer) is raised: try again, park nothing;
* a command id already applied on the partition (its dedup memory) writes nothing — unless the
  same id comes with another body (a command from outside, digest differs): parked, "idempotency
  key reused"; a command that originates more than the dedup horizon before the newest one applied
  here cannot be proven new: parked, "stale command";
* `decide` raising, or an event that does not fit its schema: parked, nothing applied;
* each event is enveloped with a deterministic id derived from the command id (`<id>@<partition>`
  for a broadcast command, whose one id reaches every partition) and the next version of its
  aggregate, then folded into the state (which also remembers the command id);
* `evolve` raising leaves the state half-changed: the outcome says `poisoned`, and the caller must
  drop the partition's state and park the record once it is read again (`poisoned=` on that try).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from flexchain.fold import DIGEST_HEADER, ORIGIN_HEADER, PartitionState, fold_event, origin_of
from flexchain.messages import Envelope, Enveloped, Message, derived_id, to_record
from flexchain.serde import DecodeError

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord  # (only its shape: a plain dataclass)

    from flexchain.runtime import ServiceDef

#: Headers of a dead letter (`<service>.dlq`): why it was parked and where it was read. The record's
#: own headers follow, each renamed `flexchain.original.<name>` (an event's own
#: `flexchain.source.offset` must not be taken for the dead letter's).
DLQ_REASON_HEADER = "flexchain.dlq.reason"
DLQ_SOURCE_TOPIC = "flexchain.source.topic"
DLQ_SOURCE_PARTITION = "flexchain.source.partition"
DLQ_SOURCE_OFFSET = "flexchain.source.offset"
DLQ_SOURCE_TIMESTAMP = "flexchain.source.timestamp"
ORIGINAL_PREFIX = "flexchain.original."
#: Headers of a redriven record (`flexchain dlq redrive`, :mod:`flexchain.dlq`): how many times it has
#: been redriven, the dead letter it was redriven from (`<dlq topic>:<partition>:<offset>`), and — on
#: `<service>.redrive` — the topic, partition and offset it was first read from.
REDRIVE_COUNT_HEADER = "flexchain.redrive.count"
REDRIVE_FROM_HEADER = "flexchain.redrive.from"
REDRIVE_TOPIC_HEADER = "flexchain.redrive.topic"
REDRIVE_PARTITION_HEADER = "flexchain.redrive.partition"
REDRIVE_OFFSET_HEADER = "flexchain.redrive.offset"
# Headers of a dead letter that say where it must go again (`flexchain.target.<name>`, e.g. the one
# webhook notify failed to reach): `flexchain dlq redrive` copies them onto the redriven record.
TARGET_PREFIX = "flexchain.target."
_REDRIVE_PREFIX = "flexchain.redrive."

#: On every event: the offset of the command it answers, in its command partition.
SOURCE_OFFSET_HEADER = "flexchain.source.offset"


def header(rec: ConsumerRecord[bytes, bytes], name: str) -> bytes | None:
    """The first header `name` of a record (as `flexchain.kafka.header`, without importing a client)."""
    for k, v in rec.headers:
        if k == name:
            return bytes(v)
    return None


def dlq_headers(
    rec: ConsumerRecord[bytes, bytes], reason: str, source: tuple[str, int, int] | None = None
) -> list[tuple[str, bytes]]:
    """The headers of `rec` parked for `reason`. `source`: where it was first read, if not where it
    was read now (a record redriven through `<service>.redrive`). A redriven record that fails again
    keeps its redrive count and origin, so `flexchain dlq redrive` can refuse to loop on it."""
    topic, partition, offset = source if source is not None else (rec.topic, rec.partition, rec.offset)
    out = [
        (DLQ_REASON_HEADER, reason.encode("utf-8")[:2000]),
        (DLQ_SOURCE_TOPIC, topic.encode()),
        (DLQ_SOURCE_PARTITION, str(partition).encode()),
        (DLQ_SOURCE_OFFSET, str(offset).encode()),
        (DLQ_SOURCE_TIMESTAMP, str(rec.timestamp).encode()),
    ]
    for name in (REDRIVE_COUNT_HEADER, REDRIVE_FROM_HEADER):
        value = header(rec, name)
        if value is not None:
            out.append((name, value))
    out += [(ORIGINAL_PREFIX + k, bytes(v)) for k, v in rec.headers if not k.startswith(_REDRIVE_PREFIX)]
    return out


def command_digest(cmd: Message) -> str:
    """A digest of a command's body (not its envelope): an id reused for another body is told apart."""
    return hashlib.blake2b(repr((type(cmd).__name__, to_record(cmd))).encode(), digest_size=8).hexdigest()


class OutRecord(NamedTuple):
    """One record of a transaction's outbox. `partition` None: the producer's partitioner picks it
    (by key). `kind`: the event type, or `dlq:<reason>` for a dead letter (the shell's metrics)."""

    topic: str
    partition: int | None
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    kind: str


def dead_letter(
    dlq_topic: str, rec: ConsumerRecord[bytes, bytes], reason: str, source: tuple[str, int, int] | None = None
) -> OutRecord:
    """`rec` as it was read, parked on `dlq_topic` for `reason`."""
    return OutRecord(dlq_topic, None, rec.key, rec.value or b"", dlq_headers(rec, reason, source), "dlq:" + reason)


class Coder(Protocol):
    """What the step needs of :class:`flexchain.serde.Codec`."""

    def decode(self, value: bytes | None) -> Enveloped: ...

    def encode(self, item: Enveloped) -> bytes: ...


@dataclass
class Outcome:
    """What one command record comes to. `records`: the outbox entries for the transaction (its
    events, or its one dead letter, or nothing)."""

    records: list[OutRecord] = field(default_factory=list)
    command: Enveloped | None = None  # once decoded as a command of the service
    events: list[Enveloped] = field(default_factory=list)  # decided, enveloped and folded
    duplicate: bool = False  # already applied here: nothing written
    dead_letter: str | None = None  # why the record is parked
    error: Exception | None = None  # what decide, encode or evolve raised
    failed: str = ""  # where: "decide", "encode" or "evolve"
    poisoned: str | None = None  # evolve raised (the reason): the state may be half-changed, drop it

    @property
    def decided(self) -> bool:
        """The command was decided and its events (maybe none) are in `records`."""
        return self.command is not None and not self.duplicate and self.dead_letter is None and self.poisoned is None


class CommandStep:
    """One command record on one partition's state (see the module docstring)."""

    def __init__(self, svc: ServiceDef[Any], codec: Coder, events_topic: str, dlq_topic: str, horizon_hours: float) -> None:
        self.svc = svc
        self.codec = codec
        self.events_topic = events_topic
        self.dlq_topic = dlq_topic
        self.horizon_hours = horizon_hours  # the dedup horizon (FLEXCHAIN_DEDUP_HORIZON_HOURS)
        self.horizon_ms = int(horizon_hours * 3_600_000)
        self._commands = frozenset(svc.commands)

    def _park(self, rec: ConsumerRecord[bytes, bytes], reason: str, out: Outcome) -> Outcome:
        out.dead_letter = reason
        out.records.append(dead_letter(self.dlq_topic, rec, reason))
        return out

    def __call__(self, ps: PartitionState, rec: ConsumerRecord[bytes, bytes], poisoned: str | None = None) -> Outcome:
        """`poisoned`: the reason this record's events failed to fold on an earlier try (parked now)."""
        out = Outcome()
        if poisoned is not None:
            return self._park(rec, poisoned, out)
        try:
            item = self.codec.decode(rec.value)
        except DecodeError as exc:
            if exc.transient:  # the registry did not answer: try again later, park nothing
                raise
            return self._park(rec, exc.reason, out)
        cmd, cenv = item.message, item.envelope
        if type(cmd) not in self._commands:
            return self._park(rec, f"not a command of {self.svc.name}: {type(cmd).__name__}", out)
        out.command = item
        name = type(cmd).__name__
        # A routed command is derived from one event and written once (fenced); a command from
        # outside (the API, another producer) may come again with its id, maybe with another body.
        digest = "" if cenv.producer.endswith("-router") else command_digest(cmd)
        origin = origin_of(rec.timestamp, header(rec, ORIGIN_HEADER))
        applied = ps.seen.get(cenv.event_id)
        if applied is not None:
            if digest and applied.digest and digest != applied.digest:
                return self._park(rec, f"idempotency key reused: command id {cenv.event_id} was applied to another {name}", out)
            out.duplicate = True
            return out
        if origin < ps.forgets_before(self.horizon_ms):
            reason = (
                f"stale command: it originates at {origin} ms, more than the dedup horizon "
                f"({self.horizon_hours} h) before the newest command applied here ({ps.newest} ms); "
                "it may have been applied already"
            )
            return self._park(rec, reason, out)
        try:
            events = self.svc.decide(ps.state, cmd, cenv.business_time)
        except Exception as exc:  # a bug must not stop the partition: park the command, loudly
            out.error, out.failed = exc, "decide"
            return self._park(rec, f"decide failed: {exc!r}", out)
        try:
            items = self.envelope(ps, rec.partition, item, events)
        except Exception as exc:  # an event that does not fit its schema: nothing applied, command parked
            out.error, out.failed = exc, "encode"
            return self._park(rec, f"encode failed: {exc!r}", out)
        try:
            for event, _ in items:
                fold_event(self.svc.evolve, ps, event, digest, origin, self.horizon_ms)
        except Exception as exc:  # the state may be half-changed: the caller drops it
            out.error, out.failed, out.poisoned = exc, "evolve", f"evolve failed: {exc!r}"
            return out
        stamp, source = str(origin).encode(), str(rec.offset).encode()
        for event, value in items:
            kind = event.envelope.event_type
            headers = [("type", kind.encode()), (ORIGIN_HEADER, stamp), (SOURCE_OFFSET_HEADER, source)]
            if digest:
                headers.append((DIGEST_HEADER, digest.encode()))
            key = event.envelope.aggregate_id.encode()
            out.records.append(OutRecord(self.events_topic, rec.partition, key, value, headers, kind))
            out.events.append(event)
        return out

    def envelope(
        self, ps: PartitionState, partition: int, command: Enveloped, events: list[Message]
    ) -> list[tuple[Enveloped, bytes]]:
        """The events of `command`, enveloped and encoded (nothing folded yet)."""
        cmd, cenv = command.message, command.envelope
        # A broadcast command (empty key) has one id on every partition: its events need ids that
        # differ per partition, or what is routed from them would be dropped as duplicates.
        cause = cenv.event_id if cmd.key else f"{cenv.event_id}@{partition}"
        items: list[tuple[Enveloped, bytes]] = []
        versions: dict[str, int] = {}
        for i, ev in enumerate(events):
            agg = ev.key
            versions[agg] = versions.get(agg, ps.versions.get(agg, 0)) + 1
            env = Envelope(
                event_id=derived_id(cause, i, self.svc.name),
                event_type=type(ev).__name__,
                aggregate_id=agg,
                aggregate_version=versions[agg],
                business_time=cenv.business_time,
                correlation_id=cenv.correlation_id,
                causation_id=cenv.event_id,
                producer=self.svc.name,
            )
            item = Enveloped(envelope=env, message=ev)
            items.append((item, self.codec.encode(item)))
        return items
