"""Fixtures of the deployment tier: the tools (installed by scripts/setup-deploy-tools.sh) and a
second local broker that speaks only SASL_SSL with SCRAM-SHA-512 and enforces ACLs."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flexchain import kafka, security
from flexchain.catalog import SERVICES
from flexchain.procs import free_port_pair
from flexchain.settings import PROJECT_ROOT, Settings
from flexchain.tools import broker as kbroker
from flexchain.tools import pki as tls

TOOLS = PROJECT_ROOT / ".cache" / "deploy-tools"
SETUP = PROJECT_ROOT / "scripts" / "setup-deploy-tools.sh"
RULE_VALIDATOR = PROJECT_ROOT / "scripts" / "validate-prometheus-rule.mjs"


def _setup_tools() -> None:
    """Run the (idempotent, sub-second once done) setup script before the tier's modules are imported:
    they import tools it installs (jsonschema, kubernetes-validate, ...), and CI starts from a clean clone."""
    if os.environ.get("FLEXCHAIN_DEPLOY_TOOLS") == "skip-setup":
        return
    proc = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise pytest.UsageError(f"scripts/setup-deploy-tools.sh failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    importlib.invalidate_caches()


_setup_tools()


@pytest.fixture(scope="session")
def deploy_tools() -> dict[str, str]:
    """Paths of the tools installed by scripts/setup-deploy-tools.sh."""
    paths = {}
    for line in (TOOLS / "paths.env").read_text().splitlines():
        key, _, value = line.partition("=")
        paths[key] = str(PROJECT_ROOT / value) if "/" in value and not Path(value).is_absolute() else value
    return paths


def validate_prometheus_rules(docs: list[dict[str, Any]], modules: str) -> list[dict[str, Any]]:
    """Each PrometheusRule checked against the Prometheus Operator CRD's schema (npm
    @kubernetes-models/prometheus-operator, via scripts/validate-prometheus-rule.mjs)."""
    node = shutil.which("node")
    if node is None or not Path(modules, "@kubernetes-models", "prometheus-operator").is_dir():
        pytest.skip("node or @kubernetes-models/prometheus-operator missing (scripts/setup-deploy-tools.sh installs it)")
    proc = subprocess.run(
        [node, str(RULE_VALIDATOR)],
        input=json.dumps(docs),
        capture_output=True,
        text=True,
        env={"K8S_MODELS_NODE_MODULES": modules, "PATH": "/usr/bin:/bin:/usr/local/bin"},
        timeout=60,
        check=False,
    )
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    return results


@dataclass
class SecureBroker:
    bootstrap: str
    ca: Path
    passwords: dict[str, str]
    log: Path

    def settings(self, user: str, password: str | None = None, **kw: object) -> Settings:
        return Settings(
            kafka_bootstrap_servers=self.bootstrap,
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username=user,
            kafka_sasl_password=password if password is not None else self.passwords[user],
            kafka_ssl_cafile=str(self.ca),
            **kw,  # type: ignore[arg-type]
        )

    def env(self, user: str, password: str | None = None) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": password if password is not None else self.passwords[user],
            "KAFKA_SSL_CAFILE": str(self.ca),
        }


async def _wait_secure(s: Settings, timeout: float, cfg: kbroker.BrokerConfig) -> None:
    deadline = time.monotonic() + timeout
    while True:
        client = kafka.admin(s)
        try:
            await client.start()
            await client.list_topics()
            return
        except Exception as exc:
            if kbroker.status(cfg) is None:
                raise kbroker.BrokerError(f"secure broker died: {(cfg.logs / 'server.log').read_text()[-3000:]}") from exc
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await client.close()


@pytest.fixture(scope="session")
def secure_broker(deploy_tools: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A fresh KRaft broker: SASL_SSL listener (SCRAM-SHA-512), mTLS controller listener, StandardAuthorizer,
    `admin` super user, one SCRAM principal per service + `clock` + `notify` + `operator` + `nobody` (no ACLs),
    added at format time."""
    root = tmp_path_factory.mktemp("secure-broker")
    pki = tls.make_pki(root / "pki")
    users = ["admin", *SERVICES, security.CLOCK_PRINCIPAL, "notify", security.OPERATOR_PRINCIPAL, "nobody"]
    passwords = {u: f"{u}-{os.urandom(6).hex()}" for u in users}
    port = free_port_pair()
    cfg = kbroker.BrokerConfig(
        data_dir=root / "broker",
        port=port,
        controller_port=port + 1,
        overrides=tls.secure_broker_overrides("127.0.0.1", port, port + 1, pki, passwords["admin"]),
        format_args=tls.scram_format_args(passwords),
        jvm_opts=("-Xmx512m", *kbroker.DEFAULT_JVM_OPTS[2:]),
    )
    libs = kbroker.ensure_jars(PROJECT_ROOT / ".cache" / "kafka")
    kbroker.format_storage(cfg, libs)
    kbroker.start(cfg, libs)
    sb = SecureBroker(cfg.bootstrap, pki.ca_cert, passwords, cfg.server_log)
    try:
        asyncio.run(_wait_secure(sb.settings("admin"), 90, cfg))
        yield sb
    finally:
        kbroker.stop(cfg)
        shutil.rmtree(root / "broker" / "kraft-logs", ignore_errors=True)
