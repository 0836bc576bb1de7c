"""Runs one service instance: processor, router, read-model projection and HTTP API in one process.

`bootstrap` builds an instance from settings — `build_runtime` wires the runtime, its clients come
from `Factories` (production defaults) — and connects nothing; `run` starts the loops and the HTTP
servers, and stops them cleanly on SIGTERM/SIGINT (snapshots are saved); `serve` is both.
HTTP: `/health` (process up), `/ready` (every owned partition rebuilt and the read model caught up),
`/metrics` (Prometheus), plus the service's own routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from flexchain import kafka
from flexchain.answers import AS_OF_ERRORS, METRICS_EXAMPLE, Clock, Health, Partitions, Ready, reads
from flexchain.asof import AsOf, M, PastStates, Replayed
from flexchain.auth import install as install_auth
from flexchain.fold import UnreadableEvent
from flexchain.httplimits import TOO_LARGE, TOO_MANY_COMMANDS, TOO_MANY_REPLAYS, Gate
from flexchain.httplimits import install as install_limits
from flexchain.logs import configure
from flexchain.messages import Envelope, Enveloped, Message
from flexchain.metrics import ServiceMetrics
from flexchain.rebuilds import add_rebuild_routes
from flexchain.runtime import Processor, Router, ServiceDef, supervise
from flexchain.serde import Codec, RegistryClient
from flexchain.settings import Settings
from flexchain.snapshots import SnapshotStore
from flexchain.views import OwnView, Projection, Waiters

CLOCK_TOPIC = "clock.ticks"
EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()


class ReadModel(Protocol):
    topics: list[str]

    def fold(self, item: Enveloped) -> None: ...


@dataclass
class Runtime:
    """What an HTTP API needs: publish commands, read the read model, tell business time."""

    svc: ServiceDef[Any]
    settings: Settings
    codec: Codec
    metrics: ServiceMetrics
    view: Any
    projection: Projection
    own: OwnView
    waiters: Waiters
    producer: AIOKafkaProducer | None = None
    processor: Processor | None = None
    last_tick: int = 0
    history: AsOf | None = None  # R-X-4: as-of reads of the event topic, opened on first use
    clients: kafka.Clients = field(default_factory=kafka.Clients)  # where its Kafka clients come from
    replays: Gate = field(init=False)  # folds of the log at once: FLEXCHAIN_MAX_CONCURRENT_REPLAYS

    def __post_init__(self) -> None:
        self.replays = Gate(self.settings.flexchain_max_concurrent_replays)

    def now(self) -> int:
        """Business time for a new command: wall clock, or the last `clock.ticks` time (R-X-1)."""
        if self.settings.flexchain_clock == "log":
            return self.last_tick
        return int(time.time() * 1000)

    async def send(
        self, cmd: Message, command_id: str | None = None, correlation_id: str | None = None, wait: float = 0.0
    ) -> tuple[str, list[Enveloped] | None]:
        """Publish a command; with `wait`, return the events it caused once the read model has them."""
        assert self.producer is not None
        cid = command_id or str(uuid.uuid4())
        name = type(cmd).__name__
        env = Envelope(
            event_id=cid,
            event_type=name,
            aggregate_id=cmd.key,
            aggregate_version=0,
            business_time=self.now(),
            correlation_id=correlation_id or cmd.key or cid,
            causation_id=None,
            producer=f"{self.svc.name}-api",
        )
        value = self.codec.encode(Enveloped(envelope=env, message=cmd))
        fut = self.waiters.expect(cid) if wait > 0 else None
        await self.producer.send_and_wait(
            self.settings.name(self.svc.topics["commands"]), value, key=cmd.key.encode(), headers=[("type", name.encode())]
        )
        if fut is None:
            return cid, None
        try:
            return cid, await asyncio.wait_for(fut, wait)
        except TimeoutError:
            self.waiters.forget(cid)
            return cid, None

    def consistent(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """Hold while reading state: the processor changes state only inside a transaction, and this
        (its gate, taken alone) waits until none is open and holds new ones back, so a reader sees
        committed state, never half a batch."""
        proc = self.processor
        return proc.lock if proc is not None else contextlib.nullcontext()

    async def as_of(self, at: int) -> PastStates:
        """Every partition's state as of business time `at` (R-X-4), folded afresh from the log
        with the service's `evolve`; the live state is not touched."""
        svc = self.svc
        async with self.replays.slot():  # 429 past FLEXCHAIN_MAX_CONCURRENT_REPLAYS, not a queue
            states, replayed = await self.past().model("state", at, lambda parts: PastStates(parts, svc.new_state, svc.evolve))
        states.replayed = replayed
        return states

    async def model_as_of(self, kind: str, at: int, new_model: Callable[[list[int]], M]) -> tuple[M, Replayed]:
        """Any read model of the service's events (`fold(partition, item)`) as of business time `at`."""
        async with self.replays.slot():
            return await self.past().model(kind, at, new_model)

    def past(self) -> AsOf:
        if self.history is None:
            self.history = AsOf(self.settings, self.codec, self.own.topic, clients=self.clients)
        return self.history

    def is_ready(self) -> bool:
        """Every owned partition rebuilt, none stopped, and the read models caught up."""
        proc_ready = self.processor is None or self.processor.is_ready()
        return proc_ready and not self.own.stopped and self.own.caught_up.is_set() and self.projection.caught_up.is_set()

    def stopped(self) -> list[dict[str, Any]]:
        """Partitions stopped on an own-log event that cannot be read: where, and why."""
        found = dict(self.own.stopped)
        if self.processor is not None:
            found.update(self.processor.stopped)
        return [
            {"topic": e.topic, "partition": e.partition, "offset": e.offset, "reason": e.reason} for _, e in sorted(found.items())
        ]


