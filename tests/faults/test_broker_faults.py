"""The broker itself fails (issue 12, item 9), under two inventory instances while commands stream
in: killed with SIGKILL and started again a moment later, and down longer than the transaction
timeout (every open transaction is then aborted by the coordinator when it is back). Nothing lost,
nothing applied twice. The broker is the test's own (`killable_broker`), never the session's."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from services.inventory.messages import ReserveStock
from tests.faults.checks import check_reservations, two_instances
from tests.faults.support import LocalBroker, longer
from tests.faults.test_frozen_instance import metric, stream
from tests.support import Suite, eventually

pytestmark = [pytest.mark.broker, pytest.mark.faults]

SKUS = [f"bk-{i:02d}" for i in range(16)]


@pytest.mark.parametrize("down", [pytest.param(2.0, id="restarted-at-once"), longer(12.0, id="down-past-txn-timeout")])
def test_broker_killed_mid_stream_loses_and_doubles_nothing(
    killable_broker: LocalBroker, prefix: str, data_dir: Path, down: float
) -> None:
    bootstrap = killable_broker.bootstrap
    suite = Suite(bootstrap, prefix, data_dir, FLEXCHAIN_TRANSACTION_TIMEOUT_MS="5000", FLEXCHAIN_SESSION_TIMEOUT_MS="10000")
    rng = random.Random(int(down))
    try:
        inv0, inv1 = two_instances(suite, data_dir, SKUS)
        commands = [ReserveStock(sku=rng.choice(SKUS), order_id=f"bk-{i:07d}", qty=1) for i in range(6000)]
        feeder = stream(bootstrap, suite.topic("inventory.commands"), commands, seconds=10.0)
        eventually(lambda: metric(inv0.url, "flexchain_inventory_events_out_total") > 100, what="inventory is working")
        killable_broker.kill9()
        restart = threading.Timer(down, killable_broker.start)
        restart.start()
        restart.join()
        feeder.join(timeout=180)
        assert not feeder.is_alive()
        for proc in (inv0, inv1):
            proc.wait_ready(180)
        check_reservations(bootstrap, prefix, commands, [inv0, inv1])
        assert inv0.running and inv1.running, "the services rode the outage out, no crash"
    finally:
        suite.stop_all()
