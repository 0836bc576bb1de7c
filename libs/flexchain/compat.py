"""Avro schema compatibility, as a registry checks it (BACKWARD / BACKWARD_TRANSITIVE).

BACKWARD: a consumer using the NEW schema can read data written with an OLD one. It is decided by
Avro's schema-resolution rules (Avro 1.11 specification, "Schema Resolution"), applied with the old
schema as the writer's and the new one as the reader's:

* records: every reader field either exists in the writer (same name or an alias) with a resolvable
  type, or has a default; writer fields the reader lacks are skipped;
* primitives: equal, or promoted (int→long/float/double, long→float/double, float→double,
  string↔bytes);
* unions: every branch the writer may have written must resolve against the reader (one of the
  reader's branches if the reader is a union); a non-union writer must match one reader branch;
* arrays/maps: their items/values resolve; enums: the writer's symbols are the reader's or the reader
  has a default; fixed: same size; named types: same unqualified name (or an alias).

:func:`incompatibilities` implements those rules statically (every branch, not only the ones some
data happens to use). :func:`resolve_samples` checks the same thing dynamically with fastavro, the
Avro implementation flexchain runs on: it generates records with the OLD schema, encodes them with
it and decodes them with the NEW schema as reader (fastavro performs the resolution and raises
SchemaResolutionError where Avro would). BACKWARD_TRANSITIVE = BACKWARD against every earlier version.
"""

from __future__ import annotations

import io
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.utils import generate_many

PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class _Names:
    """Named types seen so far in one schema (Avro lets a later occurrence refer to one by name)."""

    def __init__(self) -> None:
        self.types: dict[str, dict[str, Any]] = {}

    def resolve(self, t: Any, namespace: str) -> Any:
        if isinstance(t, str) and t not in PRIMITIVES:
            full = t if "." in t else f"{namespace}.{t}" if namespace else t
            return self.types.get(full, self.types.get(t, t))
        if isinstance(t, dict) and t.get("type") in ("record", "enum", "fixed", "error"):
            ns = t.get("namespace", namespace)
            name = t["name"]
            full = name if "." in name else f"{ns}.{name}" if ns else name
            self.types.setdefault(full, {**t, "_ns": ns})
        return t


def _kind(t: Any) -> str:
    if isinstance(t, list):
        return "union"
    if isinstance(t, dict):
        return str(t["type"]) if not isinstance(t["type"], (dict, list)) else _kind(t["type"])
    return str(t)


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def incompatibilities(writer: Any, reader: Any) -> list[str]:
    """Why data written with `writer` cannot be read with `reader` ([] = compatible)."""
    out: list[str] = []
    _check(writer, reader, _Names(), _Names(), "", "", "", out, set())
    return out


COMPLEX = ("record", "enum", "fixed", "array", "map", "error")


def _norm(t: Any, names: _Names, ns: str) -> Any:
    """A type as a primitive name, a union list, or a complex dict (named references resolved)."""
    t = names.resolve(t, ns)
    if isinstance(t, dict) and t.get("type") not in COMPLEX:
        return _norm(t["type"], names, ns)  # {"type": "string"}, {"type": "long", "logicalType": ...}
    return t


def _check(
    w: Any, r: Any, wn: _Names, rn: _Names, wns: str, rns: str, path: str, out: list[str], seen: set[tuple[str, str]]
) -> None:
    w = _norm(w, wn, wns)
    r = _norm(r, rn, rns)
    wk, rk = _kind(w), _kind(r)
    if wk == "union":
        for i, branch in enumerate(w):
            _check(branch, r, wn, rn, wns, rns, f"{path}[writer branch {i}]", out, seen)
        return
    if rk == "union":
        for branch in r:
            trial: list[str] = []
            _check(w, branch, wn, rn, wns, rns, path, trial, set(seen))
            if not trial:
                return
        out.append(f"{path or '/'}: writer type {wk} matches no branch of the reader's union")
        return
    if wk in PRIMITIVES or rk in PRIMITIVES:
        if wk != rk and rk not in PROMOTIONS.get(wk, set()):
            out.append(f"{path or '/'}: writer {wk} cannot be read as {rk}")
        return
    if wk != rk:
        out.append(f"{path or '/'}: writer {wk} cannot be read as {rk}")
        return
    if wk == "array":
        _check(w["items"], r["items"], wn, rn, wns, rns, f"{path}[]", out, seen)
    elif wk == "map":
        _check(w["values"], r["values"], wn, rn, wns, rns, f"{path}{{}}", out, seen)
    elif wk in ("enum", "fixed", "record", "error"):
        names = {_short(r["name"]), *(_short(a) for a in r.get("aliases", []))}
        if _short(w["name"]) not in names:
            out.append(f"{path or '/'}: writer {wk} {w['name']} is not reader {r['name']}")
            return
        if wk == "enum":
            missing = set(w["symbols"]) - set(r["symbols"])
            if missing and "default" not in r:
                out.append(f"{path or '/'}: enum symbols {sorted(missing)} unknown to the reader, which has no default")
        elif wk == "fixed":
            if w["size"] != r["size"]:
                out.append(f"{path or '/'}: fixed size {w['size']} != {r['size']}")
        else:
            key = (str(w["name"]), str(r["name"]))
            if key in seen:  # recursive type: already being checked
                return
            seen = seen | {key}
            wns2 = w.get("namespace", w.get("_ns", wns))
            rns2 = r.get("namespace", r.get("_ns", rns))
            wfields = {f["name"]: f for f in w["fields"]}
            for rf in r["fields"]:
                field_names = [rf["name"], *rf.get("aliases", [])]
                wf = next((wfields[n] for n in field_names if n in wfields), None)
                fpath = f"{path}/{rf['name']}"
                if wf is None:
                    if "default" not in rf:
                        out.append(f"{fpath}: new field without a default (old data has no value for it)")
                    else:
                        rn.resolve(rf["type"], rns2)
                    continue
                _check(wf["type"], rf["type"], wn, rn, wns2, rns2, fpath, out, seen)


def resolve_samples(writer: dict[str, Any], reader: dict[str, Any], count: int = 50) -> list[str]:
    """Write `count` generated records with `writer`, read them back with `reader` (fastavro resolution)."""
    w, r = parse_schema(writer), parse_schema(reader)
    problems: list[str] = []
    for i, record in enumerate(generate_many(w, count)):
        buf = io.BytesIO()
        schemaless_writer(buf, w, record)
        buf.seek(0)
        try:
            schemaless_reader(buf, w, r)
        except Exception as exc:  # SchemaResolutionError and friends
            problems.append(f"record {i}: {type(exc).__name__}: {exc}")
            break
    return problems
