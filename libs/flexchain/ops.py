"""Ops commands: `flexchain lag`, `flexchain rebuild`, `flexchain as-of` (README "Operating").

* `lag` reads the broker alone: per consumer group (the processor's `<service>` on
  `<service>.commands`, the router's `<service>-router` on the topics its policies read) and input
  partition, the committed offset, the last stable offset (the consumers read committed data only)
  and the records between them, counted by reading them — an offset difference would also count
  the commit markers of transactional producers, so a drained partition would show a lag of 1. The
  age of the last commit comes from the commit's metadata, where each transaction puts its wall
  clock time and instance (`flexchain.commits`). The group's member count and each service's
  `/ready` are shown too: a service that is down still has its lag read, and says so.
* `rebuild` asks a running instance to rebuild partitions from the log (`POST /internal/rebuild`,
  `flexchain.rebuilds`) and follows its progress until it is ready again.
* `as-of` asks the R-X-4 routes (`?as_of=`) for an entity as it stood at a past business time.

Service URLs: `--url`, else `FLEXCHAIN_<SERVICE>_URL`, else `http://127.0.0.1:<port>` (catalog).
Kafka: the services' own settings (`KAFKA_BOOTSTRAP_SERVERS`, `FLEXCHAIN_TOPIC_PREFIX`, …).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import time
import urllib.parse
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import typer

from flexchain.auth import bearer
from flexchain.catalog import PACKAGES, SERVICES
from flexchain.commits import read_commit_metadata
from flexchain.output import JsonFlag, emit, emit_one, progress
from flexchain.settings import Settings

#: a partition whose offset gap is larger is not read to count its records: its lag is the gap (an upper bound)
COUNT_LIMIT = 10_000
UTC = datetime.UTC

# --- services and their URLs --------------------------------------------------------------------


def service_url(service: str, url: str | None = None) -> str:
    """`--url`, else `FLEXCHAIN_<SERVICE>_URL`, else the service's default local port."""
    return (url or os.environ.get(f"FLEXCHAIN_{service.upper()}_URL") or f"http://127.0.0.1:{SERVICES[service]}").rstrip("/")


def _check_service(service: str) -> str:
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    return service


def _unreachable(service: str, url: str, exc: Exception) -> typer.Exit:
    typer.echo(
        f"{service} does not answer at {url} ({type(exc).__name__}); give its URL with --url or FLEXCHAIN_{service.upper()}_URL",
        err=True,
    )
    return typer.Exit(2)


Service = Annotated[str, typer.Argument(help=" | ".join(SERVICES), callback=_check_service)]
Url = Annotated[
    str | None, typer.Option("--url", help="the instance's URL (default: FLEXCHAIN_<SERVICE>_URL, else 127.0.0.1:<its port>)")
]


# --- lag ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loop:
    service: str
    loop: str  # processor | router
    group: str
    topics: list[str]


def loops_of(service: str, settings: Settings) -> list[Loop]:
    """The consumer groups of a service and the topics each reads (names as in `runtime`)."""
    svc, _view = PACKAGES[service].declared()
    out = [Loop(service, "processor", settings.name(service), [settings.name(svc.topics["commands"])])]
    if svc.routes:
        out.append(Loop(service, "router", settings.name(f"{service}-router"), [settings.name(r.topic) for r in svc.routes]))
    return out


async def _count_records(consumer: Any, spans: dict[Any, tuple[int, int]]) -> dict[Any, int]:
    """Committed records in [start, end) of each partition, read (read_committed: markers and
    aborted records are not records); a partition not read to its end in a minute is left out.
    (No `unsubscribe` at the end: aiokafka 0.14's `stop` then hangs; the next `assign` replaces it.)"""
    from aiokafka import TopicPartition

    counts: dict[TopicPartition, int] = dict.fromkeys(spans, 0)
    todo = {tp: span for tp, span in spans.items() if span[1] > span[0]}
    if not todo:
        return counts
    consumer.assign(list(todo))
    for tp, (start, _) in todo.items():
        consumer.seek(tp, start)
    deadline = time.monotonic() + 60
    while todo and time.monotonic() < deadline:
        for tp, records in (await consumer.getmany(*todo, timeout_ms=300)).items():
            if tp in todo:
                counts[tp] += sum(1 for r in records if r.offset < todo[tp][1])
        for tp in list(todo):
            if await consumer.position(tp) >= todo[tp][1]:
                del todo[tp]
    for tp in todo:  # not read in time: its lag is the gap (an upper bound)
        del counts[tp]
    return counts


