#!/usr/bin/env python
"""How long a service killed with -9 takes to answer `/ready` again, and where the time goes.

Starts a broker (fresh, under .cache/bench-restart, free ports; or KAFKA_BOOTSTRAP_SERVERS), the
inventory and order services, plays a small shop through their APIs (a few hundred events), then
kills the order service with -9 and starts it again, `--rounds` times. Per round, from the service's
own log and from outside:

- **boot**: process spawned → "service started" (imports, topics checked, read models started);
- **join**: → "rebuild started" (consumer group joined, partitions assigned, producers fenced);
- **rebuild**: → "rebuild finished" (snapshots loaded, log folded);
- **ready**: → `/ready` answers 200 (read models caught up), measured from outside.

Usage: ``.venv/bin/python bench/restart.py [--rounds 5] [--orders 100] [--service order]``.

With ``--events M`` (issue 18, "time to ready with 1 M events, snapshots on"): the inventory
service's event log is filled with M events (``bench.run.log_events``, produced straight into the
topic, as the rebuild run of bench/run.py does), the service folds them once, works a few commands
on every partition and is stopped cleanly, which saves a snapshot of each partition in its usual
store (``FLEXCHAIN_SNAPSHOT_URL``, by default SQLite in the data dir). Then ``--rounds`` kill -9
restarts and ``--rounds`` clean restarts (SIGTERM, wait for the exit), each after ``--tail``
ReserveStock commands worked off, so that the log holds events past the snapshot as a running
service's does. Per round: the phases above, the snapshots loaded and the events folded after them
(the service's log), p50/max per phase, and ``BENCH_JSON {...}``.

``.venv/bin/python bench/restart.py --events 1000000 [--rounds 5] [--tail 5000]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import statistics
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.run import (  # noqa: E402
    clean,
    log_events,
    produce_all,
    reserve_commands,
    service_topics,
    settings,
    sku_names,
    topic_end,
    wait_committed,
    wait_ready,
)
from flexchain import kafka  # noqa: E402
from flexchain.auth import bearer, ensure_local_auth  # noqa: E402
from flexchain.procs import ServiceProcess, free_port  # noqa: E402
from flexchain.procs import free_port_pair as free_pair  # noqa: E402
from flexchain.settings import PROJECT_ROOT  # noqa: E402
from flexchain.snapshots import SnapshotStore  # noqa: E402
from flexchain.tools import broker as kbroker  # noqa: E402

CACHE = PROJECT_ROOT / ".cache"
PHASES = ("service started", "rebuild started", "rebuild finished")


def _log_records(log: Path, since: float) -> list[tuple[float, dict[str, Any]]]:
    """The service's JSON log lines stamped at or after `since` (epoch seconds), with their time."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        stamp = rec.get("timestamp")
        if not stamp:
            continue
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        if at >= since:
            out.append((at, rec))
    return out


def _events(log: Path, since: float) -> dict[str, float]:
    """The first time each phase was logged after `since` (epoch seconds)."""
    seen: dict[str, float] = {}
    for at, rec in _log_records(log, since):
        event = rec.get("event")
        if event in PHASES and event not in seen:
            seen[event] = at
    return seen


def _rebuild_facts(log: Path, since: float) -> dict[str, Any]:
    """What the restart's log says about its rebuild: snapshots loaded (and their offsets), partitions
    without one, rebuilds and the events they folded after the snapshots."""
    timed = _log_records(log, since)
    recs = [r for _, r in timed]
    loaded = [r for r in recs if r.get("event") == "snapshot loaded"]
    # The partitions' snapshots are loaded one after the other, each logged once decoded: the span
    # of those lines, stretched by one load, estimates the time spent loading snapshots (in "join").
    stamps = [at for at, r in timed if r.get("event") == "snapshot loaded"]
    load_s = (stamps[-1] - stamps[0]) * len(stamps) / (len(stamps) - 1) if len(stamps) > 1 else float("nan")
    return {
        "snapshot_load_s": load_s,
        "snapshots_loaded": len(loaded),
        "snapshot_offsets": sum(int(r.get("next_offset", 0)) for r in loaded),
        "no_snapshot": sum(r.get("event", "").startswith("no snapshot") for r in recs),
        "snapshots_ignored": sum(r.get("event", "").startswith("snapshot ignored") for r in recs),
        "rebuilds": sum(r.get("event") == "rebuild finished" for r in recs),
        "events_folded": sum(int(r.get("events", 0)) for r in recs if r.get("event") == "rebuild finished"),
        "rebuild_seconds": sum(float(r.get("seconds", 0)) for r in recs if r.get("event") == "rebuild finished"),
    }


