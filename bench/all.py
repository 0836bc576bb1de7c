#!/usr/bin/env python
"""Every benchmark of issue 18, one after the other, and one table of their figures.

Runs, each as its own process with its own broker (so none measures on a broker another one loaded):

- ``run``        bench/run.py --peers: B, B_txn, inventory S, the peers (Kafka Streams, quixstreams,
                 faust-streaming) on the same bytes, R, the rebuild RB, the hop and the saga;
- ``presale``    bench/presale.py, ``commission`` bench/commission.py, ``loyalty`` bench/loyalty.py:
                 each two-hop service against its own B measured in its run, and loyalty's tick and
                 the whole service's memory with 1,000,000 members;
- ``restart``    bench/restart.py --events: time to ready with 1 M events after kill -9 and a clean stop;
- ``capacity``   bench/capacity.py: the suite's highest steady order rate within the saga's p99.

Each bench's output goes to ``<dir>/<name>.log`` and its ``BENCH_JSON`` to ``<dir>/<name>.json``
(``<dir>`` = ``.cache/bench/all-<time>``); then the table is printed (markdown, for README) with the
date, the machine, the load average before and after each bench and the target of each figure. A
bench that fails is one line in the table; the others run, and the exit status is 1 (targets met or
not do not change it).

Usage::

    .venv/bin/python bench/all.py                      # the sizes README's table quotes (~1 h on 2 cores)
    .venv/bin/python bench/all.py --only run,restart   # some of them (--into DIR: into an earlier run's)
    .venv/bin/python bench/all.py --quick              # smoke sizes (a few minutes)
    .venv/bin/python bench/all.py --report .cache/bench/all-20261206-012000   # the table again
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

# name → (arguments at the quoted sizes, arguments for --quick)
STEPS: dict[str, tuple[list[str], list[str]]] = {
    "run": (
        ["run.py", "--peers", "--records", "200000", "--events", "1000000", "--latency-seconds", "10"],
        ["run.py", "--quick", "--peers"],
    ),
    "presale": (["presale.py", "--payments", "50000"], ["presale.py", "--quick"]),
    "commission": (["commission.py", "--orders", "50000"], ["commission.py", "--quick"]),
    "loyalty": (["loyalty.py", "--records", "50000"], ["loyalty.py", "--quick"]),
    "restart": (
        ["restart.py", "--events", "1000000", "--rounds", "3", "--tail", "5000"],
        ["restart.py", "--events", "50000", "--rounds", "2", "--tail", "1000"],
    ),
    "capacity": (
        ["capacity.py", "--rates", "5,10,20,40", "--step-seconds", "15"],
        ["capacity.py", "--rates", "5,10", "--step-seconds", "5", "--warmup-seconds", "6"],
    ),
}


def run_step(name: str, argv: list[str], out: Path) -> dict[str, Any]:
    """Run one bench, its output to `<out>/<name>.log`; its BENCH_JSON (or why there is none)."""
    log = out / f"{name}.log"
    cmd = [sys.executable, str(BENCH / argv[0]), *argv[1:]]
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    print(f"[{name}] {' '.join(['bench/' + argv[0], *argv[1:]])}  (log {log})", flush=True)
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        found: dict[str, Any] | None = None
        for line in proc.stdout:
            f.write(line)
            f.flush()
            if line.startswith("BENCH_JSON "):
                found = json.loads(line.removeprefix("BENCH_JSON "))
            elif line.strip():
                print(f"  {name}| {line.rstrip()}", flush=True)
        rc = proc.wait()
    meta = {"command": " ".join(["bench/" + argv[0], *argv[1:]]), "rc": rc, "seconds": time.monotonic() - t0}
    meta["loadavg"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    result = (
        {"meta": meta, "bench": found} if found is not None and rc == 0 else {"meta": meta, "failed": f"exit {rc}, see {log}"}
    )
    (out / f"{name}.json").write_text(json.dumps(result, indent=1, sort_keys=True))
    return result


# --- the table ---------------------------------------------------------------------------------------


def _get(d: Any, *path: str) -> Any:
    """d[path[0]][path[1]]…, or None where a key is missing (a bench's JSON lacks a figure)."""
    for p in path:
        if not (isinstance(d, dict) and p in d):
            return None
        d = d[p]
    return d


def _num(x: Any, fmt: str = ",.0f", unit: str = "") -> str:
    return "—" if not isinstance(x, int | float) else f"{x:{fmt}}{unit}"


def _cores(d: Any) -> str:
    """The cores the broker and the services used in a phase (CPU-seconds per wall second), where the
    bench measured them: on 2 cores, broker + services near 2.0 means the machine set the figure."""
    cores = d.get("cores") if isinstance(d, dict) else None
    return f" (cores: {', '.join(f'{k} {v:.2f}' for k, v in cores.items())})" if cores else ""


def _beside(d: dict[str, Any], own_hop: Any, crash: bool = True) -> str:
    """What the peers' comparison puts beside a rate: the rate measured over how long, the hop at the
    same offered rate (a peer's own; S's is its own row), the peak RSS, the kill -9 check."""
    parts = [f"over {_num(d.get('seconds'), '.1f')} s"] if d.get("seconds") else []
    hop = d.get("hop") if own_hop is not None else None
    if hop:
        late = f", {_num(hop.get('missing'))} late" if hop.get("missing") else ""
        parts.append(f"hop p50 {_num(hop.get('p50_ms'), ',.0f')} / p99 {_num(hop.get('p99_ms'), ',.0f')} ms{late}")
    if d.get("peak_rss_mib") is not None:
        parts.append(f"peak RSS {_num(d['peak_rss_mib'])} MiB")
    killed = (d.get("crash") or {}) if crash else {}
    if killed:
        parts.append(f"kill -9: {_num(killed.get('answered_twice'))} answered twice / {_num(killed.get('never'))} never")
    return f"; {'; '.join(parts)}" if parts else ""


def _met(ok: Any) -> str:
    return "" if ok is None else ("met" if ok else "**not met**")


Row = tuple[str, str, str, str, str]  # figure, value, ratio, target, met


def rows_run(r: dict[str, Any]) -> list[Row]:
    b = _get(r, "B", "rate")
    rows: list[Row] = [
        ("B — raw aiokafka passthrough (same bytes as S)", _num(b, unit=" rec/s"), "1.00 × B", "", ""),
        (
            "B_txn — the same, a transaction per batch",
            _num(_get(r, "B_txn", "rate"), unit=" rec/s"),
            _num(_get(r, "ratios", "B_txn_over_B"), ".2f", " × B"),
            "",
            "",
        ),
        (
            "S — inventory, exactly-once (ReserveStock → StockReserved)",
            _num(_get(r, "S", "rate"), unit=" cmd/s") + _cores(r.get("S")) + _beside(r.get("S") or {}, None, crash=False),
            _num(_get(r, "ratios", "S_over_B"), ".2f", " × B"),
            "≥ 0.6 × B",
            _met(_get(r, "met", "S_over_B")),
        ),
    ]
    names = {
        "kstreams": "Kafka Streams (exactly_once_v2)",
        "quix": "quixstreams (exactly-once)",
        "faust": "faust-streaming (exactly_once)",
    }
    for k, label in names.items():
        p = _get(r, "peers", k)
        if p is None:
            continue
        if p.get("status") != "ok":
            rows.append((f"peer: {label}", f"failed: {p.get('status')}", "", "", ""))
            continue
        value = ("~" if p.get("coarse") else "") + _num(p.get("rate"), unit=" cmd/s") + _beside(p, r.get("hop"))
        target = "S ≥ it" if k == "kstreams" else "behind S"
        ok = (
            _get(r, "met", "S_over_kstreams")
            if k == "kstreams"
            else (p["rate"] < _get(r, "S", "rate") if _get(r, "S", "rate") else None)
        )
        rows.append((f"peer: {label}", value, _num(_get(r, "ratios", f"{k}_over_B"), ".2f", " × B"), target, _met(ok)))
    s_crash = _get(r, "S", "crash") or {}
    if s_crash:
        rows.append(
            (
                "S after kill -9 mid-stream: answered twice / never",
                f"{_num(s_crash.get('answered_twice'))} / {_num(s_crash.get('never'))}",
                "",
                "0 / 0",
                _met(s_crash.get("answered_twice") == 0 and s_crash.get("never") == 0),
            )
        )
    rows += [
        ("R — raw consume of the rebuild's log", _num(_get(r, "raw", "rate"), unit=" rec/s"), "1.00 × R", "", ""),
        (
            f"RB — rebuild of {_num(_get(r, 'rebuild', 'events'))} events",
            _num(_get(r, "rebuild", "rate"), unit=" ev/s") + _cores(r.get("rebuild")),
            _num(_get(r, "ratios", "rebuild_over_raw"), ".2f", " × R"),
            "≥ 0.5 × R",
            _met(None if _get(r, "ratios", "rebuild_over_raw") is None else _get(r, "ratios", "rebuild_over_raw") >= 0.5),
        ),
    ]
    for key, label, target_ms in (
        ("hop", "hop ReserveStock → StockReserved at {}/s (½ S)", 50),
        ("saga", "saga PlaceOrder → OrderConfirmed at {}/s", 150),
    ):
        lat = _get(r, key) or {}
        if lat:
            p99 = lat.get("p99_ms")
            rows.append(
                (
                    label.format(_num(lat.get("target_rate"))),
                    f"p50 {_num(lat.get('p50_ms'), ',.1f')} / p99 {_num(p99, ',.1f')} ms" + _cores(lat),
                    "",
                    f"p99 ≤ {target_ms} ms",
                    _met(None if p99 is None else p99 <= target_ms),
                )
            )
    return rows


def rows_two_hop(name: str, r: dict[str, Any]) -> list[Row]:
    ratio = _get(r, "ratios", "S_over_B") or r.get("S_over_B")  # (loyalty's JSON keeps it beside B and S)
    return [
        (f"{name} — its own B, same run", _num(_get(r, "B", "rate"), unit=" rec/s"), "1.00 × B", "", ""),
        (
            f"{name} — two hops, exactly-once",
            _num(_get(r, "S", "rate"), unit=" ev/s"),
            _num(ratio, ".2f", " × B"),
            "≥ 0.3 × B",
            _met(None if ratio is None else ratio >= 0.3),
        ),
    ]


def rows_loyalty(r: dict[str, Any]) -> list[Row]:
    rows = rows_two_hop("loyalty", r.get("throughput") or {})
    tick = _get(r, "tick") or {}
    if tick:
        members = tick.get("members")
        rows.append(
            (
                f"loyalty — a business day's tick over {_num(members)} members",
                _num(tick.get("tick_seconds"), ".2f", " s"),
                "",
                "",
                "",
            )
        )
        peak = tick.get("service_restarted_peak_rss_mib")
        if peak is not None:
            rss = tick.get("service_restarted_rss_mib")
            ledger = tick.get("service_ledger_disk_mib")
            value = f"{_num(rss)} / {_num(peak)} MiB (ledgers on disk: {_num(ledger)} MiB)"
            rows.append(
                (
                    f"loyalty — a process holding {_num(members)} members, restarted: RSS / peak",
                    value,
                    "",
                    "peak ≤ 300 MB",
                    _met(peak * 2**20 <= 300e6),
                )
            )
    return rows


def rows_restart(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for mode, target in (("kill9", 3.0), ("clean", 2.0)):
        p50, mx = _get(r, mode, "ready", "p50"), _get(r, mode, "ready", "max")
        label = "kill -9" if mode == "kill9" else "a clean stop"
        value = f"{_num(p50, '.2f')} / {_num(mx, '.2f')} s"
        rows.append(
            (
                f"time to ready after {label}, {_num(_get(r, 'events'))} events, snapshots on (p50 / max)",
                value,
                "",
                f"≤ {target:.0f} s",
                _met(_get(r, "met", f"{mode}_ready_s")),
            )
        )
    return rows


def rows_capacity(r: dict[str, Any]) -> list[Row]:
    cap = _get(r, "capacity_orders_per_s")
    rows: list[Row] = [
        (
            "suite capacity: orders/s through all five services with PlaceOrder → OrderConfirmed p99 ≤ 250 ms",
            _num(cap, unit=" orders/s") if cap else "below the lowest rate tried",
            "",
            "",
            "",
        )
    ]
    for step in r.get("steps") or []:
        confirm = step.get("confirm") or {}
        services = sum(v for k, v in (step.get("cores") or {}).items() if k != "broker")
        cores = (
            f" (cores: broker {_num(_get(step, 'cores', 'broker'), '.2f')}, services {services:.2f})" if step.get("cores") else ""
        )
        verdict = "passed" if step.get("passed") else ("fell behind" if not step.get("keeps_up") else "p99 too high")
        rows.append(
            (
                f"  offered {_num(step.get('offered_rate'))} orders/s: PlaceOrder → OrderConfirmed",
                f"p50 {_num(confirm.get('p50_ms'))} / p99 {_num(confirm.get('p99_ms'), ',.1f')} ms, {verdict}" + cores,
                "",
                "p99 ≤ 250 ms",
                _met(step.get("passed")),
            )
        )
    return rows


RENDER: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "run": rows_run,
    "presale": lambda r: rows_two_hop("presale", r),
    "commission": lambda r: rows_two_hop("commission", r),
    "loyalty": rows_loyalty,
    "restart": rows_restart,
    "capacity": rows_capacity,
}


def report(out: Path) -> str:
    lines = [
        f"flexchain benchmarks — {time.strftime('%Y-%m-%d', time.localtime(out.stat().st_mtime))}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; each bench on its own fresh local broker; results in {out}",
        "",
        "| bench (command; load average before → after) | figure | value | ratio | target | |",
        "|---|---|---|---|---|---|",
    ]
    for name in STEPS:
        path = out / f"{name}.json"
        if not path.exists():
            continue
        res = json.loads(path.read_text())
        meta = res["meta"]
        where = f"`{meta['command']}`; {meta['loadavg'][0]} → {meta['loadavg'][1]}"
        if "failed" in res:
            lines.append(f"| {where} | {name} | failed: {res['failed']} | | | |")
            continue
        try:
            rows = RENDER[name](res["bench"])
        except (KeyError, TypeError, ZeroDivisionError) as exc:  # a bench's JSON changed shape
            rows = [(name, f"could not be read: {exc!r}", "", "", "")]
        for i, (figure, value, ratio, target, met) in enumerate(rows):
            lines.append(f"| {where if i == 0 else ''} | {figure} | {value} | {ratio} | {target} | {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help=f"comma-separated, of: {','.join(STEPS)}")
    ap.add_argument("--quick", action="store_true", help="smoke sizes")
    ap.add_argument("--report", type=Path, help="print the table of an earlier run's directory and exit")
    ap.add_argument("--into", type=Path, help="write into this directory (an earlier run's: re-run some of its benches)")
    args = ap.parse_args(argv)
    if args.report is not None:
        print(report(args.report))
        return 0
    names = args.only.split(",") if args.only else list(STEPS)
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        ap.error(f"unknown bench(es): {', '.join(unknown)}; known: {', '.join(STEPS)}")
    out = args.into or ROOT / ".cache" / "bench" / f"all-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    failed = [name for name in names if "failed" in run_step(name, STEPS[name][1 if args.quick else 0], out)]
    print()
    print(report(out))
    if failed:
        print(f"\nfailed: {', '.join(failed)} (their logs are in {out})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
