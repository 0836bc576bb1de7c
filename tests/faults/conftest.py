"""Fixtures of the fault tier: real parts only, each started on first use.

* ``kafka_cluster`` — three combined broker+controller nodes (``flexchain.tools.broker.ClusterConfig``:
  a 3-voter KRaft quorum, replication factor 3 and ``min.insync.replicas`` 2 for every topic,
  ``__consumer_offsets`` and ``__transaction_state`` included), one per session; before each test
  that uses it, every node is running and every partition has its full ISR again.
* ``killable_broker`` — a single-node broker of the test's own (own data dir and ports): kill -9
  it, restart it with its data. The session broker of the other tiers is never touched.
* ``proxied_broker`` — a broker with a ``PROXIED`` listener advertised as a ``TcpProxy`` in front
  of it: services bootstrapped at ``proxied_bootstrap`` go through the proxy for every connection.
  One per session (the proxy is restored around each test); ``broker_factory`` makes more.
* ``postgres`` — a database of its own on a throwaway PostgreSQL server (Debian's package), with
  the server's controls (stop/start, pause/resume, kill); the server is up again after each test.

The brokers live under ``.cache/test-faults-<pid>/`` (removed at the end unless a test failed;
``.ci/run`` kills any left running), the PostgreSQL server under ``/tmp/flexchain-pg-*`` (the ``postgres`` user must
reach it). What each fixture cost (and the fault timings tests record) is printed at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flexchain.procs import free_port_block
from flexchain.settings import PROJECT_ROOT
from flexchain.tools import broker as kbroker
from tests.faults.postgres import PostgresDatabase, PostgresServer, PostgresUnavailable
from tests.faults.support import BROKER_OVERRIDES, TIMINGS, KafkaCluster, LocalBroker
from tests.faults.support import timed as _timed

KAFKA_CACHE = PROJECT_ROOT / ".cache" / "kafka"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        parts = [f"{name} {', '.join(f'{s:.1f}' for s in secs)} s" if secs else name for name, secs in TIMINGS.items()]
        terminalreporter.write_line("fault tier timings: " + "; ".join(parts))


@pytest.fixture(scope="session")
def faults_root(request: pytest.FixtureRequest) -> Iterator[Path]:
    """Where the tier's brokers live; kept (brokers stopped) when a test failed, for their logs."""
    root = PROJECT_ROOT / ".cache" / f"test-faults-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    yield root
    if request.session.testsfailed:
        TIMINGS.setdefault(f"kept for its logs: {root}", [])
    else:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_libs() -> Path:
    return kbroker.ensure_jars(KAFKA_CACHE)


@pytest.fixture(scope="session")
def _cluster(faults_root: Path, kafka_libs: Path) -> Iterator[KafkaCluster]:
    config = kbroker.ClusterConfig(
        data_dir=faults_root / "cluster", nodes=3, port=free_port_block(6), overrides=dict(BROKER_OVERRIDES)
    )
    cluster = KafkaCluster(config, KAFKA_CACHE)
    try:
        _timed("3-node cluster up (format + start + healthy)", cluster.up())
        yield cluster
    finally:
        cluster.stop_all()


@pytest.fixture
def kafka_cluster(_cluster: KafkaCluster) -> KafkaCluster:
    """The session's three-node cluster, every node running and every partition fully in sync."""
    t0 = time.monotonic()
    if _cluster.running() != _cluster.node_ids:
        _cluster.heal()
        _timed("3-node cluster heal", time.monotonic() - t0)
    else:
        _cluster.wait_healthy()
    return _cluster


@pytest.fixture(scope="session")
def broker_factory(faults_root: Path, kafka_libs: Path) -> Iterator[Callable[..., LocalBroker]]:
    """Make (and start) single-node brokers of their own, e.g. for a module-scoped fixture;
    all are stopped and removed at the end of the session."""
    made: list[LocalBroker] = []

    def make(*, proxied: bool = False) -> LocalBroker:
        b = LocalBroker(faults_root / f"broker-{uuid.uuid4().hex[:8]}", kafka_libs, proxied=proxied)
        made.append(b)
        _timed("proxied broker up" if proxied else "own broker up", b.up())
        return b

    try:
        yield make
    finally:
        for b in made:
            b.destroy()


@pytest.fixture
def killable_broker(faults_root: Path, kafka_libs: Path) -> Iterator[LocalBroker]:
    """A single-node broker of this test's own: kill9() / stop() / start() keep its data dir and ports."""
    b = LocalBroker(faults_root / f"broker-{uuid.uuid4().hex[:8]}", kafka_libs)
    try:
        _timed("own broker up", b.up())
        yield b
    finally:
        b.destroy()


@pytest.fixture(scope="session")
def _proxied_broker(broker_factory: Callable[..., LocalBroker]) -> LocalBroker:
    return broker_factory(proxied=True)


@pytest.fixture
def proxied_broker(_proxied_broker: LocalBroker) -> Iterator[LocalBroker]:
    """A broker behind a TcpProxy, shared by the session's tests (cutting the network leaves the broker
    as it was): ``proxied_bootstrap`` for the service under test, ``bootstrap`` (direct) for the test's
    own clients, ``proxy.cut()`` / ``proxy.restore()``. The proxy is restored (and the broker running)
    before and after each test; use a unique topic prefix and group per test."""
    b = _proxied_broker
    assert b.proxy is not None
    b.proxy.restore()
    if b.pid is None:
        b.start()
    yield b
    b.proxy.restore()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except PostgresUnavailable as e:
        if os.geteuid() == 0:  # as root, scripts/setup-deploy-tools.sh installs it: missing is a failure
            raise
        pytest.skip(f"PostgreSQL: {e}")
    try:
        t0 = time.monotonic()
        server.start()
        _timed("postgres up (initdb + start)", time.monotonic() - t0)
        yield server
    finally:
        server.destroy()


@pytest.fixture
def postgres(postgres_server: PostgresServer) -> Iterator[PostgresDatabase]:
    """A fresh database on the session's PostgreSQL server; the server is running again afterwards."""
    postgres_server.ensure_running()
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield PostgresDatabase(postgres_server, name, postgres_server.create_database(name))
    postgres_server.ensure_running()
