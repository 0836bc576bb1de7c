#!/usr/bin/env python
"""flexchain bench — the loyalty service, on a real Kafka, against a raw aiokafka passthrough.

One run, one machine, one broker:

1. **B** — raw aiokafka passthrough (consumer group → producer → commit per batch) over the very
   bytes of N OrderPaid events; **S** — the loyalty service working through a backlog of the same
   N OrderPaid events on `order.events` with exactly-once on: its router turns each into a
   RecordPurchase, its processor decides and writes the ledger. S/B in the same run.
2. **Tick** — in process: the pure `decide` + `evolve` of one business day's clock tick over a
   partition state of M members (1,000,000 by default, built by folding a synthetic history), and
   the memory that state takes (tracemalloc, and the process RSS).
3. **Year** — a simulated year for Y members (10,000 by default) through the real service on
   business time, with a kill -9 at mid-year and a rebuild from scratch at the end; churn warnings
   and reminders must match the pure oracle exactly, once each (the broker test runs a smaller Y).

Starts its own broker (fresh dir, free ports) unless KAFKA_BOOTSTRAP_SERVERS is set. Prints a table
and one ``BENCH_JSON {...}`` line. Usage:
``.venv/bin/python bench/loyalty.py [--records N] [--members M] [--year-members Y] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import gc
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiokafka  # noqa: E402
import httpx  # noqa: E402
import msgspec  # noqa: E402
import psutil  # noqa: E402
from aiokafka import TopicPartition  # noqa: E402

from bench.run import (  # noqa: E402
    CACHE,
    CLIENT_LOG,
    RssSampler,
    Services,
    bench_broker,
    clean,
    delete_topics,
    envelope_for,
    free_port,
    group_committed,
    partitions,
    passthrough,
    produce_all,
    say,
    scrape,
    settings,
    wait_ready,
    warm_up,
)
from flexchain import kafka, statecodec  # noqa: E402
from flexchain.auth import bearer, ensure_local_auth  # noqa: E402
from flexchain.clock import ClockPublisher  # noqa: E402
from flexchain.fold import PartitionState, first_time, fold_event  # noqa: E402
from flexchain.messages import Enveloped, Message  # noqa: E402
from flexchain.procs import ServiceProcess  # noqa: E402
from flexchain.serde import Codec  # noqa: E402
from flexchain.settings import PROJECT_ROOT, Settings  # noqa: E402
from flexchain.step import CommandStep, command_digest  # noqa: E402
from flexchain.ticks import MESSAGES as CLOCK_MESSAGES  # noqa: E402
from flexchain.tools import broker as kbroker  # noqa: E402
from flexchain.tools.scrape import metric_sum  # noqa: E402
from services.loyalty import domain, policy  # noqa: E402
from services.loyalty.app import service  # noqa: E402
from services.loyalty.messages import MESSAGES as LOYALTY_MESSAGES  # noqa: E402
from services.loyalty.messages import (  # noqa: E402
    ApplyUsageCycle,
    CheckMemberTimers,
    ChurnWarningRaised,
    CompletePurchase,
    ConfigureUsageCycle,
    JoinMember,
    MembersEvaluated,
    PurchasedLine,
    RecordBehaviour,
    RecordPurchase,
    ReplenishmentReminderRaised,
)
from services.loyalty.rules import DAY_MS, HOUR_MS, LoyaltyConfig  # noqa: E402
from services.loyalty.state import Loyalty, evolve  # noqa: E402
from services.loyalty.views import LoyaltyView  # noqa: E402
from services.order.messages import MESSAGES as ORDER_MESSAGES  # noqa: E402
from services.order.messages import (  # noqa: E402
    OrderCancelled,
    OrderCompleted,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    RefundedLine,
)

CODEC = Codec([*CLOCK_MESSAGES, *ORDER_MESSAGES, *LOYALTY_MESSAGES])
Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]
T0 = 1_767_196_800_000  # 2026-01-01 00:00 in UTC+8, a business day start
SKUS = {"water": 15, "mask": 30, "mug": 0, "tee": 0}  # usage cycle in days (0: not a consumable)


def record(msg: Message, at: int, producer: str = "bench") -> Record:
    env = envelope_for(msg, at=at, producer=producer)
    return msg.key.encode(), CODEC.encode(Enveloped(envelope=env, message=msg)), [("type", type(msg).__name__.encode())]


# --- the simulated year (shared with tests/integration/test_loyalty_year.py) ------------------------


@dataclass
class YearScenario:
    """Members buying on business time for a year: habits, consumables, refunds, a few who stop.

    Each member buys at most once in any 7 days, so a week's order events can be published at once:
    the service folds a member's purchases in time order whatever Kafka interleaves between
    members, and the ticks of a week are published only once the router has read the week's orders
    (ticks may lag behind purchases, never run ahead: a purchase first catches its member up)."""

    members: int
    seed: int = 7
    days: int = 365
    tail_days: int = 20  # ticks after the last purchases
    joins: list[Message] = field(default_factory=list)
    weeks: list[list[tuple[Message, int]]] = field(default_factory=list)
    orders: int = 0

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        names = [f"m{i:05d}" for i in range(self.members)]
        for i, name in enumerate(names):
            referrer = names[rng.randrange(i)] if i and rng.random() < 0.1 else None
            self.joins.append(JoinMember(member_id=name, referrer_id=referrer))
        by_week: dict[int, list[tuple[int, Message]]] = {}

        def at(day: int, hour: float) -> int:
            return T0 + day * DAY_MS + int(hour * HOUR_MS)

        def emit(t: int, msg: Message) -> None:
            by_week.setdefault((t - T0) // (7 * DAY_MS), []).append((t, msg))

        n = 0
        for name in names:
            if rng.random() < 0.15:
                continue  # joins and never buys
            habit = rng.randint(10, 90)
            stops = rng.randint(20, 700)
            day = rng.randint(0, 60)
            while day < min(self.days, stops):
                n += 1
                oid = f"o{n:07d}"
                picked = rng.sample(sorted(SKUS), rng.randint(1, 2))
                lines = [
                    OrderLine(sku=sku, qty=rng.randint(1, 3), unit_price=rng.randint(10, 400) * 100 + rng.choice((0, 50, 99)))
                    for sku in picked
                ]
                total = sum(line.qty * line.unit_price for line in lines)
                hour = rng.uniform(8, 21)
                emit(
                    at(day, hour - 0.5),
                    OrderPlaced(
                        order_id=oid,
                        member_id=name,
                        channel="live",
                        lines=lines,
                        distributor_id=None,
                        campaign_id=None,
                        total=total,
                        placed_at=at(day, hour - 0.5),
                    ),
                )
                emit(
                    at(day, hour),
                    OrderPaid(
                        order_id=oid,
                        amount=total,
                        payment_ref=f"pay-{oid}",
                        paid_at=at(day, hour),
                        member_id=name,
                        distributor_id=None,
                        campaign_id=None,
                        lines=lines,
                    ),
                )
                fate = rng.random()
                if fate < 0.02:  # cancelled after payment, before shipping: no completion
                    emit(
                        at(day, hour + 0.5),
                        OrderCancelled(
                            order_id=oid,
                            reason="changed mind",
                            release_skus=picked,
                            refund_amount=total,
                            member_id=name,
                            distributor_id=None,
                            campaign_id=None,
                        ),
                    )
                else:
                    if fate < 0.08:  # one line refunded within the return window
                        line = lines[0]
                        refund = RefundedLine(
                            sku=line.sku, qty=1, reason="no_reason", amount=line.unit_price, goods_returned=True
                        )
                        full = len(lines) == 1 and line.qty == 1
                        emit(
                            at(day + 3, 12),
                            OrderRefunded(
                                order_id=oid,
                                refund_id="r1",
                                lines=[refund],
                                amount=line.unit_price,
                                fully_refunded=full,
                                member_id=name,
                                distributor_id=None,
                                campaign_id=None,
                            ),
                        )
                        if full:
                            day += max(7, int(habit * rng.uniform(0.7, 1.3)))
                            continue
                    emit(
                        at(day + 10, 9),
                        OrderCompleted(
                            order_id=oid, completed_at=at(day + 10, 9), member_id=name, distributor_id=None, campaign_id=None
                        ),
                    )
                day += max(7, int(habit * rng.uniform(0.7, 1.3)))
        self.orders = n
        last_week = (self.days + self.tail_days) // 7 + 1
        self.weeks = [[(m, t) for t, m in sorted(by_week.get(w, []), key=lambda x: x[0])] for w in range(last_week)]

    def ticks(self, week: int) -> list[int]:
        """Half past midnight of each day of the week (business time), up to the end of the run."""
        return [T0 + d * DAY_MS + 30 * 60_000 for d in range(7 * week, 7 * week + 7) if d <= self.days + self.tail_days]

    def cycles(self) -> list[Message]:
        return [ConfigureUsageCycle(sku=sku, cycle_days=days) for sku, days in SKUS.items() if days]

    def oracle(self, config: LoyaltyConfig | None = None) -> dict[str, Counter[tuple[Any, ...]]]:
        """The same year through the pure domain in one partition, in business-time order."""
        st = domain.new_state(config)
        log: list[Message] = []

        def handle(cmd: Message, now: int) -> None:
            queue = [cmd]
            while queue:
                c = queue.pop(0)
                events = domain.decide(st, c, now)
                for e in events:
                    domain.evolve(st, e)
                    queue += [x for x in policy.react(e) if type(x).__name__ in ("RewardReferrer", "ApplyUsageCycle")]
                log.extend(events)

        for cmd in [*self.cycles(), *self.joins]:
            handle(cmd, T0)
        for w, week in enumerate(self.weeks):
            for event, t in week:
                for cmd in policy.react(event):
                    handle(cmd, t)
            for t in self.ticks(w):
                handle(CheckMemberTimers(time=t), t)
        return story(log)


def story(events: list[Message]) -> dict[str, Counter[tuple[Any, ...]]]:
    """What must happen exactly once per cause: churn warnings and replenishment reminders."""
    return {
        "churn_warnings": Counter(
            (e.member_id, e.last_purchase_at, e.raised_at) for e in events if isinstance(e, ChurnWarningRaised)
        ),
        "reminders": Counter((e.member_id, e.sku, e.run_out_at) for e in events if isinstance(e, ReplenishmentReminderRaised)),
    }


async def read_topic(s: Settings, topic: str) -> list[tuple[int, Enveloped]]:
    """Every committed record of a topic with its partition, decoded."""
    consumer = kafka.consumer(s, group_id=None, max_poll_records=5000)
    await consumer.start()
    try:
        tps = await partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[int, Enveloped]] = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=500)
                out += [(tp.partition, CODEC.decode(r.value)) for r in batch.get(tp, [])]
        return out
    finally:
        await consumer.stop()


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if await check():
                return
        await asyncio.sleep(interval)
    raise TimeoutError(f"not reached in {timeout:.0f}s: {what}")


async def drive_year(
    scenario: YearScenario, s: Settings, on_week: Callable[[int], Awaitable[None]] | None = None, timeout: float = 600
) -> dict[str, Any]:
    """Publish the year through Kafka: joins and usage cycles, then week by week the order events,
    a sync on the router's committed offsets, and the week's clock ticks. Returns counts."""
    admin = kafka.admin(s)
    await admin.start()
    producer = kafka.producer(s)
    await producer.start()
    commands, order_topic = s.name("loyalty.commands"), s.name("order.events")
    router, processor = s.name("loyalty-router"), s.name("loyalty")
    published = ticks = 0
    started = time.monotonic()

    async def send(topic: str, items: list[tuple[Message, int]]) -> None:
        futs = []
        for msg, at in items:
            key, value, headers = record(msg, at)
            futs.append(await producer.send(topic, value, key=key, headers=headers))
        await asyncio.gather(*futs)

    async def routed(topic: str, n: int) -> bool:
        return await group_committed(admin, router, topic) >= n

    async def drain(what: str) -> None:
        """Until the processor has handled everything on its command topic so far: a harmless
        command (a tick long past: nothing is due) on every partition, then its offset committed."""
        marks = {}
        for p in sorted(await producer.partitions_for(commands)):
            _, value, headers = record(CheckMemberTimers(time=T0), T0)
            marks[p] = (await (await producer.send(commands, value, partition=p, headers=headers))).offset

        async def done() -> bool:
            offsets = await admin.list_consumer_group_offsets(processor)
            return all(
                offsets.get(TopicPartition(commands, p), None) is not None and offsets[TopicPartition(commands, p)].offset > o
                for p, o in marks.items()
            )

        await _until(done, timeout, what, 0.1)

    try:
        await send(commands, [(m, T0) for m in [*scenario.cycles(), *scenario.joins]])
        await drain("joins and cycles processed")
        applied = 6 * len(scenario.cycles())  # every partition uses each cycle before the first purchase
        await _until(lambda: _count_type(s, "UsageCycleApplied", applied), timeout, "usage cycles on every partition", 0.2)
        async with ClockPublisher(s) as clock:
            for w, week in enumerate(scenario.weeks):
                await send(order_topic, week)
                published += len(week)
                if on_week is not None:
                    await on_week(w)
                await _until(lambda n=published: routed(order_topic, n), timeout, f"week {w} routed")
                for t in scenario.ticks(w):
                    await clock.tick(t)
                    ticks += 1
        await _until(lambda: routed(s.name("clock.ticks"), ticks), timeout, "ticks routed")
        await drain("every command processed")
    finally:
        await producer.stop()
        await admin.close()
    return {"order_events": published, "ticks": ticks, "seconds": time.monotonic() - started}


async def _count_type(s: Settings, event_type: str, n: int) -> bool:
    return sum(1 for _, e in await read_topic(s, s.name("loyalty.events")) if e.envelope.event_type == event_type) >= n


def check_year(scenario: YearScenario, log: list[tuple[int, Enveloped]]) -> dict[str, Any]:
    """The service's log against the oracle: the same warnings and reminders, each once, and no
    event written twice (an event id twice in one partition)."""
    got = story([e.message for _, e in log])
    want = scenario.oracle()
    out: dict[str, Any] = {}
    for kind in ("churn_warnings", "reminders"):
        out[kind] = {
            "expected": sum(want[kind].values()),
            "got": sum(got[kind].values()),
            "duplicates": sum(n - 1 for n in got[kind].values() if n > 1),
            "missing": sum((want[kind] - got[kind]).values()),
            "unexpected": sum((got[kind] - want[kind]).values()),
        }
    # per partition: the kernel derives a broadcast command's event ids from the command id alone,
    # so the same tick's events share ids across partitions (reported to the lead)
    ids = Counter((p, e.envelope.event_id) for p, e in log)
    out["duplicate_event_ids"] = sum(n - 1 for n in ids.values() if n > 1)
    out["exact"] = all(
        out[k]["duplicates"] == out[k]["missing"] == out[k]["unexpected"] == 0 for k in ("churn_warnings", "reminders")
    ) and (out["duplicate_event_ids"] == 0)
    return out


# --- 1. order events: the service against B ------------------------------------------------------


def paid_orders(n: int, members: int, rng: random.Random) -> list[Record]:
    """n OrderPaid events over a year for a pool of members (a member's first one joins it)."""
    out: list[Record] = []
    for i in range(n):
        at = T0 + i * 365 * DAY_MS // n + rng.randrange(DAY_MS)
        member = f"m{rng.randrange(members):07d}"
        picked = rng.sample(sorted(SKUS), rng.randint(1, 2))
        lines = [OrderLine(sku=sku, qty=rng.randint(1, 3), unit_price=rng.randint(1000, 9999)) for sku in picked]
        total = sum(line.qty * line.unit_price for line in lines)
        out.append(
            record(
                OrderPaid(
                    order_id=f"o{i:09d}",
                    amount=total,
                    payment_ref=f"pay{i:09d}",
                    paid_at=at,
                    member_id=member,
                    distributor_id=None,
                    campaign_id=None,
                    lines=lines,
                ),
                at,
                "order",
            )
        )
    return out


async def observe_service(s: Settings, proc: ServiceProcess, n: int, interval: float) -> dict[str, Any]:
    """The processor's progress through the RecordPurchase commands the router makes of n OrderPaid.

    Progress is the processor group's committed offsets on loyalty.commands (polled every
    `interval` s); those count the router's transaction markers too, so they are scaled by
    n / (offsets at the end). The run is over when the service has written n PurchaseRecorded."""
    admin = kafka.admin(s)
    await admin.start()
    commands, group = s.name("loyalty.commands"), s.name("loyalty")
    obs: list[tuple[float, int]] = []
    deadline = time.monotonic() + 120 + n / 100
    last_scrape = 0.0
    try:
        while True:
            if not proc.running:
                raise RuntimeError(f"loyalty exited during the throughput run: {proc.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"loyalty did not finish {n} orders: {proc.tail()}")
            with contextlib.suppress(Exception):
                obs.append((time.perf_counter(), await group_committed(admin, group, commands)))
            if time.monotonic() - last_scrape > 1.0:
                last_scrape = time.monotonic()
                with contextlib.suppress(Exception):
                    m = await scrape(proc)
                    if metric_sum(m, "flexchain_loyalty_events_out_total", type="PurchaseRecorded") >= n:
                        break
            await asyncio.sleep(interval)
        final = await group_committed(admin, group, commands)
    finally:
        await admin.close()
    started = [o for o in obs if o[1] > 0]
    partial = [o for o in started if o[1] < final]
    first, last = (partial[0], partial[-1]) if len(partial) >= 2 else (started[0], started[-1])
    elapsed = last[0] - first[0]
    scale = n / final
    return {
        "rate": (last[1] - first[1]) * scale / elapsed if elapsed > 0 else float("nan"),
        "records": int((last[1] - first[1]) * scale),
        "seconds": elapsed,
        "observations": len(obs),
        "offsets_per_order": final / n,
    }


async def throughput(args: argparse.Namespace, bootstrap: str, base: str, work: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    sb, ss = settings(bootstrap, base + "b-"), settings(bootstrap, base + "svc-")
    src, dst = sb.name("passthrough.in"), sb.name("passthrough.out")
    await kafka.ensure_topics(sb, [src, dst], partitions=6)
    topics = [*kafka.topic_names("loyalty").values(), "order.events", "clock.ticks"]
    await kafka.ensure_topics(ss, [ss.name(t) for t in topics])
    records = paid_orders(args.records, args.pool, rng)
    sizes = sorted({len(v) for _, v, _ in records})
    out: dict[str, Any] = {"sizes": {"order_paid_value_bytes_min": sizes[0], "order_paid_value_bytes_max": sizes[-1]}}
    batch_max = sb.flexchain_batch_max

    say(f"[1 B] raw passthrough: {len(records)} OrderPaid records ({sizes[0]}–{sizes[-1]} B), twice ...")
    n, _ = await produce_all(sb, src, records)
    runs = []
    for i in range(2):
        runs.append(await passthrough(sb, src, dst, sb.name(f"B-{i}"), n, batch_max, txn=False))
    out["B"] = {**max(runs, key=lambda x: x["rate"]), "runs": [x["rate"] for x in runs]}
    say(f"      B     {out['B']['rate']:,.0f} records/s (runs: {', '.join(f'{x:,.0f}' for x in out['B']['runs'])})")

    say(f"[1 S] loyalty service, exactly-once: a backlog of the same {n} OrderPaid on order.events ...")
    await produce_all(ss, ss.name("order.events"), records)
    del records
    svc = Services(bootstrap, ss.flexchain_topic_prefix, work / "svc")
    try:
        proc = svc.start("loyalty")
        assert proc.proc is not None
        with RssSampler({"loyalty": proc.proc.pid}) as rss:
            out["S"] = await observe_service(ss, proc, n, args.poll)
        out["S"]["peak_rss_mib"] = rss.mib("loyalty")
        m = await scrape(proc)
        out["S"]["check"] = {
            "purchases_recorded": metric_sum(m, "flexchain_loyalty_events_out_total", type="PurchaseRecorded"),
            "events_out": metric_sum(m, "flexchain_loyalty_events_out_total", topic=r".*loyalty\.events"),
            "dlq": metric_sum(m, "flexchain_loyalty_dlq_records_total"),
        }
        say(f"      S     {out['S']['rate']:,.0f} orders/s (peak RSS {out['S']['peak_rss_mib']} MiB)")
    finally:
        svc.stop_all()
    out["S_over_B"] = out["S"]["rate"] / out["B"]["rate"]
    return out


# --- 2. a day's tick over a million members, in process ---------------------------------------------


def history(members: int, rng: random.Random) -> list[tuple[int, Message]]:
    """A year of a member base: joins all year; 60 % buy 1–4 times (30 % of lines a consumable),
    orders complete 10 days later; 30 % check in once. In business-time order."""
    cmds: list[tuple[int, Message]] = []
    for i in range(members):
        m = f"m-{i:07d}"
        join = rng.randrange(0, 330)
        cmds.append((T0 + join * DAY_MS + 9 * HOUR_MS, JoinMember(member_id=m)))
        if rng.random() < 0.6:
            d = join
            for k in range(rng.randint(1, 4)):
                d += rng.randint(0, 60)
                if d >= 365:
                    break
                oid = f"o-{i:07d}-{k}"
                lines = [PurchasedLine(sku="water" if rng.random() < 0.3 else "tee", qty=rng.randint(1, 3))]
                at = T0 + d * DAY_MS + 12 * HOUR_MS
                cmds.append(
                    (
                        at,
                        RecordPurchase(
                            member_id=m, order_id=oid, amount=rng.randint(20, 800) * 100 + 50, paid_at=at, lines=lines
                        ),
                    )
                )
                if d + 10 < 365:
                    done = T0 + (d + 10) * DAY_MS + 9 * HOUR_MS
                    cmds.append((done, CompletePurchase(member_id=m, order_id=oid, completed_at=done)))
        if rng.random() < 0.3:
            at = T0 + rng.randint(join, 364) * DAY_MS + 20 * HOUR_MS
            cmds.append((at, RecordBehaviour(member_id=m, action="checkin")))
    cmds.sort(key=lambda x: x[0])
    return cmds


def deep_size(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes held by a state: sys.getsizeof over dataclasses, containers and what they hold."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set)):
        size += sum(deep_size(x, seen) for x in obj)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        size += sum(deep_size(getattr(obj, f.name), seen) for f in dataclasses.fields(obj))
    return size


def build_partition(members: int, rng: random.Random) -> tuple[Loyalty, int, float]:
    """The state, the number of commands and the seconds it took."""
    st = domain.new_state()

    def do(cmd: Message, now: int) -> None:
        for e in domain.decide(st, cmd, now):
            domain.evolve(st, e)

    t0 = time.perf_counter()
    do(ApplyUsageCycle(sku="water", cycle_days=15), T0)
    cmds = history(members, rng)
    ticked = -1
    for at, cmd in cmds:
        day = (at - T0) // DAY_MS
        if day != ticked and (day % 7 == 0 or day >= 358):
            do(CheckMemberTimers(time=T0 + day * DAY_MS + 60_000), T0 + day * DAY_MS + 60_000)
            ticked = day
        do(cmd, at)
    return st, len(cmds), time.perf_counter() - t0


def tick_bench(members: int, seed: int, work: Path) -> dict[str, Any]:
    """Fold a year of `members` members into one partition's state (daily ticks for the last week,
    weekly before: a member's story does not depend on when ticks come) and save it as a snapshot
    would. A fresh process loads it — its memory is what a service holding the partition holds —
    and times the first tick of the next business day: decide (the due members and the RFM pass)
    and evolve."""
    state, n_cmds, built = build_partition(members, random.Random(seed))
    path = work / "tick-state.snapshot"
    path.write_bytes(statecodec.dumps(state, Loyalty))  # what a snapshot holds (flexchain.statecodec)
    del state
    gc.collect()
    result: dict[str, Any] = {}
    for how in ("rss", "tracemalloc"):  # tracemalloc's own bookkeeping would inflate the RSS: apart
        out = subprocess.run(
            [sys.executable, __file__, "--measure-state", str(path), "--measure-with", how],
            capture_output=True,
            text=True,
            check=True,
        )
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))
    result.update(members=members, history_commands=n_cmds, build_seconds=built, snapshot_mib=path.stat().st_size / 2**20)
    path.unlink()
    say(f"      the whole service's holding: {members:,} members through the processor and the read model ...")
    out = subprocess.run(
        [sys.executable, __file__, "--measure-service", str(members), "--seed", str(seed)],
        capture_output=True,
        text=True,
        check=True,
    )
    result.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return result


def measure_state(path: Path, how: str) -> dict[str, Any]:
    """In a fresh process, load a partition state (as from a snapshot) and measure it: with `rss`,
    the process's resident growth (and after malloc_trim) and the day's tick; with `tracemalloc`,
    the bytes Python allocated for it."""
    if how == "tracemalloc":
        data = path.read_bytes()  # read before measuring: the blob is not the state
        tracemalloc.start()
        st: Loyalty = statecodec.loads(data, Loyalty)
        del data
        traced, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"state_mib": traced / 2**20, "bytes_per_member": traced / len(st.ids), "deep_size_mib": deep_size(st) / 2**20}
    proc = psutil.Process()
    gc.collect()
    rss0 = proc.memory_info().rss  # before the blob is read: it is freed once the state is decoded
    data = path.read_bytes()
    st = statecodec.loads(data, Loyalty)
    del data
    gc.collect()
    rss = proc.memory_info().rss - rss0
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # give back what decoding freed
    trimmed = proc.memory_info().rss - rss0
    holding = proc.memory_info().rss  # the whole process (interpreter, the service's modules, the state)
    # while decoding, the blob too: the high-water mark of this process's memory (VmHWM; not
    # ru_maxrss, which Linux carries over the exec from the parent that forked this process)
    peak = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    peak *= 1024
    tick_at = T0 + 365 * DAY_MS + 60_000
    t0 = time.perf_counter()
    events = domain.decide(st, CheckMemberTimers(time=tick_at), tick_at)
    decided = time.perf_counter() - t0
    for e in events:
        domain.evolve(st, e)
    evolved = time.perf_counter() - t0 - decided
    marker = next(e for e in events if isinstance(e, MembersEvaluated))
    return {
        "purchasers": sum(1 for d in st.first_day if d >= 0),
        "rss_mib": rss / 2**20,
        "rss_trimmed_mib": trimmed / 2**20,
        "process_rss_mib": holding / 2**20,
        "process_peak_rss_mib": peak / 2**20,
        "due_members": marker.due,
        "rfm_members": marker.rfm_members,
        "tick_events": len(events),
        "tick_event_types": dict(Counter(type(e).__name__ for e in events).most_common()),
        "decide_seconds": decided,
        "evolve_seconds": evolved,
        "tick_seconds": decided + evolved,
    }


def measure_service(members: int, seed: int) -> dict[str, Any]:
    """What a loyalty process holding `members` members keeps, not only the partition state above:
    the processor's partition as the kernel holds it (the state, the last version of every aggregate
    folded, the dedup memory) and the read model the HTTP API answers from (`LoyaltyView`, folded
    from `loyalty.events`: a second fold of every member — one fold answers a member's state and
    its ledger totals, so they agree —, the stage and segment indexes and the read side's own
    aggregate versions in memory; each member's points ledger on disk, its size reported apart). Both are folded here, in a fresh
    process, from the events the service writes for the synthetic year (`history`), enveloped as
    its CommandStep envelopes them — the processor folds the objects it decided (as live; after a
    restart from a snapshot its strings are its own, see measure_state), the read model each event
    decoded from its Avro bytes, as it reads them from Kafka; then each part's bytes
    (sys.getsizeof, each object counted once, in the order listed) and the process's RSS holding
    them all."""
    rng = random.Random(seed)
    horizon = int(Settings().flexchain_dedup_horizon_hours * 3_600_000)
    ps = PartitionState(domain.new_state())
    view = LoyaltyView()
    view_versions: dict[str, int] = {}
    events = 0

    step = CommandStep(service(), CODEC, "loyalty.events", "loyalty.dlq", Settings().flexchain_dedup_horizon_hours)

    def do(cmd: Message, now: int, producer: str) -> None:
        nonlocal events
        cenv = envelope_for(cmd, at=now, producer=producer)
        digest = "" if producer.endswith("-router") else command_digest(cmd)
        decided = domain.decide(ps.state, cmd, now)
        for item, value in step.envelope(ps, 0, Enveloped(envelope=cenv, message=cmd), decided):  # as the processor does
            fold_event(evolve, ps, item, digest, now, horizon)
            read = CODEC.decode(value)  # the read model reads it from Kafka: its own objects
            if first_time(view_versions, read.envelope):  # as flexchain.views.Projection folds
                view.fold(read)
            events += 1

    t0 = time.perf_counter()
    do(ApplyUsageCycle(sku="water", cycle_days=15), T0, "loyalty-router")
    cmds = history(members, rng)
    n_cmds = len(cmds)
    ticked = -1
    cmds.reverse()  # pop() from the end: each command is freed once folded
    while cmds:
        at, cmd = cmds.pop()
        day = (at - T0) // DAY_MS
        if day != ticked and (day % 7 == 0 or day >= 358):
            tick = T0 + day * DAY_MS + 60_000
            do(CheckMemberTimers(time=tick), tick, "loyalty-router")
            ticked = day
        do(cmd, at, "loyalty-router" if isinstance(cmd, (RecordPurchase, CompletePurchase)) else "api")
    folded = time.perf_counter() - t0
    del cmds
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    holding = psutil.Process().memory_info().rss
    ledger_entries, ledger_bytes = view.ledger.size()  # on disk (services/loyalty/ledger.py)
    seen: set[int] = set()
    parts = {
        "processor_state": deep_size(ps.state, seen),
        "processor_versions": deep_size(ps.versions, seen),
        "processor_dedup": deep_size((ps.seen, ps.order), seen),  # the ids and the deque they are forgotten from
        "view_state": deep_size(view.state, seen),
        "view_indexes": deep_size((view.by_stage, view.by_segment, view.segments), seen),
        "view_versions": deep_size(view_versions, seen),
    }
    # what a fresh process holds after a restart: the processor's partition from its snapshot, the
    # read model's indexes and versions (which it refolds from the log: loaded here as data, interned
    # as the fold interns them); this process's RSS also holds what building the year fragmented
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        snap, model = Path(tmp) / "partition.snapshot", Path(tmp) / "view.msgpack"
        snap.write_bytes(statecodec.encode_partition(ps, Loyalty))
        index = (statecodec.dumps(view.state, Loyalty), view.by_stage, view.by_segment, view.segments, view.cycles, view_versions)
        model.write_bytes(msgspec.msgpack.encode(index))
        out = subprocess.run(
            [sys.executable, __file__, "--measure-holding", str(snap), str(model)], capture_output=True, text=True, check=True
        )
        restarted = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        **restarted,
        "service_members": len(ps.state.ids),
        "service_view_members": len(view.state.ids),
        "service_ledger_entries": ledger_entries,
        "service_ledger_disk_mib": ledger_bytes / 2**20,
        "service_commands": n_cmds,
        "service_events": events,
        "service_fold_seconds": folded,
        "service_parts_mib": {k: v / 2**20 for k, v in parts.items()},
        "service_total_mib": sum(parts.values()) / 2**20,
        "service_process_rss_mib": holding / 2**20,
    }


