"""The processor's per-record rules (`flexchain.step.CommandStep`), without Kafka: the same rules the
broker tests check end to end (tests/integration/test_dedup.py, test_duplicates_and_poison.py,
tests/faults/test_poison.py), one record at a time on a partition's state.

The service is the toy of tests/faults/toy.py, whose domain fails on demand (`mode`)."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from flexchain.fold import DIGEST_HEADER, ORIGIN_HEADER, Applied, PartitionState
from flexchain.messages import Envelope, Enveloped, Message, derived_id
from flexchain.serde import Codec, DecodeError
from flexchain.step import (
    DLQ_REASON_HEADER,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    SOURCE_OFFSET_HEADER,
    CommandStep,
    Outcome,
    command_digest,
)
from tests.faults.toy import TOY, Items, Poke, Poked, Source, write_toy_schemas

HOUR = 3_600_000
NOW = 1_800_000_000_000  # wall clock of the records (ms)
HORIZON_HOURS = 1.0


@pytest.fixture(scope="module")
def codec(tmp_path_factory: pytest.TempPathFactory) -> Codec:
    root = tmp_path_factory.mktemp("schemas")
    write_toy_schemas(root)
    from flexchain.ticks import ClockTicked

    return Codec([Poke, Poked, Source, ClockTicked], root=root)


@pytest.fixture
def step(codec: Codec) -> CommandStep:
    return CommandStep(TOY, codec, "toy.events", "toy.dlq", HORIZON_HOURS)


class Log:
    """Command records of one partition of `toy.commands`, offsets counted from 0."""

    def __init__(self, codec: Codec, partition: int = 3) -> None:
        self.codec = codec
        self.partition = partition
        self.offset = 0

    def raw(self, value: bytes, key: bytes | None = b"k", at: int = NOW, headers: tuple[tuple[str, bytes], ...] = ()) -> Any:
        rec: ConsumerRecord[bytes, bytes] = ConsumerRecord(
            "toy.commands", self.partition, self.offset, at, 0, key, value, None, 1, len(value), headers
        )
        self.offset += 1
        return rec

    def command(self, cmd: Message, command_id: str, at: int = NOW, producer: str = "toy-api", business_time: int = 7) -> Any:
        env = Envelope(
            event_id=command_id,
            event_type=type(cmd).__name__,
            aggregate_id=cmd.key,
            aggregate_version=0,
            business_time=business_time,
            correlation_id=f"corr-{command_id}",
            causation_id=None,
            producer=producer,
        )
        value = self.codec.encode(Enveloped(envelope=env, message=cmd))
        return self.raw(value, cmd.key.encode() or None, at, (("type", type(cmd).__name__.encode()),))


def new_partition() -> PartitionState:
    return PartitionState(Items())


def events_of(out: Outcome) -> list[tuple[str, int, str]]:
    """(aggregate, version, event id) of each event written."""
    return [(e.envelope.aggregate_id, e.envelope.aggregate_version, e.envelope.event_id) for e in out.events]


def test_a_command_is_decided_enveloped_encoded_and_folded(step: CommandStep, codec: Codec) -> None:
    ps, log = new_partition(), Log(codec)
    out = step(ps, log.command(Poke("a", 2, "ok"), "c1"))
    assert out.decided and not out.duplicate and out.dead_letter is None
    assert ps.state.items == {"a": 2} and ps.versions == {"a": 1}
    assert ps.seen == {"c1": Applied(NOW, command_digest(Poke("a", 2, "ok")))}
    (rec,) = out.records
    assert (rec.topic, rec.partition, rec.key, rec.kind) == ("toy.events", 3, b"a", "Poked")
    headers = dict(rec.headers)
    assert headers["type"] == b"Poked" and headers[ORIGIN_HEADER] == str(NOW).encode()
    assert headers[SOURCE_OFFSET_HEADER] == b"0" and headers[DIGEST_HEADER] == command_digest(Poke("a", 2, "ok")).encode()
    written = codec.decode(rec.value)
    assert written.message == Poked("a", 2, "ok")
    assert written.envelope == Envelope(
        event_id=derived_id("c1", 0, "toy"),
        event_type="Poked",
        aggregate_id="a",
        aggregate_version=1,
        business_time=7,
        correlation_id="corr-c1",
        causation_id="c1",
        producer="toy",
    )


def test_a_command_seen_twice_writes_nothing_the_second_time(step: CommandStep, codec: Codec) -> None:
    ps, log = new_partition(), Log(codec)
    first = step(ps, log.command(Poke("a", 2, "ok"), "c1"))
    again = step(ps, log.command(Poke("a", 2, "ok"), "c1"))
    assert again.duplicate and not again.records and again.dead_letter is None and not again.decided
    assert ps.state.items == {"a": 2} and ps.versions == {"a": 1}
    # the answer recorded the first time is what the id stands for
    assert ps.seen["c1"] == Applied(NOW, command_digest(Poke("a", 2, "ok"))) and len(first.records) == 1


def test_a_command_id_reused_for_another_body_is_parked_and_changes_nothing(step: CommandStep, codec: Codec) -> None:
    ps, log = new_partition(), Log(codec)
    step(ps, log.command(Poke("a", 2, "ok"), "key-1"))
    out = step(ps, log.command(Poke("a", 5, "ok"), "key-1"))
    assert out.dead_letter is not None and out.dead_letter.startswith("idempotency key reused: command id key-1")
    assert [r.kind for r in out.records] == [f"dlq:{out.dead_letter}"] and ps.state.items == {"a": 2}


def test_a_routed_command_has_no_digest_so_a_repeat_is_only_a_duplicate(step: CommandStep, codec: Codec) -> None:
    ps, log = new_partition(), Log(codec)
    first = step(ps, log.command(Poke("a", 2, "ok"), "r1", producer="toy-router"))
    assert DIGEST_HEADER not in dict(first.records[0].headers) and ps.seen["r1"].digest == ""
    assert step(ps, log.command(Poke("a", 9, "ok"), "r1", producer="toy-router")).duplicate


def test_versions_count_per_aggregate_across_commands_and_within_one(codec: Codec) -> None:
    def twice(state: Items, cmd: Message, now: int) -> list[Message]:
        assert isinstance(cmd, Poke)
        return [Poked(cmd.item, cmd.n, "ok"), Poked("b", 1, "ok"), Poked(cmd.item, cmd.n, "ok")]

    step = CommandStep(dataclasses.replace(TOY, decide=twice), codec, "toy.events", "toy.dlq", HORIZON_HOURS)
    ps, log = new_partition(), Log(codec)
    ps.versions["b"] = 41  # folded from the log before
    out = step(ps, log.command(Poke("a", 1, "ok"), "c1"))
    assert [(a, v) for a, v, _ in events_of(out)] == [("a", 1), ("b", 42), ("a", 2)]
    assert [i for *_, i in events_of(out)] == [derived_id("c1", i, "toy") for i in range(3)]
    out = step(ps, log.command(Poke("a", 1, "ok"), "c2"))
    assert [(a, v) for a, v, _ in events_of(out)] == [("a", 3), ("b", 43), ("a", 4)]
    assert ps.versions == {"a": 4, "b": 43} and ps.state.items == {"a": 4, "b": 2}


def test_a_broadcast_command_gets_event_ids_of_its_partition(step: CommandStep, codec: Codec) -> None:
    """One command id reaches every partition (empty key): its events' ids differ per partition."""
    ids = {}
    for p in (0, 1, 2):
        out = step(new_partition(), Log(codec, partition=p).command(Poke("", 1, "ok"), "tick-9"))
        (rec,) = out.records
        assert rec.partition == p
        ids[p] = out.events[0].envelope.event_id
    assert ids == {p: derived_id(f"tick-9@{p}", 0, "toy") for p in (0, 1, 2)}
    keyed = step(new_partition(), Log(codec).command(Poke("a", 1, "ok"), "tick-9"))
    assert keyed.events[0].envelope.event_id == derived_id("tick-9", 0, "toy"), "a keyed command's cause is its id"


