"""Avro serde in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body.

Schema ids come from a Confluent-compatible registry when ``SCHEMA_REGISTRY_URL`` is set (each
message type registered under its record full name — RecordNameStrategy — with the envelope
inlined) and otherwise from ``schemas/`` (a CRC-32 of the canonical form, see
:func:`flexchain.schemas.local_schema_id`). Parsed schemas are cached; writing is strict, so a
message that does not fit its schema fails before anything reaches Kafka.

Reading the past: a record carries the id of the schema it was *written* with. A current id is
read directly (the hot path of every rebuild, unchanged). Any other id is looked up once — in the
registry (``GET /schemas/ids/{id}``) when one is configured, and in the schema history kept under
``schemas/history/`` (:mod:`flexchain.history`) — and the record is read into today's class with
Avro's resolution rules (fastavro ``schemaless_reader(fo, writer, reader)``: fields the writer lacks
take the reader's defaults, fields it had and the class dropped are skipped). What resolution cannot
do — a type renamed, one type split into two, a value re-expressed, a field added without a default
— an :class:`Upcaster` declared next to the service's messages (``UPCASTERS`` in
``services/<svc>/messages.py``) does: it gets the record as the writer wrote it and returns it in
the shape of a current class. An id found nowhere, or a writer type no class or upcaster reads, is
a :class:`DecodeError` that says why.
"""

from __future__ import annotations

import copy
import io
import json
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from flexchain import registry
from flexchain.compat import incompatibilities
from flexchain.history import writer_index
from flexchain.messages import Envelope, Enveloped, Message, from_record, to_record
from flexchain.schemas import SCHEMAS_DIR, canonical_id, expanded, load_json, parsed_envelope, schema_path
from flexchain.settings import RegistrySettings

MAGIC = 0
_HEADER = struct.Struct(">bI")
_MAX_REFUSED = 10_000  # ids remembered as unreadable (a flood of garbage ids cannot grow it further)