def measure_holding(snapshot: Path, model: Path) -> dict[str, Any]:
    """A fresh process holding what `measure_service` built, as after a restart: its RSS and peak."""
    proc = psutil.Process()
    ps = statecodec.decode_partition(snapshot.read_bytes(), Loyalty)
    view = LoyaltyView()
    state, by_stage, by_segment, segments, cycles, versions = msgspec.msgpack.decode(model.read_bytes())
    view.state = statecodec.loads(state, Loyalty)
    view.by_stage = {stage: {sys.intern(m): None for m in members} for stage, members in by_stage.items()}
    view.by_segment = {sys.intern(name): {sys.intern(m): None for m in members} for name, members in by_segment.items()}
    view.segments = {sys.intern(m): sys.intern(name) for m, name in segments.items()}
    view.cycles = cycles
    del state, by_stage, by_segment, segments
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    peak = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    held = (ps, view, versions)
    return {
        "service_restarted_rss_mib": proc.memory_info().rss / 2**20,
        "service_restarted_peak_rss_mib": peak / 1024,
        "service_restarted_members": len(held[0].state.ids),
    }


# --- 3. the simulated year through the service ---------------------------------------------------


async def year_bench(args: argparse.Namespace, bootstrap: str, base: str, work: Path) -> dict[str, Any]:
    scenario = YearScenario(args.year_members, args.seed)
    s = settings(bootstrap, base + "year-")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "FLEXCHAIN_TOPIC_PREFIX": s.flexchain_topic_prefix,
        "FLEXCHAIN_DATA_DIR": str(work / "year" / "data"),
        "FLEXCHAIN_SNAPSHOT_EVERY": "20000",
    }
    logs = work / "year" / "logs"
    current = {"p": ServiceProcess("loyalty", env, logs, free_port()).start()}
    await wait_ready(current["p"], 120)
    kill: dict[str, Any] = {}

    async def on_week(week: int) -> None:
        if week == len(scenario.weeks) // 2:
            current["p"].kill9()
            t = time.monotonic()
            current["p"] = ServiceProcess("loyalty", env, logs, free_port()).start()
            await wait_ready(current["p"], 120)
            kill.update(week=week, restart_to_ready_s=time.monotonic() - t)

    try:
        say(f"[3 year] {args.year_members} members, {scenario.orders} orders, kill -9 at mid-year ...")
        drive = await drive_year(scenario, s, on_week, timeout=900)
        log = await read_topic(s, s.name("loyalty.events"))
        check = check_year(scenario, log)
        url = current["p"].url
        async with httpx.AsyncClient(timeout=30, headers=bearer()) as http:
            before = {p: d["digest"] for p, d in (await http.get(url + "/internal/partitions")).json()["partitions"].items()}
        current["p"].stop()
        shutil.rmtree(work / "year" / "data", ignore_errors=True)
        t = time.monotonic()
        current["p"] = ServiceProcess("loyalty", env, logs, free_port()).start()
        await wait_ready(current["p"], 600)
        rebuild_s = time.monotonic() - t
        async with httpx.AsyncClient(timeout=30, headers=bearer()) as http:
            after = {
                p: d["digest"]
                for p, d in (await http.get(current["p"].url + "/internal/partitions")).json()["partitions"].items()
            }
        relog = await read_topic(s, s.name("loyalty.events"))
    finally:
        current["p"].stop()
    return {
        "members": args.year_members,
        "orders": scenario.orders,
        **drive,
        "events": len(log),
        "kill": kill,
        "check": check,
        "rebuild_from_scratch_s": rebuild_s,
        "rebuild_same_state": before == after,
        "rebuild_emitted": len(relog) - len(log),
    }


