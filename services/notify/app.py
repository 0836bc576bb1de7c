"""The notify service on faust-streaming: read derived events, deliver them, park what cannot be.

At-least-once, and nothing lost: the agent iterates with manual acks (``stream.noack()``) and acks
an event only once every webhook it goes to answered 2xx or the event is parked in ``notify.dlq``
(the send awaited). faust commits only acked offsets, every ``FLEXCHAIN_NOTIFY_COMMIT_INTERVAL_S``,
so a kill -9 re-delivers at most the events since the last commit — with the same body, signature
and ``Idempotency-Key`` — and a stop (SIGTERM) mid-delivery leaves that event unacked for the next
start. One agent, concurrency 1: events reach a webhook in log order per partition; a webhook that
is down holds the stream for at most its retries (``max_attempts`` with exponential backoff).

faust reads ``read_uncommitted`` unless it runs its own ``exactly_once`` transactions; ours are the
core services' transactions, so the consumer is switched to ``read_committed`` here
(:class:`_ReadCommittedTransport`): records of an aborted or open transaction never notify anyone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from flexchain import kafka
from flexchain.access import Access
from flexchain.catalog import SERVICES
from flexchain.logs import configure
from flexchain.settings import Settings
from flexchain.subscribe import (
    Event,
    EventDecoder,
    LocalSchemas,
    RegistrySchemas,
    SchemaSource,
    Undecodable,
    faust_app,
    faust_codec,
)
from services.notify import PACKAGE, delivery
from services.notify.catalog import NOTIFIABLE, current_name
from services.notify.config import ConfigError, NotifyConfig, NotifySettings, Webhook, load

SERVICE = PACKAGE.name  # its principal, consumer group and log name
HTTP_PORT = PACKAGE.http_port
DLQ = PACKAGE.topics()["dlq"]
REDRIVE = PACKAGE.topics()["redrive"]  # dead letters sent back by `flexchain dlq redrive notify`
# dead-letter headers: the names of the core services' DLQs (flexchain.step.dlq_headers)
H_REASON = "flexchain.dlq.reason"
H_TOPIC = "flexchain.source.topic"
H_PARTITION = "flexchain.source.partition"
H_OFFSET = "flexchain.source.offset"
H_REDRIVES = "flexchain.redrive.count"
H_WEBHOOK = "flexchain.target.webhook"  # the one webhook that failed; `flexchain dlq redrive` keeps it: to it alone
# where a record redriven by `flexchain dlq redrive` was first read (it arrives on notify.redrive)
H_FIRST = ("flexchain.redrive.topic", "flexchain.redrive.partition", "flexchain.redrive.offset")
UNREADABLE = "unreadable"
TYPES = (*NOTIFIABLE, UNREADABLE)  # the closed label set of every per-type metric


def source_topics(settings: Settings) -> list[str]:
    return [settings.name(f"{svc}.events") for svc in SERVICES]


def access(prefix: str = "") -> Access:
    """What the notifier does on Kafka (its ACLs follow, flexchain.security): reads every service's
    events and `notify.redrive`, parks in `notify.dlq` (no transactions: at-least-once by design),
    commits its group `notify`; creates its two topics."""
    sources = source_topics(Settings(flexchain_topic_prefix=prefix))
    return Access(
        SERVICE,
        reads=(*sources, prefix + REDRIVE),
        writes=(prefix + DLQ,),
        creates=(prefix + DLQ, prefix + REDRIVE),
        groups=(prefix + SERVICE,),
    )


# --- metrics ------------------------------------------------------------------------------------------


class NotifyMetrics:
    """``flexchain_notify_*``; the ``type`` label is one of TYPES, never a value read from a record."""

    def __init__(self, webhooks: Sequence[Webhook]) -> None:
        self.registry = r = CollectorRegistry()
        p = "flexchain_notify_"
        self.delivered = Counter(p + "delivered", "Deliveries answered 2xx", ["type"], registry=r)
        self.failed = Counter(
            p + "failed", "Delivery attempts that failed (5xx, 4xx, timeout, no connection)", ["type"], registry=r
        )
        self.retried = Counter(p + "retried", "Delivery attempts made again after a failure", ["type"], registry=r)
        self.dead_lettered = Counter(p + "dead_lettered", "Events parked in notify.dlq", ["type"], registry=r)
        self.latency = Histogram(
            p + "delivery_latency_seconds",
            "The event's append to the log → its webhook answered 2xx",
            ["type"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.messages_in = Counter(p + "messages_in", "Records read from the event topics", ["topic", "type"], registry=r)
        self.ready = Gauge(p + "ready", "1 while the consumer has its partitions and the agent runs", registry=r)
        self.webhooks = Gauge(p + "webhooks", "Webhooks configured", registry=r)
        self.webhooks.set(len(webhooks))
        for t in TYPES:
            for c in (self.delivered, self.failed, self.retried, self.dead_lettered):
                c.labels(t)

    def label(self, event_type: str) -> str:
        return event_type if event_type in NOTIFIABLE else UNREADABLE


# --- the step: one record in, deliveries and dead letters out -----------------------------------------

Park = Callable[[str, bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Record:
    """What the step needs of a Kafka record."""

    topic: str
    partition: int
    offset: int
    timestamp: float  # append time, seconds
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def _headers(raw: Any) -> dict[str, bytes]:
    if not raw:
        return {}
    items: Iterable[tuple[str, Any]] = raw.items() if hasattr(raw, "items") else raw
    return {str(k): bytes(v) if v is not None else b"" for k, v in items}


class Notifier:
    """Delivers one record's event to the webhooks that want it, or parks it; never raises for a
    webhook's or a record's sake. The faust agent is a loop around :meth:`handle`."""

    def __init__(
        self,
        config: NotifyConfig,
        keys: dict[str, bytes],
        client: httpx.AsyncClient,
        backoff: delivery.Backoff,
        metrics: NotifyMetrics,
        park: Park,
        dlq_topic: str,
        redrive_topic: str,
        decoder: EventDecoder,
        log: Any,
    ) -> None:
        self.config, self.keys, self.client, self.backoff = config, keys, client, backoff
        self.metrics, self.park, self.dlq_topic, self.redrive_topic = metrics, park, dlq_topic, redrive_topic
        self.decoder, self.log = decoder, log

    async def handle(self, rec: Record, value: Event | Undecodable) -> None:
        value = await self._readable(rec, value)
        if isinstance(value, Event) and current_name(value.type) != value.type:  # written under a former name
            value = dataclasses.replace(value, type=current_name(value.type))
        redriven = rec.topic == self.redrive_topic
        label = self.metrics.label(value.type) if isinstance(value, Event) else UNREADABLE
        self.metrics.messages_in.labels(rec.topic if not redriven else self.redrive_topic, label).inc()
        if isinstance(value, Undecodable):
            await self._park(rec, UNREADABLE, f"undecodable: {value.reason}", None)
            return
        if value.type not in NOTIFIABLE:
            return
        targets = self.config.targets(value.type)
        only = rec.headers.get(H_WEBHOOK) if redriven else None
        if only is not None:
            targets = [w for w in targets if w.name == only.decode()]
        if not targets:
            return
        payload = delivery.body(value)
        await asyncio.gather(*(self._deliver(rec, value, hook, payload) for hook in targets))

    async def _readable(self, rec: Record, value: Event | Undecodable) -> Event | Undecodable:
        """A value the registry could not be asked about is read again (with backoff) — never parked."""
        wait = self.backoff.initial_s
        while isinstance(value, Undecodable) and value.transient:
            self.log.warning("schema registry unavailable, retrying", topic=rec.topic, offset=rec.offset, reason=value.reason)
            await asyncio.sleep(wait)
            wait = min(wait * 2, self.backoff.max_s)
            value = self.decoder.read(rec.value)
        return value

    async def _deliver(self, rec: Record, event: Event, hook: Webhook, payload: bytes) -> None:
        t = event.type
        outcome = await delivery.deliver(
            self.client,
            str(hook.url),
            payload,
            delivery.headers(event, self.keys[hook.name], payload),
            self.backoff,
            hook.timeout_s,
            on_failure=lambda reason: self.metrics.failed.labels(t).inc(),
            on_retry=lambda: self.metrics.retried.labels(t).inc(),
        )
        log = self.log.bind(correlation_id=event.correlation_id, event_id=event.id, type=t, webhook=hook.name)
        if outcome.delivered:
            self.metrics.delivered.labels(t).inc()
            self.metrics.latency.labels(t).observe(max(0.0, time.time() - rec.timestamp))
            log.info("delivered", attempts=outcome.attempts)
            return
        log.warning("not delivered: parked in notify.dlq", attempts=outcome.attempts, reason=outcome.reason)
        await self._park(rec, t, outcome.reason, hook.name)

    async def _park(self, rec: Record, label: str, reason: str, webhook: str | None) -> None:
        """The record as it was read, with the DLQ headers of the core services; a redriven record keeps
        its original source and its redrive count."""
        h = rec.headers
        first: tuple[bytes, bytes, bytes] = (rec.topic.encode(), str(rec.partition).encode(), str(rec.offset).encode())
        if rec.topic == self.redrive_topic:
            for names in (H_FIRST, (H_TOPIC, H_PARTITION, H_OFFSET)):
                if names[0] in h:
                    first = (h[names[0]], h.get(names[1], b""), h.get(names[2], b""))
                    break
        headers = [
            (H_REASON, reason.encode("utf-8")[:2000]),
            (H_TOPIC, first[0]),
            (H_PARTITION, first[1]),
            (H_OFFSET, first[2]),
        ]
        if "type" in h:
            headers.append(("type", h["type"]))
        if webhook is not None:
            headers.append((H_WEBHOOK, webhook.encode()))
        if H_REDRIVES in h:
            headers.append((H_REDRIVES, h[H_REDRIVES]))
        await self.park(self.dlq_topic, rec.key, rec.value, headers)
        self.metrics.dead_lettered.labels(label).inc()


async def until_handled(step: Notifier, rec: Record, value: Event | Undecodable, backoff: delivery.Backoff) -> None:
    """The same record again, with backoff, until it is delivered or parked: a step that raised (the
    dead-letter topic not writable, the broker gone) must not let the agent move on to the next record —
    faust would restart the agent past it, and commits would stall behind it."""
    wait = backoff.initial_s
    while True:
        try:
            await step.handle(rec, value)
            return
        except Exception as exc:
            step.log.error("step failed, trying the record again", topic=rec.topic, offset=rec.offset, error=repr(exc))
            await asyncio.sleep(wait)
            wait = min(wait * 2, backoff.max_s)


# --- faust -------------------------------------------------------------------------------------------


def _credentials(s: Settings) -> Any:
    import ssl

    import faust

    if not s.kafka_security_protocol.startswith("SASL"):
        if s.kafka_security_protocol == "SSL":
            return faust.SSLCredentials(ssl.create_default_context(cafile=s.kafka_ssl_cafile))
        return None
    context = ssl.create_default_context(cafile=s.kafka_ssl_cafile) if s.kafka_security_protocol == "SASL_SSL" else None
    return faust.SASLCredentials(
        username=s.kafka_sasl_username, password=s.kafka_sasl_password, mechanism=s.kafka_sasl_mechanism, ssl_context=context
    )


def decoder_for(settings: Settings) -> EventDecoder:
    from flexchain.schemas import SCHEMAS_DIR

    sources: list[SchemaSource] = []
    if settings.schema_registry_url:
        sources.append(RegistrySchemas.from_settings(settings))  # its credentials and TLS too
    sources.append(LocalSchemas(Path(SCHEMAS_DIR)))
    return EventDecoder(sources)


def build_app(settings: Settings, notify: NotifySettings, config: NotifyConfig, keys: dict[str, bytes], log: Any) -> Any:
    """The faust app, built, not started (``faust.Worker(app).execute_from_commandline()`` runs it)."""
    port = settings.flexchain_http_port or HTTP_PORT
    datadir = settings.flexchain_data_dir / SERVICE  # faust wants one, though notify keeps no tables
    datadir.mkdir(parents=True, exist_ok=True)
    static = settings.flexchain_static_membership
    app = faust_app(  # its consumers read committed data (flexchain.subscribe)
        settings.name(SERVICE),  # the consumer group
        broker=";".join(f"kafka://{b.strip()}" for b in settings.kafka_bootstrap_servers.split(",")),
        broker_credentials=_credentials(settings),
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=f"{SERVICE}-{settings.flexchain_instance_id}" if static else None,
        broker_commit_interval=notify.commit_interval_s,
        broker_session_timeout=settings.flexchain_session_timeout_ms / 1000,
        broker_heartbeat_interval=1.0,
        producer_acks=-1,
        topic_disable_leader=True,  # no tables: faust's leader topic is not needed
        # no tables, no standbys: aiokafka's round-robin assignor instead of faust's, whose metadata
        # holds the web URL and refuses a static member that rejoins on another port
        table_standby_replicas=0,
        topic_allow_declare=False,  # the topics are flexchain's (created below, like every service's)
        datadir=str(datadir),
        web_enabled=True,
        # only the probes and /metrics: faust's own pages (key routing, tables, stats) are not served
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_bind=settings.flexchain_http_host,
        web_host=settings.flexchain_http_host,
        web_port=port,
        autodiscover=False,
    )
    metrics = NotifyMetrics(config.webhooks)
    decoder = decoder_for(settings)
    codec = faust_codec(decoder, errors="keep")
    dlq, redrive = settings.name(DLQ), settings.name(REDRIVE)
    topic = app.topic(*source_topics(settings), redrive, key_type=bytes, key_serializer="raw", value_serializer=codec)
    state: dict[str, Any] = {"assigned": False}

    async def park(topic_name: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        await app.producer.send_and_wait(topic_name, key, value, None, None, headers)

    @app.on_partitions_assigned.connect
    async def on_assigned(app_: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        state["assigned"] = True
        metrics.ready.set(1)

    @app.agent(topic, concurrency=1)
    async def notify_agent(stream: Any) -> None:
        client = httpx.AsyncClient(follow_redirects=False)
        backoff = delivery.Backoff(notify.max_attempts, notify.backoff_initial_s, notify.backoff_max_s)
        step = Notifier(config, keys, client, backoff, metrics, park, dlq, redrive, decoder, log)
        manual = stream.noack()
        try:
            async for event in manual.events():
                m = event.message
                rec = Record(m.topic, m.partition, m.offset, m.timestamp, m.key, m.value, _headers(m.headers))
                await until_handled(step, rec, event.value, backoff)
                await manual.ack(event)  # delivered or parked: only now may faust commit past it
        finally:
            metrics.ready.set(0)
            await client.aclose()

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")
    async def health_page(web: Any, request: Any) -> Any:
        return web.json({"status": "up"})

    @app.page("/ready")
    async def ready_page(web: Any, request: Any) -> Any:
        ok = bool(state["assigned"]) and not app.rebalancing
        return web.json({"ready": ok, "webhooks": [w.name for w in config.webhooks]}, status=200 if ok else 503)

    return app


def main() -> None:
    """``flexchain serve notify``: validate the webhooks (exit 2 with the reasons), create the topics,
    run the faust worker until SIGTERM/SIGINT."""
    settings = Settings()
    log = configure(settings.flexchain_log_level, SERVICE, settings.flexchain_instance_id)
    try:
        notify = NotifySettings()
        config = load(notify)
        keys = {w.name: w.key() for w in config.webhooks}
    except (ConfigError, ValueError) as exc:
        print(f"notify: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    topics = [*source_topics(settings), settings.name(DLQ), settings.name(REDRIVE)]
    asyncio.run(kafka.ensure_topics(settings, topics))
    app = build_app(settings, notify, config, keys, log)
    log.info("notify starting", webhooks=[w.name for w in config.webhooks], port=app.conf.web_port)
    import faust

    worker = faust.Worker(app, loglevel=settings.flexchain_log_level.lower(), redirect_stdouts=False)
    worker.execute_from_commandline()
