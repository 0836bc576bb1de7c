"""`flexchain schemas` on a copy of the repo's schemas/: a developer changes a message class; a change
that would leave a recorded version unreadable is refused (exit 1, the reasons listed, nothing
written); a compatible one is written and recorded as the next version; `flexchain schemas check`
(CI) passes on the repo and fails when the history and the schemas disagree."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

import flexchain.catalog
from flexchain.cli import app
from flexchain.history import recorded
from flexchain.messages import Enveloped, Message
from flexchain.schemas import SCHEMAS_DIR, write_schemas
from flexchain.serde import Codec, Upcaster, filling, lacking
from services.inventory.messages import InventoryMessage, ReceiveStock
from tests.support import envelope_for

RUNNER = CliRunner()
ORIGINAL = flexchain.catalog.all_messages()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, copy)
    return copy


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _with(monkeypatch: pytest.MonkeyPatch, cls: type[Message], upcasters: list[Upcaster] | None = None) -> None:
    """The catalogue as after a developer edited `cls` (same service and name as the original)."""
    classes = [cls if (c.SERVICE, c.__name__) == (cls.SERVICE, cls.__name__) else c for c in ORIGINAL]
    monkeypatch.setattr(flexchain.catalog, "all_messages", lambda: classes)
    if upcasters is not None:
        monkeypatch.setattr(flexchain.catalog, "all_upcasters", lambda: upcasters)


class Edited:
    """inventory's ReceiveStock after a developer's edit: a new field with a default (compatible)."""

    @dataclass(frozen=True, slots=True)
    class ReceiveStock(InventoryMessage):
        """Goods arrived in a warehouse."""

        sku: str
        warehouse: str
        qty: int
        reference: str = ""
        batch: str | None = None


class Breaking:
    """The same edit with the new field required: old records have no value for it."""

    @dataclass(frozen=True, slots=True)
    class ReceiveStock(InventoryMessage):
        """Goods arrived in a warehouse."""

        sku: str
        warehouse: str
        qty: int
        batch: str
        reference: str = ""


def test_the_repo_passes_the_check() -> None:
    result = RUNNER.invoke(app, ["schemas", "check"])
    assert result.exit_code == 0, result.output
    assert "0 problem(s)" in result.output


def test_a_breaking_change_is_refused_and_nothing_is_written(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert list(ReceiveStock.__dataclass_fields__) == ["sku", "warehouse", "qty", "reference"], "the edit below"
    _with(monkeypatch, Breaking.ReceiveStock)
    before = _tree(root)
    result = RUNNER.invoke(app, ["schemas", "--root", str(root)])
    assert result.exit_code == 1
    assert "refused" in result.output
    assert "flexchain.inventory.ReceiveStock: inventory/ReceiveStock.v1" in result.output
    assert "/batch: new field without a default" in result.output
    assert "Nothing was written" in result.output
    assert _tree(root) == before


def test_a_compatible_change_is_written_and_recorded_as_the_next_version(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n = len(recorded(root)[("inventory", "ReceiveStock")])
    old_codec = Codec(ORIGINAL, root=root)  # records of the release before the change
    old = old_codec.encode(
        Enveloped(
            envelope=envelope_for(ReceiveStock(sku="mask", warehouse="sh", qty=5)),
            message=ReceiveStock(sku="mask", warehouse="sh", qty=5),
        )
    )
    edited = Edited.ReceiveStock
    _with(monkeypatch, edited)
    result = RUNNER.invoke(app, ["schemas", "write", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert f"inventory/ReceiveStock.v{n + 1}.avsc" in result.output and "1 new version(s) recorded" in result.output
    history = recorded(root)[("inventory", "ReceiveStock")]
    assert [v.number for v in history] == list(range(1, n + 2))
    assert "batch" in {f["name"] for f in history[-1].schema()["fields"]}
    assert RUNNER.invoke(app, ["schemas", "check", "--root", str(root)]).exit_code == 0
    # the new release reads the old record: the new field takes its default
    new_codec = Codec(flexchain.catalog.all_messages(), root=root)
    message = new_codec.decode(old).message
    assert type(message) is edited and message.batch is None  # type: ignore[attr-defined]


def test_an_upcaster_makes_a_required_field_acceptable(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upcaster = Upcaster("flexchain.inventory.ReceiveStock", filling(batch="unknown"), applies=lacking("batch"))
    _with(monkeypatch, Breaking.ReceiveStock, [*flexchain.catalog.all_upcasters(), upcaster])
    result = RUNNER.invoke(app, ["schemas", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert RUNNER.invoke(app, ["schemas", "check", "--root", str(root)]).exit_code == 0


def test_check_fails_when_the_current_schema_is_not_recorded(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _with(monkeypatch, Edited.ReceiveStock)
    write_schemas(flexchain.catalog.all_messages(), root)  # written without recording (an old `flexchain schemas`, or by hand)
    result = RUNNER.invoke(app, ["schemas", "check", "--root", str(root)])
    assert result.exit_code == 1
    assert "flexchain.inventory.ReceiveStock: the current schema is not the last recorded version" in result.output


def test_check_fails_when_a_recorded_type_has_no_class_left(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting (or renaming) a message class would make its recorded records unreadable."""
    monkeypatch.setattr(flexchain.catalog, "all_messages", lambda: [c for c in ORIGINAL if c is not ReceiveStock])
    result = RUNNER.invoke(app, ["schemas", "check", "--root", str(root)])
    assert result.exit_code == 1
    assert "writer type flexchain.inventory.ReceiveStock has no class" in result.output
    refused = RUNNER.invoke(app, ["schemas", "--root", str(root)])
    assert refused.exit_code == 1 and "writer type flexchain.inventory.ReceiveStock has no class" in refused.output
