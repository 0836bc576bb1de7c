"""`flexchain.dlq` without a broker: times, ids, selections, and where a redrive plan sends each dead
letter — never to another service's event log."""

from __future__ import annotations

import pytest

from flexchain.dlq import DeadLetter, DlqError, Selection, parse_id, parse_time, plan, redrive_headers
from flexchain.settings import Settings

NOW = 1_800_000_000_000
S = Settings(flexchain_topic_prefix="x-")


def letter(offset: int, source: str | None = "x-inventory.commands", count: int = 0, **kw: object) -> DeadLetter:
    headers: list[tuple[str, bytes]] = [("flexchain.dlq.reason", b"decide failed: boom")]
    if source is not None:
        headers += [
            ("flexchain.source.topic", source.encode()),
            ("flexchain.source.partition", b"4"),
            ("flexchain.source.offset", b"17"),
            ("flexchain.source.timestamp", b"1700000000000"),
            ("flexchain.original.type", b"ReserveStock"),
        ]
    if count:
        headers.append(("flexchain.redrive.count", str(count).encode()))
    return DeadLetter(0, offset, NOW - offset * 1000, b"k", b"v", tuple(headers), "ReserveStock", **kw)  # type: ignore[arg-type]


def test_times_are_iso_relative_or_epoch_ms() -> None:
    assert parse_time("2h", NOW) == NOW - 7_200_000
    assert parse_time("90s", NOW) == NOW - 90_000
    assert parse_time("1.5d", NOW) == NOW - 129_600_000
    assert parse_time("2026-12-03T10:00:00Z", NOW) == parse_time("2026-12-03T10:00:00", NOW) == 1_796_292_000_000
    assert parse_time("2026-12-03T18:00:00+08:00", NOW) == 1_796_292_000_000
    assert parse_time("1700000000000", NOW) == 1_700_000_000_000
    with pytest.raises(DlqError):
        parse_time("yesterday", NOW)


def test_ids_and_selection() -> None:
    assert parse_id("3:17") == (3, 17)
    with pytest.raises(DlqError):
        parse_id("3-17")
    a, b = letter(1), letter(2)
    assert Selection().is_empty() and Selection().matches(a)
    assert [d.offset for d in (a, b) if Selection(ids=frozenset({(0, 2)})).matches(d)] == [2]
    assert Selection(reason="DECIDE").matches(a) and not Selection(reason="policy").matches(a)
    assert not Selection(message_type="ReceiveStock").matches(a)
    assert [d.offset for d in (a, b) if Selection(since=NOW - 1500).matches(d)] == [1]
    assert [d.offset for d in (a, b) if Selection(until=NOW - 1500).matches(d)] == [2]


def test_a_command_goes_back_to_its_partition_with_its_headers_and_one_more_redrive() -> None:
    (step,) = plan(S, "inventory", [letter(1, count=1)], Selection(), redrive_topic_exists=False)
    assert (step.topic, step.partition) == ("x-inventory.commands", 4)
    headers = dict(redrive_headers(S, "inventory", step))
    assert headers == {
        "type": b"ReserveStock",
        "flexchain.redrive.count": b"2",
        "flexchain.redrive.from": b"x-inventory.dlq:0:1",
    }


def test_another_services_event_is_never_sent_back_to_its_log() -> None:
    d = letter(1, source="x-order.events")
    (refused,) = plan(S, "inventory", [d], Selection(), redrive_topic_exists=False)
    assert refused.topic is None and "never appended" in refused.note
    (step,) = plan(S, "inventory", [d], Selection(), redrive_topic_exists=True)
    assert (step.topic, step.partition) == ("x-inventory.redrive", None)
    headers = dict(redrive_headers(S, "inventory", step))
    assert headers["flexchain.redrive.topic"] == b"x-order.events"
    assert (headers["flexchain.redrive.partition"], headers["flexchain.redrive.offset"]) == (b"4", b"17")


def test_refused_already_redriven_past_the_maximum_or_without_a_source() -> None:
    done = letter(1, redriven_to="x-inventory.commands:4:99")
    tired = letter(2, count=3)
    lost = letter(3, source=None)
    steps = plan(S, "inventory", [done, tired, lost], Selection(), redrive_topic_exists=True)
    assert [s.topic for s in steps] == [None, None, None]
    assert "already redriven" in steps[0].note and "max 3" in steps[1].note and "unknown" in steps[2].note
    forced = plan(S, "inventory", [done, tired], Selection(), redrive_topic_exists=True, force=True, max_redrives=4)
    assert [s.topic for s in forced] == ["x-inventory.commands", "x-inventory.commands"]
