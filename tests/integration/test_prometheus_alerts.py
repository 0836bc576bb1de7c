"""The alert rules and the dashboard on a REAL Prometheus (Debian's `prometheus` 2.42, in a temp data
dir on a free port, scraping and evaluating every second) that scrapes every service running on the
test broker:

* poison records sent to inventory make `FlexchainDeadLetters` go pending, then firing — read from
  Prometheus's own `/api/v1/alerts`; before them it is silent (the counters start at 0);
* every rule evaluates without error on the real series (`/api/v1/rules`), and the kernel records
  carry each running service;
* every query of deploy/grafana/flexchain.json (`$service` and `$__rate_interval` substituted as
  Grafana would) answers with data from Prometheus itself.

The rules file is the real deploy/prometheus/alerts.yml with every `for:` shortened to 3 s (so the
test takes seconds, not minutes); the real durations are covered by the promtool unit tests
(deploy/prometheus/tests/, run by tests/deploy/test_alerts.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from flexchain import kafka
from flexchain.catalog import available_services
from flexchain.settings import PROJECT_ROOT, Settings
from flexchain.ticks import ClockTicked
from services.inventory.messages import ReceiveStock, RegisterSku
from tests.support import Suite, envelope_for, eventually, post, publish, publish_raw, run

pytestmark = pytest.mark.broker

ALERTS = PROJECT_ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "flexchain.json"
SHORT_FOR = "3s"
UNREADABLE = b"\x00\x00\x00\x00\x07garbage"  # the wire format's magic byte, a schema id no one registered
TICK = 1_795_661_200_000  # 2026-11-26T02:46:40Z, business time of the test's clock tick


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    http: httpx.Client

    def api(self, path: str, **params: str) -> Any:
        resp = self.http.get(f"{self.url}/api/v1/{path}", params=params)
        body = resp.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name]


def _short_rules(dest: Path) -> None:
    """alerts.yml with every `for:` at SHORT_FOR; the rest (expressions, windows, labels) as is."""
    text, n = re.subn(r"(?m)^(\s+for: )\S+$", rf"\g<1>{SHORT_FOR}", ALERTS.read_text())
    assert n == sum(1 for g in yaml.safe_load(text)["groups"] for r in g["rules"] if "alert" in r)
    dest.write_text(text)


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.skip("prometheus not installed (Debian package `prometheus`; scripts/setup-deploy-tools.sh installs it as root)")
    return found


@pytest.fixture(scope="module")
def suite(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Suite, dict[str, str]]]:
    """Every service in the checkout, own topic prefix; yields the suite and each service's URL."""
    data = tmp_path_factory.mktemp("prom-suite") / "data"
    data.mkdir()
    s = Suite(kafka_bootstrap, f"prom{uuid.uuid4().hex[:6]}-", data)
    try:
        procs = {name: s.start(name, wait=False) for name in available_services()}
        for proc in procs.values():
            proc.wait_ready(timeout=120)
        yield s, {name: proc.url for name, proc in procs.items()}
    finally:
        s.stop_all()


