"""Read flexchain's topics from your own Python system: the wire format decoded into plain events.

Every flexchain record value is Avro in the Confluent wire format — byte 0, a 4-byte big-endian
schema id, the Avro body — and every record is ``{envelope, ...payload}``. This module turns such a
value into an :class:`Event` (type, id, business time, the payload as a dict), finding the writer's
schema by its id in a Confluent-compatible schema registry (``GET /schemas/ids/{id}``) and/or in a
copy of the repository's ``schemas/`` directory (every released version is kept under
``schemas/history/``, so records written years ago still decode). It needs only fastavro (and httpx
for a registry); nothing of the flexchain kernel, no message classes: a subscriber reads what was
written, field for field.

    from flexchain.subscribe import EventDecoder

    decode = EventDecoder.from_env()          # SCHEMA_REGISTRY_URL, else FLEXCHAIN_SCHEMAS_DIR / ./schemas
    event = decode(record.value)              # raises DecodeError if the value is not ours
    if event.type == "LowStockAlertRaised":
        print(event.id, event.time, event.body["sku"], event.body["available"])

With faust-streaming (``pip install faust-streaming``)::

    from flexchain.subscribe import EventDecoder, faust_app, faust_codec

    app = faust_app("my-shop", broker="kafka://localhost:9092")   # a faust.App that reads committed data
    codec = faust_codec(EventDecoder.from_env())
    topic = app.topic("inventory.events", key_type=str, value_serializer=codec)

    @app.agent(topic)
    async def alerts(stream):
        async for event in stream:            # an Event
            ...

Read with ``isolation.level=read_committed`` (flexchain writes in Kafka transactions; faust sets it
only under its own exactly-once mode: build the app with :func:`faust_app`, whose consumers read
committed data) and drop duplicates by
``event.id``: a derived event's id is fixed by its cause, so the same alert always has the same id.
"""

from __future__ import annotations

import io
import json
import os
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fastavro import parse_schema, schemaless_reader
from fastavro.schema import to_parsing_canonical_form

if TYPE_CHECKING:
    import faust

    from flexchain.settings import RegistrySettings

MAGIC = 0
_HEADER = struct.Struct(">bI")
ENVELOPE = "flexchain.common.Envelope"


