"""The schema history: every released version of every message schema, where the code reads it.

``schemas/history/<service>/<Type>.v<N>.avsc`` holds version N of a message type, self-contained
(the envelope inlined as it was then — the form a registry stores), v1 the oldest; the last version
of each type is its current ``schemas/<service>/<Type>.avsc``. Every record a service ever wrote
carries the id of one of these versions (without a registry: :func:`flexchain.schemas.local_schema_id`),
so the history is what lets today's codec find the *writer* schema of an old record
(:class:`flexchain.serde.Codec`) and what `flexchain schemas` checks a change against
(:mod:`flexchain.evolution`). Files are only ever added: a version, once released, stays readable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import parse_schema

from flexchain.schemas import SCHEMAS_DIR, canonical_id, load_json

HISTORY = "history"
_VERSION = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<n>[1-9][0-9]*)\.avsc$")


def history_dir(root: Path = SCHEMAS_DIR) -> Path:
    return root / HISTORY


@dataclass(frozen=True, slots=True)
class Version:
    """One released version of a message schema."""

    service: str
    name: str
    number: int
    path: Path

    @property
    def full_name(self) -> str:
        return f"flexchain.{self.service}.{self.name}"

    def schema(self) -> dict[str, Any]:
        return load_json(self.path)

    def label(self) -> str:
        return f"{self.service}/{self.name}.v{self.number}"


def version_path(service: str, name: str, number: int, root: Path = SCHEMAS_DIR) -> Path:
    return history_dir(root) / service / f"{name}.v{number}.avsc"


def recorded(root: Path = SCHEMAS_DIR) -> dict[tuple[str, str], list[Version]]:
    """Every recorded version, per (service, type), oldest first."""
    out: dict[tuple[str, str], list[Version]] = {}
    base = history_dir(root)
    if not base.is_dir():
        return out
    for service_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        for path in service_dir.glob("*.avsc"):
            m = _VERSION.match(path.name)
            if m is None:
                raise ValueError(f"{path}: a history file is named <Type>.v<N>.avsc")
            out.setdefault((service_dir.name, m["name"]), []).append(Version(service_dir.name, m["name"], int(m["n"]), path))
    for versions in out.values():
        versions.sort(key=lambda v: v.number)
    return dict(sorted(out.items()))


def versions_of(service: str, name: str, root: Path = SCHEMAS_DIR) -> list[Version]:
    return recorded(root).get((service, name), [])


def writer_index(root: Path = SCHEMAS_DIR) -> dict[int, tuple[Version, dict[str, Any]]]:
    """Schema id → (version, self-contained schema) of every recorded version: the local stand-in for
    a registry's ``GET /schemas/ids/{id}``. Ids as the serde computes them without a registry."""
    out: dict[int, tuple[Version, dict[str, Any]]] = {}
    for versions in recorded(root).values():
        for v in versions:
            schema = v.schema()
            out[canonical_id(parse_schema(schema, expand=True))] = (v, schema)  # self-contained: no envelope from root
    return out
