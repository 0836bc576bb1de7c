"""A clean stop (SIGTERM: what `docker stop` and Kubernetes send) while the broker is gone.

An instance whose broker died must still end when told to: its transaction cannot commit and its
producer cannot flush, but the process must not hang there until the orchestrator's SIGKILL (or,
outside an orchestrator, for ever — found with a service left behind by a benchmark whose broker
was killed: it ignored SIGTERM for hours, spinning on reconnects). It gives its loops
`FLEXCHAIN_SHUTDOWN_TIMEOUT_S` to stop, says what did not, and exits non-zero. Nothing is lost by
that: what was not committed is applied again by whoever owns the partition next (exactly once)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from services.inventory.messages import ReserveStock
from tests.faults.checks import two_instances
from tests.faults.support import LocalBroker
from tests.faults.test_frozen_instance import metric, stream
from tests.support import Suite, eventually

pytestmark = [pytest.mark.broker, pytest.mark.faults]

SKUS = [f"sd-{i:02d}" for i in range(4)]
SHUTDOWN_S = 5.0


def test_sigterm_ends_an_instance_whose_broker_is_gone(killable_broker: LocalBroker, prefix: str, data_dir: Path) -> None:
    bootstrap = killable_broker.bootstrap
    suite = Suite(bootstrap, prefix, data_dir, FLEXCHAIN_SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_S))
    rng = random.Random(5)
    try:
        inv0, inv1 = two_instances(suite, data_dir, SKUS)
        commands = [ReserveStock(sku=rng.choice(SKUS), order_id=f"sd-{i:07d}", qty=1) for i in range(1000)]
        feeder = stream(bootstrap, suite.topic("inventory.commands"), commands, seconds=2.0)
        eventually(lambda: metric(inv0.url, "flexchain_inventory_events_out_total") > 50, what="inventory is working")
        feeder.join(timeout=120)
        killable_broker.kill9()
        started = time.monotonic()
        for proc in (inv0, inv1):
            assert proc.proc is not None
            proc.proc.terminate()  # SIGTERM, as the orchestrator sends it
        for proc in (inv0, inv1):
            assert proc.proc is not None
            # its own deadline, then the stop of what remains (the HTTP servers, the log line)
            code = proc.proc.wait(timeout=SHUTDOWN_S + 60)
            if code != 0:  # a stop that could not finish says what it left and exits non-zero
                assert "shutdown timed out" in proc.tail(200), proc.tail(60)
        assert time.monotonic() - started < SHUTDOWN_S + 60
    finally:
        suite.stop_all()
