"""Dead letters drained (issue 14): parked → cause fixed → redriven → applied exactly once; a second
redrive changes nothing; a record that fails again is parked again with its redrive count.

On the real kernel and broker with the toy service of `tests/faults/toy.py`. The cause is a real one
an operator meets: a producer wrote a command (and another service an event) with a NEWER schema
version than the consumer knows — "unknown schema id". The fix is the consumer's upgrade: the
version is added to its schema history and it restarts; the redriven records are then read by
Avro's resolution rules. The event comes from another service's log (`toysrc.events`): it is
redriven through `toy.redrive`, never appended to that log again.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastavro import parse_schema, schemaless_writer

from flexchain import dlq
from flexchain.dlq import DeadLetter, Selection, execute, plan, read_dead_letters
from flexchain.history import version_path
from flexchain.messages import Envelope, Enveloped, Message, to_record
from flexchain.schemas import canonical_id, schema_for, self_contained
from flexchain.serde import Codec
from flexchain.settings import Settings
from flexchain.ticks import ClockTicked
from tests.faults.history import read_log
from tests.faults.toy import Poke, Poked, Source, write_toy_schemas
from tests.support import Suite, envelope_for, eventually, http, publish_raw, run

pytestmark = pytest.mark.broker

TOY = "tests.faults.toy"


def newer_schema(cls: type[Message], root: Path) -> dict[str, Any]:
    """The next version of `cls`'s schema as a producer upgraded first would write it: one more field."""
    base = schema_for(cls)
    return self_contained({**base, "fields": [*base["fields"], {"name": "note", "type": "string", "default": ""}]}, root)


def written_with(schema: dict[str, Any], msg: Message, env: Envelope) -> bytes:
    record = {**to_record(msg), "envelope": to_record(env), "note": "from a newer producer"}
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, canonical_id(parse_schema(schema, expand=True))))
    schemaless_writer(buf, parse_schema(schema), record)
    return buf.getvalue()


def item(url: str, key: str) -> int | None:
    r = http("GET", f"{url}/items/{key}", timeout=10)
    return None if r.status_code == 404 else int(r.json()["value"])


def duplicates(url: str) -> float:
    lines = httpx.get(url + "/metrics", timeout=10).text.splitlines()
    return sum(float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith("flexchain_toy_duplicates_skipped_total"))


