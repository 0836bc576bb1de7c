"""A TCP proxy the fault tests control: put it between a service and the broker, then cut the network.

It runs its own asyncio loop in a daemon thread, so synchronous tests (services as processes) and
async tests (aiokafka clients in the test's loop) drive it alike::

    proxy = TcpProxy(upstream=("127.0.0.1", 19092)).start()     # listens on proxy.port
    proxy.cut("blackhole")   # a silent partition: nothing flows, nothing is closed
    proxy.cut("reset")       # every connection reset (RST), new ones refused
    proxy.restore()

The two cuts are the two ways a network fails:

* ``"blackhole"`` — what a real split looks like: no FIN, no RST; every open connection stays open
  and silent, new connections are accepted but go nowhere.  Bytes already in flight are held, not
  dropped (reading stops, so TCP flow control stalls the sender, as it would when a link is down):
  after :meth:`restore` a connection neither side gave up on carries on with an intact byte stream,
  as TCP would after retransmitting.  A client learns of the cut only from its own timeouts.
* ``"reset"`` — a peer or a firewall that answers: every open connection is aborted with a TCP RST
  (``SO_LINGER`` 0) on both sides, and every new connection is reset as soon as it is accepted
  (the listening socket stays bound, so no other process can take the port before :meth:`restore`).

Why not toxiproxy: this is all the fault tests need (cut and restore, two kinds), ~200 lines with
no build step and no extra process.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from flexchain.loopthread import LoopThread

Mode = Literal["blackhole", "reset"]
_T = TypeVar("_T")
_CHUNK = 64 * 1024


@dataclass(eq=False)  # hashed by identity: kept in a set
class _Pipe:
    """One proxied connection: the client's side, the upstream side, and the two pumps."""

    client_reader: asyncio.StreamReader
    client_writer: asyncio.StreamWriter
    upstream_writer: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class TcpProxy:
    """Forwards ``listen_port`` (0: a free one) on ``host`` to ``upstream``; see the module doc."""

    def __init__(self, upstream: tuple[str, int], listen_port: int = 0, host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.host = host
        self.port = listen_port
        self.mode: Mode | None = None  # None: forwarding
        self.connections_total = 0
        self.bytes_up = 0  # client -> upstream
        self.bytes_down = 0  # upstream -> client
        self._loop = LoopThread(f"tcp-proxy->{upstream[1]}")
        self._server: asyncio.Server | None = None
        self._pipes: set[_Pipe] = set()
        self._flowing: asyncio.Event | None = None

    # ------------------------------------------------------------------------------------ controls

    def start(self) -> TcpProxy:
        self._loop.start()
        self._call(self._start())
        return self

    def close(self) -> None:
        """Stop listening, reset every connection, stop the loop thread."""
        if not self._loop.running:
            return
        self._call(self._shutdown())
        self._loop.close()

    def cut(self, mode: Mode = "blackhole") -> None:
        """Cut the network (see the module doc for the two modes)."""
        if mode not in ("blackhole", "reset"):
            raise ValueError(f"unknown cut mode {mode!r}")
        self._call(self._cut(mode))

    def restore(self) -> None:
        """Let bytes flow again (held ones first) and accept new connections."""
        self._call(self._restore())

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._pipes)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float = 30.0) -> _T:
        return self._loop.run(coro, timeout)

    # ------------------------------------------------------------------------------ in the loop

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for pipe in list(self._pipes):
            self._abort(pipe)
        if server is not None:
            await server.wait_closed()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in others:
            t.cancel()
        await asyncio.gather(*others, return_exceptions=True)  # no task left pending when the loop stops

    async def _cut(self, mode: Mode) -> None:
        assert self._flowing is not None
        self.mode = mode
        self._flowing.clear()
        if mode == "reset":
            for pipe in list(self._pipes):
                self._abort(pipe)

    async def _restore(self) -> None:
        assert self._flowing is not None
        self.mode = None
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        self.connections_total += 1
        pipe = _Pipe(reader, writer)
        self._pipes.add(pipe)
        if self.mode == "reset":
            self._abort(pipe)
            return
        try:
            await self._flowing.wait()  # blackholed: accepted, then nothing until restore
            if pipe not in self._pipes:  # reset while it waited
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                self._abort(pipe)
                return
            pipe.upstream_writer = up_writer
            pipe.tasks = [
                asyncio.create_task(self._pump(reader, up_writer, pipe, up=True)),
                asyncio.create_task(self._pump(up_reader, writer, pipe, up=False)),
            ]
            await asyncio.gather(*pipe.tasks, return_exceptions=True)
        finally:
            self._pipes.discard(pipe)
            for w in (writer, pipe.upstream_writer):
                if w is not None:
                    w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pipe: _Pipe, *, up: bool) -> None:
        assert self._flowing is not None
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(_CHUNK)
                await self._flowing.wait()  # cut while reading: hold these bytes until restore
                if not data:
                    break
                writer.write(data)
                await writer.drain()
                if up:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
            if writer.can_write_eof():  # half-close: pass the FIN on
                writer.write_eof()
        except OSError:  # ConnectionResetError & co.
            self._abort(pipe)

    def _abort(self, pipe: _Pipe) -> None:
        """Close both sides with a TCP RST (SO_LINGER on, timeout 0) and stop the pumps."""
        for w in (pipe.client_writer, pipe.upstream_writer):
            if w is None:
                continue
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()
        for t in pipe.tasks:
            t.cancel()
        self._pipes.discard(pipe)