# --- the run -----------------------------------------------------------------------------------


def table(r: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str, str]] = [("figure", "value", "ratio", "target", "met")]
    if "throughput" in r:
        tp = r["throughput"]
        sz = tp["sizes"]
        rows += [
            ("record: OrderPaid value", f"{sz['order_paid_value_bytes_min']}–{sz['order_paid_value_bytes_max']} B", "", "", ""),
            ("B  raw passthrough, commit per batch", f"{tp['B']['rate']:,.0f} rec/s", "1.00", "", ""),
            (
                "S  loyalty, exactly-once (router + processor)",
                f"{tp['S']['rate']:,.0f} orders/s",
                f"{tp['S_over_B']:.2f} ×B",
                "≥ 0.30",  # issue 18: every two-hop service (router, then processor)
                "yes" if tp["S_over_B"] >= 0.3 else "NO",
            ),
            ("   measured over", f"{tp['S']['records']:,} orders / {tp['S']['seconds']:.1f} s", "", "", ""),
            ("   events written / DLQ", f"{tp['S']['check']['events_out']:,.0f} / {tp['S']['check']['dlq']:,.0f}", "", "", ""),
            ("   peak RSS loyalty", f"{tp['S']['peak_rss_mib']} MiB", "", "", ""),
        ]
    if "tick" in r:
        t = r["tick"]
        rows += [
            (
                f"tick: one business day, {t['members']:,} members",
                f"{t['tick_seconds']:.2f} s",
                "",
                "< 10 s",
                "yes" if t["tick_seconds"] < 10 else "NO",
            ),
            ("   decide / evolve", f"{t['decide_seconds']:.2f} / {t['evolve_seconds']:.2f} s", "", "", ""),
            (
                "   due members / RFM base / events",
                f"{t['due_members']:,} / {t['rfm_members']:,} / {t['tick_events']:,}",
                "",
                "",
                "",
            ),
            (
                "state of the partition (tracemalloc)",
                f"{t['state_mib']:.0f} MiB",
                f"{t['bytes_per_member']:.0f} B/member",
                "≤ 300 MiB",
                "yes" if t["state_mib"] <= 300 else "NO",
            ),
            (
                "   RSS growth holding it (after malloc_trim)",
                f"{t['rss_mib']:.0f} ({t['rss_trimmed_mib']:.0f}) MiB",
                "",
                "",
                "info",
            ),
            (
                "   RSS of a process holding it alone / its peak (decoding)",
                f"{t['process_rss_mib']:.0f} / {t['process_peak_rss_mib']:.0f} MiB",
                "",
                "",
                "info",
            ),
            ("   sys.getsizeof over the state", f"{t['deep_size_mib']:.0f} MiB", "", "", "info"),
            (
                "the service holding them, restarted: RSS / peak",
                f"{t['service_restarted_rss_mib']:,.0f} / {t['service_restarted_peak_rss_mib']:,.0f} MiB",
                "",
                "≤ 300 MB",
                "yes" if t["service_restarted_peak_rss_mib"] * 2**20 <= 300e6 else "NO",
            ),
            (
                "   the process that folded the year: RSS / objects",
                f"{t['service_process_rss_mib']:,.0f} / {t['service_total_mib']:,.0f} MiB",
                f"{t['service_total_mib'] * 2**20 / t['service_members']:,.0f} B/member",
                "",
                "info",
            ),
            *(
                (f"   {name.replace('_', ' ')}", f"{mib:,.0f} MiB", "", "", "info")
                for name, mib in t["service_parts_mib"].items()
            ),
            (
                "   ledgers, on disk (SQLite, not in RSS)",
                f"{t['service_ledger_disk_mib']:,.0f} MiB",
                f"{t['service_ledger_entries']:,} movements",
                "",
                "info",
            ),
            ("   its snapshot (statecodec)", f"{t['snapshot_mib']:.0f} MiB", "", "", "info"),
            ("   built from", f"{t['history_commands']:,} commands in {t['build_seconds']:.0f} s", "", "", ""),
        ]
    if "year" in r:
        y = r["year"]
        c = y["check"]
        rows += [
            (f"year: {y['members']:,} members, {y['orders']:,} orders", f"{y['seconds']:.0f} s", "", "", ""),
            ("   order events / ticks / loyalty events", f"{y['order_events']:,} / {y['ticks']} / {y['events']:,}", "", "", ""),
            (
                "   churn warnings: got / expected / dup",
                f"{c['churn_warnings']['got']} / {c['churn_warnings']['expected']} / {c['churn_warnings']['duplicates']}",
                "",
                "exact",
                "yes" if c["exact"] else "NO",
            ),
            (
                "   reminders: got / expected / dup",
                f"{c['reminders']['got']} / {c['reminders']['expected']} / {c['reminders']['duplicates']}",
                "",
                "exact",
                "yes" if c["exact"] else "NO",
            ),
            (
                "   kill -9 at week / restart → ready",
                f"{y['kill'].get('week')} / {y['kill'].get('restart_to_ready_s', 0):.1f} s",
                "",
                "",
                "",
            ),
            (
                "   rebuild from scratch: same state / emitted",
                f"{y['rebuild_same_state']} / {y['rebuild_emitted']} in {y['rebuild_from_scratch_s']:.1f} s",
                "",
                "True / 0",
                "yes" if y["rebuild_same_state"] and y["rebuild_emitted"] == 0 else "NO",
            ),
        ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


async def bench(args: argparse.Namespace, bootstrap: str | None, work: Path) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    base = f"loybench{run_id}-"
    out: dict[str, Any] = {"run": run_id, "args": {k: v for k, v in vars(args).items() if k != "external"}}
    out["env"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "aiokafka": aiokafka.__version__,
        "kafka": "external" if args.external else ("none" if args.tick_only else kbroker.KAFKA_VERSION),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    if not args.skip_tick:  # first, while the machine is quiet
        say(f"[2 tick] a year of {args.members:,} members folded into one partition, then one day's tick ...")
        out["tick"] = tick_bench(args.members, args.seed, work)
        gc.collect()
        say(f"      {out['tick']['tick_seconds']:.2f} s, state {out['tick']['state_mib']:.0f} MiB")
    if bootstrap is not None:
        if args.warmup_seconds > 0:  # a fresh broker JVM compiles its hot paths first (bench/README.md, "Warm-up and CPU")
            out["warmup"] = await warm_up(settings(bootstrap, base + "w-"), args.warmup_seconds, "[0 warm-up]")
        out["throughput"] = await throughput(args, bootstrap, base, work)
        if not args.skip_year:
            out["year"] = await year_bench(args, bootstrap, base, work)
    out["env"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000, help="OrderPaid events for B and S")
    ap.add_argument("--pool", type=int, default=20_000, help="members the OrderPaid events are spread over")
    ap.add_argument("--members", type=int, default=1_000_000, help="members in the partition of the tick run")
    ap.add_argument("--year-members", type=int, default=10_000, help="members of the simulated year")
    ap.add_argument("--poll", type=float, default=0.1, help="seconds between committed-offset observations")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-tick", action="store_true")
    ap.add_argument("--skip-year", action="store_true")
    ap.add_argument("--tick-only", action="store_true", help="only the in-process tick run (no broker)")
    ap.add_argument("--keep", action="store_true", help="keep the bench dir, broker data and (external) topics")
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke test")
    ap.add_argument(
        "--warmup-seconds", type=float, default=120.0, help="transactions through the broker before any measurement (0: none)"
    )
    ap.add_argument("--measure-state", type=Path, help=argparse.SUPPRESS)  # the tick run's fresh processes
    ap.add_argument("--measure-with", choices=("rss", "tracemalloc"), default="rss", help=argparse.SUPPRESS)
    ap.add_argument("--measure-service", type=int, help=argparse.SUPPRESS)  # members, in a fresh process
    ap.add_argument("--measure-holding", type=Path, nargs=2, help=argparse.SUPPRESS)  # snapshot, read model
    args = ap.parse_args(argv)
    if args.quick:
        args.records, args.pool, args.members, args.year_members, args.poll = 5_000, 1_000, 50_000, 300, 0.05
        args.warmup_seconds = min(args.warmup_seconds, 6.0)
    return args


def main(argv: list[str] | None = None) -> int:
    ensure_local_auth(PROJECT_ROOT / ".cache" / "tokens")  # the services it starts need keys (README "Security")
    args = parse(argv)
    if args.measure_state is not None:
        print(json.dumps(measure_state(args.measure_state, args.measure_with)))
        return 0
    if args.measure_holding is not None:
        print(json.dumps(measure_holding(*args.measure_holding)))
        return 0
    if args.measure_service is not None:
        print(json.dumps(measure_service(args.measure_service, args.seed)))
        return 0
    started = time.monotonic()
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    args.external = bool(external)
    work = CACHE / "bench" / f"loyalty-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    CLIENT_LOG.install(work / "bench-client.log")
    try:
        with bench_broker("bench-broker-loyalty", args.keep, needed=not args.tick_only) as bootstrap:
            results = asyncio.run(bench(args, bootstrap, work))
            if external and not args.keep:
                asyncio.run(delete_topics(external, f"loybench{results['run']}-"))
    finally:
        if not args.keep:
            for d in work.glob("*/data"):
                shutil.rmtree(d, ignore_errors=True)
    results["wall_seconds"] = time.monotonic() - started
    say("")
    say(
        f"flexchain loyalty bench — {results['env']['cpus']} CPUs, Python {results['env']['python']}, aiokafka "
        f"{results['env']['aiokafka']}, Kafka {results['env']['kafka']}; load avg {results['env']['loadavg_start'][0]} → "
        f"{results['env']['loadavg_end'][0]}; wall {results['wall_seconds']:.0f} s; logs {work}"
    )
    say("")
    say(table(results))
    say("")
    say("BENCH_JSON " + json.dumps(clean(results), sort_keys=True, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
