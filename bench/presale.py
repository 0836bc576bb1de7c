#!/usr/bin/env python
"""flexchain bench: the presale service's payments (OrderPaid → escrow) against a raw aiokafka
passthrough, on a real Kafka, in one run.

1. **B** — raw aiokafka passthrough of the very OrderPaid records the service gets (consumer group →
   producer → commit per batch, flexchain's client settings); **B_txn** — the same, one transaction
   per batch (informational). Each runs twice; the faster run counts.
2. **S** — the presale service working through a backlog of N OrderPaid events on `order.events`,
   exactly-once: its router turns each into a RecordPayment (one transaction per batch), its
   processor escrows it, split into the buckets (another). Set up first, with the service running:
   C campaigns created, scheduled and launched, and N OrderPlaced events pledged (until the read
   model shows them all); then the N payments are produced at full speed onto `order.events` while
   the running service works through them. The rate is read from the processor group's committed
   offsets on `presale.commands` (payments only: the setup is the base), between the first and the
   last observation of partial progress.

Starts its own broker (fresh dir under .cache/bench-broker-presale, free ports) unless
KAFKA_BOOTSTRAP_SERVERS is set. Prints a table and one ``BENCH_JSON {...}`` line.
Usage: ``.venv/bin/python bench/presale.py [--payments N] [--campaigns C] [--quick]``.
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
import httpx  # noqa: E402

from bench.run import (  # noqa: E402
    CLIENT_LOG,
    Record,
    RssSampler,
    Services,
    bench_broker,
    clean,
    delete_topics,
    group_committed,
    observe_backlog,
    passthrough,
    produce_all,
    say,
    scrape,
    service_retries,
    settings,
    wait_ready,
    warm_up,
)
from flexchain import kafka  # noqa: E402
from flexchain.auth import bearer, ensure_local_auth  # noqa: E402
from flexchain.messages import Envelope, Enveloped, Message  # noqa: E402
from flexchain.procs import ServiceProcess  # noqa: E402
from flexchain.serde import Codec  # noqa: E402
from flexchain.settings import PROJECT_ROOT, Settings  # noqa: E402
from flexchain.ticks import MESSAGES as CLOCK_MESSAGES  # noqa: E402
from flexchain.tools import broker as kbroker  # noqa: E402
from flexchain.tools.scrape import metric_sum  # noqa: E402
from services.order.messages import MESSAGES as ORDER_MESSAGES  # noqa: E402
from services.order.messages import OrderLine, OrderPaid, OrderPlaced  # noqa: E402
from services.presale.messages import MESSAGES as PRESALE_MESSAGES  # noqa: E402
from services.presale.messages import CreateCampaign, LaunchCampaign, ScheduleCampaign  # noqa: E402

CODEC = Codec([*CLOCK_MESSAGES, *ORDER_MESSAGES, *PRESALE_MESSAGES])
CACHE = PROJECT_ROOT / ".cache"
DAY_MS = 86_400_000
T0 = 1_790_000_000_000
START, END = T0 + DAY_MS, T0 + 31 * DAY_MS
UNIT_COST = 2_000
EARLY_PRICE = 2_400


def record(msg: Message, at: int, producer: str) -> Record:
    env = Envelope(
        event_id=str(uuid.uuid4()),
        event_type=type(msg).__name__,
        aggregate_id=msg.key,
        aggregate_version=0,
        business_time=at,
        correlation_id=msg.key,
        causation_id=None,
        producer=producer,
    )
    return msg.key.encode(), CODEC.encode(Enveloped(envelope=env, message=msg)), [("type", type(msg).__name__.encode())]


def campaign_ids(n: int) -> list[str]:
    return [f"camp-{i:03d}" for i in range(n)]


def setup_commands(campaigns: list[str], payments: int) -> list[Record]:
    cap = payments * 10  # the 80 % intake cap never bites
    out = []
    for cid in campaigns:
        out.append(
            record(
                CreateCampaign(
                    campaign_id=cid, product="bench notebook", unit_cost=UNIT_COST, fan_base=100_000, moq=1, max_capacity=cap
                ),
                T0,
                "bench",
            )
        )
        out.append(record(ScheduleCampaign(campaign_id=cid, starts_at=START, ends_at=END), T0, "bench"))
        out.append(record(LaunchCampaign(campaign_id=cid, force=True), T0, "bench"))
    return out


def order_ids(n: int, tag: str) -> list[str]:
    return [f"o-{tag}-{i:09d}" for i in range(n)]


def placed_events(orders: list[str], campaigns: list[str], rng: random.Random) -> tuple[list[Record], dict[str, str]]:
    owner = {o: rng.choice(campaigns) for o in orders}
    lines = [OrderLine(sku="notebook", qty=1, unit_price=EARLY_PRICE)]
    recs = [
        record(
            OrderPlaced(
                order_id=o,
                member_id="m-bench",
                channel="live",
                lines=lines,
                distributor_id=None,
                campaign_id=owner[o],
                total=EARLY_PRICE,
                placed_at=START + 1,
            ),
            START + 1,
            "order",
        )
        for o in orders
    ]
    return recs, owner


def paid_events(orders: list[str], owner: dict[str, str]) -> list[Record]:
    lines = [OrderLine(sku="notebook", qty=1, unit_price=EARLY_PRICE)]
    return [
        record(
            OrderPaid(
                order_id=o,
                amount=EARLY_PRICE,
                payment_ref=f"pay-{o[-9:]}",
                paid_at=START + 2,
                member_id="m-bench",
                distributor_id=None,
                campaign_id=owner[o],
                lines=lines,
            ),
            START + 2,
            "order",
        )
        for o in orders
    ]


async def committed(s: Settings, group: str, topic: str) -> int:
    admin = kafka.admin(s)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            return await group_committed(admin, group, topic)
        return 0
    finally:
        await admin.close()


async def wait_committed(s: Settings, proc: ServiceProcess, group: str, topic: str, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running:
            raise RuntimeError(f"presale exited: {proc.tail()}")
        if await committed(s, group, topic) >= total:
            return
        await asyncio.sleep(0.25)
    raise TimeoutError(f"{group} did not reach {total} on {topic}: {proc.tail()}")


async def wait_viewed(proc: ServiceProcess, campaigns: list[str], n: int, timeout: float, key: str = "accepted_units") -> None:
    """Until the service's read model shows `n` pledged units (or paid orders) over the campaigns."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=10, headers=bearer()) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                seen = 0
                for cid in campaigns:
                    seen += (await http.get(f"{proc.url}/campaigns/{cid}")).json()["pledges"][key]
                if seen >= n:
                    return
            await asyncio.sleep(0.5)
    raise TimeoutError(f"read model shows fewer than {n} {key}: {proc.tail()}")


