"""Folding a partition's own event log into its state — idempotently.

One function folds every event a service reads of its own log: the processor's rebuild, the view
of partitions another instance owns, and the as-of reads (R-X-4). It skips an event whose aggregate
version was already folded (a repeated event id carries the same version), so a duplicate that
reaches the log anyway — a zombie's write before fencing, a record appended twice by hand —
cannot change the state (ARCHITECTURE: "Folding is idempotent"). The rule is the version, not the
event id: a command redelivered after the dedup horizon forgot it is decided again, and writes the
same derived event ids under new versions — folding those is what the live processor did too.

An event of the own log without a version (0) was not written by a processor: it is not folded
(a repeat of it could not be recognised) but refused, and its partition stops.

It also rebuilds the dedup memory: the command ids whose effects the log holds (the events'
causation ids), each with its ORIGIN time, forgotten once it falls behind the partition's newest
origin time by more than the dedup horizon. A command's origin is wall-clock time, carried with the
records rather than read from a clock, so a rebuild forgets exactly what the live processor forgot:
for a command from outside, the time its record was created; for a command a router derived from an
event, that event record's time (a router that re-reads an old log re-derives OLD commands, which
the horizon then refuses — it never applies them twice). It travels in the header `flexchain.origin`
of the routed command and of every event; a record without it (written before the header existed,
or by another producer) has its own record timestamp as origin. Business time plays no part: a
simulated quarter can race through months in minutes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flexchain.messages import Envelope, Enveloped

#: The header of every event a command from outside caused: a digest of that command's body, so the
#: dedup memory rebuilt from the log can still tell an id reused for another body (`runtime`).
DIGEST_HEADER = "flexchain.command.digest"
#: The origin time (ms, wall clock) of the command a record stems from; see the module docstring.
ORIGIN_HEADER = "flexchain.origin"


@dataclass
class PartitionState:
    """What is kept per partition of a service's own log: the service state and what the kernel
    needs to fold and process exactly once. Snapshotted whole (as data, see `flexchain.snapshots`)."""

    state: Any
    #: command id → its origin and body digest, in the order remembered (a plain dict: its order is
    #: insertion order, and a snapshot decodes straight into one).
    seen: dict[str, Applied] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)  # aggregate id → last version folded
    newest: int = 0  # the newest origin time folded (the dedup horizon's end)
    next_offset: int = 0  # the next offset of the event partition to fold
    since_snapshot: int = 0
    #: the ids of `seen`, oldest first: what the horizon forgets next. Forgetting walks this deque, not
    #: the dict: `next(iter(dict))` walks the slots deleted at the dict's front again until the next
    #: resize (tens of µs per event with 80,000 ids in the horizon: bench/dedup.py). An OrderedDict
    #: avoided that too, but a snapshot's plain dict then had to be copied into one at every load.
    order: deque[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.order = deque(self.seen)

    def remember(self, command_id: str, applied: Applied, horizon_ms: int) -> None:
        """Remember an applied command; forget those older than the horizon (oldest first). An id
        remembered again (a command with several events) keeps its place and takes the new value."""
        seen = self.seen
        if command_id not in seen:
            self.order.append(command_id)
        seen[command_id] = applied
        if applied.at > self.newest:
            self.newest = applied.at
        limit = self.newest - horizon_ms
        order = self.order
        while order:
            first = order[0]
            if seen[first].at >= limit:
                break
            del seen[first]
            order.popleft()

    def forgets_before(self, horizon_ms: int) -> int:
        """Origin time before which a command can no longer be recognised as a repeat."""
        return self.newest - horizon_ms


class UnreadableEvent(Exception):
    """An event of a service's own log that cannot be read or folded: its partition stops, loudly,
    rather than being folded past (ARCHITECTURE: "never skipped in silence")."""

    def __init__(self, topic: str, partition: int, offset: int, reason: str) -> None:
        super().__init__(f"{topic}[{partition}]@{offset}: {reason}")
        self.topic, self.partition, self.offset, self.reason = topic, partition, offset, reason


@dataclass(frozen=True, slots=True)
class Applied:
    """A command whose effects are in the log: its origin time (ms) and a digest of its body."""

    at: int
    digest: str = ""


def first_time(versions: dict[str, int], env: Envelope) -> bool:
    """True the first time an event's aggregate version is met (and remember it); False for a repeat.

    Events carry a version per aggregate, contiguous from 1 in a partition's log; an event at or
    below the version already met for its aggregate is a repeat. An event with version 0 carries no
    version (it was not written by a processor) and is always new."""
    version = env.aggregate_version
    if version <= 0:
        return True
    if version <= versions.get(env.aggregate_id, 0):
        return False
    versions[env.aggregate_id] = version
    return True


class NotFoldable(ValueError):
    """An own-log event the kernel refuses to fold (the reason is the message)."""


def failure_reason(exc: Exception) -> str:
    """Why folding an event failed, for `UnreadableEvent`."""
    return str(exc) if isinstance(exc, NotFoldable) else f"evolve failed: {exc!r}"


def fold_event(
    evolve: Callable[[Any, Any], Any], ps: PartitionState, item: Enveloped, digest: str, origin: int, horizon_ms: int
) -> bool:
    """Fold one event of the partition's own log into `ps`; False if it repeats one already folded
    (see `first_time`), in which case nothing changes. `digest` and `origin`: the event's headers."""
    env = item.envelope
    if env.aggregate_version <= 0:
        raise NotFoldable(f"{env.event_type} {env.event_id} has no aggregate version: not written by a processor")
    if not first_time(ps.versions, env):
        return False
    ps.state = evolve(ps.state, item.message)  # the state evolve returns (a pure one returns a new one)
    if env.causation_id:
        ps.remember(env.causation_id, Applied(origin, digest), horizon_ms)
    elif origin > ps.newest:
        ps.newest = origin
    return True


def origin_of(timestamp: int, header: bytes | None) -> int:
    """A record's origin time: its `flexchain.origin` header, else its own timestamp."""
    if header:
        try:
            return int(header)
        except ValueError:
            pass
    return timestamp


def fold_record(
    decode: Callable[[bytes], Enveloped],
    evolve: Callable[[Any, Any], Any],
    ps: PartitionState,
    rec: Any,
    horizon_ms: int,
) -> Enveloped:
    """Decode one record of the service's own event log (an aiokafka `ConsumerRecord`) and fold it
    into `ps`, which then points past it. Whatever keeps it from being read or folded raises
    `UnreadableEvent` naming topic, partition and offset — except a decode error marked transient
    (the registry did not answer), raised as it is, to be tried again."""
    try:
        item = decode(rec.value)
    except Exception as exc:
        if getattr(exc, "transient", False):
            raise
        raise UnreadableEvent(rec.topic, rec.partition, rec.offset, getattr(exc, "reason", failure_reason(exc))) from exc
    headers: dict[str, bytes] = {}
    for name, value in rec.headers or ():
        headers.setdefault(name, bytes(value))
    digest = headers.get(DIGEST_HEADER, b"").decode()
    origin = origin_of(rec.timestamp, headers.get(ORIGIN_HEADER))
    try:
        fold_event(evolve, ps, item, digest, origin, horizon_ms)
    except Exception as exc:
        raise UnreadableEvent(rec.topic, rec.partition, rec.offset, failure_reason(exc)) from exc
    ps.next_offset = rec.offset + 1
    return item