class DecodeError(Exception):
    """A record that cannot become a message; ``reason`` goes to the DLQ headers.

    ``transient`` is set when the reason may go away by itself (the schema registry did not answer):
    the same record may decode on a later try."""

    def __init__(self, reason: str, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


# --- upcasters -----------------------------------------------------------------------------------

Record = dict[str, Any]
Upcast = Callable[[Record], "Record | tuple[type[Message], Record]"]


@dataclass(frozen=True)
class Upcaster:
    """Reads records of an old writer schema that Avro's resolution rules cannot map to a current class.

    ``source`` is the full name of the writer's record (``flexchain.<service>.<Type>``, as the record
    was written: the type's old name after a rename). ``upcast`` gets the record decoded with the
    writer's own schema (a dict, envelope included) and returns it in the shape of a current class:
    a dict for ``target`` (default: the current class named ``source``), or ``(cls, dict)`` to choose
    the class per record (a type split in two). Fields the result lacks take the class's Avro
    defaults; a field without a default must be given. ``applies`` picks the writer schemas it is for
    (given the writer schema; default: every schema named ``source`` — records written with the
    current schema never reach an upcaster). The first upcaster that applies is used; it runs once
    per record, before the record becomes the current class. Declare them as ``UPCASTERS`` in the
    service's ``messages.py``: the codec picks them up from the modules of its classes."""

    source: str
    upcast: Upcast
    target: type[Message] | None = None
    applies: Callable[[Record], bool] | None = None

    def covers(self, writer_name: str, writer: Record) -> bool:
        return writer_name == self.source and (self.applies is None or self.applies(writer))


def full_name(schema: Record) -> str:
    """A record schema's full name (``namespace.name`` unless the name has a dot already)."""
    name = str(schema["name"])
    return name if "." in name or not schema.get("namespace") else f"{schema['namespace']}.{name}"


def field_names(schema: Record) -> set[str]:
    return {str(f["name"]) for f in schema.get("fields", [])}


def lacking(*fields: str) -> Callable[[Record], bool]:
    """``applies`` for an upcaster: the writer schema lacks at least one of ``fields``."""
    return lambda writer: not set(fields) <= field_names(writer)


def filling(**values: Any) -> Upcast:
    """``upcast`` for a field added without a default: old records get ``values`` for what they lack."""

    def upcast(record: Record) -> Record:
        return {**{k: copy.deepcopy(v) for k, v in values.items() if k not in record}, **record}

    return upcast


def renamed(record: Record) -> Record:
    """``upcast`` of a renamed type: the record as written (the envelope is given the new name)."""
    return record


def declared_upcasters(classes: Iterable[type[Message]]) -> list[Upcaster]:
    """The ``UPCASTERS`` of the modules that define ``classes`` (``services/<svc>/messages.py``), then
    one per former name of a renamed class (``Message.FORMERLY``): its old records read as the class."""
    classes = list(classes)
    out: list[Upcaster] = []
    for module in dict.fromkeys(cls.__module__ for cls in classes):
        out += getattr(sys.modules.get(module), "UPCASTERS", ())
    out += [Upcaster(old, renamed, target=cls) for cls in classes for old in cls.former_full_names()]
    return out


# --- reading records of another schema ------------------------------------------------------------


class Target:
    """A current class and its expanded schema (envelope and every named type inlined, as
    ``parse_schema(..., expand=True)`` gives it), as the reader of records written otherwise."""

    __slots__ = ("_parsed", "cls", "required", "schema")

    def __init__(self, cls: type[Message], schema: Any) -> None:
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise TypeError(f"{cls.__name__}: not a record schema")
        self.cls = cls
        self.schema: Record = schema
        fields = [f for f in schema["fields"] if f["name"] != "envelope"]
        self.required = [f["name"] for f in fields if "default" not in f]
        self._parsed: Any = None

    def parsed(self) -> Any:
        if self._parsed is None:
            self._parsed = parse_schema(self.schema)
        return self._parsed


class _Reading(Protocol):
    @property
    def label(self) -> str: ...

    def read(self, body: bytes) -> Enveloped: ...


@dataclass(frozen=True, slots=True)
class _Resolved:
    """Avro resolution: the writer's schema read as the current class's."""

    cls: type[Message]
    writer: Any
    reader: Any
    label: str

    def read(self, body: bytes) -> Enveloped:
        record = schemaless_reader(io.BytesIO(body), self.writer, self.reader)
        assert isinstance(record, dict)
        envelope = from_record(Envelope, record.pop("envelope"))
        return Enveloped(envelope=envelope, message=from_record(self.cls, record))


@dataclass(frozen=True, slots=True)
class _Upcasted:
    """The writer's own schema, then an upcaster, then the current class."""

    upcaster: Upcaster
    writer: Any
    writer_short: str
    default_target: type[Message] | None
    targets: dict[str, Target]
    label: str

    def read(self, body: bytes) -> Enveloped:
        record = schemaless_reader(io.BytesIO(body), self.writer)
        assert isinstance(record, dict)
        written_envelope = record.get("envelope")
        out = self.upcaster.upcast(record)
        cls, rec = out if isinstance(out, tuple) else (self.default_target, out)
        target = self.targets.get(cls.full_name()) if cls is not None else None
        if cls is None or target is None:
            what = cls.full_name() if cls is not None else "no class"
            raise DecodeError(f"{self.label}: the upcaster of {self.upcaster.source} gave {what}, which this codec does not read")
        rec = dict(rec)
        if not rec.get("envelope"):
            rec["envelope"] = written_envelope
        env = rec["envelope"]
        if isinstance(env, dict) and env.get("event_type") == self.writer_short and cls.__name__ != self.writer_short:
            rec["envelope"] = {**env, "event_type": cls.__name__}  # renamed or split: the envelope names the type read
        rec = _complete(rec, target.schema)  # what it lacks, at any depth: the current schema's defaults
        missing = [f for f in target.required if f not in rec]
        if missing:
            raise DecodeError(f"{self.label}: the upcaster of {self.upcaster.source} gave {cls.__name__} no value for {missing}")
        envelope = from_record(Envelope, rec.pop("envelope"))
        return Enveloped(envelope=envelope, message=from_record(cls, rec))


def _complete(value: Any, schema: Any) -> Any:
    """`value` with what records of the (expanded) `schema` lack filled from its defaults, at every depth."""
    if isinstance(schema, list):  # a union: the branch of the value's shape
        for branch in schema:
            kind = branch.get("type") if isinstance(branch, dict) else branch
            if (kind in ("record", "map") and isinstance(value, dict)) or (kind == "array" and isinstance(value, list)):
                return _complete(value, branch)
        return value
    if not isinstance(schema, dict):
        return value
    kind = schema["type"]
    if kind == "record" and isinstance(value, dict):
        out = dict(value)
        for f in schema["fields"]:
            if f["name"] in out:
                out[f["name"]] = _complete(out[f["name"]], f["type"])
            elif "default" in f:
                out[f["name"]] = copy.deepcopy(f["default"])
        return out
    if kind == "array" and isinstance(value, list):
        return [_complete(v, schema["items"]) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _complete(v, schema["values"]) for k, v in value.items()}
    return _complete(value, kind) if isinstance(kind, (dict, list)) else value


def plan_reading(writer: Record, targets: dict[str, Target], upcasters: Iterable[Upcaster], label: str) -> _Reading:
    """How records written with ``writer`` (self-contained) become current messages, or why they cannot."""
    name = full_name(writer)
    for upcaster in upcasters:
        if upcaster.covers(name, writer):
            default = upcaster.target or (targets[name].cls if name in targets else None)
            return _Upcasted(upcaster, parse_schema(writer), name.rsplit(".", 1)[-1], default, targets, label)
    target = targets.get(name)
    if target is None:
        raise DecodeError(f"{label}: writer type {name} has no class in this codec (renamed or removed? declare an Upcaster)")
    problems = incompatibilities(writer, target.schema)
    if problems:
        raise DecodeError(
            f"{label}: {name} as written cannot be read as the current {target.cls.__name__} "
            f"({'; '.join(problems[:3])}); declare an Upcaster"
        )
    return _Resolved(target.cls, parse_schema(writer), target.parsed(), label)


# --- the registry and the codec ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    cls: type[Message]
    schema_id: int
    parsed: Any


class RegistryClient:
    """The calls of the Confluent schema-registry API that the serde needs. Build it with
    :meth:`from_settings` (credentials and TLS: `flexchain.registry`); an error it raises names the
    registry, the status or TLS failure and the setting to check, never a password."""

    def __init__(
        self, url: str, auth: tuple[str, str] | None = None, attempts: int = 3, http: httpx.Client | None = None
    ) -> None:
        self._http = http if http is not None else httpx.Client(base_url=url.rstrip("/"), auth=auth, timeout=10.0)
        self._attempts = attempts
        self._user = auth[0] if auth else None

    @classmethod
    def from_settings(cls, settings: RegistrySettings, attempts: int = 3) -> RegistryClient | None:
        """The client of SCHEMA_REGISTRY_URL with its credentials and TLS; None when it is not set."""
        if not settings.schema_registry_url:
            return None
        client = cls(settings.schema_registry_url, attempts=attempts, http=registry.http_client(settings))
        client._user = settings.schema_registry_user
        return client

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        try:
            resp = self._http.post(
                f"/subjects/{subject}/versions",
                json={"schemaType": "AVRO", "schema": json.dumps(schema)},
                headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
            )
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise registry.clear(exc, self._user) from exc
        return int(resp.json()["id"])

    def schema_by_id(self, schema_id: int) -> Record | None:
        """``GET /schemas/ids/{id}``: the schema, or None when the registry does not know the id.
        A transport error or a 5xx is retried; if it persists, ``httpx.HTTPError`` is raised. An
        answer that is not an Avro record schema raises ``ValueError``."""
        for attempt in range(self._attempts):
            try:
                resp = self._http.get(f"/schemas/ids/{schema_id}")
                if resp.status_code == 404:
                    return None
                resp.raise_for_status()
                schema = json.loads(resp.json()["schema"])
                if not isinstance(schema, dict):
                    raise ValueError(f"the registry's schema {schema_id} is not an Avro record schema")
                return schema
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else 0
                if (status and status < 500) or attempt == self._attempts - 1 or registry.is_tls(exc):
                    raise registry.clear(exc, self._user) from exc
                time.sleep(0.2 * (attempt + 1))
        return None


class Codec:
    """Encodes and decodes the messages of the given classes; decodes records written with any
    earlier schema of them too (see the module's docstring)."""

    def __init__(
        self,
        classes: list[type[Message]],
        registry: RegistryClient | None = None,
        root: Path = SCHEMAS_DIR,
        upcasters: list[Upcaster] | None = None,
    ) -> None:
        self._by_type: dict[type[Message], _Entry] = {}
        self._by_id: dict[int, _Entry] = {}
        self._targets: dict[str, Target] = {}
        for cls in classes:
            schema = load_json(schema_path(cls, root))
            named: dict[str, Any] = {}
            parsed_envelope(named, root)
            parsed = parse_schema(schema, named)
            full = expanded(schema, root)
            schema_id = registry.register(cls.full_name(), full) if registry is not None else canonical_id(full)
            entry = _Entry(cls, schema_id, parsed)
            if schema_id in self._by_id and self._by_id[schema_id].cls is not cls:
                raise ValueError(f"schema id collision: {cls.__name__} and {self._by_id[schema_id].cls}")
            self._by_type[cls] = entry
            self._by_id[schema_id] = entry
            self._targets[cls.full_name()] = Target(cls, full)
        self._registry = registry
        self._root = root
        self._upcasters = list(upcasters) if upcasters is not None else declared_upcasters(classes)
        self._readings: dict[int, _Reading] = {}  # writer schema id → how to read it (found once)
        self._refused: dict[int, str] = {}  # writer schema id → why it cannot be read
        self._history: dict[int, tuple[str, Record]] | None = None  # built on the first unknown id
        self._lock = threading.Lock()

    def knows(self, cls: type[Message]) -> bool:
        return cls in self._by_type

    def type_names(self) -> frozenset[str]:
        """The names of the classes this codec reads and writes: the closed set of `type` labels."""
        return frozenset(cls.__name__ for cls in self._by_type)

    def schema_id(self, cls: type[Message]) -> int:
        return self._by_type[cls].schema_id

    def encode(self, item: Enveloped) -> bytes:
        entry = self._by_type.get(type(item.message))
        if entry is None:
            raise KeyError(f"no schema for {type(item.message).__name__}")
        record = to_record(item.message)
        record["envelope"] = to_record(item.envelope)
        buf = io.BytesIO()
        buf.write(_HEADER.pack(MAGIC, entry.schema_id))
        schemaless_writer(buf, entry.parsed, record, strict=True)
        return buf.getvalue()

    def decode(self, data: bytes | None) -> Enveloped:
        if data is None or len(data) < 5:
            raise DecodeError("not in the wire format: shorter than 5 bytes")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError(f"not in the wire format: magic byte {magic}")
        entry = self._by_id.get(schema_id)
        if entry is None:
            return self._decode_written_otherwise(schema_id, data)
        try:
            record = schemaless_reader(io.BytesIO(data[5:]), entry.parsed)
            assert isinstance(record, dict)
            envelope = from_record(Envelope, record.pop("envelope"))
            message = from_record(entry.cls, record)
        except Exception as exc:  # any malformed body is a decode failure, not a crash
            raise DecodeError(f"body does not match schema {schema_id} ({entry.cls.__name__}): {exc!r}") from exc
        return Enveloped(envelope=envelope, message=message)

    # --- records written with another schema than the current one ---

    def _decode_written_otherwise(self, schema_id: int, data: bytes) -> Enveloped:
        reading = self._readings.get(schema_id) or self._plan(schema_id)
        try:
            return reading.read(data[5:])
        except DecodeError:
            raise
        except Exception as exc:  # a malformed body, or an upcaster that failed on this record
            raise DecodeError(f"body does not match {reading.label}: {exc!r}") from exc

    def _plan(self, schema_id: int) -> _Reading:
        refused = self._refused.get(schema_id)
        if refused is not None:
            raise DecodeError(refused)
        found = self._writer(schema_id)
        if found is None:
            where = "the schema registry or " if self._registry is not None else ""
            reason = f"unknown schema id {schema_id}: not a current schema, not in {where}the schema history"
            if self._registry is None:  # the history is fixed for this process; a registry may learn the id later
                self._refuse(schema_id, reason)
            raise DecodeError(reason)
        source, writer = found
        try:
            reading = plan_reading(writer, self._targets, self._upcasters, f"schema id {schema_id} ({source})")
        except DecodeError as exc:
            self._refuse(schema_id, exc.reason)
            raise
        except Exception as exc:  # a writer schema fastavro cannot parse
            reason = f"schema id {schema_id} ({source}) is not a usable Avro schema: {exc!r}"
            self._refuse(schema_id, reason)
            raise DecodeError(reason) from exc
        self._readings[schema_id] = reading
        return reading

    def _refuse(self, schema_id: int, reason: str) -> None:
        if len(self._refused) >= _MAX_REFUSED:
            self._refused.clear()
        self._refused[schema_id] = reason

    def _writer(self, schema_id: int) -> tuple[str, Record] | None:
        """The schema a record with this id was written with: (where it was found, schema)."""
        if self._registry is not None:
            try:
                schema = self._registry.schema_by_id(schema_id)
            except httpx.HTTPError as exc:
                raise DecodeError(f"schema id {schema_id}: the schema registry did not answer ({exc!r})", transient=True) from exc
            except (ValueError, KeyError) as exc:  # an answer, but no Avro record schema in it
                reason = f"schema id {schema_id}: the schema registry's answer is not a usable schema ({exc!r})"
                self._refuse(schema_id, reason)
                raise DecodeError(reason) from exc
            if schema is not None:
                return "the schema registry", schema
        return self._history_index().get(schema_id)

    def _history_index(self) -> dict[int, tuple[str, Record]]:
        if self._history is None:
            with self._lock:
                if self._history is None:
                    index = writer_index(self._root)
                    self._history = {sid: (f"schemas/history/{v.label()}.avsc", schema) for sid, (v, schema) in index.items()}
        return self._history
