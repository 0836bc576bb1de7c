"""Service instances as child processes — used by the demo, the tests and the benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import httpx


class ChildProcess:
    """A child process in its own session (so a kill reaches everything it started), its output in a log
    file: start, running, kill9, stop, tail. The services (:class:`ServiceProcess`) and the bench's peers
    (``bench/peers``) are both this."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.cwd
        )
        log.close()
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """Crash it: SIGKILL to its process group, no cleanup, nothing flushed, a transaction left open."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> int | None:
        """A clean stop: SIGTERM (a service saves its snapshots), SIGKILL after `timeout`."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.proc.returncode

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ServiceProcess(ChildProcess):
    """One `flexchain serve <service>` process with its own environment, port and log file."""

    def __init__(
        self, service: str, env: dict[str, str], log_dir: Path, port: int, instance: str = "0", module: str | None = None
    ) -> None:
        """`module`: run `python -m <module>` instead of `flexchain serve <service>` (a test's own service)."""
        self.service = service
        self.port = port
        self.instance = instance
        self.url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, *(["-m", module] if module else ["-m", "flexchain.cli", "serve", service])]
        env = {**os.environ, **env, "FLEXCHAIN_HTTP_PORT": str(port), "FLEXCHAIN_INSTANCE_ID": instance}
        super().__init__(f"{service}-{instance}", argv, env, log_dir / f"{service}-{instance}.log")

    def wait_ready(self, timeout: float = 90.0) -> ServiceProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout}s: {self.tail()}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """Two consecutive free ports (a broker and its controller)."""
    return free_port_block(2)


def free_port_block(n: int) -> int:
    """The first of ``n`` consecutive free ports (e.g. a cluster's nodes, each a broker and a controller port)."""
    for _ in range(50):
        p = free_port()
        try:
            with contextlib.ExitStack() as stack:
                for i in range(n):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", p + i))
            return p
        except OSError:
            continue
    raise RuntimeError(f"no {n} consecutive free ports")


# --- a command that started processes stops them, however it is stopped -----------------------------

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop what the command started, as Ctrl-C does. A KeyboardInterrupt, so it
    leaves an asyncio event loop as Ctrl-C does (asyncio keeps any other exception a callback or task
    raises to itself, and the loop would go on)."""


@contextlib.contextmanager
def stopped_like_ctrl_c() -> Iterator[None]:
    """Inside: SIGTERM (a supervisor, `kill`, `timeout`) and SIGHUP (the terminal closed) raise
    `Stopped` in the main thread, as Ctrl-C raises KeyboardInterrupt — so the `finally` clauses that
    stop the broker and the services (each in a session of its own: a signal to the command does not
    reach them) run. Only the first of these signals raises, Ctrl-C included: a second one must not
    cut that clean-up short. (A SIGINT the command was started ignoring — a background job of a
    shell — stays ignored.)"""
    raised = False

    def stop(signum: int, frame: object) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signal.Signals(signum).name)

    wanted = [sig for sig in STOP_SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN]
    before = {sig: signal.signal(sig, stop) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
