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
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from flexchain import broker as kbroker  # noqa: E402
from flexchain.auth import bearer, ensure_local_auth  # noqa: E402
from flexchain.procs import ServiceProcess, free_port  # noqa: E402
from flexchain.procs import free_port_pair as free_pair  # noqa: E402
from flexchain.settings import PROJECT_ROOT  # noqa: E402

CACHE = PROJECT_ROOT / ".cache"
PHASES = ("service started", "rebuild started", "rebuild finished")


def _events(log: Path, since: float) -> dict[str, float]:
    """The first time each phase was logged after `since` (epoch seconds)."""
    seen: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        event, stamp = rec.get("event"), rec.get("timestamp")
        if event in PHASES and event not in seen and stamp:
            at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            if at >= since:
                seen[event] = at
    return seen


def _shop(inv: str, order: str, orders: int) -> None:
    with httpx.Client(timeout=30, headers=bearer()) as http:
        http.post(f"{inv}/skus", json={"sku": "tea", "name": "Tea", "low_stock_floor": 0}).raise_for_status()
        http.post(f"{inv}/skus/tea/receipts", json={"warehouse": "w1", "qty": orders * 2}).raise_for_status()
        for i in range(orders):
            line = {"sku": "tea", "qty": 1, "unit_price": 500}
            body = {"order_id": f"o{i}", "member_id": f"m{i % 7}", "channel": "live", "lines": [line]}
            http.post(f"{order}/orders", json=body).raise_for_status()


def main() -> int:
    ensure_local_auth(PROJECT_ROOT / ".cache" / "tokens")  # the services it starts need keys (README "Security")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--service", default="order", choices=["order", "inventory"])
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
            seen = _events(victim.log_path, spawned)
            phases = [seen.get(p) for p in PHASES]
            marks = [spawned, *phases, ready]
            parts = [(b - a) if a is not None and b is not None else float("nan") for a, b in itertools.pairwise(marks)]
            rows.append((ready - spawned, *parts))
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