def dead_letter_of(out: Outcome, rec: Any) -> str:
    """The one record written is the command parked as it was read, with its reason and source."""
    (dl,) = out.records
    headers = dict(dl.headers)
    assert (dl.topic, dl.partition, dl.key, dl.value) == ("toy.dlq", None, rec.key, rec.value)
    assert headers[DLQ_SOURCE_TOPIC] == b"toy.commands"
    assert headers[DLQ_SOURCE_PARTITION] == str(rec.partition).encode()
    assert headers[DLQ_SOURCE_OFFSET] == str(rec.offset).encode()
    assert dl.kind == "dlq:" + headers[DLQ_REASON_HEADER].decode() and out.dead_letter == headers[DLQ_REASON_HEADER].decode()
    assert not out.events and not out.decided
    return out.dead_letter


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xde\xad\xbe\xef not avro at all", "not in the wire format"),
        (struct.pack(">bI", 0, 999_999) + b"\x02\x04", "unknown schema id 999999"),
    ],
)
def test_undecodable_bytes_are_parked_with_the_decoders_reason(
    step: CommandStep, codec: Codec, value: bytes, reason: str
) -> None:
    ps, log = new_partition(), Log(codec)
    rec = log.raw(value)
    assert dead_letter_of(step(ps, rec), rec).startswith(reason)
    assert ps == new_partition()


def test_a_message_that_is_not_a_command_of_the_service_is_parked(step: CommandStep, codec: Codec) -> None:
    ps, log = new_partition(), Log(codec)
    rec = log.command(Poked("a", 1, "ok"), "e1")  # an event, on the command topic
    assert dead_letter_of(step(ps, rec), rec) == "not a command of toy: Poked"
    assert ps == new_partition()


