"""One partition of a service's own event log, written as the processor writes it, and the check that
folding it with `flexchain.fold.fold_event` is idempotent (issue 12, item 2; ARCHITECTURE: "Folding
is idempotent").

`OwnLog` is the processor of one partition without Kafka: each command becomes a record of
`<service>.commands` (its wall-clock time and business time both `now`) and goes through the
processor's own per-record step, `flexchain.step.CommandStep` — dedup by command id, `decide` on the
live state, the events enveloped (ids derived from the command id, `<id>@<partition>` for a broadcast
command; aggregate versions counted per aggregate within the partition) and folded into the live
state, which remembers the command. Its codec is a pass-through (`_PassThrough`): nothing here is
about the wire format. A service's existing generators drive it, so the logs are those of realistic
histories. A history decided elsewhere (the multi-partition harness of `flexchain.testing`) is written
with `OwnLog.write`: enveloped by the same step, its bookkeeping folded.

`check_fold` then folds the log with `fold_event` into a fresh `PartitionState`, once as written and
once with repeats inserted — an event again later, a whole command's events again, an older aggregate
version after newer ones, an already-folded aggregate version under another event id (a zombie's or a
hand-appended record) — and asserts the same state, versions, dedup memory and business-time horizon
as the live partition, and that `fold_event` answers False exactly for the inserted records.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka.structs import ConsumerRecord
from hypothesis import strategies as st

from flexchain.fold import DIGEST_HEADER, Applied, PartitionState, fold_event
from flexchain.messages import Enveloped, Message
from flexchain.runtime import ServiceDef, canonical
from flexchain.step import CommandStep, command_digest
from tests.support import envelope_for

HOUR = 3_600_000
DAY = 24 * HOUR
# the dedup horizon: short ones make the fold forget command ids inside the history
horizon_st = st.sampled_from((HOUR, DAY, 400 * DAY))
Record = tuple[Enveloped, str]  # an event of the log and the digest of the command that caused it
Fold = Callable[[Callable[[Any, Any], Any], PartitionState, Enveloped, str, int, int], bool]
PRODUCER = "foldlog"  # the commands' producer: not a router, so each event carries its command's digest


class _PassThrough:
    """A codec without a wire format: a record's value names the command it carries."""

    def __init__(self) -> None:
        self.commands: dict[bytes, Enveloped] = {}

    def decode(self, value: bytes | None) -> Enveloped:
        return self.commands[value or b""]

    def encode(self, item: Enveloped) -> bytes:
        return item.envelope.event_id.encode()


def _kept(state: Any, _event: Any) -> Any:
    """An evolve for events already evolved into the state: `OwnLog.write` folds only the bookkeeping."""
    return state


class OwnLog:
    """The processor of one partition and the events it wrote, in log order."""

    def __init__(self, svc: ServiceDef[Any], horizon_ms: int, partition: int = 0, state: Any = None) -> None:
        self.svc = svc
        self.horizon_ms = horizon_ms
        self.partition = partition
        self.live = PartitionState(svc.new_state() if state is None else state)
        self.log: list[Record] = []
        self.commands: list[range] = []  # per command that had events: where they are in the log
        self._n = 0
        self._codec = _PassThrough()
        self.step = CommandStep(svc, self._codec, svc.topics["events"], svc.topics["dlq"], horizon_ms / HOUR)

    def new_id(self) -> str:
        self._n += 1
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"test-command/{self.svc.name}/{self._n}"))

    def _command(self, command_id: str, cmd: Message, now: int) -> Enveloped:
        return Enveloped(envelope=envelope_for(cmd, command_id, now, PRODUCER), message=cmd)

    def handle(self, cmd: Message, now: int, command_id: str | None = None) -> list[Message]:
        """Process one command as the processor does (`CommandStep`): its events, none if a repeat."""
        cid = command_id or self.new_id()
        value = cid.encode()
        self._codec.commands[value] = self._command(cid, cmd, now)
        offset, key = len(self._codec.commands) - 1, cmd.key.encode() or None
        headers = (("type", type(cmd).__name__.encode()),)
        rec: ConsumerRecord[bytes, bytes] = ConsumerRecord(
            self.svc.topics["commands"], self.partition, offset, now, 0, key, value, None, 0, len(value), headers
        )
        out = self.step(self.live, rec)
        if out.error is not None:  # decide (or evolve) raised: the test sees it, as before the step existed
            raise out.error
        assert out.dead_letter is None, f"{type(cmd).__name__} parked: {out.dead_letter}"
        self._logged(out.events, [dict(r.headers).get(DIGEST_HEADER, b"").decode() for r in out.records])
        return [e.message for e in out.events]

    def write(self, command_id: str, cmd: Message, now: int, events: list[Message]) -> None:
        """Envelope and log the events `cmd` was decided into; the live state already holds them, so only
        the versions and the dedup memory are folded."""
        digest = command_digest(cmd)
        items = self.step.envelope(self.live, self.partition, self._command(command_id, cmd, now), events)
        for item, _ in items:
            assert fold_event(_kept, self.live, item, digest, now, self.horizon_ms)
        self._logged([item for item, _ in items], [digest] * len(items))

    def _logged(self, events: list[Enveloped], digests: list[str]) -> None:
        start = len(self.log)
        self.log += zip(events, digests, strict=True)
        if events:
            self.commands.append(range(start, len(self.log)))


