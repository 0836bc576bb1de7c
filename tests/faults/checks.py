"""The fault tests of the inventory stream share their set-up (`two_instances`: two instances with
stock plenty) and their end (`check_reservations`: each ReserveStock answered exactly once, a clean
log (history checker), the stock reserved equal to the commands per sku on every instance, the live
states equal to the fold of the log, and nothing dead-lettered)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from flexchain.procs import ServiceProcess
from services.inventory.app import SERVICE as INVENTORY
from services.inventory.messages import ReserveStock
from tests.faults.history import check_history, folded_digests, log_of
from tests.support import Suite, digests, eventually, get, post


def two_instances(suite: Suite, data_dir: Path, skus: list[str], **env0: str) -> tuple[ServiceProcess, ServiceProcess]:
    """Inventory instances "0" and "1" (each with a data dir of its own; `env0`: more settings for
    instance 0), and every sku registered with a million units in stock."""
    inv0 = suite.start("inventory", instance="0", FLEXCHAIN_DATA_DIR=str(data_dir / "i0"), **env0)
    inv1 = suite.start("inventory", instance="1", FLEXCHAIN_DATA_DIR=str(data_dir / "i1"))
    for sku in skus:
        assert post(f"{inv0.url}/skus", {"sku": sku, "name": sku}).status_code == 200
        assert post(f"{inv0.url}/skus/{sku}/receipts", {"warehouse": "w1", "qty": 1_000_000}).status_code == 200
    return inv0, inv1


def partitions(url: str) -> dict[str, Any]:
    """`/internal/partitions`; a query stalled behind the processor's lock (held by a transaction
    waiting for the broker, or by a snapshot store call) fails as an AssertionError, which
    `eventually` takes as "not yet"."""
    try:
        found: dict[str, Any] = get(f"{url}/internal/partitions")
    except httpx.TimeoutException as exc:
        raise AssertionError(f"{url}/internal/partitions did not answer: {exc!r}") from exc
    return found


def owned(url: str) -> set[int]:
    """The partitions an instance processes."""
    return {int(p) for p in partitions(url)["partitions"]}


def check_reservations(bootstrap: str, topic_prefix: str, commands: list[ReserveStock], procs: list[ServiceProcess]) -> None:
    n = len(commands)

    def answered() -> list:
        log = log_of(bootstrap, topic_prefix + "inventory.events")
        return log if sum(1 for x in log if x.type in ("StockReserved", "ReservationRejected")) >= n else []

    log = eventually(answered, timeout=240, interval=1.0, what=f"all {n} commands answered")
    problems = check_history(log)
    assert not problems, problems
    reserved = Counter(x.item.message.order_id for x in log if x.type == "StockReserved")
    assert len(reserved) == n and set(reserved.values()) == {1}, "each command answered exactly once"
    assert not [x for x in log if x.type == "ReservationRejected"], "stock was plenty: nothing to reject"
    want = Counter(c.sku for c in commands)
    for proc in procs:
        eventually(
            lambda proc=proc: all(get(f"{proc.url}/skus/{s}")["reserved"] == want[s] for s in want),
            timeout=90,
            what=f"{proc.service}-{proc.instance}: reserved == commands per sku",
        )
    expected = folded_digests(INVENTORY, log)
    eventually(
        lambda: {p: d["digest"] for proc in procs for p, d in digests(proc.url).items()} == expected,
        timeout=90,
        what="the instances' states == the fold of the log",
    )
    assert log_of(bootstrap, topic_prefix + "inventory.dlq") == []
