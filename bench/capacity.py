#!/usr/bin/env python
"""Suite capacity: the highest steady rate of orders through all five services at which
PlaceOrder → OrderConfirmed p99 stays ≤ 250 ms and the suite keeps up (issue 18).

Starts a broker (as bench/run.py: fresh under .cache/bench-capacity, or KAFKA_BOOTSTRAP_SERVERS) and
the five services (order, inventory, presale, commission, loyalty) as child processes, with
`FLEXCHAIN_CLOCK=log` and `FLEXCHAIN_ORDER_MEMBER_DISCOUNTS=true` (an order waits for loyalty's tier
quote before it is confirmed) and without the per-client HTTP rate limit (`FLEXCHAIN_RATE_LIMIT=0`:
the driver is one client standing for many shoppers). Sets up skus, distributors, members and a
presale campaign through the APIs, then offers orders at each rate of `--rates` for `--step-seconds`,
open loop: each order's life cycle starts on schedule whatever the answers — place (`POST /orders`),
wait for `OrderConfirmed`, pay, ship, deliver (each `?wait=` for its events) — and after the step one
clock tick 8 business days on completes the delivered orders (the return window closes).

PlaceOrder → OrderConfirmed: from just before `POST /orders` to the moment `OrderConfirmed` with the
order id is read from `order.events` (read_committed, `bench.run.watching`, as the saga of run.py).
A step **keeps up** when every order it started is confirmed (or rejected) within `--grace` s of
its last start and its last third is not slower than its first (p50 ≤ 2× + 50 ms): no growing
backlog. It **passes** when it keeps up, p99 ≤ `--p99-ms` and the driver kept its schedule (starts
p99 ≤ 50 ms late, achieved ≥ 97 % of offered). The figure is the highest passing offered rate.

Usage: ``.venv/bin/python bench/capacity.py [--rates 20,40,80,120,160] [--step-seconds 15]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from bench.run import (  # noqa: E402
    BROKER_PIDS,
    CLIENT_LOG,
    CpuMeter,
    RssSampler,
    Services,
    bench_broker,
    clean,
    latency_summary,
    pct,
    say,
    settings,
    wait_ready,
    warm_up,
    watching,
)
from flexchain.auth import bearer, ensure_local_auth  # noqa: E402
from flexchain.catalog import SERVICES, all_messages  # noqa: E402
from flexchain.clock import ClockPublisher  # noqa: E402
from flexchain.messages import Enveloped  # noqa: E402
from flexchain.serde import Codec  # noqa: E402
from flexchain.settings import PROJECT_ROOT, Settings  # noqa: E402

CACHE = PROJECT_ROOT / ".cache"
CODEC = Codec(all_messages())
MIN = 60_000
DAY = 24 * 60 * MIN
T0 = 1_795_000_000_000  # business time of the first step (ms); each step moves it 8 days and a minute on
WAIT_S = 30  # ?wait= of every command
WATCHED = frozenset(
    {b"OrderConfirmed", b"OrderRejected", b"OrderCompleted", b"OrderPlaced", b"StockReserved", b"MemberDiscountQuoted"}
)
# where an order's confirmation waits: (event type, what it is), each the moment it is read, read_committed
STAGES = (
    ("OrderPlaced", "placed"),  # the order processor decided PlaceOrder (the API published it)
    ("MemberDiscountQuoted", "quoted"),  # loyalty's router and processor answered the tier quote
    ("StockReserved", "reserved"),  # inventory's router and processor reserved (the last line's)
)
LATE_OK_S = 0.050  # the driver kept its schedule: starts at most this late at p99 ...
ACHIEVED_OK = 0.97  # ... and at least this share of the offered rate started


STAGE_OF = dict(STAGES)


@dataclass
class Order:
    oid: str
    scheduled: float
    started: float = 0.0  # perf_counter just before POST /orders
    answered: asyncio.Future[tuple[str, int, float]] | None = None  # (OrderConfirmed|OrderRejected, total, seen at)
    outcome: str = ""
    confirm_s: float | None = None
    delivered_at: float | None = None
    completed: bool = False
    errors: list[str] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)  # STAGES' names → perf_counter seen


class Driver:
    """Open-loop orders over HTTP (one httpx.AsyncClient), their outcomes read from order.events."""

    def __init__(self, args: argparse.Namespace, urls: dict[str, str], s: Settings) -> None:
        self.args = args
        self.urls = urls
        self.s = s
        self.rng = random.Random(args.seed)
        self.orders: dict[str, Order] = {}
        self.http_status: Counter[str] = Counter()
        # idle connections are dropped before the services' keep-alive (FLEXCHAIN_HTTP_KEEPALIVE_S, 5 s) closes
        # them: a request sent on a connection the server is closing gets no answer
        limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections, keepalive_expiry=3.0)
        self.http = httpx.AsyncClient(headers=bearer(), timeout=WAIT_S + 30, limits=limits)
        self.members = [f"m-{i:05d}" for i in range(args.members)]
        self.skus = [f"sku-{i:03d}" for i in range(args.skus)]
        self.distributors = [f"d-{i:03d}" for i in range(args.distributors)]
        self.campaign = "camp-bench"
        self.clock: ClockPublisher | None = None

    # --- the watcher ---------------------------------------------------------------------------

    def seen(self, topic: str, item: Enveloped, now: float) -> None:
        order = self.orders.get(getattr(item.message, "order_id", ""))
        if order is None:
            return
        kind = item.envelope.event_type
        if kind == "OrderCompleted":
            order.completed = True
        elif kind in STAGE_OF:
            order.stages[STAGE_OF[kind]] = now
        elif order.answered is not None and not order.answered.done():
            order.answered.set_result((kind, int(getattr(item.message, "total", 0)), now))

    # --- HTTP ----------------------------------------------------------------------------------

    async def send(self, service: str, path: str, body: dict[str, Any] | None = None, key: str | None = None) -> httpx.Response:
        """POST a command, waiting for its events; with an Idempotency-Key `key` it is sent again
        (at most twice more) when the connection fails without an answer."""
        headers = {"Idempotency-Key": key} if key else None
        for attempt in range(3):
            try:
                r = await self.http.post(self.urls[service] + path, json=body, params={"wait": WAIT_S}, headers=headers)
                break
            except httpx.TransportError as exc:
                self.http_status[f"{service} {type(exc).__name__}"] += 1
                if key is None or attempt == 2:
                    raise
        self.http_status[f"{service} {r.status_code}"] += 1
        return r

    async def setup(self) -> None:
        """Skus with ample stock, a distributor network, members, a presale campaign — through the APIs."""
        await self.tick(T0)
        sem = asyncio.Semaphore(50)

        async def call(service: str, path: str, body: dict[str, Any] | None = None) -> None:
            async with sem:
                r = await self.send(service, path, body)
                if r.status_code != 200:
                    raise RuntimeError(f"setup {service} {path}: HTTP {r.status_code} {r.text[:300]}")

        await asyncio.gather(*(call("inventory", "/skus", {"sku": k, "name": k, "low_stock_floor": 0}) for k in self.skus))
        await asyncio.gather(
            *(
                call("inventory", f"/skus/{k}/receipts", {"warehouse": "w1", "qty": 1_000_000, "reference": "bench"})
                for k in self.skus
            )
        )
        for i, d in enumerate(self.distributors):  # chains of four: d-000 ← d-001 ← d-002 ← d-003, d-004 ← …
            body = {"distributor_id": d, **({"upline_id": self.distributors[i - 1]} if i % 4 else {})}
            await call("commission", "/distributors", body)
        await asyncio.gather(*(call("loyalty", "/members", {"member_id": m}) for m in self.members))
        await call(
            "presale",
            "/campaigns",
            {
                "campaign_id": self.campaign,
                "product": "glow-notebook",
                "unit_cost": 2000,
                "fan_base": 1_000_000,
                "moq": 1,
                "max_capacity": 1_000_000,
            },
        )
        await call("presale", f"/campaigns/{self.campaign}/schedule", {"starts_at": T0 - 60 * MIN, "ends_at": T0 + 3650 * DAY})
        await call("presale", f"/campaigns/{self.campaign}/launch", {"force": True})

    async def tick(self, at: int) -> None:
        """Business time moves to `at`; returns once every service stamps its commands with it."""
        if self.clock is None:
            self.clock = await ClockPublisher(self.s).__aenter__()
        await self.clock.tick(at)
        deadline = time.monotonic() + 60
        for url in self.urls.values():
            while True:
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    if int((await self.http.get(url + "/clock")).json()["business_time"]) >= at:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} did not see the tick {at}")
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self.clock is not None:
            await self.clock.__aexit__(None, None, None)
        await self.http.aclose()

    # --- one order's life cycle ----------------------------------------------------------------

    def body(self, oid: str) -> dict[str, Any]:
        rng = self.rng
        member = rng.choice(self.members)
        channel = rng.choice(("live", "short_video", "mini_program", "article"))
        if rng.random() < self.args.presale_share:
            line = {"sku": "glow-notebook", "qty": rng.choice((1, 1, 2)), "unit_price": 0}
            return {"order_id": oid, "member_id": member, "channel": channel, "campaign_id": self.campaign, "lines": [line]}
        lines = [
            {"sku": k, "qty": rng.choice((1, 1, 2, 3)), "unit_price": rng.choice((9_900, 19_900, 39_900))}
            for k in rng.sample(self.skus, rng.choice((1, 1, 2)))
        ]
        distributor = rng.choice(self.distributors) if rng.random() < self.args.distributor_share else None
        return {"order_id": oid, "member_id": member, "channel": channel, "distributor_id": distributor, "lines": lines}

    async def life(self, order: Order) -> None:
        order.answered = asyncio.get_running_loop().create_future()
        body = self.body(order.oid)
        order.started = time.perf_counter()
        try:
            r = await self.send("order", "/orders", body, key=f"place-{order.oid}")
            if r.status_code not in (200, 202):
                order.outcome = f"place HTTP {r.status_code}"
                return
            kind, total, seen = await asyncio.wait_for(order.answered, timeout=self.args.grace + 60)
            order.outcome = kind
            if kind != "OrderConfirmed":
                return
            order.confirm_s = seen - order.started
            oid = order.oid
            steps: list[tuple[str, dict[str, Any] | None]] = [
                ("payment", {"amount": total, "payment_ref": f"pay-{oid}"}),
                ("shipment", {"tracking": f"SF-{oid}"}),
                ("delivery", None),
            ]
            for step, step_body in steps:
                # the order's read model may be a moment behind its log: 409 (nothing published), try again
                # under a new key (a key the processor answered with a refusal would read as applied)
                for attempt in range(20):
                    r = await self.send("order", f"/orders/{oid}/{step}", step_body, key=f"{step}-{oid}-{attempt}")
                    if r.status_code != 409:
                        break
                    await asyncio.sleep(0.05)
                if r.status_code != 200:
                    order.errors.append(f"{step} HTTP {r.status_code}")
                    return
            order.delivered_at = time.perf_counter()
        except TimeoutError:
            order.outcome = order.outcome or "no answer"
        except httpx.HTTPError as exc:
            order.errors.append(type(exc).__name__)

    # --- one step ------------------------------------------------------------------------------

    async def step(self, k: int, rate: float, business_time: int) -> dict[str, Any]:
        n = max(1, int(rate * self.args.step_seconds))
        tag = uuid.uuid4().hex[:4]
        batch = [Order(f"o-{k}-{tag}-{i:06d}", 0.0) for i in range(n)]
        for o in batch:
            self.orders[o.oid] = o
        tasks: list[asyncio.Task[None]] = []
        me = psutil.Process()
        me.cpu_percent(None)
        t0 = time.perf_counter()
        i = 0
        while i < n:
            due = min(n, int((time.perf_counter() - t0) * rate) + 1)
            while i < due:
                batch[i].scheduled = t0 + i / rate
                tasks.append(asyncio.create_task(self.life(batch[i])))
                i += 1
            await asyncio.sleep(0.002)
        last_start = time.perf_counter()
        done, _ = await asyncio.wait(tasks, timeout=self.args.grace)
        answered_in_grace = sum(1 for o in batch if o.answered is not None and o.answered.done())
        await asyncio.wait(tasks, timeout=WAIT_S * 4 + 60)
        drained = time.perf_counter() - last_start
        driver_cpu = me.cpu_percent(None)
        delivered = [o for o in batch if o.delivered_at is not None]
        completion_tick = business_time + 8 * DAY + MIN
        await self.tick(completion_tick)
        deadline = time.monotonic() + 120
        while any(not o.completed for o in delivered) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

        starts = sorted(o.started for o in batch if o.started)
        late = [o.started - o.scheduled for o in batch if o.started]
        span = (starts[-1] - t0) + 1 / rate if starts else float("nan")
        conf = [o.confirm_s for o in batch if o.confirm_s is not None]
        by_start = sorted((o.started, o.confirm_s) for o in batch if o.confirm_s is not None)
        third = max(1, len(by_start) // 3)
        first = [c for _, c in by_start[:third]]
        last = [c for _, c in by_start[-third:]]
        outcomes = Counter(o.outcome or "pending" for o in batch)
        errors = Counter(e for o in batch for e in o.errors)
        lat = latency_summary(conf)
        stages = {
            name: pct([o.stages[name] - o.started for o in batch if o.confirm_s is not None and name in o.stages], 0.5) * 1000
            for _, name in STAGES
        }
        first_p50, last_p50 = pct(first, 0.5) * 1000, pct(last, 0.5) * 1000
        keeps_up = answered_in_grace == n and last_p50 <= 2 * first_p50 + 50
        late_p99 = pct(late, 0.99) * 1000 if late else float("nan")
        achieved = len(starts) / span if starts else 0.0
        on_schedule = late_p99 <= LATE_OK_S * 1000 and achieved >= ACHIEVED_OK * rate
        return {
            "offered_rate": rate,
            "orders": n,
            "achieved_rate": achieved,
            "start_late_p50_ms": pct(late, 0.5) * 1000 if late else float("nan"),
            "start_late_p99_ms": late_p99,
            "start_late_max_ms": max(late) * 1000 if late else float("nan"),
            "driver_on_schedule": on_schedule,
            "driver_cpu_percent": driver_cpu,
            "confirm": lat,
            "stages_p50_ms": stages,
            "confirm_first_third_p50_ms": first_p50,
            "confirm_last_third_p50_ms": last_p50,
            "outcomes": dict(outcomes),
            "answered_within_grace": answered_in_grace,
            "delivered": len(delivered),
            "completed": sum(o.completed for o in delivered),
            "errors": dict(errors),
            "drained_s": drained,
            "keeps_up": keeps_up,
            "p99_ok": lat["p99_ms"] <= self.args.p99_ms,
            "passed": keeps_up and lat["p99_ms"] <= self.args.p99_ms and on_schedule,
            "completion_tick": completion_tick,
            "tasks_done_within_grace": len(done),
        }


def step_line(r: dict[str, Any]) -> str:
    c = r["confirm"]
    cores = r.get("cores", {})
    svc = sum(v for k, v in cores.items() if k != "broker")
    return (
        f"{r['offered_rate']:>7.0f} {r['achieved_rate']:>8.1f} {r['start_late_p99_ms']:>8.1f} "
        f"{c['p50_ms']:>8.0f} {c['p99_ms']:>8.0f} "
        f"{c['max_ms']:>8.0f} {r['confirm_first_third_p50_ms']:>6.0f}/{r['confirm_last_third_p50_ms']:<6.0f} "
        f"{r['outcomes'].get('OrderConfirmed', 0):>6} {r['outcomes'].get('OrderRejected', 0):>4} {r['delivered']:>6} "
        f"{r['completed']:>6} {r['driver_cpu_percent']:>5.0f}% {cores.get('broker', float('nan')):>6.2f} {svc:>6.2f} "
        f"{'yes' if r['keeps_up'] else 'NO':>5} "
        f"{'yes' if r['driver_on_schedule'] else 'NO':>5} {'PASS' if r['passed'] else 'fail':>5}"
    )


def stage_line(r: dict[str, Any]) -> str:
    st = r["stages_p50_ms"]
    return (
        "        p50 from POST /orders: "
        + ", ".join(f"{name} {st[name]:.0f} ms" for _, name in STAGES)
        + f", confirmed {r['confirm']['p50_ms']:.0f} ms"
    )


HEADER = (
    f"{'offered':>7} {'achieved':>8} {'late p99':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p50 1st/last':>13} "
    f"{'confd':>6} {'rej':>4} {'deliv':>6} {'compl':>6} {'drvCPU':>6} {'broker':>6} {'svcs':>6} {'keeps':>5} {'sched':>5} {'':>5}"
)


async def capacity(args: argparse.Namespace, bootstrap: str, work: Path) -> dict[str, Any]:
    prefix = f"cap{uuid.uuid4().hex[:6]}-"
    s = settings(bootstrap, prefix)
    env = {
        "FLEXCHAIN_CLOCK": "log",
        "FLEXCHAIN_ORDER_MEMBER_DISCOUNTS": "true",
        "FLEXCHAIN_RATE_LIMIT": "0",
        "FLEXCHAIN_ORDER_GIFT_REVIEW_SECONDS": "100000000",  # the gift review on the wall clock: not during the run
    }
    suite = Services(bootstrap, prefix, work, env=env)
    out: dict[str, Any] = {
        "env": {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in os.getloadavg()]},
        "args": {k: v for k, v in vars(args).items() if k != "rates"},
        "rates": args.rates,
        "service_env": env,
    }
    if args.warmup_seconds > 0:
        out["warmup"] = await warm_up(settings(bootstrap, prefix + "w-"), args.warmup_seconds, "warm-up:")
    try:
        procs = {name: suite.start(name) for name in SERVICES}
        for p in procs.values():
            await wait_ready(p, 120)
        driver = Driver(args, {n: p.url for n, p in procs.items()}, s)
        try:
            say(f"setup: {args.skus} skus, {args.distributors} distributors, {args.members} members, a presale campaign ...")
            t = time.monotonic()
            await driver.setup()
            say(f"      done in {time.monotonic() - t:.1f} s")
            steps: list[dict[str, Any]] = []
            pids = {n: p.proc.pid for n, p in procs.items() if p.proc is not None}
            business = T0
            topics = [s.name(t) for t in ("order.events", "inventory.events", "loyalty.events")]
            async with watching(s, topics, driver.seen, types=WATCHED, codec=CODEC):
                say(HEADER)
                for k, rate in enumerate(args.rates):
                    with RssSampler(pids) as rss, CpuMeter({"broker": BROKER_PIDS.get(bootstrap), **pids}) as cpu:
                        res = await driver.step(k, rate, business)
                    res["cores"] = cpu.cores()
                    res["peak_rss_mib"] = {n: rss.mib(n) for n in pids}
                    res["loadavg"] = round(os.getloadavg()[0], 2)
                    business = res["completion_tick"]
                    steps.append(res)
                    say(step_line(res))
                    say(stage_line(res))
                    for name, p in procs.items():
                        if not p.running:
                            raise RuntimeError(f"{name} exited: {p.tail()}")
                    if not res["passed"] and sum(not x["passed"] for x in steps) >= args.max_failed:
                        break
            out["steps"] = steps
            out["http_status"] = dict(driver.http_status)
        finally:
            await driver.close()
    finally:
        suite.stop_all()
    passed = [x["offered_rate"] for x in out["steps"] if x["passed"]]
    out["capacity_orders_per_s"] = max(passed) if passed else 0.0
    out["target_p99_ms"] = args.p99_ms
    out["env"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="20,40,80,120,160,200", help="offered orders/s, one step each, in order")
    ap.add_argument("--step-seconds", type=float, default=15.0)
    ap.add_argument("--warmup-seconds", type=float, default=120.0, help="transactions through the broker before the services")
    ap.add_argument("--p99-ms", type=float, default=250.0, help="PlaceOrder → OrderConfirmed p99 target")
    ap.add_argument("--grace", type=float, default=5.0, help="seconds after a step's last start by which every order is answered")
    ap.add_argument("--max-failed", type=int, default=2, help="stop after this many steps that do not pass")
    ap.add_argument("--members", type=int, default=2000)
    ap.add_argument("--skus", type=int, default=50)
    ap.add_argument("--distributors", type=int, default=20)
    ap.add_argument("--distributor-share", type=float, default=0.5, help="orders sold through a distributor")
    ap.add_argument("--presale-share", type=float, default=0.1, help="orders of the presale campaign")
    ap.add_argument("--connections", type=int, default=1000, help="HTTP connections of the driver at most")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the broker's data")
    args = ap.parse_args(argv)
    args.rates = [float(x) for x in args.rates.split(",") if x.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    ensure_local_auth(CACHE / "tokens")  # the services it starts need keys (README "Security")
    args = parse(argv)
    work = CACHE / "bench" / f"capacity-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    CLIENT_LOG.install(work / "bench-client.log")  # aiokafka's retry warnings (the warm-up's KIP-890 retries)
    started = time.monotonic()
    with bench_broker("bench-capacity", args.keep) as bootstrap:
        assert bootstrap is not None
        results = asyncio.run(capacity(args, bootstrap, work))
    results["wall_seconds"] = time.monotonic() - started
    say("")
    say(
        f"suite capacity — {results['env']['cpus']} CPUs, load avg {results['env']['loadavg_start'][0]} → "
        f"{results['env']['loadavg_end'][0]}, {args.step_seconds:.0f} s per step, logs {work}"
    )
    say(HEADER)
    for r in results["steps"]:
        say(step_line(r))
    for r in results["steps"]:
        say(f"{r['offered_rate']:>7.0f}/s: " + stage_line(r).strip())
    say(
        f"highest steady rate with PlaceOrder → OrderConfirmed p99 ≤ {args.p99_ms:.0f} ms, keeping up, driver on schedule: "
        f"{results['capacity_orders_per_s']:.0f} orders/s"
    )
    say("BENCH_JSON " + json.dumps(clean(results), sort_keys=True, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
