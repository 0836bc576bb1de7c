"""bench/all.py's table (issue 18): each bench's figures against its target, a failed bench named,
a missing figure shown as missing rather than as a number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.all import report


def _write(out: Path, name: str, bench: dict[str, Any] | None, failed: str = "") -> None:
    meta = {"command": f"bench/{name}.py", "rc": 1 if failed else 0, "seconds": 1.0, "loadavg": [0.5, 1.5]}
    body = {"meta": meta, "failed": failed} if failed else {"meta": meta, "bench": bench}
    (out / f"{name}.json").write_text(json.dumps(body))


def _row(table: str, figure: str) -> list[str]:
    line = next(line for line in table.splitlines() if figure in line)
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_each_figure_is_judged_against_its_target_and_a_failed_bench_is_named(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "restart",
        {
            "events": 1_000_000,
            "kill9": {"ready": {"p50": 2.5, "max": 3.4}},
            "clean": {"ready": {"p50": 1.5, "max": 1.9}},
            "met": {"kill9_ready_s": False, "clean_ready_s": True},
        },
    )
    _write(tmp_path, "presale", {"B": {"rate": 10_000.0}, "S": {"rate": 3_500.0}, "ratios": {"S_over_B": 0.35}})
    _write(tmp_path, "commission", None, failed="exit 1, see commission.log")
    _write(tmp_path, "capacity", {"capacity_orders_per_s": 0.0})
    _write(tmp_path, "loyalty", {"throughput": {"B": {"rate": 20_000.0}, "S": {"rate": 1_000.0}, "S_over_B": 0.05}})
    table = report(tmp_path)

    kill = _row(table, "after kill -9")
    assert kill[2:] == ["2.50 / 3.40 s", "", "≤ 3 s", "**not met**"]  # judged by the bench on its worst round
    assert _row(table, "after a clean stop")[2:] == ["1.50 / 1.90 s", "", "≤ 2 s", "met"]
    assert _row(table, "presale — two hops")[2:] == ["3,500 ev/s", "0.35 × B", "≥ 0.3 × B", "met"]
    assert _row(table, "loyalty — two hops")[3:] == ["0.05 × B", "≥ 0.3 × B", "**not met**"]
    assert "failed: exit 1" in _row(table, "commission")[2]
    assert _row(table, "suite capacity")[2] == "below the lowest rate tried"
    assert "0.5 → 1.5" in kill[0]  # the load average around the bench, on its first row


def test_a_figure_missing_from_a_bench_is_shown_as_missing(tmp_path: Path) -> None:
    _write(tmp_path, "loyalty", {"throughput": {"B": {"rate": 20_000.0}, "S": {"rate": 1_000.0}}})
    row = _row(report(tmp_path), "loyalty — two hops")
    assert row[2:] == ["1,000 ev/s", "—", "≥ 0.3 × B", ""]  # no ratio in the JSON: neither a number nor a verdict


def test_a_failed_bench_makes_the_run_exit_non_zero_and_the_others_still_run(tmp_path: Path, monkeypatch: Any) -> None:
    import bench.all as all_benches

    (tmp_path / "fails.py").write_text("import sys\nprint('broker would not start')\nsys.exit(3)\n")
    (tmp_path / "works.py").write_text("print('BENCH_JSON ' + '{\"capacity_orders_per_s\": 5.0}')\n")
    monkeypatch.setattr(all_benches, "BENCH", tmp_path)
    monkeypatch.setitem(all_benches.STEPS, "commission", (["fails.py"], ["fails.py"]))
    monkeypatch.setitem(all_benches.STEPS, "capacity", (["works.py"], ["works.py"]))
    out = tmp_path / "out"

    assert all_benches.main(["--only", "commission,capacity", "--into", str(out)]) == 1
    assert "failed" in json.loads((out / "commission.json").read_text())
    assert json.loads((out / "capacity.json").read_text())["bench"] == {"capacity_orders_per_s": 5.0}
    assert all_benches.main(["--only", "capacity", "--into", str(out)]) == 0  # only the bench that works
