"""Avro schemas: one ``.avsc`` per message type in ``schemas/<service>/``, plus the shared envelope.

Every message is written as a record ``{"envelope": Envelope, <payload fields>}``. Python types map
to Avro as: ``str`` → string, ``int`` → long, ``bool`` → boolean, ``Decimal`` → string (exact
decimal text), ``X | None`` → ``["null", X]`` with default null, ``list[X]`` → array, ``dict[str, X]``
→ map, a nested dataclass → a named record. A field with a default in Python has it in Avro too
(fields added to a message later must have one, so readers of the new schema read old records).

``schema_for`` derives the schema a class implies; the contract tests compare it with the file on
disk, so the ``.avsc`` stays the one published definition and the Python model cannot drift from it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any, Union

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from flexchain.messages import Envelope, Message

SCHEMAS_DIR = Path(os.environ.get("FLEXCHAIN_SCHEMAS_DIR") or Path(__file__).resolve().parents[2] / "schemas")
ENVELOPE_NAME = "flexchain.common.Envelope"


def _avro_type(tp: Any, namespace: str, seen: set[str]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return ["null", _avro_type(args[0], namespace, seen)]
    if origin in (list, tuple):
        return {"type": "array", "items": _avro_type(typing.get_args(tp)[0], namespace, seen)}
    if origin is dict:
        return {"type": "map", "values": _avro_type(typing.get_args(tp)[1], namespace, seen)}
    if tp is str:
        return "string"
    if tp is bool:
        return "boolean"
    if tp is int:
        return "long"
    if tp is Decimal:
        return "string"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        full = f"{namespace}.{tp.__name__}"
        if full in seen:
            return full
        seen.add(full)
        return {
            "type": "record",
            "name": tp.__name__,
            "namespace": namespace,
            "fields": _fields(tp, namespace, seen),
        }
    raise TypeError(f"no Avro mapping for {tp!r}")


def _fields(cls: type, namespace: str, seen: set[str]) -> list[dict[str, Any]]:
    hints = typing.get_type_hints(cls)
    out: list[dict[str, Any]] = []
    for f in dataclasses.fields(cls):
        field: dict[str, Any] = {"name": f.name, "type": _avro_type(hints[f.name], namespace, seen)}
        if isinstance(field["type"], list) and field["type"][0] == "null":
            field["default"] = None
        elif (default := _default_of(f)) is not _NO_DEFAULT:
            field["default"] = default  # a field added later with a default keeps old data readable
        out.append(field)
    return out


_NO_DEFAULT = object()


def _default_of(f: dataclasses.Field[Any]) -> Any:
    """The Avro default of a dataclass field with a plain default (or a list/dict factory)."""
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return _NO_DEFAULT
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (str, int, bool, list, dict)) and json.dumps(value):
        return value
    return _NO_DEFAULT


def envelope_schema() -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Envelope",
        "namespace": "flexchain.common",
        "doc": "Metadata carried by every flexchain message. business_time: ms since epoch, UTC.",
        "fields": _fields(Envelope, "flexchain.common", set()),
    }


def schema_for(cls: type[Message]) -> dict[str, Any]:
    """The Avro schema that a message class implies (used to write and to check the .avsc)."""
    namespace = f"flexchain.{cls.SERVICE}"
    doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    if doc.startswith(f"{cls.__name__}(*, "):  # no docstring: dataclass's signature, published before kw_only
        doc = f"{cls.__name__}({doc.removeprefix(f'{cls.__name__}(*, ')}"
    schema: dict[str, Any] = {
        "type": "record",
        "name": cls.__name__,
        "namespace": namespace,
        "fields": [{"name": "envelope", "type": ENVELOPE_NAME}, *_fields(cls, namespace, set())],
    }
    if doc:
        schema["doc"] = doc
    if cls.FORMERLY:  # a renamed type: Avro readers resolve records of the old name to this one
        # names relative to the namespace (the same: only the type's name changed), as the Avro spec
        # allows and AsyncAPI's Avro schema requires (a simple name)
        schema["aliases"] = list(cls.FORMERLY)
    return schema


def schema_path(cls: type[Message], root: Path = SCHEMAS_DIR) -> Path:
    return root / cls.SERVICE / f"{cls.__name__}.avsc"


def load_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def parsed_envelope(named: dict[str, Any], root: Path = SCHEMAS_DIR) -> Any:
    return parse_schema(load_json(root / "common" / "Envelope.avsc"), named)


def expanded(schema: dict[str, Any], root: Path = SCHEMAS_DIR) -> Any:
    """The schema with the envelope inlined: what a registry stores and a subscriber reads."""
    named: dict[str, Any] = {}
    parsed_envelope(named, root)
    return parse_schema(schema, named, expand=True)


def local_schema_id(schema: dict[str, Any], root: Path = SCHEMAS_DIR) -> int:
    """A stable id for a schema without a registry: CRC-32 of its canonical form, 31 bits, > 0."""
    return canonical_id(expanded(schema, root))


def canonical_id(full: Any) -> int:
    """The local schema id of a self-contained (expanded) schema: CRC-32 of its canonical form."""
    canonical = to_parsing_canonical_form(full)
    return (zlib.crc32(canonical.encode("utf-8")) & 0x7FFFFFFF) or 1


def inline_envelope(schema: dict[str, Any], envelope: dict[str, Any]) -> dict[str, Any]:
    """The .avsc with the envelope record inlined in place of its name: self-contained, names kept short
    and namespaces apart, as Avro writes them — the form a registry stores and the history keeps."""
    fields = [{**f, "type": envelope} if f["type"] == ENVELOPE_NAME else f for f in schema["fields"]]
    return {**schema, "fields": fields}


def self_contained(schema: dict[str, Any], root: Path = SCHEMAS_DIR) -> dict[str, Any]:
    """A schema of ``root`` with ``root``'s envelope inlined (see :func:`inline_envelope`)."""
    return inline_envelope(schema, load_json(root / "common" / "Envelope.avsc"))


def write_schemas(classes: list[type[Message]], root: Path = SCHEMAS_DIR) -> list[Path]:
    """Write the envelope and every class's .avsc (developer tool: `flexchain schemas write`)."""
    written: list[Path] = []
    env = root / "common" / "Envelope.avsc"
    env.parent.mkdir(parents=True, exist_ok=True)
    env.write_text(json.dumps(envelope_schema(), indent=2) + "\n", encoding="utf-8")
    written.append(env)
    for cls in classes:
        path = schema_path(cls, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema_for(cls), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written