def _stored_snapshots(data_dir: Path, service: str, group: str) -> dict[int, int]:
    """Partition → next offset of the service's snapshots in the default store (SQLite in the data dir),
    stored under its consumer group's name."""
    db = data_dir / f"{service}-snapshots.db"
    if not db.exists():
        return {}
    store = SnapshotStore(f"sqlite:///{db}")
    try:
        return store.offsets(group)
    finally:
        store.close()


def _phases(victim: ServiceProcess, spawned: float, ready: float) -> tuple[float, ...]:
    """(ready, boot, join, rebuild, catch-up) in seconds for a restart spawned at `spawned`."""
    seen = _events(victim.log_path, spawned)
    marks = [spawned, *(seen.get(p) for p in PHASES), ready]
    parts = [(b - a) if a is not None and b is not None else float("nan") for a, b in itertools.pairwise(marks)]
    return (ready - spawned, *parts)


PHASE_NAMES = ("ready", "boot", "join", "rebuild", "catch-up")


def _shop(inv: str, order: str, orders: int) -> None:
    with httpx.Client(timeout=30, headers=bearer()) as http:
        http.post(f"{inv}/skus", json={"sku": "tea", "name": "Tea", "low_stock_floor": 0}).raise_for_status()
        http.post(f"{inv}/skus/tea/receipts", json={"warehouse": "w1", "qty": orders * 2}).raise_for_status()
        for i in range(orders):
            line = {"sku": "tea", "qty": 1, "unit_price": 500}
            body = {"order_id": f"o{i}", "member_id": f"m{i % 7}", "channel": "live", "lines": [line]}
            http.post(f"{order}/orders", json=body).raise_for_status()


def _ready_at(proc: ServiceProcess, timeout: float) -> float:
    """The epoch time (comparable with the log's) `proc` was first seen ready, polled every 50 ms."""
    return asyncio.run(wait_ready(proc, timeout, interval=0.05, clock=time.time))


def _summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {
        k: {"p50": statistics.median(r[k] for r in rows), "max": max(r[k] for r in rows)}
        for k in (*PHASE_NAMES, "snapshot_load_s", "events_folded")
    }


def _say_round(kind: str, r: int, row: dict[str, Any]) -> None:
    print(
        f"{kind} round {r}: ready in {row['ready']:5.2f} s = boot {row['boot']:.2f} + join {row['join']:.2f} "
        f"+ rebuild {row['rebuild']:.2f} + catch-up {row['catch-up']:.2f}; snapshots loaded {row['snapshots_loaded']}/"
        f"{row['snapshots_loaded'] + row['no_snapshot'] + row['snapshots_ignored']}, {row['events_folded']:,} events folded "
        f"after them (loading them ≈ {row['snapshot_load_s']:.2f} s of join)"
        + (f"; stop took {row['stop_s']:.2f} s" if "stop_s" in row else ""),
        flush=True,
    )


