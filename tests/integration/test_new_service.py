"""Issue 17: a new service is one folder. The ping service (tests/fixtures/services/ping) is named
nowhere outside its folder; pointing FLEXCHAIN_SERVICE_PACKAGES at the fixtures' package is all it
takes for it to get its deployment (compose, Prometheus, Kubernetes, the Dockerfile's EXPOSE), its ACLs,
its place in the AsyncAPI document and its schemas, its entity kind in the ops commands (`flexchain
as-of`), and for `flexchain serve ping` to run it on the real broker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from services.order.messages import OrderLine, OrderPlaced
from tests.support import Suite, envelope_for, eventually, get, post, publish, run

ROOT = Path(__file__).resolve().parents[2]
WITH_PING = {"FLEXCHAIN_SERVICE_PACKAGES": "services,tests.fixtures.services"}


def _run(*argv: str, **env: str) -> str:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'libs'}{os.pathsep}{ROOT}", **WITH_PING, **env}
    proc = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_the_ping_service_is_named_only_in_its_folder() -> None:
    # no file of the kernel, the deployment or the build names it (runtime.py's one "ping" is a broker ping)
    named = subprocess.run(
        ["git", "grep", "-l", "-w", "-i", "-e", "ping", "--", ".", ":!tests", ":!libs/flexchain/runtime.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert named.stdout.split() == []
    listed = _run("-c", "from flexchain.catalog import SERVICES; print(list(SERVICES))")
    assert listed.strip() == "['order', 'inventory', 'presale', 'commission', 'loyalty', 'ping']"
    default = _run("-c", "from flexchain.catalog import SERVICES; print(list(SERVICES))", FLEXCHAIN_SERVICE_PACKAGES="")
    assert "ping" not in default


def test_the_ping_service_s_entity_kind_is_known_to_the_ops_commands() -> None:
    lookup = "from flexchain.ops import KINDS_HELP, entity_path; print(entity_path('ping', 'ping/p 1')); print(KINDS_HELP)"
    path, kinds = _run("-c", lookup).splitlines()
    assert path == "/pings/p%201"
    assert kinds.endswith(", member/<id> (loyalty), ping/<id> (ping)")
    assert "ping" not in _run("-c", lookup.replace("'ping', 'ping/p 1'", "'order', 'order/o'"), FLEXCHAIN_SERVICE_PACKAGES="")


def test_the_ping_service_is_deployed_and_granted_from_its_declaration(tmp_path: Path) -> None:
    _run("scripts/gen-deploy.py", "--out", str(tmp_path))
    compose = yaml.safe_load((tmp_path / "docker-compose.yml").read_text())
    assert compose["services"]["ping"]["command"] == ["serve", "ping"]
    assert compose["services"]["ping"]["environment"]["FLEXCHAIN_HTTP_PORT"] == "8090"
    expose = [line.split()[1:] for line in (tmp_path / "Dockerfile").read_text().splitlines() if line.startswith("EXPOSE ")]
    assert expose == [["8081", "8082", "8083", "8084", "8085", "8086", "8090"]]  # the notifier's 8086 too
    assert "PING_DB_PASSWORD" in compose["services"]["postgres"]["environment"]
    scrape = yaml.safe_load((tmp_path / "deploy/prometheus/prometheus.yml").read_text())["scrape_configs"][0]
    assert {"targets": ["ping:8090"], "labels": {"service": "ping"}} in scrape["static_configs"]
    k8s = list(yaml.safe_load_all((tmp_path / "deploy/k8s/services.yaml").read_text()))
    assert any(d and d["kind"] == "StatefulSet" and d["metadata"]["name"] == "ping" for d in k8s)
    topics = {d["spec"]["topicName"] for d in yaml.safe_load_all((tmp_path / "deploy/k8s/kafka/topics.yaml").read_text()) if d}
    assert {"ping.commands", "ping.events", "ping.dlq", "ping.redrive"} <= topics
    users = {d["metadata"]["name"]: d for d in yaml.safe_load_all((tmp_path / "deploy/k8s/kafka/users.yaml").read_text()) if d}
    grants = {(r["resource"].get("name"), r["operations"][0]) for r in users["ping"]["spec"]["authorization"]["acls"]}
    # its route (order.events) and its read model are read, its own topics written; nothing of the others
    assert {("order.events", "Read"), ("ping.commands", "Write"), ("ping.events", "Write"), ("ping-router", "Read")} <= grants
    assert not {g for g in grants if g[0] and g[0].split(".")[0] in ("inventory", "presale", "commission", "loyalty")}
    assert "`User:ping`" in (tmp_path / "deploy/kafka/acls.md").read_text()
    # the operator may redrive its dead letters, as for every service
    operator = {r["resource"].get("name") for r in users["operator"]["spec"]["authorization"]["acls"]}
    assert {"ping.dlq", "ping.redrive", "ping.commands"} <= operator


def test_the_ping_service_is_documented_in_asyncapi(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas)
    _run("-m", "flexchain.cli", "schemas", "write", "--root", str(schemas))
    assert json.loads((schemas / "ping/Ponged.avsc").read_text())["namespace"] == "flexchain.ping"
    out = tmp_path / "flexchain.json"
    _run("-m", "flexchain.cli", "asyncapi", "--out", str(out), FLEXCHAIN_SCHEMAS_DIR=str(schemas))
    doc = json.loads(out.read_text())
    assert doc["channels"]["ping-events"]["address"] == "ping.events"
    assert set(doc["channels"]["ping-commands"]["messages"]) == {"Ping"}
    assert "ping.Ponged" in doc["components"]["messages"]
    assert "receive-ping-events" in doc["operations"]


@pytest.mark.broker
def test_the_ping_service_is_served_and_routed_on_the_broker(
    kafka_bootstrap: str, prefix: str, data_dir: Path, tmp_path: Path
) -> None:
    schemas = tmp_path / "schemas"  # its .avsc files are generated from its messages, as for every service
    shutil.copytree(ROOT / "schemas", schemas)
    _run("-m", "flexchain.cli", "schemas", "write", "--root", str(schemas))
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SCHEMAS_DIR=str(schemas), **WITH_PING)
    try:
        url = suite.start("ping").url
        r = post(f"{url}/pings/p-1?note=hello&wait=20")
        assert r.status_code == 200, r.text
        assert r.json()["events"] == [{"type": "Ponged", "ping_id": "p-1", "note": "hello", "count": 1}]
        assert post(f"{url}/pings/p-1?wait=20").json()["events"][0]["count"] == 2
        # the ops command finds its R-X-4 route from its declared entity kind
        asked = _run("-m", "flexchain.cli", "as-of", "ping", "ping/p-1", "9999-01-01", "--url", url, "--json")
        assert json.loads(asked) == {"ping_id": "p-1", "count": 2}
        # routed: an order placed on order.events becomes a Ping of its id (the router, not the API)
        placed = OrderPlaced(
            order_id="o-1",
            member_id="m-1",
            channel="live",
            lines=[OrderLine(sku="mask-01", qty=1, unit_price=100)],
            distributor_id=None,
            campaign_id=None,
            total=100,
            placed_at=1,
        )
        run(publish(kafka_bootstrap, suite.topic("order.events"), [(placed, envelope_for(placed, at=1))]))
        eventually(lambda: get(f"{url}/pings/o-1")["count"] == 1, timeout=60, what="the routed ping")
    finally:
        suite.stop_all()
