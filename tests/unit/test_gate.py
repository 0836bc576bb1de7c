"""The processor's gate (runtime._Gate): transactions of different partitions run at once, a reader
of the state (or a rebalance) waits until none is open and holds new ones back, and no holder that is
cancelled — a query whose client left — can leave the gate shut."""

from __future__ import annotations

import asyncio

from flexchain.runtime import _Gate


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_transactions_share_the_gate() -> None:
    async def go() -> int:
        gate, inside, most = _Gate(), 0, 0
        release = asyncio.Event()

        async def txn() -> None:
            nonlocal inside, most
            async with gate.shared():
                inside += 1
                most = max(most, inside)
                await release.wait()
                inside -= 1

        tasks = [asyncio.create_task(txn()) for _ in range(3)]
        await _settle()
        release.set()
        await asyncio.gather(*tasks)
        return most

    assert asyncio.run(go()) == 3


def test_a_reader_waits_for_open_transactions_and_holds_new_ones_back() -> None:
    async def go() -> list[str]:
        gate, seen = _Gate(), list[str]()
        first_done = asyncio.Event()

        async def txn(name: str, until: asyncio.Event | None) -> None:
            async with gate.shared():
                seen.append(f"{name} begins")
                if until is not None:
                    await until.wait()
                seen.append(f"{name} commits")

        async def reader() -> None:
            async with gate:
                seen.append("reader reads")

        t1 = asyncio.create_task(txn("t1", first_done))
        await _settle()
        r = asyncio.create_task(reader())
        await _settle()
        t2 = asyncio.create_task(txn("t2", None))  # arrives while the reader waits: goes after it
        await _settle()
        assert seen == ["t1 begins"]  # the reader waits for t1; t2 waits for the reader
        first_done.set()
        await asyncio.gather(t1, r, t2)
        return seen

    assert asyncio.run(go()) == ["t1 begins", "t1 commits", "reader reads", "t2 begins", "t2 commits"]


def test_cancelled_holders_and_waiters_leave_the_gate_open() -> None:
    async def go() -> bool:
        gate = _Gate()
        hold = asyncio.Event()

        async def txn() -> None:
            async with gate.shared():
                await hold.wait()

        async def reader() -> None:
            async with gate:
                await hold.wait()

        t = asyncio.create_task(txn())
        await _settle()
        waiting_reader = asyncio.create_task(reader())  # waits for t
        await _settle()
        waiting_reader.cancel()  # its client left while it waited
        t.cancel()  # and the transaction's task is cancelled inside the gate
        await asyncio.gather(t, waiting_reader, return_exceptions=True)
        holding_reader = asyncio.create_task(reader())
        await _settle()
        holding_reader.cancel()  # cancelled while it holds the gate alone
        await asyncio.gather(holding_reader, return_exceptions=True)

        async def both() -> None:
            async with gate.shared():
                pass
            async with gate:
                pass

        await asyncio.wait_for(both(), timeout=5)
        return True

    assert asyncio.run(go())
