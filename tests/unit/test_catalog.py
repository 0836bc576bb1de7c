"""The catalogue of services, from their declarations: the five exactly-once core services in
`PACKAGES`/`SERVICES`, the optional notifier apart as an edge service (`EDGES`), and a kernel that
names neither (issue 17: a new service is one folder)."""

from __future__ import annotations

import ast
from pathlib import Path

from flexchain import access, security
from flexchain.catalog import EDGES, PACKAGES, SERVICES, EdgePackage
from flexchain.ops import KINDS

KERNEL = Path(__file__).resolve().parents[2] / "libs" / "flexchain"


def test_the_core_services_and_the_edge_service_are_listed_apart() -> None:
    assert list(SERVICES) == ["order", "inventory", "presale", "commission", "loyalty"] == list(PACKAGES)
    assert list(EDGES) == ["notify"]
    notify = EDGES["notify"]
    assert isinstance(notify, EdgePackage) and notify.http_port == 8086 and notify.package == "services.notify"
    assert notify.topics() == {"dlq": "notify.dlq", "redrive": "notify.redrive"}


def test_the_notifier_s_access_is_its_own_declaration() -> None:
    got = EDGES["notify"].access("t1-")
    assert got == access.Access(
        "notify",
        reads=(*(f"t1-{s}.events" for s in SERVICES), "t1-notify.redrive"),
        writes=("t1-notify.dlq",),
        creates=("t1-notify.dlq", "t1-notify.redrive"),
        groups=("t1-notify",),
    )
    assert security.all_acls()["notify"] == security.bindings(EDGES["notify"].access())
    operator = access.operator_access(list(SERVICES))
    assert "notify.dlq" in operator.reads and {"notify.redrive", "notify.dlq"} <= set(operator.writes)


def test_entity_kinds_come_from_the_services_declarations() -> None:
    declared = {kind: (name, path) for name, p in PACKAGES.items() for kind, path in p.entities.items()}
    assert declared == KINDS
    assert PACKAGES["inventory"].entities == {"sku": "/skus/{}", "skus": "/skus"}


def _names_an_edge(text: str) -> bool:
    return any(text == e or text.startswith(f"{e}.") for e in EDGES)


def _service_names_in(path: Path) -> list[str]:
    """Imports of a service package, and string literals that are an edge service's name or one of its topics."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("services"):
            found.append(f"from {node.module} import")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.startswith("services")]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _names_an_edge(node.value):
            found.append(repr(node.value))
    return found


def test_the_kernel_names_no_edge_service_and_imports_no_service(tmp_path: Path) -> None:
    # the runtime, not flexchain.tools (demo, simulator, report: they drive the services by name)
    runtime = [p for p in sorted(KERNEL.rglob("*.py")) if "tools" not in p.relative_to(KERNEL).parts]
    named = {str(p.relative_to(KERNEL)): n for p in runtime if (n := _service_names_in(p))}
    assert named == {}
    # and the check can fail
    probe = tmp_path / "probe.py"
    probe.write_text('from services.notify import app\nDLQ = "notify.dlq"\n', encoding="utf-8")
    assert _service_names_in(probe) == ["from services.notify import", "'notify.dlq'"]