async def _members(admin: Any, groups: list[str]) -> dict[str, int]:
    """Members per consumer group (0: nobody consumes: the service is down, or not started yet)."""
    found: dict[str, int] = {}
    for group in groups:  # one per request: aiokafka 0.14 reads a v3 answer as v2, which misreads a second group
        for resp in await admin.describe_consumer_groups([group]):
            for g in resp.groups:
                found[g[1]] = len(g[5]) if g[0] == 0 else 0
    return found


async def _http_status(services: list[str]) -> dict[str, str]:
    async def one(client: httpx.AsyncClient, service: str) -> tuple[str, str]:
        url = service_url(service)
        try:
            r = await client.get(url + "/ready", timeout=2)
        except httpx.HTTPError:
            return service, "down"
        return service, "ready" if r.status_code == 200 else f"not ready ({r.status_code})"

    async with httpx.AsyncClient() as client:
        return dict(await asyncio.gather(*(one(client, s) for s in services)))


async def read_lag(settings: Settings, services: list[str], now_ms: int | None = None) -> list[dict[str, Any]]:
    """One row per service, loop and input partition (see the module docstring)."""
    from aiokafka import TopicPartition

    from flexchain import kafka

    loops = [loop for s in services for loop in loops_of(s, settings)]
    admin = kafka.admin(settings)
    await admin.start()
    consumer = kafka.consumer(settings, group_id=None, max_poll_records=COUNT_LIMIT)
    await consumer.start()
    try:
        committed = dict(
            zip(
                [loop.group for loop in loops],
                await asyncio.gather(*(admin.list_consumer_group_offsets(loop.group) for loop in loops)),
                strict=True,
            )
        )
        members = await _members(admin, [loop.group for loop in loops])
        await consumer._client.force_metadata_update()  # every topic of the cluster
        tps: dict[str, list[TopicPartition]] = {}
        for topic in dict.fromkeys(t for loop in loops for t in loop.topics):
            parts = consumer.partitions_for_topic(topic)
            if not parts:  # the service never ran here (nor `flexchain topics`): nothing to tell
                typer.echo(f"no topic {topic}: skipped", err=True)
            tps[topic] = [TopicPartition(topic, p) for p in sorted(parts or ())]
        every = [tp for ts in tps.values() for tp in ts]
        ends = await consumer.end_offsets(every)  # read_committed: the last stable offsets
        starts = await consumer.beginning_offsets(every)
        http = await _http_status(services)
        now = int(time.time() * 1000) if now_ms is None else now_ms
        rows: list[dict[str, Any]] = []
        for loop in loops:
            spans = {}
            for topic in loop.topics:
                for tp in tps[topic]:
                    om = committed[loop.group].get(tp)
                    start = om.offset if om is not None and om.offset >= 0 else starts[tp]
                    spans[tp] = (start, ends[tp])
            small = {tp: span for tp, span in spans.items() if span[1] - span[0] <= COUNT_LIMIT}
            counted = await _count_records(consumer, small)
            for tp, (start, end) in spans.items():
                om = committed[loop.group].get(tp)
                info = read_commit_metadata(om.metadata) if om is not None else None
                rows.append(
                    {
                        "service": loop.service,
                        "loop": loop.loop,
                        "group": loop.group,
                        "topic": tp.topic,
                        "partition": tp.partition,
                        "committed": om.offset if om is not None and om.offset >= 0 else None,
                        "end": end,
                        "lag": counted.get(tp, end - start),
                        "lag_exact": tp in counted,
                        "last_commit_age_s": round((now - info.at_ms) / 1000, 1) if info else None,
                        "last_commit_at": _iso(info.at_ms) if info else None,
                        "committed_by": info.instance if info else None,
                        "group_members": members.get(loop.group, 0),
                        "http": http[loop.service],
                    }
                )
        return rows
    finally:
        await consumer.stop()
        await admin.close()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s ago"
    if s < 7200:
        return f"{s // 60}m ago"
    return f"{s // 3600}h {s % 3600 // 60}m ago" if s < 172_800 else f"{s // 86400}d ago"


