"""What every fault test of the inventory stream asserts at the end: each ReserveStock answered
exactly once, a clean log (history checker), the stock reserved equal to the commands per sku on
every instance, the live states equal to the fold of the log, and nothing dead-lettered."""

from __future__ import annotations

from collections import Counter

from flexchain.procs import ServiceProcess
from services.inventory.app import SERVICE as INVENTORY
from services.inventory.messages import ReserveStock
from tests.faults.history import check_history, folded_digests, log_of
from tests.support import digests, eventually, get


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
