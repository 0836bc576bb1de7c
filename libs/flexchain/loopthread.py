"""An asyncio event loop running on a thread of its own, for synchronous code that keeps async clients.

A client opened on an event loop lives on that loop: aiokafka's fetcher and request timeouts, a
server's accepted connections. Driven with `asyncio.Runner.run` between long stretches of other
work, the loop stands still in between — and when it runs again, a request timer that expired
meanwhile fires before the answer that arrived meanwhile is read: aiokafka then logs
`Failed fetch messages ...: RequestTimedOutError` for a fetch the broker answered in time, and
drops the connection. On its own thread the loop keeps running, and `run` hands it one coroutine
at a time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """`start()`, then `run(coro)` from any other thread as often as needed, then `close()`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)

    def start(self) -> LoopThread:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop and wait for its result (its exception is raised here)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and its thread; what is still scheduled on it is dropped."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()