def test_decide_raising_parks_the_command_and_changes_nothing(step: CommandStep, codec: Codec) -> None:
    ps, log = new_partition(), Log(codec)
    rec = log.command(Poke("b", 1, "decide"), "c1")
    out = step(ps, rec)
    assert dead_letter_of(out, rec) == "decide failed: ValueError('poisoned decide')"
    assert out.failed == "decide" and isinstance(out.error, ValueError) and out.command is not None
    assert ps == new_partition(), "nothing remembered: the id may be sent again, fixed"


def test_an_event_that_does_not_fit_its_schema_parks_the_command_and_changes_nothing(step: CommandStep, codec: Codec) -> None:
    ps, log = new_partition(), Log(codec)
    rec = log.command(Poke("c", 1, "encode"), "c1")
    out = step(ps, rec)
    assert dead_letter_of(out, rec).startswith("encode failed: ") and out.failed == "encode"
    assert ps == new_partition()


def test_evolve_raising_writes_nothing_and_says_the_state_is_poisoned_then_the_record_is_parked(
    step: CommandStep, codec: Codec
) -> None:
    ps, log = new_partition(), Log(codec)
    rec = log.command(Poke("d", 1, "evolve"), "c1")
    out = step(ps, rec)
    assert out.poisoned == "evolve failed: RuntimeError('poisoned evolve')" and out.failed == "evolve"
    assert not out.records and not out.decided
    # the shell drops the half-changed state and rebuilds; read again, the record is parked at once
    fresh = new_partition()
    again = step(fresh, rec, poisoned=out.poisoned)
    assert dead_letter_of(again, rec) == out.poisoned and fresh == new_partition()


def test_a_command_older_than_the_dedup_horizon_is_parked_as_stale(step: CommandStep, codec: Codec) -> None:
    ps, log = new_partition(), Log(codec)
    step(ps, log.command(Poke("a", 1, "ok"), "new", at=NOW))
    rec = log.command(Poke("a", 100, "ok"), "old", at=NOW - 90 * 60_000)  # never seen, but from before the horizon
    reason = dead_letter_of(step(ps, rec), rec)
    assert reason.startswith(f"stale command: it originates at {NOW - 90 * 60_000} ms, more than the dedup horizon (1.0 h)")
    assert ps.state.items == {"a": 1}
    within = step(ps, log.command(Poke("a", 1, "ok"), "late", at=NOW - 30 * 60_000))
    assert within.decided and ps.state.items == {"a": 2}


def test_the_origin_header_not_the_record_time_says_how_old_a_routed_command_is(step: CommandStep, codec: Codec) -> None:
    ps, log = new_partition(), Log(codec)
    step(ps, log.command(Poke("a", 1, "ok"), "new", at=NOW))
    rec = log.command(Poke("a", 1, "ok"), "routed", at=NOW, producer="toy-router")
    rec.headers = (*rec.headers, (ORIGIN_HEADER, str(NOW - 2 * HOUR).encode()))  # derived from an old event
    assert dead_letter_of(step(ps, rec), rec).startswith("stale command")


def test_a_transient_decode_error_parks_nothing_and_is_raised(codec: Codec) -> None:
    class Unavailable:
        def decode(self, value: bytes | None) -> Enveloped:
            raise DecodeError("schema registry unavailable", transient=True)

        def encode(self, item: Enveloped) -> bytes:
            raise AssertionError

    ps = new_partition()
    with pytest.raises(DecodeError):
        CommandStep(TOY, Unavailable(), "toy.events", "toy.dlq", HORIZON_HOURS)(ps, Log(codec).raw(b"x"))
    assert ps == new_partition()


def test_the_state_evolve_returns_is_kept(codec: Codec) -> None:
    """A pure evolve (a new state, the old one untouched) folds as well as one that mutates."""

    def pure(state: Items, event: Message) -> Items:
        assert isinstance(event, Poked)
        return Items({**state.items, event.item: state.items.get(event.item, 0) + event.n})

    step = CommandStep(dataclasses.replace(TOY, evolve=pure), codec, "toy.events", "toy.dlq", HORIZON_HOURS)
    ps, log = new_partition(), Log(codec)
    before = ps.state
    step(ps, log.command(Poke("a", 2, "ok"), "c1"))
    step(ps, log.command(Poke("a", 3, "ok"), "c2"))
    assert ps.state.items == {"a": 5} and before.items == {}


def test_the_step_imports_no_kafka_client_and_no_asyncio(tmp_path: Path) -> None:
    import ast
    import subprocess
    import sys

    import flexchain.step

    code = "import sys, flexchain.step; print([m for m in sys.modules if m.split('.')[0] == 'aiokafka'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    tree = ast.parse(Path(flexchain.step.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "asyncio" not in imported