def big_log(args: argparse.Namespace, bootstrap: str, root: Path, env: dict[str, str]) -> dict[str, Any]:
    """Time to ready of the inventory service with `args.events` events in its log, snapshots on."""
    prefix = env["FLEXCHAIN_TOPIC_PREFIX"]
    s = settings(bootstrap, prefix)
    rng = random.Random(args.seed)
    skus = sku_names(args.skus)
    commands, group = s.name("inventory.commands"), s.name("inventory")
    out: dict[str, Any] = {"events": args.events, "tail": args.tail, "skus": args.skus, "rounds": args.rounds}
    out["env"] = {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    out["snapshot_every"] = int(os.environ.get("FLEXCHAIN_SNAPSHOT_EVERY", settings(bootstrap).flexchain_snapshot_every))
    out["snapshot_store"] = (
        "FLEXCHAIN_SNAPSHOT_URL" if os.environ.get("FLEXCHAIN_SNAPSHOT_URL") else "sqlite in the data dir (default)"
    )

    asyncio.run(kafka.ensure_topics(s, service_topics(s)))
    print(f"producing {args.events:,} events into {s.name('inventory.events')} (bench.run.log_events) ...", flush=True)
    n, secs = asyncio.run(produce_all(s, s.name("inventory.events"), log_events(args.events, skus, rng)))
    out["produce"] = {"events": n, "seconds": secs}
    print(f"      {n:,} events in {secs:.1f} s", flush=True)

    victim = ServiceProcess("inventory", env, root / "logs", free_port())

    def tail(label: str) -> None:
        """`args.tail` ReserveStock commands, worked off (committed) by the service."""
        if args.tail <= 0:
            return
        recs = [r for _, r in reserve_commands(args.tail, skus, label + uuid.uuid4().hex[:6], rng)]
        asyncio.run(produce_all(s, commands, recs))
        end = asyncio.run(topic_end(s, commands))
        asyncio.run(wait_committed(s, victim, group, commands, end, timeout=300 + args.tail / 50))

    try:
        return _rounds(args, out, victim, tail, root, s)
    finally:
        victim.stop(timeout=300)


def _rounds(
    args: argparse.Namespace, out: dict[str, Any], victim: ServiceProcess, tail: Any, root: Path, s: Any
) -> dict[str, Any]:
    spawned = time.time()
    victim.start()
    ready = _ready_at(victim, timeout=max(900.0, args.events / 200))
    facts = _rebuild_facts(victim.log_path, spawned)
    out["first_start"] = {"ready_s": ready - spawned, **facts}
    print(
        f"first start (no snapshot): ready in {ready - spawned:.1f} s, {facts['events_folded']:,} events folded in "
        f"{facts['rebuild_seconds']:.1f} s",
        flush=True,
    )
    # A clean stop snapshots every partition, what the first start folded included (the folded events
    # count towards the next snapshot). A few commands first, so the restarts below resume a live log.
    tail("warm")
    t0 = time.monotonic()
    victim.stop(timeout=300)
    out["first_stop_s"] = time.monotonic() - t0
    stored = _stored_snapshots(root / "data", "inventory", s.name("inventory"))
    end_events = asyncio.run(topic_end(s, s.name("inventory.events")))
    out["snapshots_after_first_stop"] = {"partitions": len(stored), "next_offsets": sum(stored.values()), "log_end": end_events}
    print(
        f"clean stop in {out['first_stop_s']:.1f} s: {len(stored)} partition snapshots, up to offsets summing "
        f"{sum(stored.values()):,} of the log's {end_events:,} (incl. transaction markers)",
        flush=True,
    )
    victim.start()
    _ready_at(victim, timeout=600)

    for kind in ("kill9", "clean"):
        rows: list[dict[str, Any]] = []
        for r in range(1, args.rounds + 1):
            tail(kind)
            row: dict[str, Any] = {}
            if kind == "kill9":
                victim.kill9()
            else:
                t0 = time.monotonic()
                victim.stop(timeout=300)
                row["stop_s"] = time.monotonic() - t0
            stored = _stored_snapshots(root / "data", "inventory", s.name("inventory"))
            spawned = time.time()
            victim.start()
            ready = _ready_at(victim, timeout=600)
            row.update(zip(PHASE_NAMES, _phases(victim, spawned, ready), strict=True))
            row.update(_rebuild_facts(victim.log_path, spawned))
            row["stored_snapshot_offsets"] = sum(stored.values())
            rows.append(row)
            _say_round("kill -9" if kind == "kill9" else "clean", r, row)
        out[kind] = {"rounds": rows, **_summary(rows)}
    out["targets"] = {"kill9_ready_s": 3.0, "clean_ready_s": 2.0}
    out["met"] = {
        "kill9_ready_s": out["kill9"]["ready"]["max"] <= 3.0,
        "clean_ready_s": out["clean"]["ready"]["max"] <= 2.0,
    }
    out["env"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print()
    print(
        f"inventory with {args.events:,} events in its log, snapshots every {out['snapshot_every']:,} events "
        f"({out['snapshot_store']}), {args.tail:,} commands before each restart; load {out['env']['loadavg_start'][0]} → "
        f"{out['env']['loadavg_end'][0]} on {out['env']['cpus']} CPUs"
    )
    head = f"{'restart':<8} {'':<4} " + " ".join(f"{k:>9}" for k in (*PHASE_NAMES, "snap load", "folded")) + "  target"
    print(head)
    print("-" * len(head))
    for kind, target in (("kill9", 3.0), ("clean", 2.0)):
        for stat in ("p50", "max"):
            vals = " ".join(f"{out[kind][k][stat]:>8.2f}s" for k in (*PHASE_NAMES, "snapshot_load_s"))
            folded = f"{out[kind]['events_folded'][stat]:>9,.0f}"
            met = ("met" if out["met"][f"{kind}_ready_s"] else "NOT met") if stat == "max" else ""
            print(f"{kind:<8} {stat:<4} {vals} {folded}  ≤ {target:.0f} s {met}")
    return out


def main() -> int:
    ensure_local_auth(PROJECT_ROOT / ".cache" / "tokens")  # the services it starts need keys (README "Security")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--service", default="order", choices=["order", "inventory"])
    ap.add_argument(
        "--events", type=int, default=0, help="M events in inventory's log, snapshots on (issue 18); 0 = the small shop"
    )
    ap.add_argument("--tail", type=int, default=5000, help="with --events: ReserveStock commands worked off before each restart")
    ap.add_argument("--skus", type=int, default=200, help="with --events: skus of the log")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    root = CACHE / "bench-restart"
    shutil.rmtree(root, ignore_errors=True)
    cfg = None
    if external:
        bootstrap = external
    else:
        port = free_pair()
        cfg = kbroker.BrokerConfig(data_dir=root / "broker", port=port, controller_port=port + 1)
        kbroker.up(cfg, CACHE / "kafka")
        bootstrap = cfg.bootstrap
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "FLEXCHAIN_TOPIC_PREFIX": f"rs{uuid.uuid4().hex[:6]}-",
        "FLEXCHAIN_DATA_DIR": str(root / "data"),
        "FLEXCHAIN_LOG_LEVEL": "INFO",
    }
    if args.events:
        try:
            out = big_log(args, bootstrap, root, env)
            print("BENCH_JSON " + json.dumps(clean(out), sort_keys=True))
            return 0
        finally:
            if cfg is not None:
                kbroker.stop(cfg)
    procs = {name: ServiceProcess(name, env, root / "logs", free_port()) for name in ("inventory", "order")}
    try:
        for p in procs.values():
            p.start()
        for p in procs.values():
            p.wait_ready()
        _shop(procs["inventory"].url, procs["order"].url, args.orders)
        victim = procs[args.service]
        rows = []
        for r in range(1, args.rounds + 1):
            victim.kill9()
            spawned = time.time()
            victim.start()
            victim.wait_ready(timeout=120)
            ready = time.time()
            rows.append(_phases(victim, spawned, ready))
            parts = rows[-1][1:]
            print(
                f"round {r}: ready in {ready - spawned:5.2f} s = boot {parts[0]:.2f} + join {parts[1]:.2f} "
                f"+ rebuild {parts[2]:.2f} + catch-up {parts[3]:.2f}",
                flush=True,
            )
        med = [statistics.median(col) for col in zip(*rows, strict=True)]
        print(
            f"{args.service}, {args.rounds} kill -9 restarts: median ready {med[0]:.2f} s "
            f"(boot {med[1]:.2f}, join {med[2]:.2f}, rebuild {med[3]:.2f}, catch-up {med[4]:.2f})"
        )
        print("RESTART_JSON " + json.dumps({"service": args.service, "median_s": med[0], "rounds": [r[0] for r in rows]}))
        return 0
    finally:
        for p in procs.values():
            p.stop()
        if cfg is not None:
            kbroker.stop(cfg)


if __name__ == "__main__":
    raise SystemExit(main())
