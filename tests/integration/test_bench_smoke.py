"""Smoke test of the benchmark script: `bench/run.py --quick` runs end to end against the session
broker and reports positive figures. No timing assertions — the figures depend on the machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from flexchain.settings import PROJECT_ROOT

pytestmark = pytest.mark.broker


def test_bench_quick_runs_and_reports(kafka_bootstrap: str) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "run.py"), "--quick"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    assert len(lines) == 1, proc.stdout[-3000:]
    data = json.loads(lines[0].removeprefix("BENCH_JSON "))

    for figure in ("B", "B_txn", "S", "raw", "rebuild"):
        assert data[figure]["rate"] > 0, figure
    assert data["sizes"]["reserve_stock_value_bytes"] > 0
    assert data["S"]["check"]["stock_reserved"] == data["records"]
    assert data["rebuild"]["events"] == data["events"] and data["rebuild"]["complete"]
    for ratio in ("S_over_B", "rebuild_over_raw"):
        assert data["ratios"][ratio] > 0
        assert isinstance(data["met"][ratio], bool)
    for run in ("hop", "saga"):
        assert data[run]["sent"] > 0 and data[run]["n"] > 0
        assert data[run]["p50_ms"] > 0 and data[run]["p99_ms"] >= data[run]["p50_ms"]
    assert data["saga"]["outcomes"]["OrderConfirmed"] > 0
    assert data["S"]["peak_rss_mib"] > 0 and data["rebuild"]["peak_rss_mib"] > 0
    # the broker ran transactions before the first figure, and each phase says what CPU it took
    # (the broker's own only when the bench started it: this one is the session's)
    assert data["warmup"]["first"]["txn_per_s"] > 0 and data["warmup"]["last"]["txn_per_s"] > 0
    for run in ("S", "hop", "rebuild"):
        assert data[run]["cores"]["inventory"] > 0, run
    assert data["saga"]["cores"]["order"] > 0 and data["saga"]["cores"]["inventory"] > 0