class _Clock:
    """Folds `clock.ticks` into the runtime's last tick (used when FLEXCHAIN_CLOCK=log): the largest
    `time` of any `ClockTicked` read, whoever produced it — the same ticks that move the timers."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def fold(self, item: Enveloped) -> None:
        self.rt.last_tick = max(self.rt.last_tick, getattr(item.message, "time", 0))


_QUERY_NAMES: dict[str, set[str]] = {}  # route id → the query parameters it declares


def _query_names(dependant: Any) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def known_query(request: Request) -> None:
    """A query parameter the route does not declare is refused (422), as an unknown body field is:
    `?wiat=30` must not silently mean "wait 5 s"."""
    from fastapi.routing import APIRoute

    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _QUERY_NAMES.get(route.unique_id)
    if allowed is None:
        allowed = _QUERY_NAMES[route.unique_id] = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        detail = [{"loc": ["query", k], "msg": "unknown query parameter", "type": "value_error"} for k in unknown]
        raise HTTPException(status_code=422, detail=detail)


def add_probe_routes(app: FastAPI, rt: Runtime) -> None:
    """`/health` and `/ready`: open to anyone (README "Security"), on the API port and the ops port."""

    @app.get("/health", **reads(Health))
    async def health() -> dict[str, str]:
        """The process is up (it may not be ready yet)."""
        return {"status": "up"}

    @app.get("/ready", **reads(Ready, also={503: {"model": Ready, "description": "not ready yet, or stopped"}}))
    async def ready(response: Response) -> dict[str, Any]:
        """200 once every owned partition is rebuilt and the read model has caught up, else 503."""
        ok = rt.is_ready()
        response.status_code = 200 if ok else 503
        stopped = rt.stopped()
        return {"ready": ok, "stopped_partitions": stopped} if stopped else {"ready": ok}


def add_metrics_route(app: FastAPI, rt: Runtime) -> None:
    """`/metrics`: on the API port, or only on the ops port when `FLEXCHAIN_OPS_PORT` is set."""

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"example": METRICS_EXAMPLE}}, "description": "README, Metrics"}},
    )
    async def metrics() -> Response:
        """Prometheus metrics, in the text exposition format (README "Metrics" says what each means)."""
        return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def ops_app(rt: Runtime) -> FastAPI:
    """What `FLEXCHAIN_OPS_PORT` serves: the probes and the metrics, nothing else (no token needed)."""
    app = FastAPI(title="flexchain ops", docs_url=None, redoc_url=None, openapi_url=None)
    add_probe_routes(app, rt)
    add_metrics_route(app, rt)
    return app


def base_app(rt: Runtime, title: str) -> FastAPI:
    app = FastAPI(title=title, version="0.1.0", dependencies=[Depends(known_query)])

    @app.exception_handler(UnreadableEvent)
    async def stopped_partition(request: Request, exc: UnreadableEvent) -> JSONResponse:
        """A question about a partition stopped on an event it cannot read: 503, naming it."""
        return JSONResponse({"detail": f"this part of the service is stopped: the event log cannot be read at {exc}"}, 503)

    add_probe_routes(app, rt)

    @app.get("/internal/partitions", **reads(Partitions))
    async def partitions() -> dict[str, Any]:
        """Owned partitions with a digest of their state: equal digests = equal states."""
        proc = rt.processor
        async with rt.consistent():
            digests = {str(p): d for p, d in proc.digests().items()} if proc is not None else {}
        return {"instance": rt.settings.flexchain_instance_id, "ready": rt.is_ready(), "partitions": digests}

    add_rebuild_routes(app, rt)  # POST/GET /internal/rebuild: `flexchain rebuild`

    if rt.settings.flexchain_ops_port is None:  # else served on its own port (`ops_app`)
        add_metrics_route(app, rt)
    return app


def document_as_of(app: FastAPI) -> None:
    """Every read route with `?as_of=` documents the answers of a fold of the log: 503, 504 (and 429,
    `document_limits`)."""
    from fastapi.routing import APIRoute

    for route in app.routes:
        if isinstance(route, APIRoute) and any(p.alias == "as_of" for p in route.dependant.query_params):
            route.responses = {**AS_OF_ERRORS, **route.responses}


def document_limits(app: FastAPI) -> None:
    """Every route that changes something documents 429 (its client's command budget), every route
    with a body 413, and every as-of route 429 (the bound of folds), in the refusal shape (README "Limits")."""
    from fastapi.routing import APIRoute
    from fastapi.utils import create_model_field

    from flexchain.api import Refusal
    from flexchain.httplimits import COMMAND_METHODS

    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        added: dict[int | str, dict[str, Any]] = {}
        if set(route.methods or ()) & COMMAND_METHODS and 429 not in route.responses:
            added.update(TOO_MANY_COMMANDS)
        if route.body_field is not None:
            added.update(TOO_LARGE)
        if any(p.alias == "as_of" for p in route.dependant.query_params):
            added.update(TOO_MANY_REPLAYS)
        for status in {*added, *(s for s in route.responses if s == 429)}:
            response = {**route.responses.get(status, {}), **added.get(status, {}), "model": Refusal}
            route.responses = {**route.responses, status: response}
            name = f"Response_{status}_{route.unique_id}"  # what FastAPI derives from `responses=`
            route.response_fields[status] = create_model_field(name=name, type_=Refusal, mode="serialization")


def document_commands(app: FastAPI) -> None:
    """Every command route (a handler answering a `JSONResponse` through `submit`) documents the one
    answer shape of commands in the OpenAPI document: 200/202 `CommandAnswer`, 409/422 `Refusal`."""
    from fastapi.routing import APIRoute
    from fastapi.utils import create_model_field

    from flexchain.api import COMMAND_RESPONSES

    for route in app.routes:
        if isinstance(route, APIRoute) and route.endpoint.__annotations__.get("return") in ("JSONResponse", JSONResponse):
            route.responses = {**COMMAND_RESPONSES, **route.responses}
            for status, response in COMMAND_RESPONSES.items():  # what FastAPI derives from `responses=`
                name = f"Response_{status}_{route.unique_id}"
                route.response_fields[status] = create_model_field(name=name, type_=response["model"], mode="serialization")


def _default_clock(app: FastAPI, rt: Runtime) -> None:
    """`GET /clock` on every service (unless it has its own): the business time this instance stamps
    on the commands it publishes — with `FLEXCHAIN_CLOCK=log`, the last `clock.ticks` time it read."""
    if any(getattr(route, "path", None) == "/clock" for route in app.routes):
        return

    @app.get("/clock", **reads(Clock))
    async def clock() -> dict[str, Any]:
        """The business time this instance stamps on the commands it publishes."""
        return clock_view(rt)


def clock_view(rt: Runtime, day_of: Callable[[int], int] | None = None) -> dict[str, Any]:
    """`GET /clock`'s answer; `day_of` gives the service's business day if it is not the UTC one."""
    now = rt.now()
    day = now // 86_400_000 if day_of is None else day_of(now)
    date = datetime.date.fromordinal(EPOCH_ORDINAL + day).isoformat()
    return {"business_time": now, "day": day, "date": date, "source": rt.settings.flexchain_clock}


def bootstrap_codec(settings: Settings, messages: list[type[Message]]) -> Codec:
    return Codec(messages, RegistryClient.from_settings(settings))


def _snapshot_store(settings: Settings, service: str) -> SnapshotStore:
    return SnapshotStore(settings.snapshot_url(service), key=settings.snapshot_key())


def _api_server(app: FastAPI, settings: Settings, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=settings.flexchain_http_host,
        port=port,
        log_level="warning",
        lifespan="off",
        http="h11",  # (the header limit below is h11's)
        proxy_headers=False,  # the app trusts only FLEXCHAIN_HTTP_TRUSTED_PROXIES (httplimits.install)
        limit_concurrency=settings.flexchain_http_max_connections,
        h11_max_incomplete_event_size=settings.flexchain_http_max_header_bytes,
        timeout_keep_alive=settings.flexchain_http_keepalive_s,
    )
    return uvicorn.Server(config)


def _ops_server(app: FastAPI, settings: Settings, port: int) -> uvicorn.Server:
    host = settings.flexchain_ops_host or settings.flexchain_http_host
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))


@dataclass(frozen=True)
class Factories:
    """Where an instance's clients come from: Kafka (producer, consumers, admin), the snapshot store
    and the HTTP servers. The defaults are the production ones; a test or a tool passes its own."""

    kafka_clients: kafka.Clients = field(default_factory=kafka.Clients)
    snapshot_store: Callable[[Settings, str], SnapshotStore] = _snapshot_store
    api_server: Callable[[FastAPI, Settings, int], uvicorn.Server] = _api_server
    ops_server: Callable[[FastAPI, Settings, int], uvicorn.Server] = _ops_server


@dataclass
class Instance:
    """One service instance, built by `bootstrap` and not started: `run` runs it."""

    rt: Runtime
    app: FastAPI
    servers: list[uvicorn.Server]
    store: SnapshotStore
    topics: list[str]  # every topic it reads or writes (prefixed)
    port: int
    factories: Factories
    background: Callable[[Runtime, asyncio.Event], Awaitable[None]] | None = None
    log: Any = None
    # outlives a processor: a command whose events failed to fold is parked, not met again, after a restart
    poison: dict[tuple[str, int, int], str] = field(default_factory=dict)

    def processor(self, cluster_id: str) -> Processor:
        rt = self.rt
        proc = Processor(
            rt.svc, rt.settings, rt.codec, rt.metrics, self.store, cluster_id, self.poison, clients=self.factories.kafka_clients
        )
        proc.view, proc.waiters = rt.own, rt.waiters
        return proc

    def router(self) -> Router:
        rt = self.rt
        return Router(rt.svc, rt.settings, rt.codec, rt.metrics, clients=self.factories.kafka_clients)


def bootstrap(
    svc: ServiceDef[Any],
    view: ReadModel,
    build_api: Callable[[Runtime], FastAPI],
    settings: Settings | None = None,
    default_port: int = 8080,
    background: Callable[[Runtime, asyncio.Event], Awaitable[None]] | None = None,
    factories: Factories | None = None,
) -> Instance:
    """Build an instance of `svc` from `settings` (or the environment): its runtime, HTTP app and
    servers, snapshot store — wired, nothing connected or started (`run` does that)."""
    settings = settings or Settings()
    factories = factories or Factories()
    log = configure(settings.flexchain_log_level, svc.name, settings.flexchain_instance_id)
    rt = build_runtime(svc, view, settings, factories.kafka_clients)
    port = settings.flexchain_http_port or default_port
    app = build_app(rt, build_api)
    servers = [factories.api_server(app, settings, port)]
    if settings.flexchain_ops_port is not None:  # the probes and /metrics on a port of their own
        servers.append(factories.ops_server(ops_app(rt), settings, settings.flexchain_ops_port))
    for server in servers:
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # signals are ours
    return Instance(
        rt=rt,
        app=app,
        servers=servers,
        store=factories.snapshot_store(settings, svc.name),
        topics=[settings.name(t) for t in service_topics(svc, view)],
        port=port,
        factories=factories,
        background=background,
        log=log,
    )


def _exit_now(status: int) -> None:
    """End the process at once: after a shutdown that timed out, asyncio.run's own clean-up would wait
    for the same stuck clients."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


async def run(inst: Instance, stopping: asyncio.Event | None = None) -> None:
    """Run a built instance until `stopping` is set, or SIGTERM/SIGINT: topics ensured, clients
    started, the processor, router, read models and HTTP servers supervised; then everything stopped
    cleanly (snapshots are saved). A loop that gives up for good ends the process with status 1."""
    rt, settings, metrics, factories = inst.rt, inst.rt.settings, inst.rt.metrics, inst.factories
    projection, own, log = rt.projection, rt.own, inst.log or structlog.get_logger()
    cluster_id = await factories.kafka_clients.ensure_topics(settings, inst.topics)
    stopping = stopping or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    rt.producer = factories.kafka_clients.producer(settings)
    await rt.producer.start()
    await projection.start()
    await own.start()

    async def run_processor() -> None:
        proc = inst.processor(cluster_id)
        rt.processor = own.processor = proc
        await proc.start()
        try:
            await proc.run(stopping)
        finally:
            await proc.stop()

    async def run_router() -> None:
        router = inst.router()
        await router.start()
        try:
            await router.run(stopping)
        finally:
            await router.stop()

    background = inst.background
    tasks = [
        asyncio.create_task(supervise("processor", run_processor, stopping, metrics), name="processor"),
        asyncio.create_task(supervise("projection", lambda: projection.run(stopping), stopping, metrics), name="projection"),
        asyncio.create_task(supervise("own-view", lambda: own.run(stopping), stopping, metrics), name="own-view"),
        *(asyncio.create_task(server.serve(), name=f"http-{i}") for i, server in enumerate(inst.servers)),
    ]
    if rt.svc.routes:
        tasks.append(asyncio.create_task(supervise("router", run_router, stopping, metrics), name="router"))
    if background is not None:  # a service's own periodic job (e.g. order's gift-rule reviews)
        tasks.append(asyncio.create_task(supervise("background", lambda: background(rt, stopping), stopping), name="background"))
    log.info("service started", port=inst.port, ops_port=settings.flexchain_ops_port, topics=inst.topics, cluster_id=cluster_id)
    stop_wait = asyncio.create_task(stopping.wait())
    done, _ = await asyncio.wait([*tasks, stop_wait], return_when=asyncio.FIRST_COMPLETED)
    failed = [t for t in done if t is not stop_wait and t.exception() is not None]
    stopping.set()
    for server in inst.servers:
        server.should_exit = True
    stage, producer = ["the loops"], rt.producer

    async def shut_down() -> None:
        await asyncio.gather(*tasks, return_exceptions=True)
        stage[0] = "the read models"
        await projection.stop()
        await own.stop()
        if rt.history is not None:
            await rt.history.close()
        stage[0] = "the producer"
        await producer.stop()

    # not wait_for: on its timeout it cancels and then waits for the cancellation, which a client
    # stuck on a dead broker may never finish
    closing = asyncio.create_task(shut_down(), name="shutdown")
    done, _ = await asyncio.wait({closing}, timeout=settings.flexchain_shutdown_timeout_s)
    if not done:
        # e.g. the broker is gone: a transaction can neither commit nor abort, the producer cannot
        # flush. Waiting longer changes nothing, and the orchestrator would kill us anyway; what was
        # not committed is applied by the partitions' next owner (exactly once).
        log.error(
            "shutdown timed out",
            timeout_s=settings.flexchain_shutdown_timeout_s,
            stopping=stage[0],
            running=sorted(t.get_name() for t in tasks if not t.done()),
        )
        inst.store.close()
        _exit_now(1)
    inst.store.close()
    log.info("service stopped")
    if failed:
        exc = failed[0].exception()
        structlog.get_logger().error("service failed", error=repr(exc))
        raise SystemExit(1)


async def serve(
    svc: ServiceDef[Any],
    view: ReadModel,
    build_api: Callable[[Runtime], FastAPI],
    settings: Settings | None = None,
    default_port: int = 8080,
    background: Callable[[Runtime, asyncio.Event], Awaitable[None]] | None = None,
) -> None:
    """An instance of `svc`, built (`bootstrap`) and run until SIGTERM/SIGINT (`run`): a service's `main`."""
    await run(bootstrap(svc, view, build_api, settings, default_port, background))


def service_topics(svc: ServiceDef[Any], view: ReadModel) -> list[str]:
    """Every topic (unprefixed) an instance of `svc` with read model `view` reads or writes."""
    foreign_topics = [t for t in view.topics if not t.startswith(svc.name + ".")]
    return list(dict.fromkeys([*svc.topics.values(), *(r.topic for r in svc.routes), *foreign_topics, CLOCK_TOPIC]))


def build_runtime(svc: ServiceDef[Any], view: ReadModel, settings: Settings, clients: kafka.Clients | None = None) -> Runtime:
    """Everything an instance is made of, wired and not started: nothing connects until `serve`
    starts it (so the HTTP API and its OpenAPI document can be built without a broker). The read
    models (`Projection`, `OwnView`) and the as-of reads take their consumers from `clients`."""
    clients = clients or kafka.Clients()
    from flexchain.ticks import MESSAGES as CLOCK_MESSAGES
    from flexchain.ticks import ClockTicked

    codec = bootstrap_codec(settings, [*svc.all_messages(), *CLOCK_MESSAGES, *_view_messages(view)])
    metrics = ServiceMetrics(svc.name, types=codec.type_names())
    view_topics = [settings.name(t) for t in [*view.topics, CLOCK_TOPIC]]
    types = getattr(view, "types", None)
    waiters = Waiters()
    projection = Projection(
        settings,
        codec,
        view_topics,
        lambda item: None,
        f"{svc.name}-view",
        waiters,
        types={*types, "ClockTicked"} if types is not None else None,
        metrics=metrics,
        clients=clients,
    )
    own = OwnView(svc, settings, codec, waiters, metrics, clients)
    rt = Runtime(svc, settings, codec, metrics, view, projection, own, waiters, clients=clients)
    clock = _Clock(rt)

    def fold(item: Enveloped) -> None:
        # one rule for timers and `/clock`: any ClockTicked on clock.ticks, whoever produced it
        if isinstance(item.message, ClockTicked):
            clock.fold(item)
        else:
            view.fold(item)

    projection.fold = fold
    return rt


def build_app(rt: Runtime, build_api: Callable[[Runtime], FastAPI]) -> FastAPI:
    """The service's HTTP API on `rt`, with the routes every service has and their documentation."""
    app = build_api(rt)
    _default_clock(app, rt)
    document_commands(app)
    document_as_of(app)
    document_limits(app)
    install_limits(app, rt.settings, guard=lambda: install_auth(app, rt.settings, rt.metrics.http_refused))
    return app


def _view_messages(view: ReadModel) -> list[type[Message]]:
    return list(getattr(view, "messages", []))
