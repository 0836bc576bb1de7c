"""Helpers of the fault tier: a three-broker cluster, brokers of a test's own (killable, proxied),
and where a partition's leader, a transaction coordinator and a group coordinator live.

Everything runs the project's own broker tooling (``flexchain.tools.broker``): the same jars, KRaft,
configuration and process handling as ``flexchain broker up [--brokers 3]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from flexchain.procs import free_port_block
from flexchain.tools import broker as kbroker
from tests.faults.proxy import TcpProxy

_T = TypeVar("_T")

#: name -> seconds, each time: fixtures' start-up and the fault timings tests measure (failover, rejoin);
#: printed at the end of the session by tests/faults/conftest.py
TIMINGS: dict[str, list[float]] = {}


def timed(name: str, seconds: float) -> float:
    TIMINGS.setdefault(name, []).append(seconds)
    return seconds


#: As the session broker (tests/conftest.py): the transaction coordinator looks for timed-out
#: transactions every second (default 10 s), so a test that outwaits the transaction timeout sees the abort.
BROKER_OVERRIDES = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000"}

#: FindCoordinator key types (KIP-98): a consumer group, a transactional id.
GROUP, TRANSACTION = 0, 1


@overload
async def aeventually(check: Callable[[], Awaitable[_T]], timeout: float = ..., interval: float = ..., what: str = ...) -> _T: ...
@overload
async def aeventually(check: Callable[[], _T], timeout: float = ..., interval: float = ..., what: str = ...) -> _T: ...
async def aeventually(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, what: str = "") -> Any:
    """Call (and await) ``check`` until it returns something truthy (returned) or raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
            last = await result if inspect.isawaitable(result) else result
            if last:
                return last
        except (AssertionError, KafkaError, OSError, KeyError) as exc:
            last = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"not reached in {timeout}s: {what} (last: {last!r})")


def coordinator_partition(key: str, partitions: int = 6) -> int:
    """The partition of ``__consumer_offsets`` / ``__transaction_state`` that holds ``key``'s coordinator:
    Kafka's ``Utils.abs(key.hashCode()) % partitions`` (Java's String.hashCode over UTF-16 units)."""
    h = 0
    units = key.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    if h >= 1 << 31:
        h -= 1 << 32
    return (0 if h == -(1 << 31) else abs(h)) % partitions


async def find_coordinator(bootstrap: str, key: str, key_type: int, timeout: float = 60.0) -> int:
    """Node id of the coordinator of a consumer group (``GROUP``) or a transactional id (``TRANSACTION``).

    FindCoordinator through aiokafka's admin client; retried while the coordinator is not available
    (the first lookup of a transactional id creates ``__transaction_state``; after a broker dies the
    coordinator moves once its partition has a new leader).
    """

    async def ask() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            return await admin.find_coordinator(key, key_type) + 1  # +1: node 0 is falsy
        finally:
            await admin.close()

    return await aeventually(ask, timeout, 0.5, f"FindCoordinator({key!r}, type {key_type}) at {bootstrap}") - 1


# ---------------------------------------------------------------------------------------- cluster