@pytest.fixture(scope="module")
def stopped_inventory(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another inventory (its own topic prefix) whose event log holds a record no schema reads: it
    starts with that partition stopped (never skipped). Yields its URL."""
    data = tmp_path_factory.mktemp("prom-stopped") / "data"
    data.mkdir()
    s = Suite(kafka_bootstrap, f"promstop{uuid.uuid4().hex[:6]}-", data)
    events = s.topic("inventory.events")
    run(kafka.ensure_topics(Settings(kafka_bootstrap_servers=kafka_bootstrap), [events]))
    run(publish_raw(kafka_bootstrap, events, [(b"sku-0", UNREADABLE)]))
    try:
        yield s.start("inventory", wait=False).url
    finally:
        s.stop_all()


@pytest.fixture(scope="module")
def prometheus(
    prometheus_bin: str, suite: tuple[Suite, dict[str, str]], stopped_inventory: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    from tests.conftest import free_port

    root = tmp_path_factory.mktemp("prometheus")
    _short_rules(root / "alerts.yml")
    scraped = [*suite[1].items(), ("inventory", stopped_inventory)]
    targets = [{"targets": [url.removeprefix("http://")], "labels": {"service": name}} for name, url in scraped]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [{"job_name": "flexchain", "static_configs": targets}],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = root / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                prometheus_bin,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", proc, log, httpx.Client(timeout=10))
    try:

        def all_up() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{prom.url}/-/ready", timeout=5).status_code != 200:
                    return False  # starting (503)
            except httpx.HTTPError:
                return False  # not listening yet
            active = prom.api("targets")["activeTargets"]
            return len(active) == len(targets) and all(t["health"] == "up" for t in active)

        eventually(all_up, timeout=30, what="Prometheus scrapes every service")
        yield prom
    finally:
        prom.http.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_poison_records_make_the_dead_letter_alert_pending_then_firing(
    prometheus: Prometheus, suite: tuple[Suite, dict[str, str]]
) -> None:
    s, _ = suite
    # the counters are exported at 0 from the start (a first dead letter is an increase), recorded per service
    zero = eventually(
        lambda: prometheus.query('flexchain:dlq_records_total{service="inventory", reason="not in the wire format"}'),
        timeout=20,
        what="inventory's DLQ counter recorded at 0",
    )
    assert float(zero[0]["value"][1]) == 0
    time.sleep(3)  # evidence of absence needs time: a few evaluations of the rule before the poison
    assert prometheus.alerts("FlexchainDeadLetters") == [], "fires with no dead letter"

    run(
        publish_raw(
            s.bootstrap,
            s.topic("inventory.commands"),
            [(b"junk-1", b"\xde\xad\xbe\xef not avro"), (b"junk-2", b"plain text, no magic byte")],
        )
    )
    states: list[str] = []

    def fired() -> dict[str, Any] | None:
        for a in prometheus.alerts("FlexchainDeadLetters"):
            if a["labels"].get("service") == "inventory":
                if not states or states[-1] != a["state"]:
                    states.append(a["state"])
                if a["state"] == "firing":
                    return a
        return None

    alert = eventually(fired, timeout=40, interval=0.1, what="FlexchainDeadLetters firing for inventory")
    assert states == ["pending", "firing"], states
    assert alert["labels"] == {
        "alertname": "FlexchainDeadLetters",
        "service": "inventory",
        "reason": "not in the wire format",
        "severity": "ticket",
    }
    assert alert["annotations"]["runbook_url"].endswith("deploy/README.md#flexchaindeadletters")
    assert "inventory" in alert["annotations"]["summary"]
    others = {a["labels"]["service"] for a in prometheus.alerts("FlexchainDeadLetters")}
    assert others == {"inventory"}, others


def test_a_stopped_partition_fires_its_alert_and_the_instance_is_still_scraped(
    prometheus: Prometheus, stopped_inventory: str
) -> None:
    """The instance answers /metrics although its business gauges cannot read the stopped partition
    (they say NaN): Prometheus sees `partition_stopped` at 1, not a service down."""
    instance = stopped_inventory.removeprefix("http://")
    where = eventually(
        lambda: httpx.get(f"{stopped_inventory}/ready", timeout=5).json().get("stopped_partitions"),
        timeout=60,
        what="the partition reported stopped by /ready",
    )

    def firing() -> dict[str, Any] | None:
        return next((a for a in prometheus.alerts("FlexchainPartitionStopped") if a["state"] == "firing"), None)

    alert = eventually(firing, timeout=60, interval=0.5, what="FlexchainPartitionStopped firing")
    assert {k: alert["labels"][k] for k in ("service", "partition", "severity")} == {
        "service": "inventory",
        "partition": str(where[0]["partition"]),
        "severity": "page",
    }
    up = prometheus.query(f'up{{instance="{instance}"}}')
    assert [float(x["value"][1]) for x in up] == [1.0], "the stopped instance's scrape must not fail"
    assert not [a for a in prometheus.alerts("FlexchainServiceDown") if a["labels"].get("instance") == instance]
    low = prometheus.query(f'flexchain_inventory_low_stock_skus{{instance="{instance}"}}')
    assert low and low[0]["value"][1] == "NaN", low


def test_every_rule_evaluates_on_the_real_series(prometheus: Prometheus, suite: tuple[Suite, dict[str, str]]) -> None:
    want = {r.get("alert") or r.get("record") for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}

    def evaluated() -> list[dict[str, Any]]:
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        return rules if all(r.get("lastEvaluation", "").startswith("2") for r in rules) else []

    rules = eventually(evaluated, timeout=20, what="every rule evaluated once")
    assert {r["name"] for r in rules} == want
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not broken, broken
    services = set(suite[1])

    def services_of(record: str) -> set[str]:
        return {x["metric"]["service"] for x in prometheus.query(record)}

    for record in ("flexchain:ready", "flexchain:consumer_lag_records", "flexchain:rebuild_progress_ratio"):
        eventually(lambda record=record: services_of(record) == services, timeout=20, what=f"{record} for every service")
    # the business alerts read gauges that exist (a typo in a name would be silent forever)
    for gauge in (
        "flexchain_inventory_low_stock_skus",
        'flexchain_presale_signalled_campaigns{level="red"}',
        "flexchain_commission_payout_overdue_seconds",
    ):
        if gauge.split("_")[1] in services:
            assert prometheus.query(gauge), f"{gauge}: no series in Prometheus"


def _substitute(expr: str, service: str, rate_interval: str) -> str:
    return expr.replace("${service}", service).replace("$service", service).replace("$__rate_interval", rate_interval)


SELECTOR = re.compile(r"flexchain_\w+(?:\{[^}]*\})?")


def test_the_dashboard_queries_answer_from_prometheus(prometheus: Prometheus, suite: tuple[Suite, dict[str, str]]) -> None:
    """Every query of the dashboard, asked of Prometheus, answers with data — except where Prometheus
    holds no series at all for one of its selectors yet (a per-rule gauge with no gift rule, an event
    type nothing has produced): then the panel is empty because the suite is, not because the query
    is wrong; that is checked by asking Prometheus for the selector itself."""
    s, urls = suite
    # traffic for the rate panels: commands for inventory (low stock included), a clock tick every
    # service's router reads, a presale campaign for the per-campaign gauges
    reg, rec = (
        RegisterSku(sku="prom-sku", name="Prometheus test"),
        ReceiveStock(sku="prom-sku", warehouse="w1", qty=5, reference="PO-prom"),
    )
    run(publish(s.bootstrap, s.topic("inventory.commands"), [(reg, envelope_for(reg)), (rec, envelope_for(rec))]))
    tick = ClockTicked(clock_id="clock", time=TICK)
    run(publish(s.bootstrap, s.topic("clock.ticks"), [(tick, envelope_for(tick, at=TICK))]))
    if "presale" in urls:
        body = {"campaign_id": "prom-c", "product": "x", "unit_cost": 100, "fan_base": 1000, "moq": 1, "max_capacity": 10}
        assert post(f"{urls['presale']}/campaigns", body).status_code == 200

    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for row in panels for panel in [row, *row.get("panels", [])] for t in panel.get("targets", [])]
    repeated = [e for e in exprs if "$service" in e or "${service}" in e]
    assert repeated and len(repeated) < len(exprs)
    queries = sorted({_substitute(e, svc, "10s") for e in exprs for svc in (urls if e in repeated else ["-"])})

    answered: set[str] = set()

    def unexplained() -> list[str]:
        """The queries with no data although every series they select exists."""
        with ThreadPoolExecutor(8) as pool:
            got = dict(zip(queries, pool.map(prometheus.query, queries), strict=True))
            answered.clear()
            answered.update(q for q, result in got.items() if result)
            empty = [q for q in queries if q not in answered]
            selectors = {q: SELECTOR.findall(q) for q in empty}
            assert all(selectors.values()), selectors
            wanted = sorted({sel for sels in selectors.values() for sel in sels})
            exists = dict(zip(wanted, pool.map(lambda sel: bool(prometheus.query(f"count({sel})")), wanted), strict=True))
        return [q for q in empty if all(exists[sel] for sel in selectors[q])]

    # most panels show data; the optional notifier's row is left out: the suite does not run notify
    # (tests/integration/test_notify.py covers its metrics), so its selectors have no series here
    running = [q for q in queries if all(sel.split("_")[1] in urls for sel in SELECTOR.findall(q))]

    def settled() -> bool:
        """Both at once, polled: a series the traffic has not reached yet (a service that has not read
        the tick, a target not scraped since) makes its query 'explained' for a while, so the share of
        panels with data is read only once no query is empty for a wrong reason."""
        wrong = unexplained()
        assert not wrong, f"no data although every series exists: {wrong}"
        dark = sorted(set(running) - answered)
        assert len(running) - len(dark) >= 0.9 * len(running), f"{len(dark)} of {len(running)} without data: {dark}"
        return True

    # rates need two scrapes of the new traffic
    eventually(settled, timeout=60, interval=0.5, what="every dashboard query answers")
