"""Shared fixtures. The broker for integration and e2e tests is a REAL Kafka:

* `KAFKA_BOOTSTRAP_SERVERS` set → that cluster;
* `FLEXCHAIN_TEST_BROKER=testcontainers` (and a Docker engine) → testcontainers' Kafka;
* otherwise the project's own local broker (official jars, KRaft), started once per session on
  free ports in a fresh data dir, and stopped at the end.

Every test that runs services uses its own topic prefix, so tests never see each other's events.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flexchain import auth
from flexchain.procs import free_port as free_port
from flexchain.procs import free_port_pair
from flexchain.settings import PROJECT_ROOT
from flexchain.tools import broker as kbroker

# HTTP authentication is on in every test, as in production (README "Security"): the services started
# by the tests read the keys' hashes from the environment, the clients (tests.support, the demo, the
# ops commands) read their token from it. Generated per session unless given.
if not (os.environ.get("FLEXCHAIN_API_KEYS") or os.environ.get("FLEXCHAIN_API_KEYS_FILE")):
    _tokens = {role: auth.new_key() for role in auth.ROLES}
    os.environ["FLEXCHAIN_API_KEYS"] = ",".join(auth.key_line(f"test-{r}", r, t) for r, t in _tokens.items())
    for _role, _token in _tokens.items():
        os.environ[f"FLEXCHAIN_TEST_TOKEN_{_role.upper()}"] = _token
    os.environ["FLEXCHAIN_TOKEN"] = _tokens[auth.OPERATOR]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    if os.environ.get("FLEXCHAIN_TEST_BROKER") == "testcontainers":
        from testcontainers.kafka import KafkaContainer  # type: ignore[import-not-found]

        with KafkaContainer("apache/kafka:4.1.0").with_kraft() as kc:
            yield kc.get_bootstrap_server()
        return
    root = PROJECT_ROOT / ".cache" / f"test-broker-{os.getpid()}"  # one per session: sessions may overlap
    shutil.rmtree(root, ignore_errors=True)
    # the coordinator looks for timed-out transactions every second (default 10 s), so a fault test
    # that outwaits the transaction timeout sees the abort within its pause
    overrides = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000"}
    cfg = kbroker.up_on_free_ports(
        lambda port: kbroker.BrokerConfig(data_dir=root, port=port, controller_port=port + 1, overrides=overrides),
        PROJECT_ROOT / ".cache" / "kafka",
        first_port=free_port_pair,
    )
    try:
        yield cfg.bootstrap
    finally:
        kbroker.stop(cfg)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d