# --- repeats -------------------------------------------------------------------------------------

REPEATS = ("event", "command", "older", "same-version")
# (kind, which one, how far after it): resolved against the log by `with_repeats`
repeats_st = st.lists(st.tuples(st.sampled_from(REPEATS), st.integers(0, 1 << 20), st.integers(0, 1 << 20)), max_size=8)


def with_repeats(
    log: list[Record], commands: list[range], repeats: list[tuple[str, int, int]]
) -> tuple[list[Record], list[bool]]:
    """The log with repeats inserted after their originals, and per record whether it is an original.

    - "event": an event again, anywhere after its first appearance (same envelope: id and version);
    - "command": all the events of one command again, after its last one (a redelivered batch);
    - "older": an event again after a later event of its aggregate (an older version after newer);
    - "same-version": an aggregate version already in the log under another event id (and, when the
      aggregate has another event, that one's message): what a zombie or a hand-appended record holds.
    """
    n = len(log)
    if n == 0:
        return [], []
    later: list[tuple[int, int]] = []  # (i, j): event j is a later event of i's aggregate
    last_of: dict[str, int] = {}
    for j, (item, _) in enumerate(log):
        agg = item.envelope.aggregate_id
        if agg in last_of:
            later.append((last_of[agg], j))
        last_of[agg] = j
    inserted: dict[int, list[Record]] = {}  # after which original index → the records inserted there
    for kind, which, gap in repeats:
        if kind == "command" and commands:
            r = commands[which % len(commands)]
            at = r[-1] + gap % (n - r[-1])
            inserted.setdefault(at, []).extend(log[i] for i in r)
        elif kind == "older" and later:
            i, j = later[which % len(later)]
            at = j + gap % (n - j)
            inserted.setdefault(at, []).append(log[i])
        else:
            i = which % n
            at = i + gap % (n - i)
            item, digest = log[i]
            if kind == "same-version":
                agg = item.envelope.aggregate_id
                other = next((log[k][0].message for k in range(n) if k != i and log[k][0].envelope.aggregate_id == agg), None)
                env = dataclasses.replace(item.envelope, event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"forged/{which}")))
                item = Enveloped(envelope=env, message=other if other is not None else item.message)
            inserted.setdefault(at, []).append((item, digest))
    out: list[Record] = []
    originals: list[bool] = []
    for i, rec in enumerate(log):
        out.append(rec)
        originals.append(True)
        extra = inserted.get(i, [])
        out.extend(extra)
        originals.extend([False] * len(extra))
    return out, originals


# --- the check -----------------------------------------------------------------------------------


def naive_fold(
    evolve: Callable[[Any, Any], Any], ps: PartitionState, item: Enveloped, digest: str, origin: int, horizon_ms: int
) -> bool:
    """A fold without the version rule (what the kernel did before): every event is evolved."""
    env = item.envelope
    ps.versions[env.aggregate_id] = max(env.aggregate_version, ps.versions.get(env.aggregate_id, 0))
    evolve(ps.state, item.message)
    if env.causation_id:
        ps.remember(env.causation_id, Applied(origin, digest), horizon_ms)
    return True


def folded(own: OwnLog, records: list[Record], fold: Fold = fold_event) -> tuple[PartitionState, list[bool]]:
    ps = PartitionState(own.svc.new_state())
    # the origin of a command (the wall-clock time of its record) is played here by its business time
    answers = [fold(own.svc.evolve, ps, item, digest, item.envelope.business_time, own.horizon_ms) for item, digest in records]
    return ps, answers


def summary(ps: PartitionState) -> dict[str, Any]:
    """What must agree between the live partition and any fold of its log."""
    return {
        "state": canonical(ps.state),
        "versions": ps.versions,
        "seen": list(ps.seen.items()),  # in order: the oldest is forgotten first
        "newest": ps.newest,
    }


def check_fold(own: OwnLog, repeats: list[tuple[str, int, int]], fold: Fold = fold_event) -> None:
    live = summary(own.live)
    ps, answers = folded(own, own.log, fold)
    assert all(answers), "every event of a log without repeats is folded"
    assert summary(ps) == live, "folding the log gives the live partition"
    records, originals = with_repeats(own.log, own.commands, repeats)
    ps, answers = folded(own, records, fold)
    assert summary(ps) == live, "repeats in the log change nothing"
    assert answers == originals, "fold_event answers False exactly for the repeats"
