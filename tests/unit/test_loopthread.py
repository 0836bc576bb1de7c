"""`LoopThread`: async clients kept by synchronous code stay serviced between calls (issue 15).

The simulator's quiet check kept an aiokafka consumer on an `asyncio.Runner` that stood still while
a day's orders were placed; the fetch it had in flight was answered in time, but when the loop ran
again its request timer fired before the answer was read, and aiokafka logged
`Failed fetch messages from 1: RequestTimedOutError` once a day. Here a request is a read on a
socket under `asyncio.timeout` (aiokafka's request timeout works the same way: a timer that cancels
the waiting task), answered at once, while the calling thread does other work for longer than the
timeout."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from flexchain.loopthread import LoopThread

TIMEOUT_S = 0.3
OTHER_WORK_S = 1.0  # longer than the timeout: a day's lanes against the 40 s request timeout


async def ask(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(TIMEOUT_S):
        return await reader.readexactly(5)


async def in_flight(reader: asyncio.StreamReader) -> asyncio.Task[bytes]:
    task = asyncio.create_task(ask(reader))
    await asyncio.sleep(0)  # the request is sent: its timer runs
    return task


async def answer(task: asyncio.Task[bytes]) -> bytes:
    return await task


def request_across_other_work(run: Callable[[Coroutine[Any, Any, Any]], Any]) -> bytes:
    ours, theirs = socket.socketpair()
    try:
        reader, writer = run(asyncio.open_connection(sock=ours))
        task = run(in_flight(reader))
        theirs.sendall(b"hello")  # answered well within the timeout
        time.sleep(OTHER_WORK_S)  # the caller's other work
        try:
            return run(answer(task))  # type: ignore[no-any-return]
        finally:
            writer.close()
    finally:
        theirs.close()


def test_an_answered_request_is_read_while_the_caller_does_other_work() -> None:
    loop = LoopThread("test").start()
    try:
        assert request_across_other_work(loop.run) == b"hello"
    finally:
        loop.close()


def test_on_a_loop_that_stands_still_the_same_request_times_out() -> None:
    """What the simulator had: the scenario above does catch the fault."""
    with asyncio.Runner() as runner, pytest.raises(TimeoutError):
        request_across_other_work(runner.run)


def test_runs_on_its_own_thread_and_raises_what_the_coroutine_raises() -> None:
    loop = LoopThread("test").start()

    async def where() -> str:
        return threading.current_thread().name

    async def fails() -> None:
        raise ValueError("boom")

    try:
        assert loop.run(where()) == "test"
        with pytest.raises(ValueError, match="boom"):
            loop.run(fails())
    finally:
        loop.close()
    assert not loop.running
    assert loop.loop.is_closed()
