"""`flexchain dlq list|show|redrive <service>`: the command line of :mod:`flexchain.dlq` (output
through :mod:`flexchain.output`: tables for people, ``--json`` for scripts, progress on stderr)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterable
from typing import Annotated, Any

import typer

from flexchain import kafka
from flexchain.catalog import EDGES
from flexchain.dlq import (
    MAX_REDRIVES,
    DeadLetter,
    DlqError,
    Selection,
    describe,
    dlq_topic,
    execute,
    parse_id,
    parse_time,
    plan,
    read_dead_letters,
    text,
    topic_exists,
)
from flexchain.messages import to_record
from flexchain.output import JsonFlag, emit, emit_one, progress
from flexchain.serde import Codec
from flexchain.settings import Settings

app = typer.Typer(
    help="Dead letters of a service (`<service>.dlq`): list them, show one decoded, redrive them", no_args_is_help=True
)

Service = Annotated[
    str, typer.Argument(help=f"the service whose <service>.dlq is read (order, inventory, ..., {', '.join(EDGES)})")
]
Reason = Annotated[str | None, typer.Option("--reason", help="reason contains this (case-insensitive)")]
Type = Annotated[str | None, typer.Option("--type", help="message type, e.g. PlaceOrder (or 'unreadable')")]
Since = Annotated[str | None, typer.Option("--since", help="parked at or after: ISO 8601 or a time ago (2h, 3d)")]
Until = Annotated[str | None, typer.Option("--until", help="parked before: ISO 8601 or a time ago")]


def make_codec(settings: Settings) -> Codec:
    """Every message type of the suite (the registry when configured, else schemas/ and its history)."""
    from flexchain.catalog import all_messages
    from flexchain.host import bootstrap_codec

    return bootstrap_codec(settings, all_messages())


def _now() -> int:
    return int(time.time() * 1000)


def _load(settings: Settings, service: str) -> list[DeadLetter]:
    codec = make_codec(settings)
    with progress(f"reading {dlq_topic(settings, service)}", None) as advance:
        return asyncio.run(read_dead_letters(settings, service, codec, lambda done, total: advance(done, total)))


def _selection(ids: list[str], reason: str | None, kind: str | None, since: str | None, until: str | None) -> Selection:
    now = _now()
    return Selection(
        frozenset(parse_id(i) for i in ids),
        reason,
        kind,
        parse_time(since, now) if since else None,
        parse_time(until, now) if until else None,
    )


def _fail(exc: DlqError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@app.command("list")
def list_(
    service: Service,
    reason: Reason = None,
    kind: Type = None,
    since: Since = None,
    until: Until = None,
    as_json: JsonFlag = False,
) -> None:
    """Every dead letter of the service: id (partition:offset), age, type, reason, source, redrives, status."""
    settings = Settings()
    try:
        selection = _selection([], reason, kind, since, until)
        letters = [d for d in _load(settings, service) if selection.matches(d)]
    except DlqError as exc:
        raise _fail(exc) from exc
    now = _now()
    emit(
        [d.row(now, full=as_json) for d in letters], as_json=as_json, title=dlq_topic(settings, service), empty="no dead letters"
    )


def _headers_doc(headers: Iterable[tuple[str, bytes]]) -> list[list[str]]:
    out = []
    for k, v in headers:
        try:
            out.append([k, v.decode("utf-8")])
        except UnicodeDecodeError:
            out.append([k, "hex:" + v.hex()])
    return out


def show_doc(d: DeadLetter, codec: Codec, now_ms: int) -> dict[str, Any]:
    """One dead letter as a document: headers, and its envelope and body as JSON, or its raw bytes."""
    doc: dict[str, Any] = d.row(now_ms, full=True)
    doc["key"] = text(d.key)
    doc["headers"] = _headers_doc(d.headers)
    _, item = describe(codec, d.value)
    if item is not None:
        doc["envelope"] = to_record(item.envelope)
        doc["body"] = to_record(item.message)
    else:
        doc["raw_hex"] = d.value.hex()
        doc["raw_base64"] = base64.b64encode(d.value).decode()
    return doc


@app.command("show")
def show(
    service: Service,
    dead_letter: Annotated[str, typer.Argument(help="its id, <partition>:<offset> (from `dlq list`)")],
    as_json: JsonFlag = False,
) -> None:
    """One dead letter decoded: headers, envelope and body (raw bytes as hex and base64 if it does not decode)."""
    settings = Settings()
    try:
        wanted = parse_id(dead_letter)
        found = [d for d in _load(settings, service) if (d.partition, d.offset) == wanted]
    except DlqError as exc:
        raise _fail(exc) from exc
    if not found:
        typer.echo(f"error: no dead letter {dead_letter} in {dlq_topic(settings, service)}", err=True)
        raise typer.Exit(1)
    emit_one(show_doc(found[0], make_codec(settings), _now()), as_json=as_json)


@app.command("redrive")
def redrive_cmd(
    service: Service,
    ids: Annotated[list[str] | None, typer.Argument(help="dead-letter ids <partition>:<offset>")] = None,
    reason: Reason = None,
    kind: Type = None,
    since: Since = None,
    until: Until = None,
    every: Annotated[bool, typer.Option("--all", help="select every dead letter (no id or filter needed)")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would be sent; send nothing")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    force: Annotated[bool, typer.Option("--force", help="also send dead letters already redriven (dedup still holds)")] = False,
    max_redrives: Annotated[
        int, typer.Option("--max-redrives", min=1, help="refuse dead letters redriven this many times already")
    ] = MAX_REDRIVES,
    as_json: JsonFlag = False,
) -> None:
    """Send selected dead letters back where they came from, with their original key, value and headers
    (commands to their partition of <service>.commands; other services' events to <service>.redrive)."""
    settings = Settings()
    try:
        selection = _selection(ids or [], reason, kind, since, until)
        if selection.is_empty() and not every:
            raise DlqError("select what to redrive: ids, --reason/--type/--since/--until, or --all")
        letters = _load(settings, service)
        exists = asyncio.run(topic_exists(settings, settings.name(kafka.topic_names(service)["redrive"])))
    except DlqError as exc:
        raise _fail(exc) from exc
    steps = plan(settings, service, letters, selection, redrive_topic_exists=exists, max_redrives=max_redrives, force=force)
    sending = [s for s in steps if s.topic is not None]
    if not dry_run and sending and not yes:
        emit([s.row() for s in steps], as_json=False, title="to redrive")
        typer.confirm(f"redrive {len(sending)} dead letter(s)?", abort=True, err=True)
    if not dry_run:
        asyncio.run(execute(settings, service, steps))
    verb = "would redrive" if dry_run else "redriven"
    emit([s.row() for s in steps], as_json=as_json, title=f"{verb}: {len(sending)}, refused: {len(steps) - len(sending)}")
    if not as_json:
        typer.echo(f"{verb}: {len(sending)}; refused: {len(steps) - len(sending)}; selected: {len(steps)}")
