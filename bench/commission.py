#!/usr/bin/env python
"""flexchain bench — the commission service on paid orders (3-level chains, exactly-once) against B.

In one run, on one broker:

1. **B** — raw aiokafka passthrough of the very same OrderPaid records (consumer group → producer →
   commit per batch, flexchain's client settings; `bench/run.py`'s `passthrough`), twice, the better
   counts; **B_txn** — the same with one transaction per batch (for information).
2. **S** — the commission service (a child process, exactly-once) working through a backlog of N
   OrderPaid events on `order.events`, every order sold by the bottom of a 3-level chain (commission
   configured for 3 levels). An order counts when its `CommissionAccrued` (every line, every level)
   is committed: the router's hop (OrderPaid → RecordOrderPaid + RecordMemberPurchase) and the
   processor's (the split) are both inside the figure. Rate from `events_out_total` scraped every
   `--poll` s, between the first and the last observation of partial progress.

Starts its own broker unless KAFKA_BOOTSTRAP_SERVERS is set. Prints a table and one `BENCH_JSON {...}`
line. Usage: `.venv/bin/python bench/commission.py [--orders N] [--chains C] [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiokafka  # noqa: E402

from bench.run import (  # noqa: E402
    CACHE,
    CLIENT_LOG,
    Record,
    RssSampler,
    Services,
    bench_broker,
    clean,
    delete_topics,
    passthrough,
    produce_all,
    progress_rate,
    say,
    scrape,
    service_retries,
    settings,
    wait_ready,
    warm_up,
)
from flexchain import kafka  # noqa: E402
from flexchain.auth import ensure_local_auth  # noqa: E402
from flexchain.catalog import all_messages  # noqa: E402
from flexchain.messages import Envelope, Enveloped, Message  # noqa: E402
from flexchain.procs import ServiceProcess  # noqa: E402
from flexchain.serde import Codec  # noqa: E402
from flexchain.settings import PROJECT_ROOT  # noqa: E402
from flexchain.tools import broker as kbroker  # noqa: E402
from flexchain.tools.scrape import metric_sum  # noqa: E402
from services.commission.messages import NETWORK, RegisterDistributor, SetCommissionLevels  # noqa: E402
from services.order.messages import OrderLine, OrderPaid  # noqa: E402

CODEC = Codec(all_messages())
SKUS = [f"sku-{i:04d}" for i in range(50)]
T0 = 1_790_035_200_000
EVENTS_OUT = "flexchain_commission_events_out_total"
ACCRUED = "CommissionAccrued"  # event types, counted in EVENTS_OUT
REPLICATED = "NetworkReplicated"


def record(msg: Message, producer: str, at: int) -> Record:
    env = Envelope(
        event_id=str(uuid.uuid4()),
        event_type=type(msg).__name__,
        aggregate_id=msg.key,
        aggregate_version=1,
        business_time=at,
        correlation_id=msg.key or "bench",
        causation_id=None,
        producer=producer,
    )
    return msg.key.encode(), CODEC.encode(Enveloped(envelope=env, message=msg)), [("type", type(msg).__name__.encode())]


def chains(c: int) -> list[tuple[str, str, str]]:
    """(seller, mid, top): c chains of 3 distributors."""
    return [(f"sel-{i:05d}", f"mid-{i:05d}", f"top-{i:05d}") for i in range(c)]


def setup_commands(cs: list[tuple[str, str, str]]) -> list[Record]:
    out = [record(SetCommissionLevels(network_id=NETWORK, levels=3, max_chain_depth=3), "bench", T0)]
    for seller, mid, top in cs:
        for who, up in ((top, None), (mid, top), (seller, mid)):
            out.append(record(RegisterDistributor(network_id=NETWORK, distributor_id=who, upline_id=up), "bench", T0))
    return out


def paid_orders(n: int, cs: list[tuple[str, str, str]], members: int, tag: str, rng: random.Random) -> list[Record]:
    """N OrderPaid events as the order service writes them: one line, a seller at the bottom of a chain."""
    out = []
    for i in range(n):
        seller = rng.choice(cs)[0]
        price = rng.randint(1_000, 99_999)
        at = T0 + 60_000 + i
        msg = OrderPaid(
            order_id=f"o-{tag}-{i:09d}", amount=price, payment_ref=f"pay-{i:09d}", paid_at=at,
            member_id=f"m-{rng.randrange(members):06d}", distributor_id=seller, campaign_id=None,
            lines=[OrderLine(sku=rng.choice(SKUS), qty=1, unit_price=price)],
        )  # fmt: skip
        out.append(record(msg, "order", at))
    return out


async def observe_metric(proc: ServiceProcess, event_type: str, total: int, interval: float) -> dict[str, Any]:
    """Scrape the events of a type written until `total`; the rate between interior observations of partial progress."""
    obs: list[tuple[float, float]] = []
    deadline = time.monotonic() + 120 + total / 50
    while True:
        if not proc.running:
            raise RuntimeError(f"service exited during the throughput run: {proc.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {obs[-1][1] if obs else 0:.0f}/{total} after the deadline: {proc.tail()}")
        with contextlib.suppress(Exception):
            value = metric_sum(await scrape(proc), EVENTS_OUT, type=event_type)
            obs.append((time.perf_counter(), value))
            if value >= total:
                break
        await asyncio.sleep(interval)
    return progress_rate(obs, total)


async def bench(args: argparse.Namespace, bootstrap: str, work: Path) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    base = f"benchc{run}-"
    rng = random.Random(args.seed)
    sb, ss = settings(bootstrap, base + "b-"), settings(bootstrap, base + "svc-")
    batch_max = sb.flexchain_batch_max
    out: dict[str, Any] = {"run": run, "orders": args.orders, "chains": args.chains, "members": args.members}
    out["env"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "aiokafka": aiokafka.__version__,
        "kafka": kbroker.KAFKA_VERSION if not args.external else "external",
        "batch_max": batch_max,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    src, dst, dst_txn = sb.name("passthrough.in"), sb.name("passthrough.out"), sb.name("passthrough-txn.out")
    await kafka.ensure_topics(sb, [src, dst, dst_txn], partitions=6)
    svc_topics = [
        ss.name(t)
        for t in ("commission.commands", "commission.events", "commission.dlq", "order.events", "inventory.events", "clock.ticks")
    ]
    await kafka.ensure_topics(ss, svc_topics)
    cs = chains(args.chains)
    orders = paid_orders(args.orders, cs, args.members, run, rng)
    sizes = [len(v) for _, v, _ in orders]
    out["sizes"] = {"order_paid_value_bytes_mean": sum(sizes) / len(sizes), "min": min(sizes), "max": max(sizes)}
    await asyncio.sleep(2.0)
    if args.warmup_seconds > 0:  # a fresh broker JVM compiles its hot paths first (bench/README.md, "Warm-up and CPU")
        out["warmup"] = await warm_up(settings(bootstrap, base + "w-"), args.warmup_seconds, "[0 warm-up]")

    # 1. B and B_txn on the very same OrderPaid records
    mean = out["sizes"]["order_paid_value_bytes_mean"]
    say(f"[1 B] raw passthrough baseline: {args.orders} OrderPaid records (~{mean:.0f} B) ...")
    n, secs = await produce_all(sb, src, orders)
    out["produce"] = {"records": n, "seconds": secs, "rate": n / secs}
    for key, txn, topic in (("B", False, dst), ("B_txn", True, dst_txn)):
        runs = []
        for i in range(2):
            before = CLIENT_LOG.retries
            runs.append(await passthrough(sb, src, topic, sb.name(f"{key}-{i}"), n, batch_max, txn=txn))
            runs[-1]["produce_retries"] = CLIENT_LOG.retries - before
        best = max(runs, key=lambda x: x["rate"])
        out[key] = {**best, "runs": [x["rate"] for x in runs]}
        say(f"      {key:<5} {best['rate']:,.0f} records/s (runs: {', '.join(f'{x:,.0f}' for x in out[key]['runs'])})")

    # 2. the service: the network first (replicated to every partition), then the backlog of orders
    say(f"[2 S] commission service: {args.chains} chains of 3 distributors, then {args.orders} OrderPaid ...")
    await produce_all(ss, ss.name("commission.commands"), setup_commands(cs))
    svc = Services(bootstrap, ss.flexchain_topic_prefix, work / "svc")
    try:
        proc = svc.start("commission")
        await wait_ready(proc, 90)
        replicas = 5 * (1 + 3 * args.chains)  # every change, on the 5 partitions that are not the network's
        await observe_metric(proc, REPLICATED, replicas, 0.2)
        svc.stop_all()  # a clean stop (snapshots); the backlog goes in while the service is down
        await produce_all(ss, ss.name("order.events"), orders)
        proc = svc.start("commission")
        assert proc.proc is not None
        with RssSampler({"commission": proc.proc.pid}) as rss:
            out["S"] = await observe_metric(proc, ACCRUED, args.orders, args.poll)
        out["S"]["peak_rss_mib"] = rss.mib("commission")
        out["S"]["produce_retries"] = service_retries(proc)
        await wait_ready(proc, 60)
        m = await scrape(proc)
        written = metric_sum(m, EVENTS_OUT)
        out["S"]["check"] = {
            "accrued": metric_sum(m, EVENTS_OUT, type=ACCRUED),
            "parked": metric_sum(m, "flexchain_commission_parked_orders", default=float("nan")),
            "dlq": metric_sum(m, "flexchain_commission_dlq_records_total"),
            "duplicates": metric_sum(m, "flexchain_commission_duplicates_skipped_total"),
            "records_written": written,
            "records_written_per_order": written / args.orders,
        }
        say(f"      S     {out['S']['rate']:,.0f} orders/s (peak RSS {out['S']['peak_rss_mib']} MiB)")
    finally:
        svc.stop_all()

    out["ratios"] = {
        "S_over_B": out["S"]["rate"] / out["B"]["rate"],
        "S_over_B_txn": out["S"]["rate"] / out["B_txn"]["rate"],
        "B_txn_over_B": out["B_txn"]["rate"] / out["B"]["rate"],
    }
    out["targets"] = {"S_over_B": 0.3}  # issue 18: every two-hop service (router, then processor) ≥ 0.3 × B
    out["met"] = {k: out["ratios"][k] >= v for k, v in out["targets"].items()}
    out["env"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def table(r: dict[str, Any]) -> str:
    ra, s, chk = r["ratios"], r["S"], r["S"]["check"]
    rows: list[tuple[str, str, str, str, str]] = [
        ("figure", "value", "ratio", "target", "met"),
        ("record: OrderPaid value (mean)", f"{r['sizes']['order_paid_value_bytes_mean']:.0f} B", "", "", ""),
        ("B     raw passthrough, commit per batch", f"{r['B']['rate']:,.0f} rec/s", "1.00", "", ""),
        ("B_txn raw passthrough, txn per batch", f"{r['B_txn']['rate']:,.0f} rec/s", f"{ra['B_txn_over_B']:.2f} ×B", "", "info"),
        (
            "S     commission, exactly-once, 3 levels",
            f"{s['rate']:,.0f} orders/s",
            f"{ra['S_over_B']:.2f} ×B",
            f"≥ {r['targets']['S_over_B']:.2f}",
            "yes" if r["met"]["S_over_B"] else "NO",
        ),
        ("      S against B_txn", "", f"{ra['S_over_B_txn']:.2f} ×B_txn", "", "info"),
        ("      measured over", f"{s['records']:,.0f} orders / {s['seconds']:.1f} s", "", "", ""),
        ("      records written per order (commands + events)", f"{chk['records_written_per_order']:.2f}", "", "", "info"),
        (
            "      accrued / parked / dlq / duplicates",
            f"{chk['accrued']:,.0f} / {chk['parked']:.0f} / {chk['dlq']:.0f} / {chk['duplicates']:.0f}",
            "",
            "",
            "",
        ),
        ("      peak RSS commission", f"{s['peak_rss_mib']} MiB", "", "", ""),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=100_000, help="OrderPaid events for B, B_txn and the service run")
    ap.add_argument("--chains", type=int, default=200, help="3-level chains (sellers at the bottom)")
    ap.add_argument("--members", type=int, default=5_000, help="distinct members (a member's first order earns a referral)")
    ap.add_argument("--poll", type=float, default=0.1, help="seconds between metric observations")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the bench dir, broker data and (external) topics")
    ap.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
    ap.add_argument(
        "--warmup-seconds", type=float, default=120.0, help="transactions through the broker before any measurement (0: none)"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.orders, args.chains, args.members, args.poll = 5_000, 20, 500, 0.05
        args.warmup_seconds = min(args.warmup_seconds, 6.0)
    return args


def main(argv: list[str] | None = None) -> int:
    ensure_local_auth(PROJECT_ROOT / ".cache" / "tokens")  # the services it starts need keys (README "Security")
    args = parse(argv)
    started = time.monotonic()
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    args.external = bool(external)
    work = CACHE / "bench" / f"commission-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    CLIENT_LOG.install(work / "bench-client.log")
    try:
        with bench_broker("bench-broker-commission", args.keep, needed=True) as bootstrap:
            results = asyncio.run(bench(args, bootstrap, work))
            if external and not args.keep:
                asyncio.run(delete_topics(external, f"benchc{results['run']}-"))
    finally:
        if not args.keep:
            for d in work.glob("*/data"):
                shutil.rmtree(d, ignore_errors=True)
    results["wall_seconds"] = time.monotonic() - started
    env = results["env"]
    say("")
    say(
        f"flexchain commission bench — {env['cpus']} CPUs, Python {env['python']}, aiokafka {env['aiokafka']}, "
        f"Kafka {env['kafka']}; N={args.orders:,} orders, {args.chains} chains of 3, {args.members} members, "
        f"batch ≤ {env['batch_max']}; load avg {env['loadavg_start'][0]} → {env['loadavg_end'][0]}; "
        f"wall {results['wall_seconds']:.0f} s; logs {work}"
    )
    say("")
    say(table(results))
    say("")
    say("BENCH_JSON " + json.dumps(clean(results), sort_keys=True, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
