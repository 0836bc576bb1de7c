"""A rebalance storm (issue 12, item 9): while ReserveStock commands stream in, inventory instances
are started, stopped and killed with SIGKILL again and again — each action during the handover the
previous one caused — for at least ten rounds. Partitions move back and forth between fenced and
fencing owners; afterwards every command is answered exactly once, the log is clean (no event twice,
versions 1..n per aggregate), the stock reserved equals the commands, and what the surviving
instance holds is exactly the fold of the log."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from flexchain.procs import ServiceProcess
from services.inventory.app import SERVICE as INVENTORY
from services.inventory.messages import ReserveStock
from tests.faults.history import check_history, folded_digests, log_of
from tests.faults.test_frozen_instance import stream
from tests.support import Suite, digests, eventually, get, post

pytestmark = [pytest.mark.broker, pytest.mark.faults]

SKUS = [f"rs-{i:02d}" for i in range(20)]
ROUNDS = int(os.environ.get("FLEXCHAIN_STORM_ROUNDS", "10"))


def test_instances_come_and_go_during_handovers_and_nothing_is_applied_twice(
    kafka_bootstrap: str, prefix: str, data_dir: Path
) -> None:
    rng = random.Random(13)
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SESSION_TIMEOUT_MS="6000", FLEXCHAIN_SNAPSHOT_EVERY="500")
    live: dict[str, ServiceProcess] = {}
    counter = 0

    def start() -> None:
        nonlocal counter
        name = str(counter)
        counter += 1
        live[name] = suite.start("inventory", instance=name, wait=False, FLEXCHAIN_DATA_DIR=str(data_dir / f"i{name}"))

    try:
        first = suite.start("inventory", instance="seed", FLEXCHAIN_DATA_DIR=str(data_dir / "seed"))
        for sku in SKUS:
            assert post(f"{first.url}/skus", {"sku": sku, "name": sku}).status_code == 200
            assert post(f"{first.url}/skus/{sku}/receipts", {"warehouse": "w1", "qty": 1_000_000}).status_code == 200
        live["seed"] = first
        start()
        n = int(os.environ.get("FLEXCHAIN_STORM_COMMANDS", "8000"))
        commands = [ReserveStock(sku=rng.choice(SKUS), order_id=f"rs-{i:07d}", qty=1) for i in range(n)]
        feeder = stream(kafka_bootstrap, suite.topic("inventory.commands"), commands, seconds=ROUNDS * 2.5 + 5)
        actions: list[str] = []
        for _ in range(ROUNDS):
            time.sleep(2.5)  # the storm's rhythm: each action lands in the rebalance the last one started
            choice = rng.choice(["start", "stop", "kill"] if len(live) > 1 else ["start"])
            if len(live) >= 4:
                choice = rng.choice(["stop", "kill"])
            if choice == "start":
                start()
            else:
                name = rng.choice(sorted(live))
                proc = live.pop(name)
                proc.kill9() if choice == "kill" else proc.stop()
            actions.append(choice)
        feeder.join(timeout=180)
        assert not feeder.is_alive()
        assert {"start", "stop", "kill"} <= set(actions), actions
        survivor = next(iter(live.values()))
        for proc in live.values():
            proc.wait_ready(120)

        def answered() -> list:
            log = log_of(kafka_bootstrap, suite.topic("inventory.events"))
            return log if sum(1 for x in log if x.type == "StockReserved") >= n else []

        log = eventually(answered, timeout=180, interval=1.0, what=f"all {n} commands answered")
        problems = check_history(log)
        assert not problems, problems
        reserved = Counter(x.item.message.order_id for x in log if x.type == "StockReserved")
        assert len(reserved) == n and set(reserved.values()) == {1}, "each command answered exactly once"
        want = Counter(c.sku for c in commands)
        eventually(lambda: all(get(f"{survivor.url}/skus/{s}")["reserved"] == want[s] for s in SKUS), timeout=60, what="reserved")
        expected = folded_digests(INVENTORY, log)
        eventually(
            lambda: {p: d["digest"] for proc in live.values() for p, d in digests(proc.url).items()} == expected,
            timeout=90,
            what="the instances' states == the fold of the log",
        )
        assert log_of(kafka_bootstrap, suite.topic("inventory.dlq")) == []
    finally:
        suite.stop_all()
