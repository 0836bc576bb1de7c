"""Our processes on a read-only root filesystem, as compose (`read_only: true`) and Kubernetes
(`readOnlyRootFilesystem`) run them, with only FLEXCHAIN_DATA_DIR and /tmp writable (tmpfs there, as
in both): each starts, becomes ready on the real broker and writes what it writes into the data dir.

No container engine here: a private mount namespace (`unshare`, util-linux) where `/` is bound
read-only onto itself and tmpfs is mounted on /tmp and on the data dir, then the process is exec'ed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flexchain.procs import ServiceProcess
from flexchain.settings import PROJECT_ROOT
from tests.support import Suite

# $1 = the data dir; the rest = the command. /tmp first: the data dir must not lie under it.
SANDBOX = r"""set -e
mount --bind / /
mount -o remount,bind,ro /
mount -t tmpfs -o size=64m tmpfs /tmp
mount -t tmpfs -o size=256m tmpfs "$1"
shift
exec "$@"
"""


def _sandboxed(data: Path, argv: list[str]) -> list[str]:
    # needs root (skipped otherwise): inside a user namespace / cannot be remounted read-only
    return ["unshare", "--mount", "sh", "-c", SANDBOX, "sandbox", str(data), *argv]


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) not on this machine")
    root = PROJECT_ROOT / ".cache" / f"readonly-{uuid.uuid4().hex[:8]}"  # not under /tmp (a tmpfs in there)
    (root / "data").mkdir(parents=True)
    probe = subprocess.run(_sandboxed(root / "data", ["true"]), capture_output=True, text=True, check=False)  # each mount or exit
    if probe.returncode != 0:
        shutil.rmtree(root)
        pytest.skip(f"no private mount namespace here: {probe.stderr.strip()}")
    yield root / "data"
    shutil.rmtree(root, ignore_errors=True)


def test_the_sandbox_is_read_only_but_for_tmp_and_the_data_dir(data_dir: Path) -> None:
    def write(path: str) -> subprocess.CompletedProcess[str]:
        code = f"open({path!r} + '/probe', 'w').write('x')"
        return subprocess.run(_sandboxed(data_dir, [sys.executable, "-c", code]), capture_output=True, text=True, check=False)

    refused = write(str(PROJECT_ROOT))
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    assert write("/tmp").returncode == 0 and write(str(data_dir)).returncode == 0
    assert not (PROJECT_ROOT / "probe").exists() and not (data_dir / "probe").exists()  # both tmpfs: gone


@pytest.mark.broker
def test_services_and_the_notifier_run_on_a_read_only_root(kafka_bootstrap: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, f"ro{uuid.uuid4().hex[:6]}-", data_dir)  # SQLite snapshots: in the data dir
    hooks = [{"name": "ops", "url": "https://hooks.example.com/", "secret": "s" * 16, "events": ["*"]}]
    procs: list[ServiceProcess] = []
    try:
        for name, env in (("order", {}), ("notify", {"FLEXCHAIN_NOTIFY_WEBHOOKS": json.dumps(hooks)})):
            proc = ServiceProcess(name, {**suite.env, **env}, data_dir.parent / "logs", suite.free_port())
            proc.argv = _sandboxed(data_dir, proc.argv)
            procs.append(proc.start())
        for proc in procs:
            proc.wait_ready(timeout=120)
            assert proc.proc is not None
            # what each wrote, seen through the process's own mount namespace
            inside = Path(f"/proc/{proc.proc.pid}/root") / str(data_dir).lstrip("/")
            assert sorted(p.name for p in inside.iterdir()) == (["order-snapshots.db"] if proc.service == "order" else ["notify"])
        clock = subprocess.run(
            _sandboxed(data_dir, [sys.executable, "-m", "flexchain.cli", "clock", "--interval", "0.1", "--count", "2"]),
            env={**os.environ, **suite.env},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert clock.returncode == 0, clock.stdout + clock.stderr
    finally:
        for proc in procs:
            proc.stop()
    for proc in procs:
        assert "Read-only file system" not in proc.log_path.read_text(errors="replace"), proc.tail(40)
