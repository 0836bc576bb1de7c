"""Snapshot encode/decode of partitions with N aggregates (flexchain.statecodec), next to pickle.

    .venv/bin/python bench/snapshots.py            # N = 100 000
    .venv/bin/python bench/snapshots.py --n 20000

No broker: pure CPU. Each figure is the best of three, in CPU seconds of this process; pickle
(cyclic GC off, as statecodec runs) on the same objects is the format snapshots used before issue 12.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle  # the former snapshot format, as the baseline only
import time
from collections.abc import Callable
from typing import Any

from flexchain import statecodec
from flexchain.fold import Applied, PartitionState
from services.inventory import domain as inventory
from services.inventory.messages import Allocation, SkuRegistered, StockReceived, StockReserved
from services.loyalty.state import Loyalty
from services.order import domain as order
from services.order.messages import OrderLine, PlaceOrder, RecordLineReservation


def best(f: Callable[[], Any]) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(3):
        gc.collect()
        gc.disable()
        t = time.process_time()
        out = f()
        times.append(time.process_time() - t)
        gc.enable()
    return min(times), out


def measure(name: str, ps: PartitionState, state_type: Any) -> None:
    te, blob = best(lambda: statecodec.encode_partition(ps, state_type))
    td, back = best(lambda: statecodec.decode_partition(blob, state_type))
    assert back == ps
    pe, raw = best(lambda: pickle.dumps(ps, pickle.HIGHEST_PROTOCOL))
    pd, _ = best(lambda: pickle.loads(raw))
    print(
        f"{name:<58} {len(blob) / 1e6:6.1f} MB  encode {te * 1000:5.0f} ms  decode {td * 1000:5.0f} ms"
        f"  | pickle {len(raw) / 1e6:5.1f} MB {pe * 1000:5.0f} / {pd * 1000:5.0f} ms",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    n = ap.parse_args().n
    t = time.process_time()
    sum(range(10**7))
    print(f"{n} aggregates; calibration: sum(range(10**7)) = {(time.process_time() - t) * 1000:.0f} ms; load {os.getloadavg()}")
    seen = {f"cmd-{i:08d}": Applied(1_767_225_600_000 + i, "d" * 16) for i in range(2 * n)}
    measure(f"the dedup memory alone, {2 * n} command ids", PartitionState(None, seen), type(None))

    inv = inventory.new_state()
    for i in range(n):
        k = f"sku-{i}"
        inventory.evolve(inv, SkuRegistered(sku=k, name="A face mask", is_gift=False, low_stock_floor=50, registered_at=1))
        inventory.evolve(inv, StockReceived(sku=k, warehouse="north", qty=100, reference="r"))
        inventory.evolve(inv, StockReceived(sku=k, warehouse="south", qty=100, reference="r"))
        inventory.evolve(
            inv,
            StockReserved(
                sku=k,
                order_id=f"o-{i}",
                qty=2,
                allocations=[Allocation(warehouse="north", qty=1), Allocation(warehouse="south", qty=1)],
            ),
        )
    measure("inventory: skus, 2 warehouses and 1 reservation each", PartitionState(inv, next_offset=4 * n), inventory.Inventory)
    del inv

    book = order.new_state()
    now = 1_767_225_600_000
    for i in range(n):
        place = PlaceOrder(
            order_id=f"ord-{i}",
            member_id=f"m-{i % 5000}",
            channel="live",
            lines=[OrderLine(sku="s1", qty=1, unit_price=1000), OrderLine(sku="s2", qty=2, unit_price=500)],
        )
        for cmd in (
            place,
            RecordLineReservation(order_id=f"ord-{i}", sku="s1", reserved=True, reason=""),
            RecordLineReservation(order_id=f"ord-{i}", sku="s2", reserved=True, reason=""),
        ):
            for e in order.decide(book, cmd, now):
                order.evolve(book, e)
    measure("order: confirmed orders, 2 lines, 4 events of history", PartitionState(book, next_offset=4 * n), order.OrderBook)
    del book

    members = Loyalty()
    for i in range(n):
        row = members.add_member(f"m-{i}", 20_000 + i % 300, None)
        members.set_batches(row, [i, i + 1])
        members.schedule(row, 20_000 + i % 400)
    measure("loyalty: members", PartitionState(members, next_offset=n), Loyalty)


if __name__ == "__main__":
    main()
