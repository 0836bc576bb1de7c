"""Schema compatibility: every current schema is BACKWARD compatible with EVERY recorded earlier
version of it (BACKWARD_TRANSITIVE, as a registry would enforce), by Avro's resolution rules checked
statically and by fastavro resolving generated old data with the new schema — except the versions an
upcaster declared next to the service's messages reads (README "Schema evolution"), which must
decode through it. The checker itself (`flexchain.compat`, what `flexchain schemas` runs) is tested
on changes that must pass and changes that must fail."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastavro import parse_schema

from flexchain.catalog import all_messages, all_upcasters
from flexchain.compat import incompatibilities, resolve_samples
from flexchain.evolution import unreadable
from flexchain.history import Version, recorded
from flexchain.schemas import SCHEMAS_DIR, load_json, schema_path, self_contained
from flexchain.serde import Target, full_name

CURRENT = {f"{c.SERVICE}/{c.__name__}": c for c in all_messages()}
FORMER = {f"{c.SERVICE}/{old}": c for c in all_messages() for old in c.FORMERLY}  # a renamed type's old names
HISTORY_ITEMS = [(f"{service}/{name}", versions) for (service, name), versions in recorded(SCHEMAS_DIR).items()]
UPCASTERS = all_upcasters()


def test_there_is_a_recorded_history() -> None:
    # every service's every type (schemas/history/), and the former names of renamed ones (their old records)
    assert {k for k, _ in HISTORY_ITEMS} == set(CURRENT) | set(FORMER)
    assert any(len(v) > 1 for _, v in HISTORY_ITEMS)  # at least one schema has evolved


@pytest.mark.parametrize(("key", "versions"), HISTORY_ITEMS, ids=[k for k, _ in HISTORY_ITEMS])
def test_current_schema_reads_every_earlier_version(key: str, versions: list[Version]) -> None:
    cls = CURRENT.get(key) or FORMER.get(key)
    assert cls is not None, f"{key} has published versions but no message class any more: subscribers lose a type"
    current = self_contained(load_json(schema_path(cls, SCHEMAS_DIR)), SCHEMAS_DIR)
    renamed = key not in CURRENT  # versions of a former name: every one of them is earlier than the class
    if not renamed:
        assert versions[-1].schema() == current, f"{key}: the current schema is not the last recorded version"
    for old in versions if renamed else versions[:-1]:
        writer = old.schema()
        if any(u.covers(full_name(writer), writer) for u in UPCASTERS):  # Avro alone cannot: its upcaster must
            assert unreadable(old, writer, {cls.full_name(): Target(cls, parse_schema(current, expand=True))}, UPCASTERS) == []
            continue
        static = incompatibilities(writer, current)
        dynamic = resolve_samples(writer, current)
        assert not static and not dynamic, (
            f"{key}: the current schema cannot read data written with {old.path.name}: {static + dynamic}. Make the change "
            "compatible (a default for a new field, keep union branches), declare an Upcaster, or publish a new message type."
        )


# ------------------------------------------------------------------------ the checker, on known cases

BASE: dict[str, Any] = {
    "type": "record",
    "name": "Thing",
    "namespace": "t",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "qty", "type": "int"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {
            "name": "lines",
            "type": {"type": "array", "items": {"type": "record", "name": "Line", "fields": [{"name": "sku", "type": "string"}]}},
        },
        {"name": "tags", "type": {"type": "map", "values": "long"}},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
    ],
}


def _change(edit: Any) -> dict[str, Any]:
    s = copy.deepcopy(BASE)
    edit(s)
    return s


def _field(s: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in s["fields"] if f["name"] == name)


COMPATIBLE = {
    "identical": lambda s: None,
    "new optional field": lambda s: s["fields"].append({"name": "extra", "type": ["null", "long"], "default": None}),
    "new field with default": lambda s: s["fields"].append({"name": "n", "type": "long", "default": 0}),
    "field removed": lambda s: s["fields"].pop(2),
    "int promoted to long": lambda s: _field(s, "qty").update(type="long"),
    "union gains a branch": lambda s: _field(s, "note").update(type=["null", "string", "long"]),
    "enum gains a symbol": lambda s: _field(s, "kind")["type"]["symbols"].append("C"),
    "nested record gains optional field": lambda s: _field(s, "lines")["type"]["items"]["fields"].append(
        {"name": "x", "type": ["null", "string"], "default": None}
    ),
    "field renamed with alias": lambda s: _field(s, "id").update(name="ident", aliases=["id"]),
}
INCOMPATIBLE = {
    "new required field": lambda s: s["fields"].append({"name": "member_id", "type": "string"}),
    "long narrowed to int": lambda s: _field(s, "tags")["type"].update(values="int"),
    "string to long": lambda s: _field(s, "id").update(type="long"),
    "union loses a branch": lambda s: _field(s, "note").update(type="null"),
    "enum loses a symbol": lambda s: _field(s, "kind")["type"].update(symbols=["A"]),
    "nested record gains required field": lambda s: _field(s, "lines")["type"]["items"]["fields"].append(
        {"name": "x", "type": "string"}
    ),
    "record renamed": lambda s: _field(s, "lines")["type"]["items"].update(name="Row"),
    "array becomes map": lambda s: _field(s, "lines").update(type={"type": "map", "values": "string"}),
}


@pytest.mark.parametrize("name", list(COMPATIBLE))
def test_checker_accepts(name: str) -> None:
    new = _change(COMPATIBLE[name])
    assert incompatibilities(BASE, new) == []
    assert resolve_samples(BASE, new) == []


@pytest.mark.parametrize("name", list(INCOMPATIBLE))
def test_checker_refuses(name: str) -> None:
    new = _change(INCOMPATIBLE[name])
    assert incompatibilities(BASE, new), "static rules missed it"
    # generated data does not always exercise a removed union branch or enum symbol; when it does, fastavro agrees
    if name not in ("union loses a branch", "enum loses a symbol"):
        assert resolve_samples(BASE, new, count=200), "fastavro resolved it"
