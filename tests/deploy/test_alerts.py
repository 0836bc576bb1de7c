"""The alert rules (deploy/prometheus/alerts.yml): `promtool check rules`/`check config` accept them,
`promtool test rules` runs their unit tests (deploy/prometheus/tests/*.yml, real `for:` durations),
every alert has a test where it fires and a near miss where it stays silent, the tests can fail, the
Kubernetes PrometheusRule holds exactly the same groups (and passes the CRD's schema), and every
alert's runbook_url points to a heading of deploy/README.md. promtool comes with Debian's `prometheus`
package (scripts/setup-deploy-tools.sh installs it when root, as in CI). The rules evaluated by a
real Prometheus on the running services: tests/integration/test_prometheus_alerts.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from flexchain.settings import PROJECT_ROOT
from tests.deploy.conftest import validate_prometheus_rules

PROM = PROJECT_ROOT / "deploy" / "prometheus"
ALERTS = PROM / "alerts.yml"
UNIT_TESTS = sorted((PROM / "tests").glob("*.yml"))
K8S_RULE = PROJECT_ROOT / "deploy" / "k8s" / "prometheus-rules.yaml"
RUNBOOKS = PROJECT_ROOT / "deploy" / "README.md"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not installed (Debian package `prometheus`; scripts/setup-deploy-tools.sh installs it as root)")
    return found


def _run(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


def _groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(ALERTS.read_text())["groups"]
    return groups


def _alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in _groups() for r in g["rules"] if "alert" in r}


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", duration))


def test_promtool_checks_the_rules_and_the_config() -> None:
    proc = _run("check", "rules", str(ALERTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    proc = _run("check", "config", str(PROM / "prometheus.yml"))  # loads alerts.yml through rule_files
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len([r for g in _groups() for r in g['rules']])} rules found" in proc.stdout


def test_promtool_unit_tests_pass() -> None:
    assert len(UNIT_TESTS) >= 2
    proc = _run("test", "rules", *(p.name for p in UNIT_TESTS), cwd=PROM / "tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(UNIT_TESTS), proc.stdout


def test_every_alert_fires_in_a_test_and_stays_silent_on_a_near_miss() -> None:
    """Structure of the unit tests: each alert is expected firing (with `severity` and `service`) in
    some test, and in a test named "near miss…" it is expected silent at a time past its `for:`;
    every recorded series is checked by a `promql_expr_test`."""
    alerts = _alerts()
    records = {r["record"] for g in _groups() for r in g["rules"] if "record" in r}
    fired: dict[str, list[dict[str, str]]] = {}
    missed: set[str] = set()
    exprs: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            exprs |= {t["expr"] for t in case.get("promql_expr_test", [])}
            for t in case.get("alert_rule_test", []):
                name = t["alertname"]
                assert name in alerts, f"{path.name}: test of an unknown alert {name}"
                if t.get("exp_alerts"):
                    fired.setdefault(name, []).extend(a["exp_labels"] for a in t["exp_alerts"])
                elif case.get("name", "").startswith("near miss") and _seconds(t["eval_time"]) > _seconds(
                    alerts[name].get("for", "0s")
                ):
                    missed.add(name)
    assert set(fired) == set(alerts), f"never expected firing: {set(alerts) - set(fired)}"
    assert missed == set(alerts), f"no near miss: {set(alerts) - missed}"
    for name, labels in fired.items():
        for lab in labels:
            assert lab["severity"] in ("page", "ticket") and lab["service"], (name, lab)
    assert records <= exprs, f"recorded series without a test: {records - exprs}"


def test_every_alert_follows_the_conventions() -> None:
    for name, rule in _alerts().items():
        assert name.startswith("Flexchain"), name
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
        # `service`: a fixed label here, else kept by the expression (the unit tests' firing labels show it)


def test_the_unit_tests_can_fail(tmp_path: Path) -> None:
    """A rule made a little looser or stricter than its tests expect fails them: the near miss of
    old dead letters now fires, and an overdue payout batch no longer does."""
    text = ALERTS.read_text()
    looser = text.replace("increase(flexchain:dlq_records_total[15m])) > 0", "increase(flexchain:dlq_records_total[15m])) >= 0")
    stricter = text.replace(
        "max(flexchain_commission_payout_overdue_seconds) > 2 * 3600",
        "max(flexchain_commission_payout_overdue_seconds) > 3 * 3600",
    )
    for broken, test_file in ((looser, "kernel.yml"), (stricter, "business.yml")):
        assert broken != text
        (tmp_path / "alerts.yml").write_text(broken)
        (tmp_path / "tests").mkdir(exist_ok=True)
        shutil.copy(PROM / "tests" / test_file, tmp_path / "tests" / test_file)
        proc = _run("test", "rules", test_file, cwd=tmp_path / "tests")
        assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def _k8s_rule() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(K8S_RULE.read_text()) if d]
    assert len(docs) == 1
    doc: dict[str, Any] = docs[0]
    return doc


def test_the_prometheus_rule_for_kubernetes_holds_the_same_groups(tmp_path: Path) -> None:
    """deploy/k8s/prometheus-rules.yaml is generated from alerts.yml (test_k8s checks it is up to
    date); here: equal as data, and promtool accepts its spec as a rule file."""
    doc = _k8s_rule()
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert doc["spec"]["groups"] == _groups()
    spec = tmp_path / "spec.yml"
    spec.write_text(yaml.safe_dump(doc["spec"]))
    proc = _run("check", "rules", str(spec))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kust = yaml.safe_load((PROJECT_ROOT / "deploy/k8s/kustomization.yaml").read_text())
    assert K8S_RULE.name in kust["resources"]


def test_the_prometheus_rule_passes_the_crd_schema(deploy_tools: dict[str, str]) -> None:
    doc = _k8s_rule()
    assert validate_prometheus_rules([doc], deploy_tools["K8S_MODELS_NODE_MODULES"]) == [
        {"name": "flexchain-alerts", "error": None}
    ]
    broken = json.loads(json.dumps(doc))
    broken["spec"]["groups"][0]["rules"][-1]["for"] = "5 minutes"
    del broken["spec"]["groups"][1]["name"]
    (result,) = validate_prometheus_rules([broken], deploy_tools["K8S_MODELS_NODE_MODULES"])
    assert result["error"] and "must" in result["error"]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a markdown file (lowercase, punctuation dropped,
    spaces to dashes), plus explicit `<a id=...>`."""
    anchors = set(re.findall(r'<a (?:id|name)="([^"]+)"', markdown))
    for line in markdown.splitlines():
        m = re.match(r"#{1,6} (.+)", line)
        if m:
            anchors.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return anchors


def test_every_alert_has_its_runbook_in_deploy_readme() -> None:
    text = RUNBOOKS.read_text()
    anchors = github_anchors(text)
    for name, rule in _alerts().items():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path.endswith("/deploy/README.md"), url
        assert anchor == name.lower() and anchor in anchors, f"{name}: no heading for #{anchor} in deploy/README.md"
        section = text.split(f"### {name}\n", 1)[1].split("\n#", 1)[0]
        for part in ("Means", "Check", "Do"):
            assert f"**{part}**" in section, f"{name}: the runbook lacks **{part}**"
    assert "flexchain-kernel" in {g["name"] for g in _groups()}


def test_compose_mounts_the_rules_beside_the_config() -> None:
    prom = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert prom["rule_files"] == ["alerts.yml"]
    assert any(j["job_name"] == "flexchain" for j in prom["scrape_configs"])  # FlexchainServiceDown's job
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
