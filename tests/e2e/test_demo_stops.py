"""`make demo` and `flexchain simulate` stop what they started, however they are stopped: Ctrl-C,
SIGTERM (a supervisor, `kill`, `timeout`) or SIGHUP (the terminal closed). Each runs its own broker
here, as on a fresh machine. (`flexchain simulate` once died on SIGTERM and left its broker and five
services running, each in a session of its own.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from flexchain.catalog import SERVICES
from flexchain.procs import free_port_pair
from tests.faults.support import longer

pytestmark = pytest.mark.broker


def _started_from(root: Path) -> list[int]:
    """Processes whose environment or command line names `root`: the demo's broker and services."""
    mine = str(root).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if mine in seen:
            pids.append(int(entry.name))
    return pids


class _Run:
    """`flexchain <argv>` in its own process, its output read line by line on a thread: `wait_for`
    a line that shows it is up, then `stop_with` a signal and check that nothing it started is left."""

    def __init__(self, root: Path, argv: list[str], env: dict[str, str], marker: str) -> None:
        self.root = root
        self.lines: list[str] = []
        self._seen = threading.Event()
        self._marker = marker
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flexchain.cli", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if self._marker in line:
                self._seen.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_marker(self) -> None:
        while not self._seen.wait(1.0):
            assert self.proc.poll() is None, self.output

    def stop_with(self, sig: signal.Signals, exit_code: int, timeout: float) -> None:
        """Send `sig`; the command exits with `exit_code` and leaves no process of its run behind."""
        self.proc.send_signal(sig)
        assert self.proc.wait(timeout=timeout) == exit_code, self.output
        self._reader.join(timeout=10)
        deadline = time.monotonic() + 30  # the broker's JVM may take a moment to be reaped
        while (left := _started_from(self.root)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left == [], f"still running after {sig.name}: {left}"

    def kill_all(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        for pid in _started_from(self.root):
            os.kill(pid, signal.SIGKILL)


def _fresh_machine_env(**extra: str) -> dict[str, str]:
    """Its own broker and its own API keys, as on a fresh machine."""
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "FLEXCHAIN_API_KEYS", "FLEXCHAIN_TOKEN")}
    return env | {"PYTHONUNBUFFERED": "1"} | extra


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGTERM, id="SIGTERM"), longer(signal.SIGHUP, id="SIGHUP")])
def test_the_demo_stops_its_broker_and_services_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    root = tmp_path / "demo"
    env = _fresh_machine_env(FLEXCHAIN_DEMO_DIR=str(root))
    demo = _Run(root, ["demo", "--port", str(free_port_pair())], env, marker="Running.")
    try:
        demo.wait_for_marker()
        started = _started_from(root)
        assert len(started) >= 6, f"the broker and five services: {started}"  # (a JVM may fork helpers)
        # the keys it made for its run (README "Security"): a reader's is let in, no token is not
        reader_token = (root / "tokens" / "reader").read_text().strip()
        inventory = f"http://127.0.0.1:{SERVICES['inventory']}/skus"
        assert httpx.get(inventory, headers={"Authorization": f"Bearer {reader_token}"}, timeout=10).status_code == 200
        assert httpx.get(inventory, timeout=10).status_code == 401
        assert "export FLEXCHAIN_TOKEN=" in demo.output

        demo.stop_with(sig, exit_code=0, timeout=120)
        assert "Stopped." in demo.output
    finally:
        demo.kill_all()


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGTERM, id="SIGTERM"), longer(signal.SIGINT, id="SIGINT")])
def test_simulate_stops_its_broker_and_services_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    root = tmp_path / "simulate"
    env = _fresh_machine_env(FLEXCHAIN_SIM_DIR=str(root))
    argv = ["simulate", "--days", "90", "--out", str(tmp_path / "report"), "--port", str(free_port_pair())]
    # "day 1/90": the broker, the services and the merchant are up; it is mid-run
    sim = _Run(root, argv, env, marker="day 1/90")
    try:
        sim.wait_for_marker()
        started = _started_from(root)
        assert len(started) >= 6, f"the broker and five services: {started}"

        sim.stop_with(sig, exit_code=1, timeout=180)
        assert "stopped before the report" in sim.output
        assert not (tmp_path / "report" / "index.html").exists()
    finally:
        sim.kill_all()