class DecodeError(ValueError):
    """A record value that is not a flexchain event: ``reason`` says why (the wire format, an unknown
    schema id, a body that does not match its schema). ``transient`` is set when the schema registry
    did not answer: the same value may decode on a later try."""

    def __init__(self, reason: str, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


@dataclass(frozen=True, slots=True)
class Event:
    """One decoded record.

    ``type`` the event type (``LowStockAlertRaised``), ``id`` its event id (unique, stable across
    redeliveries: dedup by it), ``time`` its business time in ms since the epoch (UTC), ``body`` the
    payload fields as written (money in integer cents, rates as decimal strings), ``envelope`` the
    whole envelope (aggregate id and version, correlation id — the order id through a flow —,
    causation id, producer), ``schema`` the writer schema's full name
    (``flexchain.inventory.LowStockAlertRaised``) and ``schema_id`` its id."""

    type: str
    id: str
    time: int
    body: dict[str, Any]
    envelope: dict[str, Any]
    schema: str
    schema_id: int

    @property
    def service(self) -> str:
        """The service that wrote it (``inventory``), from the schema's namespace."""
        parts = self.schema.split(".")
        return parts[1] if len(parts) > 2 else ""

    @property
    def aggregate_id(self) -> str:
        return str(self.envelope.get("aggregate_id", ""))

    @property
    def correlation_id(self) -> str:
        return str(self.envelope.get("correlation_id", ""))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{type, id, time, service, envelope, body}``."""
        return {
            "type": self.type,
            "id": self.id,
            "time": self.time,
            "service": self.service,
            "envelope": self.envelope,
            "body": self.body,
        }


# --- where writer schemas come from ------------------------------------------------------------------


class SchemaSource(Protocol):
    """Finds the writer schema of an id: a self-contained Avro record schema, or None if unknown."""

    def schema(self, schema_id: int) -> dict[str, Any] | None: ...


def local_id(schema: dict[str, Any]) -> int:
    """The id flexchain gives a self-contained schema without a registry: CRC-32 (31 bits, never 0) of
    its Avro parsing canonical form."""
    canonical = to_parsing_canonical_form(parse_schema(schema, expand=True))
    return (zlib.crc32(canonical.encode("utf-8")) & 0x7FFFFFFF) or 1


def _inline_envelope(schema: dict[str, Any], envelope: dict[str, Any]) -> dict[str, Any]:
    fields = [{**f, "type": envelope} if f.get("type") == ENVELOPE else f for f in schema.get("fields", [])]
    return {**schema, "fields": fields}


class LocalSchemas:
    """The schemas of a ``schemas/`` directory: every released version under ``history/`` and the
    current ``<service>/<Type>.avsc`` (the envelope inlined), indexed by their local ids."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise FileNotFoundError(f"no schemas directory at {root}")
        self.root = root
        self._index: dict[int, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _build(self) -> dict[int, dict[str, Any]]:
        index: dict[int, dict[str, Any]] = {}
        for path in sorted((self.root / "history").glob("*/*.avsc")):
            schema = json.loads(path.read_text(encoding="utf-8"))
            index[local_id(schema)] = schema
        envelope_path = self.root / "common" / "Envelope.avsc"
        if envelope_path.is_file():
            envelope = json.loads(envelope_path.read_text(encoding="utf-8"))
            for path in sorted(self.root.glob("*/*.avsc")):
                if path.parent.name in ("common", "history"):
                    continue
                schema = _inline_envelope(json.loads(path.read_text(encoding="utf-8")), envelope)
                index.setdefault(local_id(schema), schema)
        return index

    def schema(self, schema_id: int) -> dict[str, Any] | None:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = self._build()
        return self._index.get(schema_id)


class RegistrySchemas:
    """A Confluent-compatible schema registry (``GET /schemas/ids/{id}``); answers are cached. With
    credentials or TLS, build it with :meth:`from_settings` (or :meth:`EventDecoder.from_env`)."""

    def __init__(self, url: str, auth: tuple[str, str] | None = None, timeout: float = 10.0, http: Any = None) -> None:
        import httpx

        self._http = http if http is not None else httpx.Client(base_url=url.rstrip("/"), auth=auth, timeout=timeout)
        self._user = auth[0] if auth else None
        self._cache: dict[int, dict[str, Any]] = {}

    @classmethod
    def from_settings(cls, settings: RegistrySettings, timeout: float = 10.0) -> RegistrySchemas:
        """SCHEMA_REGISTRY_URL with SCHEMA_REGISTRY_USER/PASSWORD and SCHEMA_REGISTRY_CA/CERT/KEY
        (``flexchain.registry``)."""
        from flexchain import registry

        if not settings.schema_registry_url:
            raise ValueError("SCHEMA_REGISTRY_URL is not set")
        source = cls(settings.schema_registry_url, http=registry.http_client(settings, timeout))
        source._user = settings.schema_registry_user
        return source

    def schema(self, schema_id: int) -> dict[str, Any] | None:
        import httpx

        from flexchain import registry

        if schema_id in self._cache:
            return self._cache[schema_id]
        try:
            resp = self._http.get(f"/schemas/ids/{schema_id}")
            if resp.status_code == 404:
                return None
            resp.raise_for_status()
            schema = json.loads(resp.json()["schema"])
        except httpx.HTTPError as exc:
            why = registry.explain(exc, self._user)
            raise DecodeError(f"schema id {schema_id}: the schema registry did not answer ({why})", transient=True) from exc
        if not isinstance(schema, dict):
            raise DecodeError(f"schema id {schema_id}: the registry's schema is not an Avro record schema")
        self._cache[schema_id] = schema
        return schema


@dataclass(frozen=True, slots=True)
class Undecodable:
    """What :func:`faust_codec` yields (``errors="keep"``) for a value that is not a flexchain event."""

    reason: str
    value: bytes
    transient: bool = False  # the schema registry did not answer: reading it again may succeed


@dataclass
class _Writer:
    name: str
    parsed: Any


# --- the decoder -----------------------------------------------------------------------------------


@dataclass
class EventDecoder:
    """Decodes flexchain record values into :class:`Event` s. ``sources`` are asked in order for the
    writer schema of an id (e.g. the registry, then a local ``schemas/``); each id is looked up once.
    Call it (or :meth:`decode`) with a record value; it raises :class:`DecodeError`."""

    sources: list[SchemaSource]
    _writers: dict[int, _Writer] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_env(cls, registry_url: str | None = None, schemas_dir: Path | str | None = None) -> EventDecoder:
        """The registry of ``registry_url`` / ``SCHEMA_REGISTRY_URL`` (if set) and the schemas directory
        ``schemas_dir`` / ``FLEXCHAIN_SCHEMAS_DIR`` / ``./schemas`` (if it exists), in that order."""
        sources: list[SchemaSource] = []
        from flexchain.settings import RegistrySettings

        # SCHEMA_REGISTRY_URL, _USER, _PASSWORD, _CA, _CERT, _KEY (README "Configuration")
        settings = RegistrySettings()
        if registry_url:
            settings = RegistrySettings(schema_registry_url=registry_url)
        if settings.schema_registry_url:
            sources.append(RegistrySchemas.from_settings(settings))
        root = Path(schemas_dir or os.environ.get("FLEXCHAIN_SCHEMAS_DIR") or "schemas")
        if root.is_dir():
            sources.append(LocalSchemas(root))
        if not sources:
            raise FileNotFoundError(f"no schema registry (SCHEMA_REGISTRY_URL) and no schemas directory at {root.resolve()}")
        return cls(sources)

    def __call__(self, value: bytes | None) -> Event:
        return self.decode(value)

    def decode(self, value: bytes | None) -> Event:
        if value is None or len(value) < 5:
            raise DecodeError("not in the wire format: shorter than 5 bytes")
        magic, schema_id = _HEADER.unpack_from(value)
        if magic != MAGIC:
            raise DecodeError(f"not in the wire format: magic byte {magic}")
        writer = self._writers.get(schema_id) or self._find(schema_id)
        try:
            record = schemaless_reader(io.BytesIO(value[5:]), writer.parsed)
        except Exception as exc:  # a malformed body
            raise DecodeError(f"body does not match schema {schema_id} ({writer.name}): {exc!r}") from exc
        if not isinstance(record, dict) or not isinstance(record.get("envelope"), dict):
            raise DecodeError(f"schema {schema_id} ({writer.name}) is not a flexchain record: no envelope")
        envelope = record.pop("envelope")
        return Event(
            type=str(envelope["event_type"]),
            id=str(envelope["event_id"]),
            time=int(envelope["business_time"]),
            body=record,
            envelope=envelope,
            schema=writer.name,
            schema_id=schema_id,
        )

    def read(self, value: bytes | None) -> Event | Undecodable:
        """Like :meth:`decode`, but a value that does not decode is returned as an :class:`Undecodable`."""
        try:
            return self.decode(value)
        except DecodeError as exc:
            return Undecodable(exc.reason, bytes(value or b""), exc.transient)

    def _find(self, schema_id: int) -> _Writer:
        for source in self.sources:
            schema = source.schema(schema_id)
            if schema is None:
                continue
            name = str(schema.get("name", ""))
            if "." not in name and schema.get("namespace"):
                name = f"{schema['namespace']}.{name}"
            try:
                writer = _Writer(name, parse_schema(schema))
            except Exception as exc:
                raise DecodeError(f"schema id {schema_id} is not a usable Avro schema: {exc!r}") from exc
            self._writers[schema_id] = writer
            return writer
        raise DecodeError(f"unknown schema id {schema_id}: not in the schema registry or the schemas directory")


# --- faust ---------------------------------------------------------------------------------------------


def faust_codec(decoder: EventDecoder, errors: str = "raise") -> Any:
    """A faust codec (``value_serializer=``) that reads our wire format into :class:`Event` s.

    ``errors="raise"``: a value that does not decode raises (faust's own handling of a decode error);
    ``errors="keep"``: it becomes an :class:`Undecodable` for the agent to park. Read-only: it encodes
    nothing (flexchain's own services write their topics)."""
    from faust.serializers.codecs import Codec

    if errors not in ("raise", "keep"):
        raise ValueError("errors: 'raise' or 'keep'")

    class FlexchainAvro(Codec):
        def _loads(self, s: bytes) -> Any:
            return decoder.decode(s) if errors == "raise" else decoder.read(s)

        def _dumps(self, s: Any) -> bytes:
            raise NotImplementedError("flexchain's topics are written by its services; this codec only reads")

        def clone(self, *children: Any) -> Any:
            raise NotImplementedError("the flexchain codec is not chained")

    return FlexchainAvro()


def faust_app(app_id: str, **conf: Any) -> faust.App:
    """A ``faust.App`` whose consumers read ``read_committed``.

    flexchain writes every topic in Kafka transactions; a ``read_uncommitted`` reader would also see
    what an aborted transaction wrote. faust sets the isolation level only under its own exactly-once
    mode, which a subscriber that only reads does not want, so this app's consumer threads set it.
    ``conf`` is faust's (``broker=``, ``processing_guarantee=``, …)."""
    import faust
    from faust.transport.drivers import aiokafka as driver

    class Thread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._isolation_level = "read_committed"  # read by AIOKafkaConsumer.start() when it builds its fetcher
            return consumer

    class Consumer(driver.Consumer):
        def _new_consumer_thread(self) -> Any:
            return Thread(self, loop=self.loop, beacon=self.beacon)

    class Transport(driver.Transport):
        pass

    Transport.Consumer = Consumer

    class App(faust.App):
        def _new_transport(self) -> Any:
            return Transport(self.conf.broker_consumer, self)

    return App(app_id, **conf)


Decode = Callable[[bytes | None], Event]
