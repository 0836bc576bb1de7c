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


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGTERM, id="SIGTERM"), longer(signal.SIGHUP, id="SIGHUP")])
def test_the_demo_stops_its_broker_and_services_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    root = tmp_path / "demo"
    # its own broker, and its own API keys, as `make demo` on a fresh machine
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "FLEXCHAIN_API_KEYS", "FLEXCHAIN_TOKEN")}
    env |= {"FLEXCHAIN_DEMO_DIR": str(root), "PYTHONUNBUFFERED": "1"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "flexchain.cli", "demo", "--port", str(free_port_pair())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    running = threading.Event()

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("Running."):
                running.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while not running.wait(1.0):
            assert demo.poll() is None, "".join(lines)
        started = _started_from(root)
        assert len(started) >= 6, f"the broker and five services: {started}"  # (a JVM may fork helpers)
        # the keys it made for its run (README "Security"): a reader's is let in, no token is not
        reader_token = (root / "tokens" / "reader").read_text().strip()
        inventory = f"http://127.0.0.1:{SERVICES['inventory']}/skus"
        assert httpx.get(inventory, headers={"Authorization": f"Bearer {reader_token}"}, timeout=10).status_code == 200
        assert httpx.get(inventory, timeout=10).status_code == 401
        assert "export FLEXCHAIN_TOKEN=" in "".join(lines)

        demo.send_signal(sig)
        assert demo.wait(timeout=120) == 0, "".join(lines)
        reader.join(timeout=10)
        assert "Stopped." in "".join(lines)
        deadline = time.monotonic() + 30  # the broker's JVM may take a moment to be reaped
        while (left := _started_from(root)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left == [], f"still running after {sig.name}: {left}"
    finally:
        if demo.poll() is None:
            demo.kill()
        for pid in _started_from(root):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGTERM, id="SIGTERM"), longer(signal.SIGINT, id="SIGINT")])
def test_simulate_stops_its_broker_and_services_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    root = tmp_path / "simulate"
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "FLEXCHAIN_API_KEYS", "FLEXCHAIN_TOKEN")}
    env |= {"FLEXCHAIN_SIM_DIR": str(root), "PYTHONUNBUFFERED": "1"}
    argv = ["simulate", "--days", "90", "--out", str(tmp_path / "report"), "--port", str(free_port_pair())]
    sim = subprocess.Popen(
        [sys.executable, "-m", "flexchain.cli", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    playing = threading.Event()

    def read() -> None:
        assert sim.stdout is not None
        for line in sim.stdout:
            lines.append(line)
            if "day 1/90" in line:  # the broker, the services and the merchant are up: mid-run
                playing.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while not playing.wait(1.0):
            assert sim.poll() is None, "".join(lines)
        started = _started_from(root)
        assert len(started) >= 6, f"the broker and five services: {started}"

        sim.send_signal(sig)
        assert sim.wait(timeout=180) == 1, "".join(lines)
        reader.join(timeout=10)
        assert "stopped before the report" in "".join(lines)
        assert not (tmp_path / "report" / "index.html").exists()
        deadline = time.monotonic() + 30  # the broker's JVM may take a moment to be reaped
        while (left := _started_from(root)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left == [], f"still running after {sig.name}: {left}"
    finally:
        if sim.poll() is None:
            sim.kill()
        for pid in _started_from(root):
            os.kill(pid, signal.SIGKILL)
