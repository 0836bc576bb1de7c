"""Releasing schemas without losing the past: what `flexchain schemas` and `flexchain schemas check` do.

A message class's schema may change only so that it still reads every version recorded in
``schemas/history/`` (BACKWARD_TRANSITIVE, as a registry enforces it): for each recorded version,
either Avro's resolution rules map it to the new schema (checked statically by
:func:`flexchain.compat.incompatibilities`), or an :class:`~flexchain.serde.Upcaster` covers it — and
in both cases records generated from the old schema must actually decode into the new class through
the codec's own reading path (:func:`flexchain.serde.plan_reading`). A type with recorded versions
and no class any more must be covered by an upcaster (a rename or a split); otherwise its records
would become unreadable.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_writer

from flexchain.history import Version, recorded, version_path
from flexchain.messages import Message
from flexchain.schemas import (
    SCHEMAS_DIR,
    envelope_schema,
    inline_envelope,
    load_json,
    schema_for,
    schema_path,
    self_contained,
    write_schemas,
)
from flexchain.serde import DecodeError, Target, Upcaster, plan_reading


@dataclass
class Release:
    """What writing the schemas would do: the versions to record, or why it is refused."""

    record: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    unchanged: int = 0


_PLAIN: dict[str, Any] = {
    "null": None, "boolean": True, "int": 1, "long": 1, "float": 1.0, "double": 1.0, "bytes": b"1", "string": "1",
}  # fmt: skip


def plausible(schema: Any, named: dict[str, Any], nulls: bool = False) -> Any:
    """A plausible value of an Avro type: strings "1" (an id, and a valid decimal), numbers 1, one
    item per array and map; unions take their first branch when `nulls`, else their first non-null one."""
    if isinstance(schema, list):
        branch = schema[0] if nulls else next((b for b in schema if b != "null"), "null")
        return plausible(branch, named, nulls)
    if isinstance(schema, str):
        return _PLAIN[schema] if schema in _PLAIN else plausible(named[schema], named, nulls)
    kind = schema["type"]
    if kind == "record":
        named[schema["name"]] = schema
        if "namespace" in schema:
            named[f"{schema['namespace']}.{schema['name']}"] = schema
        return {f["name"]: plausible(f["type"], named, nulls) for f in schema["fields"]}
    if kind == "enum":
        named[schema["name"]] = schema
        return schema["symbols"][0]
    if kind == "fixed":
        named[schema["name"]] = schema
        return b"1" * int(schema["size"])
    if kind == "array":
        return [plausible(schema["items"], named, nulls)]
    if kind == "map":
        return {"k": plausible(schema["values"], named, nulls)}
    return plausible(kind, named, nulls)  # {"type": "long"}, a logical type, a nested type


def samples(schema: dict[str, Any]) -> list[bytes]:
    """Avro bodies of plausible records of `schema`: one with every optional value set, one with none."""
    parsed = parse_schema(schema)
    out = []
    for nulls in (False, True):
        buf = io.BytesIO()
        schemaless_writer(buf, parsed, plausible(schema, {}, nulls), strict=True)
        out.append(buf.getvalue())
    return out


def unreadable(version: Version, schema: dict[str, Any], targets: dict[str, Target], upcasters: list[Upcaster]) -> list[str]:
    """Why records written with `schema` (a recorded version) cannot be read by the given classes."""
    label = version.label()
    try:
        reading = plan_reading(schema, targets, upcasters, label)
    except DecodeError as exc:
        return [exc.reason]
    for i, body in enumerate(samples(schema)):
        try:
            reading.read(body)
        except Exception as exc:  # the upcaster or the class refused a plausible old record
            return [f"{label}: generated record {i} does not decode: {exc!r}"[:500]]
    return []


def _targets(classes: list[type[Message]], schemas: dict[type[Message], dict[str, Any]]) -> dict[str, Target]:
    return {cls.full_name(): Target(cls, parse_schema(schemas[cls], expand=True)) for cls in classes}


def _orphans(
    history: dict[tuple[str, str], list[Version]],
    classes: list[type[Message]],
    targets: dict[str, Target],
    upcasters: list[Upcaster],
) -> list[str]:
    """Types with recorded versions and no class any more: an upcaster must read each version."""
    names = {(cls.SERVICE, cls.__name__) for cls in classes}
    out: list[str] = []
    for key, versions in history.items():
        if key in names:
            continue
        for v in versions:
            out += unreadable(v, v.schema(), targets, upcasters)
    return out


def plan_release(classes: list[type[Message]], upcasters: list[Upcaster], root: Path = SCHEMAS_DIR) -> Release:
    """Check every class's schema (as its Python model implies it) against its recorded versions."""
    envelope = envelope_schema()
    new = {cls: inline_envelope(schema_for(cls), envelope) for cls in classes}
    targets = _targets(classes, new)
    history = recorded(root)
    release = Release()
    for cls in classes:
        past = history.get((cls.SERVICE, cls.__name__), [])
        if past and past[-1].schema() == new[cls]:
            release.unchanged += 1
            continue
        problems = [p for v in past for p in unreadable(v, v.schema(), targets, upcasters)]
        if problems:
            release.refused += [f"{cls.full_name()}: {p}" for p in problems]
            continue
        release.record.append((version_path(cls.SERVICE, cls.__name__, len(past) + 1, root), new[cls]))
    release.refused += _orphans(history, classes, targets, upcasters)
    return release


def write_release(classes: list[type[Message]], release: Release, root: Path = SCHEMAS_DIR) -> list[Path]:
    """Write schemas/ from the classes and record the new versions (only when nothing was refused)."""
    if release.refused:
        raise ValueError("a refused release is not written")
    written = write_schemas(classes, root)
    for path, schema in release.record:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def check(classes: list[type[Message]], upcasters: list[Upcaster], root: Path = SCHEMAS_DIR) -> list[str]:
    """CI: every current schema file is its class's, is the last recorded version of its type, and
    reads every earlier one; every recorded type is still read; versions are numbered 1..n."""
    problems: list[str] = []
    history = recorded(root)
    current: dict[type[Message], dict[str, Any]] = {}
    for cls in classes:
        path = schema_path(cls, root)
        if not path.is_file():
            problems.append(f"{cls.full_name()}: no {path.name} (run `flexchain schemas`)")
            continue
        on_disk = load_json(path)
        if on_disk != schema_for(cls):
            problems.append(f"{cls.full_name()}: {path.name} differs from the class (run `flexchain schemas`)")
        current[cls] = self_contained(on_disk, root)
    readable = [cls for cls in classes if cls in current]
    targets = _targets(readable, current)
    for cls in readable:
        past = history.get((cls.SERVICE, cls.__name__), [])
        if not past or past[-1].schema() != current[cls]:
            problems.append(f"{cls.full_name()}: the current schema is not the last recorded version (run `flexchain schemas`)")
        problems += [f"{cls.full_name()}: {p}" for v in past[:-1] for p in unreadable(v, v.schema(), targets, upcasters)]
    for (service, name), versions in history.items():
        if [v.number for v in versions] != list(range(1, len(versions) + 1)):
            problems.append(f"{service}/{name}: versions {[v.number for v in versions]} are not numbered 1..{len(versions)}")
    problems += _orphans(history, readable, targets, upcasters)
    return problems
