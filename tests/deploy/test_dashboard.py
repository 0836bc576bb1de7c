"""The Grafana dashboard: it loads, its layout is sound, and every metric any of its queries reads
(parsed with a PromQL parser, `$service` expanded) exists in the /metrics output of the running
services — order and inventory always, presale/commission/loyalty when their code is in the checkout —
and the notifier's row in notify's /metrics."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flexchain.catalog import SERVICES, available_services
from flexchain.settings import PROJECT_ROOT
from tests.support import Suite, eventually

DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "flexchain.json"


def _load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in d["panels"]:
        out.append(p)
        out += p.get("panels", [])
    return out


def _queries(d: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(d) for t in p.get("targets", [])]


def metric_names(expr: str, service: str) -> set[str]:
    import promql_parser

    text = expr.replace("${service}", service).replace("$service", service).replace("$__rate_interval", "5m")
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(text), visit)
    return names


def test_the_dashboard_loads_and_is_laid_out(deploy_tools: dict[str, str]) -> None:
    d = _load()
    assert d["uid"] == "flexchain" and d["title"]
    panels = _panels(d)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    rows = [p for p in panels if p["type"] == "row"]
    assert rows[0]["repeat"] == "service"
    variable = next(v for v in d["templating"]["list"] if v["name"] == "service")
    regex = re.compile(variable["regex"].strip("/"))
    assert regex.fullmatch("flexchain_order_ready").group(1) == "order"
    titles = " ".join(p["title"].lower() for p in panels)
    assert not regex.fullmatch("flexchain_notify_ready")  # notify has its own row, not the kernel's
    for needed in (
        "notification",
        "throughput",
        "latency",
        "lag",
        "rebuild",
        "dead letters",
        "low-stock",
        "escrow",
        "commission",
        "churn",
        "risk",
    ):
        assert needed in titles, needed
    for expr in _queries(d):
        assert metric_names(expr, "order"), f"no metric in {expr}"


@pytest.fixture(scope="module")
def scraped(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Start every service in the checkout (own topic prefix) and read each one's /metrics."""
    data = tmp_path_factory.mktemp("dash") / "data"
    data.mkdir()
    suite = Suite(kafka_bootstrap, f"dash{uuid.uuid4().hex[:6]}-", data)
    out: dict[str, set[str]] = {}
    hooks = [{"name": "ops", "url": "http://127.0.0.1:9/", "secret": "s" * 16, "events": ["*"]}]
    try:
        procs = {name: suite.start(name, wait=False) for name in available_services()}
        procs["notify"] = suite.start("notify", wait=False, FLEXCHAIN_NOTIFY_WEBHOOKS=json.dumps(hooks))
        for name, proc in procs.items():
            proc.wait_ready(timeout=120)
            try:
                resp = eventually(lambda url=proc.url: _scrape(url), timeout=20, what=f"{name} /metrics answers 200")
            except AssertionError as exc:
                time.sleep(1)
                raise AssertionError(f"{exc}\n{proc.tail(60)}") from None
            out[name] = _exposed(resp.text)
    finally:
        suite.stop_all()
    return out


def _scrape(url: str) -> httpx.Response | None:
    resp = httpx.get(f"{url}/metrics", timeout=10)
    return resp if resp.status_code == 200 else None


def _exposed(text: str) -> set[str]:
    names: set[str] = set()
    for fam in text_string_to_metric_families(text):
        names.add(fam.name)
        names |= {s.name for s in fam.samples}
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "summary": ["_sum", "_count"]}
        names |= {fam.name + suffix for suffix in suffixes.get(fam.type, [])}  # families with no child yet
    return names


@pytest.mark.broker
def test_every_queried_metric_exists_in_the_services_metrics(scraped: dict[str, set[str]]) -> None:
    assert {"order", "inventory", "notify"} <= set(scraped)
    kernel = [s for s in scraped if s != "notify"]
    owners = [*SERVICES, "notify"]
    d = _load()
    missing = []
    checked = 0
    for expr in _queries(d):
        repeated = "$service" in expr or "${service}" in expr
        for service in kernel if repeated else ["-"]:
            for name in metric_names(expr, service):
                owner = re.match(r"flexchain_(.+?)_", name)
                svc = next((s for s in owners if name.startswith(f"flexchain_{s}_")), None)
                assert owner and svc, f"{name}: not a flexchain service metric"
                if svc not in scraped:
                    continue  # that service's code is not in this checkout yet
                checked += 1
                if name not in scraped[svc]:
                    missing.append(f"{name} (service {svc}) in: {expr}")
    assert not missing, "\n".join(missing)
    assert checked >= 9 * len(kernel)


@pytest.mark.broker
def test_the_service_variable_finds_every_running_service(scraped: dict[str, set[str]]) -> None:
    variable = next(v for v in _load()["templating"]["list"] if v["name"] == "service")
    pattern = re.compile(variable["regex"].strip("/"))
    found = {m.group(1) for names in scraped.values() for n in names if (m := pattern.fullmatch(n))}
    assert found == set(scraped) - {"notify"}


def test_metric_check_can_fail() -> None:
    assert "flexchain_order_no_such_metric" in metric_names("rate(flexchain_${service}_no_such_metric[5m])", "order")
    assert _exposed("# HELP x_total a\n# TYPE x_total counter\n") >= {"x_total"}
    assert Path(DASHBOARD).is_file()