def test_parked_fixed_redriven_applied_once_and_a_second_redrive_changes_nothing(
    kafka_bootstrap: str, prefix: str, data_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "schemas"
    write_toy_schemas(root)
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SCHEMAS_DIR=str(root))
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, flexchain_topic_prefix=prefix)
    classes: list[type[Message]] = [Poke, Poked, Source, ClockTicked]

    def letters(codec: Codec) -> list[DeadLetter]:
        found: list[DeadLetter] = run(read_dead_letters(settings, "toy", codec))
        return found

    def parked(codec: Codec, n: int) -> list[DeadLetter]:
        return eventually(lambda: (ls := letters(codec)) and len(ls) == n and ls, timeout=60, what=f"{n} dead letters")

    def redrive(codec: Codec, selection: Selection, **kw: Any) -> list[dlq.Step]:
        steps = plan(settings, "toy", letters(codec), selection, redrive_topic_exists=True, **kw)
        done: list[dlq.Step] = run(execute(settings, "toy", steps))
        return done

    def poked() -> dict[str, int]:
        counts: dict[str, int] = {}
        for x in run(read_log(kafka_bootstrap, suite.topic("toy.events"), Codec(classes, root=root))):
            counts[x.item.message.item] = counts.get(x.item.message.item, 0) + 1
        return counts

    poke_v2, source_v2 = newer_schema(Poke, root), newer_schema(Source, root)
    p, s = Poke("p", 1, "ok"), Source("s", 1, "ok")
    try:
        toy = suite.start("toy", module=TOY)
        old = Codec(classes, root=root)  # the CLI's codec before the upgrade: the newer records are unreadable
        run(publish_raw(kafka_bootstrap, suite.topic("toy.commands"), [(b"p", written_with(poke_v2, p, envelope_for(p)))]))
        run(publish_raw(kafka_bootstrap, suite.topic("toysrc.events"), [(b"s", written_with(source_v2, s, envelope_for(s)))]))
        bad, marker = Poke("bad", 1, "decide"), Poke("k", 1, "ok")  # `bad`: its decide always raises
        current = [(m.key.encode(), old.encode(Enveloped(envelope=envelope_for(m), message=m))) for m in (bad, marker)]
        run(publish_raw(kafka_bootstrap, suite.topic("toy.commands"), current))
        eventually(lambda: item(toy.url, "k") == 1, what="processing goes on")
        first = {d.source_topic: d for d in parked(old, 3)}
        assert first[suite.topic("toysrc.events")].reason.startswith("unknown schema id")
        assert first[suite.topic("toysrc.events")].message_type == "unreadable"
        assert all(d.redrive_count == 0 and d.source_timestamp for d in first.values())

        # redriven BEFORE the fix: both fail again, parked again with redrive count 1; the event keeps
        # its first source (another service's log), the command its new offset in toy.commands
        unknown = Selection(reason="unknown schema id")
        steps = redrive(old, unknown)
        assert sorted((st.topic or "", st.partition is None) for st in steps) == [
            (suite.topic("toy.commands"), False),
            (suite.topic("toy.redrive"), True),
        ]
        again = [d for d in parked(old, 5) if d.redrive_count == 1]
        assert sorted(d.source_topic or "" for d in again) == [suite.topic("toy.commands"), suite.topic("toysrc.events")]
        event_again = next(d for d in again if d.source_topic == suite.topic("toysrc.events"))
        ev_first = first[suite.topic("toysrc.events")]
        assert (event_again.source_partition, event_again.source_offset) == (ev_first.source_partition, ev_first.source_offset)
        assert dict(event_again.original_headers()) == dict(ev_first.original_headers())

        # the fix: the consumer learns the newer versions (its schema history) and restarts
        for cls, schema in ((Poke, poke_v2), (Source, source_v2)):
            path = version_path(cls.SERVICE, cls.__name__, 2, root)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(schema), encoding="utf-8")
        toy.stop()
        toy = suite.start("toy", module=TOY)
        new = Codec(classes, root=root)
        listed = letters(new)
        assert {d.message_type for d in listed if "unknown schema id" in d.reason} == {"Poke", "Source"}
        assert sum(1 for d in listed if d.redriven_to) == 2, "the first two are marked redriven"

        steps = redrive(new, unknown)
        sent = [st for st in steps if st.topic]
        assert len(sent) == 2 and all(st.dead.redrive_count == 1 for st in sent), [st.row() for st in steps]
        assert all("already redriven" in st.note for st in steps if not st.topic)
        eventually(lambda: item(toy.url, "p") == 1 and item(toy.url, "s") == 1, timeout=60, what="both applied")
        assert poked() == {"p": 1, "s": 1, "k": 1}, "each applied exactly once"

        # a second redrive of the same selection: every one is marked redriven, nothing is sent
        steps = redrive(new, unknown)
        assert steps and not [st for st in steps if st.topic], [st.row() for st in steps]
        # forced, they are sent again: the processor's dedup (same command ids) applies none of them
        before = duplicates(toy.url)
        forced = redrive(new, unknown, force=True)
        assert len([st for st in forced if st.topic]) == 4
        eventually(lambda: duplicates(toy.url) - before == 4, timeout=60, what="four duplicates skipped")
        assert item(toy.url, "p") == 1 and item(toy.url, "s") == 1
        assert poked() == {"p": 1, "s": 1, "k": 1}, "no new events"
        assert len(letters(new)) == 5, "nothing parked"

        # a record that fails again is parked again, its count going 1 -> 2, and is then refused
        decide = Selection(reason="decide failed")
        for count in (1, 2):
            pending = [d for d in letters(new) if "decide failed" in d.reason and not d.redriven_to]
            assert [d.redrive_count for d in pending] == [count - 1]
            redrive(new, decide)
            eventually(
                lambda count=count: any(d.redrive_count == count for d in letters(new) if "decide failed" in d.reason),
                timeout=60,
                what=f"parked again with count {count}",
            )
        last = next(d for d in letters(new) if d.redrive_count == 2)
        assert plan(settings, "toy", [last], decide, redrive_topic_exists=True)[0].topic is not None
        refused = plan(settings, "toy", [last], decide, redrive_topic_exists=True, max_redrives=2)
        assert refused[0].topic is None and "max 2" in refused[0].note
        assert item(toy.url, "bad") is None
    finally:
        suite.stop_all()