async def bench(args: argparse.Namespace, bootstrap: str, work: Path) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    base = f"pbench{run}-"
    rng = random.Random(args.seed)
    batch_max = settings(bootstrap).flexchain_batch_max
    out: dict[str, Any] = {"run": run, "payments": args.payments, "campaigns": args.campaigns}
    out["env"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "aiokafka": aiokafka.__version__,
        "kafka": kbroker.KAFKA_VERSION if not args.external else "external",
        "batch_max": batch_max,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    sb, ss = settings(bootstrap, base + "b-"), settings(bootstrap, base + "svc-")
    src, dst, dst_txn = sb.name("passthrough.in"), sb.name("passthrough.out"), sb.name("passthrough-txn.out")
    await kafka.ensure_topics(sb, [src, dst, dst_txn], partitions=6)
    svc_topics = [*kafka.topic_names("presale").values(), "order.events", "clock.ticks"]
    await kafka.ensure_topics(ss, [ss.name(t) for t in svc_topics])

    campaigns = campaign_ids(args.campaigns)
    orders = order_ids(args.payments, run)
    placed, owner = placed_events(orders, campaigns, rng)
    payments = paid_events(orders, owner)
    sizes = sorted({len(v) for _, v, _ in payments})
    out["sizes"] = {"order_paid_value_bytes": sizes, "order_paid_key_bytes": len(payments[0][0] or b"")}
    await asyncio.sleep(2.0)  # leaders settle
    if args.warmup_seconds > 0:  # a fresh broker JVM compiles its hot paths first (bench/README.md, "Warm-up and CPU")
        out["warmup"] = await warm_up(settings(bootstrap, base + "w-"), args.warmup_seconds, "[0 warm-up]")

    # 1. B and B_txn over the very OrderPaid records of the service run
    say(f"[1 B] raw passthrough baseline: {len(payments)} OrderPaid records ({sizes[0]}–{sizes[-1]} B), each variant twice ...")
    n, secs = await produce_all(sb, src, payments)
    out["produce"] = {"records": n, "seconds": secs, "rate": n / secs}
    for key, txn, out_topic in (("B", False, dst), ("B_txn", True, dst_txn)):
        runs = []
        for i in range(2):
            before = CLIENT_LOG.retries
            runs.append(await passthrough(sb, src, out_topic, sb.name(f"{key}-{i}"), n, batch_max, txn=txn))
            runs[-1]["produce_retries"] = CLIENT_LOG.retries - before
        best = max(runs, key=lambda x: x["rate"])
        out[key] = {**best, "runs": [x["rate"] for x in runs], "retries": [x["produce_retries"] for x in runs]}
        say(f"      {key:<5} {best['rate']:,.0f} records/s (runs: {', '.join(f'{x:,.0f}' for x in out[key]['runs'])})")

    # 2. setup with the service running: campaigns, then one pledge per order
    group, commands = ss.name("presale"), ss.name("presale.commands")
    svc = Services(bootstrap, ss.flexchain_topic_prefix, work / "svc")
    setup = setup_commands(campaigns, args.payments)
    say(f"[2 setup] {len(campaigns)} campaigns, {len(placed)} OrderPlaced → pledges ...")
    try:
        pre = svc.start("presale")
        await wait_ready(pre, 120)
        t_setup = time.monotonic()
        await produce_all(ss, commands, setup)
        await produce_all(ss, ss.name("order.events"), placed)
        base_offset = len(setup) + len(placed)
        await wait_committed(ss, pre, group, commands, base_offset, 120 + len(placed) / 200)
        await wait_viewed(pre, campaigns, len(placed), 120)
        out["setup_seconds"] = time.monotonic() - t_setup
        m = await scrape(pre)
        accepted = metric_sum(m, "flexchain_presale_events_out_total", type="PledgeAccepted")
        if accepted != len(placed):
            raise RuntimeError(f"{accepted:.0f} pledges accepted of {len(placed)}: {pre.tail()}")
        del placed

        # 3. the payments, produced at full speed onto order.events while the service works through them
        say(f"[3 S] presale service: {len(payments)} OrderPaid → RecordPayment → PaymentEscrowed ...")
        assert pre.proc is not None
        with RssSampler({"presale": pre.proc.pid}) as rss:
            watch = asyncio.create_task(observe_backlog(ss, pre, group, commands, args.payments, args.poll, base=base_offset))
            await produce_all(ss, ss.name("order.events"), payments)
            del payments
            out["S"] = await watch
        out["S"]["peak_rss_mib"] = rss.mib("presale")
        out["S"]["produce_retries"] = service_retries(pre)
        await wait_viewed(pre, campaigns, args.payments, 120, key="paid_orders")
        m = await scrape(pre)
        stages = {}
        for stage in ("processor", "router"):
            pre_name = "flexchain_presale_processing_latency_seconds"
            count = metric_sum(m, f"{pre_name}_count", stage=stage)
            if count:
                stages[stage] = 1000 * metric_sum(m, f"{pre_name}_sum", stage=stage) / count
        escrow = metric_sum(m, "flexchain_presale_campaign_escrow_cents", bucket="production|risk|marketing|operations")
        out["S"]["check"] = {
            "payments_escrowed": metric_sum(m, "flexchain_presale_events_out_total", type="PaymentEscrowed"),
            "refused": metric_sum(m, "flexchain_presale_events_out_total", type="PresaleCommandRejected"),
            "escrow_cents": escrow,
            "expected_cents": args.payments * EARLY_PRICE,
            "dlq": metric_sum(m, "flexchain_presale_dlq_records_total"),
            "mean_append_to_commit_ms": stages,
        }
        say(f"      S     {out['S']['rate']:,.0f} payments/s (peak RSS {out['S']['peak_rss_mib']} MiB)")
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
        (
            "record: OrderPaid value/key",
            f"{'–'.join(map(str, sorted(set(r['sizes']['order_paid_value_bytes']))))} B/{r['sizes']['order_paid_key_bytes']} B",
            "",
            "",
            "",
        ),
        ("B     raw passthrough, commit per batch", f"{r['B']['rate']:,.0f} rec/s", "1.00", "", ""),
        ("B_txn raw passthrough, txn per batch", f"{r['B_txn']['rate']:,.0f} rec/s", f"{ra['B_txn_over_B']:.2f} ×B", "", "info"),
        (
            "S     presale payments, exactly-once (2 hops)",
            f"{s['rate']:,.0f} pay/s",
            f"{ra['S_over_B']:.2f} ×B",
            f"≥ {r['targets']['S_over_B']:.2f}",
            "yes" if r["met"]["S_over_B"] else "NO",
        ),
        ("      S against B_txn", "", f"{ra['S_over_B_txn']:.2f} ×B_txn", "", "info"),
        ("      measured over", f"{s['records']:,} payments / {s['seconds']:.1f} s", "", "", ""),
        (
            "      escrowed / refused / dlq",
            f"{chk['payments_escrowed']:,.0f} / {chk['refused']:,.0f} / {chk['dlq']:,.0f}",
            "",
            "",
            "",
        ),
        ("      escrow held = N × price", f"{chk['escrow_cents']:,.0f} = {chk['expected_cents']:,} cents", "", "", ""),
        (
            "      mean append→commit ms",
            ", ".join(f"{k} {v:.0f}" for k, v in chk["mean_append_to_commit_ms"].items()),
            "",
            "",
            "info",
        ),
        ("      peak RSS presale", f"{s['peak_rss_mib']} MiB", "", "", ""),
        (
            "      txn produce retries B_txn runs / S",
            f"{' + '.join(map(str, r['B_txn']['retries']))} / {s['produce_retries']}",
            "",
            "",
            "info",
        ),
        ("setup (campaigns + pledges, service running)", f"{r['setup_seconds']:.1f} s", "", "", "info"),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--payments", type=int, default=100_000, help="OrderPaid records for B, B_txn and the service run")
    ap.add_argument("--campaigns", type=int, default=60, help="campaigns the orders are spread over")
    ap.add_argument("--poll", type=float, default=0.1, help="seconds between committed-offset observations")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the bench dir, broker data and (external) topics")
    ap.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test (5000 payments, 12 campaigns)")
    ap.add_argument(
        "--warmup-seconds", type=float, default=120.0, help="transactions through the broker before any measurement (0: none)"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.payments, args.campaigns, args.poll = 5_000, 12, 0.05
        args.warmup_seconds = min(args.warmup_seconds, 6.0)
    return args


def main(argv: list[str] | None = None) -> int:
    ensure_local_auth(PROJECT_ROOT / ".cache" / "tokens")  # the services it starts need keys (README "Security")
    args = parse(argv)
    started = time.monotonic()
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    args.external = bool(external)
    work = CACHE / "bench" / f"presale-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    CLIENT_LOG.install(work / "bench-client.log")
    try:
        with bench_broker("bench-broker-presale", args.keep, needed=True) as bootstrap:
            results = asyncio.run(bench(args, bootstrap, work))
            if external and not args.keep:
                asyncio.run(delete_topics(external, f"pbench{results['run']}-"))
    finally:
        if not args.keep:
            for d in work.glob("*/data"):
                shutil.rmtree(d, ignore_errors=True)
    results["wall_seconds"] = time.monotonic() - started
    env = results["env"]
    say("")
    say(
        f"flexchain presale bench — {env['cpus']} CPUs, Python {env['python']}, aiokafka {env['aiokafka']}, Kafka "
        f"{env['kafka']}; N={args.payments:,} payments over {args.campaigns} campaigns, batch ≤ {env['batch_max']}; "
        f"load avg {env['loadavg_start'][0]} → {env['loadavg_end'][0]}; wall {results['wall_seconds']:.0f} s; logs {work}"
    )
    say("")
    say(table(results))
    say("")
    say("BENCH_JSON " + json.dumps(clean(results), sort_keys=True, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
