"""`flexchain simulate` runs a day's orders in concurrent lanes (issue 15): commands that share what
they contend on — transitively — stay in one lane in the generator's order, so their outcomes do
not depend on which reached the services first; the rest may run at once."""

from __future__ import annotations

import asyncio

from flexchain.tools.simulate import lanes, run_lanes


def test_commands_sharing_a_key_transitively_share_a_lane_in_their_order() -> None:
    items = [("a", {"sku:x"}), ("b", {"member:1"}), ("c", {"sku:y", "member:1"}), ("d", {"sku:x", "sku:y"}), ("e", set())]
    got = lanes(items, lambda it: it[1])
    assert [[name for name, _ in lane] for lane in got] == [["a", "b", "c", "d"], ["e"]]


def test_independent_commands_get_a_lane_each() -> None:
    items = [(i, {f"member:{i}"}) for i in range(5)]
    assert [[i for i, _ in lane] for lane in lanes(items, lambda it: it[1])] == [[0], [1], [2], [3], [4]]


def test_a_lane_runs_in_order_while_lanes_overlap() -> None:
    log: list[str] = []
    started = asyncio.Event()

    async def step(item: str) -> None:
        if item == "slow":
            await started.wait()  # only returns once another lane ran meanwhile
        if item == "other":
            started.set()
        log.append(item)

    asyncio.run(run_lanes([["slow", "after-slow"], ["other"]], step))
    assert log == ["other", "slow", "after-slow"]
