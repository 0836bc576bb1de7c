"""Avro serde in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body.

Schema ids come from a Confluent-compatible registry when ``SCHEMA_REGISTRY_URL`` is set (each
message type registered under its record full name — RecordNameStrategy — with the envelope
inlined) and otherwise from ``schemas/`` (a CRC-32 of the canonical form, see
:func:`flexchain.schemas.local_schema_id`). Parsed schemas are cached; writing is strict, so a
message that does not fit its schema fails before anything reaches Kafka.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from flexchain.messages import Envelope, Enveloped, Message, from_record, to_record
from flexchain.schemas import SCHEMAS_DIR, expanded, load_json, local_schema_id, parsed_envelope, schema_path

MAGIC = 0
_HEADER = struct.Struct(">bI")


class DecodeError(Exception):
    """A record that cannot become a message; ``reason`` goes to the DLQ headers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Entry:
    cls: type[Message]
    schema_id: int
    parsed: Any


class RegistryClient:
    """The two calls of the Confluent schema-registry API that the serde needs."""

    def __init__(self, url: str, auth: tuple[str, str] | None = None) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), auth=auth, timeout=10.0)

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        resp = self._http.post(
            f"/subjects/{subject}/versions",
            json={"schemaType": "AVRO", "schema": json.dumps(schema)},
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        )
        resp.raise_for_status()
        return int(resp.json()["id"])


class Codec:
    """Encodes and decodes the messages of the given classes."""

    def __init__(
        self,
        classes: list[type[Message]],
        registry: RegistryClient | None = None,
        root: Path = SCHEMAS_DIR,
    ) -> None:
        self._by_type: dict[type[Message], _Entry] = {}
        self._by_id: dict[int, _Entry] = {}
        for cls in classes:
            schema = load_json(schema_path(cls, root))
            named: dict[str, Any] = {}
            parsed_envelope(named, root)
            parsed = parse_schema(schema, named)
            if registry is not None:
                schema_id = registry.register(cls.full_name(), expanded(schema, root))
            else:
                schema_id = local_schema_id(schema, root)
            entry = _Entry(cls, schema_id, parsed)
            if schema_id in self._by_id and self._by_id[schema_id].cls is not cls:
                raise ValueError(f"schema id collision: {cls.__name__} and {self._by_id[schema_id].cls}")
            self._by_type[cls] = entry
            self._by_id[schema_id] = entry

    def knows(self, cls: type[Message]) -> bool:
        return cls in self._by_type

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
            raise DecodeError(f"unknown schema id {schema_id}")
        try:
            record = schemaless_reader(io.BytesIO(data[5:]), entry.parsed)
            assert isinstance(record, dict)
            envelope = from_record(Envelope, record.pop("envelope"))
            message = from_record(entry.cls, record)
        except Exception as exc:  # any malformed body is a decode failure, not a crash
            raise DecodeError(f"body does not match schema {schema_id} ({entry.cls.__name__}): {exc!r}") from exc
        return Enveloped(envelope, message)