def lag(
    service: Annotated[str | None, typer.Option("--service", help="one service (default: all five)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Consumer lag per service and input partition, and the age of the last commit (broker alone).

    Per consumer group and input partition: committed offset, end (last stable offset), lag in
    records, the age of the last commit and the instance that made it — from the broker alone, so
    also while a service is down (its `http` column says `down`, its group has no member, and its
    lag grows as commands arrive).

    Lag counts the records waiting (read, committed only), not the offset difference, which also
    counts transaction markers; a gap over 10,000 offsets is shown as an upper bound (≤). The last
    commit's time is what the committing instance wrote into the commit's metadata (its wall clock);
    `-` for offsets committed by an older version, or never."""
    names = [_check_service(service)] if service else list(SERVICES)
    with progress("reading offsets from the broker", None), _quiet():
        rows = asyncio.run(read_lag(Settings(), names))
    if as_json:
        emit(rows, as_json=True)
        return
    for name in names:  # one table per service, its state in the title
        mine = [r for r in rows if r["service"] == name]
        members = ", ".join(f"{loop} group {n} member{'' if n == 1 else 's'}" for loop, n in _members_of(mine).items())
        table = [
            {
                "loop": r["loop"],
                "topic": r["topic"],
                "p": r["partition"],
                "committed": r["committed"],
                "end": r["end"],
                "lag": r["lag"] if r["lag_exact"] else f"≤{r['lag']}",
                "last commit": _age(r["last_commit_age_s"]),
                "by": r["committed_by"],
            }
            for r in mine
        ]
        emit(table, as_json=False, title=f"{name}: http {mine[0]['http']}; {members}" if mine else name)


def _members_of(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {r["loop"]: r["group_members"] for r in rows}


# --- rebuild --------------------------------------------------------------------------------------


def _instance_of(member_id: str, group: str) -> str | None:
    """The instance id in a static member's id, `<group>-<instance id>-<UUID>` (the runtime names its
    static members `<group>-<instance id>`; the broker adds a UUID: dashed, or 22 base64 characters)."""
    if not member_id.startswith(f"{group}-"):
        return None
    rest = member_id.removeprefix(f"{group}-")
    dashed = re.fullmatch(r"(.+)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", rest)
    if dashed:
        return dashed.group(1)
    return rest[:-23] if len(rest) > 23 and rest[-23] == "-" else None


async def owner_of(settings: Settings, service: str, partition: int) -> str:
    """Who holds input partition `partition` of the service's processor, as the broker tells it: the
    group member it is assigned to (a static member's id starts with `<group>-<instance id>-`), else
    the instance that committed it last (from the commit's metadata)."""
    from aiokafka import TopicPartition
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

    from flexchain import kafka

    group, topic = settings.name(service), settings.name(f"{service}.commands")
    admin = kafka.admin(settings)
    await admin.start()
    try:
        for resp in await admin.describe_consumer_groups([group]):
            for g in resp.groups:
                for member in g[5]:
                    member_id, assignment = member[0], member[4]
                    if not assignment:
                        continue
                    parts = ConsumerProtocolMemberAssignment.decode(assignment).partitions()
                    if TopicPartition(topic, partition) in parts:
                        instance = _instance_of(member_id, group)
                        return f"instance {instance} holds it" if instance else f"group member {member_id} holds it"
        tp = TopicPartition(topic, partition)
        found = await admin.list_consumer_group_offsets(group, partitions=[tp])
    finally:
        await admin.close()
    info = read_commit_metadata(found[tp].metadata) if tp in found else None
    held = "no instance holds it now (is the service down, or is there no such partition?)"
    return f"{held}; instance {info.instance} committed it last" if info else held


def rebuild(
    service: Service,
    partition: Annotated[
        int | None, typer.Option("--partition", "-p", min=0, help="one partition (default: every one the instance owns)")
    ] = None,
    url: Url = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the rebuild to finish")] = 600.0,
    as_json: JsonFlag = False,
) -> None:
    """Force a running instance to rebuild its partitions' state from the log, with progress.

    The instance's snapshots of the partitions are dropped and their event log folded from offset
    0; progress is shown until it is ready again.

    Processing and queries of that instance wait meanwhile (as at a rebalance); commands keep
    arriving in their topic and are applied once, afterwards. With several instances, each rebuilds
    the partitions it owns: give each one's --url. Read models of other topics (order, loyalty) are
    not refolded (the answer says so): a restart refolds them."""
    base = service_url(service, url)
    params = {"partition": partition} if partition is not None else {}
    try:
        r = httpx.post(f"{base}/internal/rebuild", params=params, headers=bearer(), timeout=30)
    except httpx.HTTPError as exc:
        raise _unreachable(service, base, exc) from exc
    if r.status_code == 409:
        detail = r.json().get("detail", r.text)
        typer.echo(f"refused: {detail}", err=True)
        if partition is not None and "does not own" in detail:
            with _quiet():
                owner = asyncio.run(owner_of(Settings(), service, partition))
            hint = "; rebuild it through that instance's --url" if " holds it" in owner else ""
            typer.echo(f"partition {partition} of {service}: {owner}{hint}", err=True)
        raise typer.Exit(1)
    if r.status_code in (401, 403):
        typer.echo(f"{service} answered {r.status_code}: {r.json().get('detail')} ({TOKEN_HINT})", err=True)
        raise typer.Exit(1)
    r.raise_for_status()
    status = r.json()
    parts = status["partitions"]
    deadline = time.monotonic() + timeout
    with progress(f"{service} instance {status['instance']}: rebuilding partitions {', '.join(parts)}", len(parts)) as advance:
        while status["state"] == "running":
            if time.monotonic() > deadline:
                typer.echo(f"still rebuilding after {timeout:.0f}s: see GET {base}/internal/rebuild", err=True)
                raise typer.Exit(1)
            time.sleep(0.2)
            status = httpx.get(f"{base}/internal/rebuild", headers=bearer(), timeout=30).json()
            advance(sum(p["progress"] for p in status["partitions"].values()))
    if status["state"] != "done":
        typer.echo(f"rebuild failed: {status.get('error')}", err=True)
        raise typer.Exit(1)
    if as_json:
        emit_one(status, as_json=True)
        return
    rows = [
        {"partition": int(p), "next_offset": d["next_offset"], "aggregates": d["aggregates"], "digest": d["digest"][:16] + "…"}
        for p, d in status["partitions"].items()
    ]
    emit(rows, as_json=False, title=f"{service} instance {status['instance']}: rebuilt from the log in {status['seconds']}s")
    if status.get("not_rebuilt"):
        typer.echo(f"not rebuilt: {status['not_rebuilt']}")


class _quiet:
    """aiokafka logs its connection chatter at WARNING: not for an operator's terminal here."""

    def __enter__(self) -> None:
        import logging

        self.logger = logging.getLogger("aiokafka")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self.logger.setLevel(self.level)


# --- as-of ----------------------------------------------------------------------------------------


def _kinds() -> dict[str, tuple[str, str]]:
    """Entity kind → (service, route; `{}` is the entity's id), from each service's declared `entities`."""
    kinds: dict[str, tuple[str, str]] = {}
    for name, declared in PACKAGES.items():
        for kind, path in declared.entities.items():
            if kind in kinds:
                raise RuntimeError(f"entity kind {kind!r} declared by {kinds[kind][0]} and {name}")
            kinds[kind] = (name, path)
    return kinds


#: entity kind → (service, route); `{}` is the entity's id
KINDS: dict[str, tuple[str, str]] = _kinds()
KINDS_HELP = ", ".join(f"{k}{'/<id>' if '{}' in path else ''} ({svc})" for k, (svc, path) in KINDS.items())


def parse_time(text: str) -> int:
    """Business time in ms UTC: plain milliseconds, or ISO 8601 (a time without offset is UTC)."""
    t = text.strip()
    if re.fullmatch(r"\d+", t):
        return int(t)
    try:
        dt = datetime.datetime.fromisoformat(t)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{text!r} is neither ms nor ISO 8601 (e.g. 2026-01-01, 2026-01-01T08:00, 2026-01-01T08:00+08:00)"
        ) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    ms = (dt - datetime.datetime(1970, 1, 1, tzinfo=UTC)) // datetime.timedelta(milliseconds=1)
    if ms < 0:
        raise typer.BadParameter(f"{text!r} is before 1970")
    return ms


def _iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entity_path(service: str, entity: str) -> str:
    """The route of `kind/id` on `service`; a clear error for an unknown kind or another service's."""
    kind, _, ident = entity.partition("/")
    if kind not in KINDS:
        raise typer.BadParameter(f"unknown entity kind {kind!r}; supported: {KINDS_HELP}")
    owner, path = KINDS[kind]
    if owner != service:
        raise typer.BadParameter(f"{kind} is an entity of {owner}, not of {service}")
    if "{}" in path:
        if not ident:
            raise typer.BadParameter(f"give the {kind}'s id: {kind}/<id>")
        return path.format(urllib.parse.quote(ident, safe=""))
    if ident:
        raise typer.BadParameter(f"{kind} takes no id")
    return path


def as_of(
    service: Service,
    entity: Annotated[str, typer.Argument(help=f"what to ask: {KINDS_HELP}")],
    at: Annotated[
        str,
        typer.Argument(
            metavar="TIME",
            help="business time: ISO 8601 (2026-01-01, 2026-01-01T08:00:00+08:00, …Z; "
            "without an offset it is UTC) or ms since the epoch",
        ),
    ],
    url: Url = None,
    as_json: JsonFlag = False,
) -> None:
    """An entity as it stood at a past business time (R-X-4), e.g. `as-of loyalty member/M1 2026-01-01`.

    README "Balances as of a past business time": the service folds its event log up to that time
    — an audit query, it may take a while. A time without an offset is UTC."""
    path = entity_path(service, entity)
    ms = parse_time(at)
    base = service_url(service, url)
    try:
        with progress(f"{service}: folding the log up to {_iso(ms)}", None):
            r = httpx.get(base + path, params={"as_of": ms}, headers=bearer(), timeout=180)
    except httpx.HTTPError as exc:
        raise _unreachable(service, base, exc) from exc
    if r.status_code != 200:
        detail = r.json().get("detail", r.text) if r.headers.get("content-type", "").startswith("application/json") else r.text
        hint = f" ({TOKEN_HINT})" if r.status_code in (401, 403) else ""
        typer.echo(f"{service} answered {r.status_code}: {detail}{hint}", err=True)
        raise typer.Exit(1)
    answer = r.json()
    if not as_json:
        typer.echo(f"{service} {entity} as of {_iso(ms)} ({ms} ms)")
    if isinstance(answer, list):
        emit(answer, as_json=as_json, empty="nothing existed then")
    else:
        emit_one(answer, as_json=as_json)


TOKEN_HINT = "the token is FLEXCHAIN_TOKEN: an operator's for rebuild, any reader's for as-of (README \"Security\")"


def register(app: typer.Typer) -> None:
    app.command("lag")(lag)
    app.command("rebuild")(rebuild)
    app.command("as-of")(as_of)