@dataclass
class KafkaCluster:
    """A running local cluster (``flexchain.tools.broker.ClusterConfig``) with the controls fault tests need."""

    config: kbroker.ClusterConfig
    cache: Path  # where the Kafka jars are (flexchain.tools.broker.ensure_jars)

    @property
    def libs(self) -> Path:
        return kbroker.ensure_jars(self.cache)

    @property
    def bootstrap(self) -> str:
        return self.config.bootstrap

    @property
    def node_ids(self) -> list[int]:
        return self.config.node_ids

    def node(self, node_id: int) -> kbroker.BrokerConfig:
        return self.config.node(node_id)

    def address(self, node_id: int) -> str:
        return self.node(node_id).bootstrap

    def up(self, timeout: float = 180.0) -> float:
        """Format (once), start every node not running, wait until healthy; the seconds it took."""
        t0 = time.monotonic()
        kbroker.cluster_up(self.config, self.cache, timeout=timeout)
        return time.monotonic() - t0

    def running(self) -> list[int]:
        return [n for n, pid in kbroker.cluster_status(self.config).items() if pid is not None]

    def kill(self, node_id: int) -> None:
        """kill -9 one node (its data dir, ports and config stay)."""
        if not kbroker.kill(self.node(node_id)):
            raise RuntimeError(f"node {node_id} was not running")

    def stop(self, node_id: int, timeout: float = 30.0) -> None:
        """A controlled shutdown of one node."""
        kbroker.stop(self.node(node_id), timeout)

    def start(self, node_id: int) -> None:
        """Start one node again (same data dir and ports); does not wait — see :meth:`wait_healthy`."""
        kbroker.start(self.node(node_id), self.libs)

    def wait_healthy(self, timeout: float = 120.0) -> float:
        """Until every node answers and sees all brokers and every partition with its full ISR."""
        return kbroker.wait_healthy(self.bootstrap, self.config.nodes, timeout, nodes=self.config.all_nodes())

    def heal(self, timeout: float = 180.0) -> None:
        """Whatever a test did: every node running and the cluster healthy again."""
        for n in self.node_ids:
            if n not in self.running():
                self.start(n)
        self.wait_healthy(timeout)

    def stop_all(self) -> None:
        kbroker.cluster_stop(self.config)

    # ----------------------------------------------------------------------------- who leads what

    def state(self) -> kbroker.ClusterState:
        """Metadata as the running nodes see it (a dead node is skipped)."""
        live = ",".join(self.address(n) for n in self.running()) or self.bootstrap
        return kbroker.describe(live)

    def leader(self, topic: str, partition: int) -> int:
        """Node id leading ``topic``-``partition`` (-1: none right now)."""
        return self.state().leader(topic, partition)

    def wait_leader(self, topic: str, partition: int, *, not_on: int | None = None, timeout: float = 60.0) -> int:
        """Until the partition has a leader on a running node (other than ``not_on``); its node id."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            with contextlib.suppress(kbroker.BrokerError, KeyError):
                last = leader = self.leader(topic, partition)
                if leader >= 0 and leader != not_on and leader in self.running():
                    return leader
            time.sleep(0.25)
        raise AssertionError(f"{topic}-{partition}: no leader other than {not_on} after {timeout}s (last: {last})")

    async def transaction_coordinator(self, transactional_id: str, timeout: float = 60.0) -> int:
        return await find_coordinator(self._live_bootstrap(), transactional_id, TRANSACTION, timeout)

    async def group_coordinator(self, group: str, timeout: float = 60.0) -> int:
        return await find_coordinator(self._live_bootstrap(), group, GROUP, timeout)

    def _live_bootstrap(self) -> str:
        return ",".join(self.address(n) for n in self.running()) or self.bootstrap


# ----------------------------------------------------------------------------------- own brokers


class LocalBroker:
    """A single-node broker of a test's own (own data dir and ports): kill -9 it, restart it.

    With ``proxied=True`` it has a second client listener, ``PROXIED``, advertised as the address of
    a :class:`TcpProxy` in front of it: a client bootstrapped at :attr:`proxied_bootstrap` is told
    that address in every metadata answer, so all its connections (coordinator, leaders) go through
    the proxy, while :attr:`bootstrap` (the PLAINTEXT listener, also inter-broker) stays direct for
    the test's own clients.
    """

    def __init__(self, root: Path, libs: Path, *, proxied: bool = False) -> None:
        self.libs = libs
        port = free_port_block(3)  # broker, controller, proxied listener: chosen together, never the same
        self.proxy: TcpProxy | None = None
        extra: tuple[kbroker.Listener, ...] = ()
        if proxied:
            inner = port + 2
            self.proxy = TcpProxy(upstream=("127.0.0.1", inner)).start()  # its port is taken from here on
            extra = (kbroker.Listener("PROXIED", inner, self.proxy.address),)
        self.cfg = kbroker.BrokerConfig(
            data_dir=root,
            port=port,
            controller_port=port + 1,
            jvm_opts=kbroker.CLUSTER_JVM_OPTS,
            extra_listeners=extra,
            overrides=dict(BROKER_OVERRIDES),
        )

    @property
    def bootstrap(self) -> str:
        """The direct listener."""
        return self.cfg.bootstrap

    @property
    def proxied_bootstrap(self) -> str:
        if self.proxy is None:
            raise RuntimeError("this broker has no proxied listener (LocalBroker(..., proxied=True))")
        return self.proxy.address

    @property
    def pid(self) -> int | None:
        return kbroker.status(self.cfg)

    def up(self, timeout: float = 90.0) -> float:
        """Format (once), start, wait until it answers; the seconds it took."""
        t0 = time.monotonic()
        kbroker.format_storage(self.cfg, self.libs)
        self.start(timeout)
        return time.monotonic() - t0

    def start(self, timeout: float = 90.0) -> None:
        """Start it (again: same data dir, same ports) and wait until it answers."""
        kbroker.start(self.cfg, self.libs)
        kbroker.wait_ready(self.bootstrap, timeout, cfg=self.cfg)

    def kill9(self) -> None:
        if not kbroker.kill(self.cfg):
            raise RuntimeError("broker was not running")

    def stop(self, timeout: float = 30.0) -> None:
        kbroker.stop(self.cfg, timeout)

    def destroy(self) -> None:
        try:
            kbroker.stop(self.cfg, 15.0)
        finally:
            if self.proxy is not None:
                self.proxy.close()
            if not os.environ.get("FLEXCHAIN_KEEP_BROKERS"):
                shutil.rmtree(self.cfg.data_dir, ignore_errors=True)


#: `FLEXCHAIN_FAULTS_FULL=1` runs every variant of every fault test; without it (CI, `make test`)
#: one or two variants of each fault run, the others are skipped with the reason.
FULL = os.environ.get("FLEXCHAIN_FAULTS_FULL") == "1"


def longer(*values: object, id: str) -> Any:
    """A variant run only with FLEXCHAIN_FAULTS_FULL=1 (keeps `make test` within its time)."""
    return pytest.param(*values, id=id, marks=pytest.mark.skipif(not FULL, reason="a longer variant: FLEXCHAIN_FAULTS_FULL=1"))
