"""`flexchain simulate`: a merchant's quarter played through the real services on business time.

The merchant (`merchant.generate`) is driven through the public HTTP APIs, one business day at a
time: a clock tick at the day's start, then the day's commands. Determinism (same seed → the same
report numbers): everything random comes from `random.Random(seed)` and is drawn before the commands
it decides are sent, ids derive from the seed, the only time is business time, and before and after
each tick the simulator waits until the whole suite is quiet (every processor and router has read
its inputs to the end, `Quiet`), so no timer races a command. Within a day the merchant's own work
goes one command at a time; the day's orders, and then its refunds, run **concurrently in lanes**
(`lanes`): commands that contend on something whose outcome depends on their order — a member, a
presale campaign's cap, a sku held in several warehouses or whose stock may cross its threshold
today (`Simulator.contended`, from the inventory's own view) — share a lane and keep the generator's
order; different lanes run at once (`IN_FLIGHT`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from flexchain.auth import bearer
from flexchain.loopthread import LoopThread
from flexchain.tools.merchant import CHANNEL_WEIGHTS, CHANNELS, Merchant, Scale
from flexchain.tools.scrape import metric_sum, samples

DAY = 24 * 3_600_000
#: business time of day 0 (ms, a UTC midnight): a fixed point, so reruns read the same
T0 = 1_794_960_000_000
OPEN_HOUR = 10 * 3_600_000  # the day's tick: 10:00 UTC (18:00 in the merchant's UTC+8)
WAIT_S = 30


def day_time(day: int) -> int:
    return T0 + day * DAY + OPEN_HOUR


#: a command answered 429 (its client's budget, `FLEXCHAIN_RATE_LIMIT`) is sent again after its
#: `Retry-After`, this many times at most
THROTTLED_RETRIES = 50


def retry_after(r: httpx.Response) -> float:
    """How long a 429 asks to wait (seconds; 0.2 when it does not say)."""
    try:
        return max(0.05, float(r.headers.get("Retry-After", "0.2")))
    except ValueError:
        return 0.2


class Api:
    """The five services over HTTP, with the operator's token; commands wait for their events."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        # idle connections expire before the services drop them (uvicorn: after 5 s)
        self.client = httpx.Client(headers=bearer(), timeout=WAIT_S + 30, limits=httpx.Limits(keepalive_expiry=2.0))
        self.refused: Counter[str] = Counter()  # commands the domain refused (409), by route

    def close(self) -> None:
        self.client.close()

    def get(self, service: str, path: str, **params: Any) -> Any:
        for _ in range(200):
            r = self.client.get(self.urls[service] + path, params=params or None)
            if r.status_code == 429:  # too many folds at once (as-of): wait for ours
                time.sleep(retry_after(r))
                continue
            r.raise_for_status()
            return r.json()
        raise TimeoutError(f"{service}{path}: refused (429) too often")

    def events_written(self) -> int:
        """Events the services have committed to their event topics so far: the sum of their
        `events_out` counters (/metrics); unlike the topics' end offsets, no transaction markers."""
        total = 0.0
        for service, url in self.urls.items():
            scraped = samples(self.client.get(url + "/metrics").text)
            total += metric_sum(scraped, f"flexchain_{service}_events_out_total", topic=r".*\.events")
        return int(total)

    def send(
        self, method: str, service: str, path: str, body: dict[str, Any] | None = None, wait: float = WAIT_S
    ) -> tuple[int, Any]:
        for _ in range(THROTTLED_RETRIES):
            r = self.client.request(method, self.urls[service] + path, json=body, params={"wait": wait})
            if r.status_code != 429:
                break
            time.sleep(retry_after(r))  # refused before it was published: sending it again is safe
        return self.checked(method, service, path, body, wait, r)

    def checked(
        self, method: str, service: str, path: str, body: dict[str, Any] | None, wait: float, r: httpx.Response
    ) -> tuple[int, Any]:
        """200 (done, or a duplicate), 202 (published, when not waiting) and 409 (the domain refused:
        counted) are answers; anything else stops the run — a command must never be lost quietly."""
        if r.status_code == 409:
            self.refused[f"{service} {method} /{path.split('/')[1]}/…/{path.split('/')[-1]}"] += 1
        elif r.status_code == 202 and wait:
            raise TimeoutError(f"{service}{path}: its events did not arrive within {WAIT_S}s")
        elif r.status_code not in (200, 202):
            raise RuntimeError(f"{method} {service}{path} {body}: HTTP {r.status_code} {r.text[:300]}")
        return r.status_code, r.json()

    def post(self, service: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        return self.send("POST", service, path, body)

    def put(self, service: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        return self.send("PUT", service, path, body)


#: the longest pause between two checks of `Quiet.wait`
QUIET_POLL_MAX_S = 0.25


class Quiet:
    """Waits until every loop of the suite (processors and routers) has read its inputs to their
    end: nothing in flight. One admin client and one consumer kept open on their own event loop,
    which runs on a thread of its own (`LoopThread`): a loop that stood still while a day's orders
    were placed (≈ 50 s at the medium scale) let its fetch's 40 s request timer expire, and aiokafka
    logged `Failed fetch messages from 1: RequestTimedOutError` once a day."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        from flexchain.catalog import SERVICES
        from flexchain.ops import loops_of
        from flexchain.settings import Settings

        self.settings = Settings(kafka_bootstrap_servers=bootstrap, flexchain_topic_prefix=prefix)
        self.loops = [loop for s in SERVICES for loop in loops_of(s, self.settings)]
        self.loop = LoopThread("quiet").start()
        self.admin: Any = None
        self.consumer: Any = None
        self.clock: Any = None
        self.tps: dict[str, list[Any]] | None = None
        self.empty: dict[Any, set[tuple[int, int]]] = {}  # spans known to hold no record

    def close(self) -> None:
        async def stop() -> None:
            if self.consumer is not None:
                await self.consumer.stop()
            if self.admin is not None:
                await self.admin.close()

            if self.clock is not None:
                await self.clock.__aexit__()

        self.loop.run(stop())
        self.loop.close()

    def tick(self, at: int) -> None:
        """Business time moves to `at` (a `ClockTicked` on `clock.ticks`)."""
        from flexchain.clock import ClockPublisher

        async def go() -> None:
            if self.clock is None:
                self.clock = await ClockPublisher(self.settings).__aenter__()
            await self.clock.tick(at)

        self.loop.run(go())

    async def _lag(self) -> int:
        from aiokafka import TopicPartition

        from flexchain import kafka

        if self.admin is None:
            self.admin = kafka.admin(self.settings)
            await self.admin.start()
            self.consumer = kafka.consumer(self.settings, group_id=None)
            await self.consumer.start()
        committed = await asyncio.gather(*(self.admin.list_consumer_group_offsets(loop.group) for loop in self.loops))
        if self.tps is None or any(not ts for ts in self.tps.values()):
            await self.consumer._client.force_metadata_update()
            self.tps = {
                t: [TopicPartition(t, p) for p in sorted(self.consumer.partitions_for_topic(t) or ())]
                for t in {t for loop in self.loops for t in loop.topics}
                | {self.settings.name(f"{s}.events") for s in ("order", "inventory", "presale", "commission", "loyalty")}
            }
        tps = self.tps
        every = [tp for ts in tps.values() for tp in ts]
        ends = await self.consumer.end_offsets(every)
        spans: dict[Any, tuple[int, int]] = {}
        for loop, offsets in zip(self.loops, committed, strict=True):
            for t in loop.topics:
                for tp in tps[t]:
                    om = offsets.get(tp)
                    start = om.offset if om is not None and om.offset >= 0 else 0
                    if ends[tp] > start:  # the earliest reader of a partition decides
                        spans[tp] = (min(start, spans.get(tp, (start, 0))[0]), ends[tp])
        todo = {tp: span for tp, span in spans.items() if span not in self.empty.get(tp, ())}
        if any(end - start > 20 for start, end in todo.values()):
            return 1  # clearly busy
        return await self._records(todo)

    async def _records(self, spans: dict[Any, tuple[int, int]]) -> int:
        """Records in [start, end) of each partition (read_committed: a gap may hold only the
        markers of transactions, which are no records); an empty span is remembered."""
        if not spans:
            return 0
        c = self.consumer
        c.assign(list(spans))
        for tp, (start, _) in spans.items():
            c.seek(tp, start)
        found = 0
        todo = dict(spans)
        deadline = time.monotonic() + 30
        while todo and time.monotonic() < deadline:
            for tp, records in (await c.getmany(*todo, timeout_ms=20)).items():
                found += sum(1 for r in records if r.offset < spans[tp][1])
            if found:
                return found
            for tp in list(todo):
                if await c.position(tp) >= todo[tp][1]:
                    self.empty.setdefault(tp, set()).add(todo.pop(tp))
        return found + len(todo)

    def wait(self, timeout: float = 120.0) -> None:
        """Returns once nothing is in flight. Checked every 20 ms at first, backing off to
        `QUIET_POLL_MAX_S`: each check asks the broker for every loop's committed offsets and every
        partition's end, and at 50 checks a second those requests took broker CPU from the very
        transactions being waited for."""
        deadline = time.monotonic() + timeout
        pause = 0.02
        # committed offsets are read before the end offsets: a loop's transaction commits its input
        # offsets and its output together, so an output not yet read shows as lag of its reader
        while self.loop.run(self._lag()):
            if time.monotonic() > deadline:
                raise TimeoutError("the suite did not settle (a service stuck? see its log)")
            time.sleep(pause)
            pause = min(pause * 1.5, QUIET_POLL_MAX_S)


class AsyncApi:
    """The same HTTP calls as `Api`, for the concurrent phases of a day (one event loop)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.client = httpx.AsyncClient(
            headers=bearer(),
            timeout=WAIT_S + 30,
            # the services (uvicorn) drop a connection idle for 5 s: ours expire before, so a request
            # does not go out on a connection the server is closing
            limits=httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT, keepalive_expiry=2.0),
        )

    async def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        """One request, sent again if the connection broke (a command carries an Idempotency-Key
        derived from it, so a second copy changes nothing: `flexchain.api`)."""
        for attempt in range(RETRIES):
            try:
                return await self.client.request(method, url, **kw)
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ConnectError):
                if attempt == RETRIES - 1:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.client.aclose()

    async def get(self, service: str, path: str) -> Any:
        for _ in range(200):
            r = await self.request("GET", self.api.urls[service] + path)
            if r.status_code == 429:
                await asyncio.sleep(retry_after(r))
                continue
            r.raise_for_status()
            return r.json()
        raise TimeoutError(f"{service}{path}: refused (429) too often")

    async def send(
        self, method: str, service: str, path: str, body: dict[str, Any] | None = None, wait: float = WAIT_S
    ) -> tuple[int, Any]:
        digest = hashlib.sha256(json.dumps([method, path, body], sort_keys=True).encode()).hexdigest()[:32]
        key = {"Idempotency-Key": f"sim-{digest}"}
        for _ in range(THROTTLED_RETRIES):
            r = await self.request(method, self.api.urls[service] + path, json=body, params={"wait": wait}, headers=key)
            if r.status_code != 429:
                break
            await asyncio.sleep(retry_after(r))
        return self.api.checked(method, service, path, body, wait, r)

    async def post(self, service: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        return await self.send("POST", service, path, body)

    async def settled(self, oid: str) -> Any:
        """The order once the inventory answered (confirmed or rejected). Polled gently: the answer
        takes a few hops through the log (seconds under load), and tens of lanes polling every few
        milliseconds took the order service's CPU from the loops that would confirm them."""
        deadline = time.monotonic() + WAIT_S
        pause = 0.05
        while True:
            order = await self.get("order", f"/orders/{oid}")
            if order["status"] != "placed":
                return order
            if time.monotonic() > deadline:
                raise TimeoutError(f"order {oid} did not settle")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.4)


RETRIES = 4
#: commands in flight at once in a day's concurrent phases
IN_FLIGHT = int(os.environ.get("FLEXCHAIN_SIM_IN_FLIGHT", "24"))


@dataclass
class Counts:
    placed: int = 0
    paid: int = 0
    refunds: int = 0
    rejected: int = 0


@dataclass
class Plan:
    """What the simulator has still to do (its agenda: when to ship, deliver, refund, receive)."""

    ship: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    deliver: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    refund: dict[int, list[Refund]] = field(default_factory=lambda: defaultdict(list))
    receive: dict[int, list[tuple[str, str, int]]] = field(default_factory=lambda: defaultdict(list))
    ordered: set[str] = field(default_factory=set)  # skus with a replenishment on its way


@dataclass(frozen=True)
class Refund:
    order_id: str
    member: str
    sku: str
    qty: int
    reason: str


@dataclass
class Order:
    """One order of the day, every random choice about it drawn before the day's orders are sent
    (so the generator's stream does not depend on what the services answer)."""

    body: dict[str, Any]
    abandon: bool = False  # confirmed but never paid: the payment hold cancels it (R-ORD-2)
    refund: tuple[int, Refund] | None = None  # (day, refund) if it comes back
    confirmed: bool = False
    paid: bool = False

    @property
    def order_id(self) -> str:
        return str(self.body["order_id"])


def lanes(items: list[Any], keys: Callable[[Any], set[str]]) -> list[list[Any]]:
    """Items that share a key (transitively) in one lane, in their given order; lanes longest first.

    What two commands contend on is their keys: a lane keeps their relative order, so their outcomes
    do not depend on which reached the services first; commands of different lanes touch disjoint
    aggregates (or only in ways whose outcome does not depend on order) and may run at once."""
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    tagged = []
    for i, item in enumerate(items):
        ks = sorted(keys(item)) or [f"#{i}"]
        root = find(ks[0])
        for k in ks[1:]:
            parent[find(k)] = root
        tagged.append((ks[0], item))
    out: dict[str, list[Any]] = defaultdict(list)
    for k, item in tagged:
        out[find(k)].append(item)
    return sorted(out.values(), key=len, reverse=True)


async def run_lanes(lanes_: list[list[Any]], step: Callable[[Any], Any]) -> None:
    """Each lane in order, up to IN_FLIGHT lanes at once (the longest are started first)."""
    todo = iter(lanes_)

    async def worker() -> None:
        for lane in todo:
            for item in lane:
                await step(item)

    await asyncio.gather(*(worker() for _ in range(min(IN_FLIGHT, len(lanes_)))))


class Simulator:
    def __init__(
        self,
        api: Api,
        bootstrap: str,
        prefix: str,
        merchant: Merchant,
        scale: Scale,
        seed: int,
        days: int,
        on_day: Callable[[int, Counts, int], None] | None = None,
    ) -> None:
        self.api, self.bootstrap, self.prefix = api, bootstrap, prefix
        self.m, self.scale, self.days = merchant, scale, days
        self.rng = random.Random(seed * 7919 + 1)  # the merchant used Random(seed); the days use their own
        self.quiet = Quiet(bootstrap, prefix)
        self.counts = Counts()
        self.plan = Plan()
        self.on_day = on_day or (lambda d, c, e: None)
        self.distributors = list(merchant.founders)
        self.seq = 0
        self.runner = asyncio.Runner()
        self.aapi: AsyncApi | None = None
        self.products = {p.sku: p for p in merchant.products}
        # a main sku's gifts: the skus an order of it may reserve besides (R-ORD-3, R-ORD-5)
        self.gifts_of: dict[str, set[str]] = defaultdict(set)
        for r in merchant.gift_rules:
            self.gifts_of[r.main] |= {r.gift} | ({r.fallback} if r.fallback else set())
        self.lane_stats: list[tuple[int, int, int]] = []  # per day: orders, lanes, longest lane

    def concurrently(self, lanes_: list[list[Any]], step: Callable[[AsyncApi, Any], Any]) -> None:
        async def go() -> None:
            if self.aapi is None:
                self.aapi = AsyncApi(self.api)
            aapi = self.aapi
            await run_lanes(lanes_, lambda item: step(aapi, item))

        self.runner.run(go())

    def close(self) -> None:
        if self.aapi is not None:
            self.runner.run(self.aapi.close())
        self.runner.close()
        self.quiet.close()

    def home(self, i: int) -> str:
        """The warehouse product i is stocked in (and replenished to): the first one when the scale
        splits stock over the warehouses, else its own, round robin."""
        w = self.scale.warehouses
        return w[0] if self.scale.split_stock else w[i % len(w)]

    # --- setup ------------------------------------------------------------------------------------
    def setup(self) -> None:
        m, api = self.m, self.api
        for i, p in enumerate(m.products):
            api.post("inventory", "/skus", {"sku": p.sku, "name": p.name, "low_stock_floor": p.floor})
            api.put("inventory", f"/skus/{p.sku}/stock-policy", {"lead_time_days": p.lead_time_days, "cover_factor": "1.5"})
            if self.scale.split_stock:
                share = self.scale.stock_per_sku // len(self.scale.warehouses)
                receipts = [
                    (w, max(int(share * p.popularity * (1.3 if j == 0 else 0.8)), 20))
                    for j, w in enumerate(self.scale.warehouses)
                ]
            else:
                receipts = [(self.home(i), max(int(self.scale.stock_per_sku * p.popularity), 20))]
            for w, qty in receipts:
                api.post("inventory", f"/skus/{p.sku}/receipts", {"warehouse": w, "qty": qty, "reference": f"PO-{p.sku}-0-{w}"})
        for g in m.gifts:
            api.post("inventory", "/skus", {"sku": g.sku, "name": g.name, "is_gift": True, "low_stock_floor": 0})
            api.post(
                "inventory",
                f"/skus/{g.sku}/receipts",
                {"warehouse": self.scale.warehouses[0], "qty": self.scale.stock_per_sku, "reference": f"PO-{g.sku}-0"},
            )
        for r in m.gift_rules:
            body: dict[str, Any] = {
                "rule_id": r.rule_id,
                "tier": "base",
                "main_sku": r.main,
                "main_unit_cost": r.main_cost,
                "gift_sku": r.gift,
                "gift_unit_cost": r.gift_cost,
            }
            if r.fallback:
                body |= {"fallback_sku": r.fallback, "fallback_unit_cost": r.fallback_cost}
            api.post("order", "/gift-rules", body)
        for d in m.founders:
            api.post("commission", "/distributors", {"distributor_id": d})
        self.wait_replicated()

    def wait_replicated(self) -> None:
        deadline = time.monotonic() + 60
        for r in self.m.gift_rules:
            while not self.api.get("order", f"/gift-rules/{r.rule_id}").get("replicated"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gift rule {r.rule_id} not on every partition")
                time.sleep(0.05)

    # --- the days ---------------------------------------------------------------------------------
    def advance(self, day: int) -> None:
        """Business time moves to `day`: the tick, once everything before it was read; then wait
        until every service stamps the new time and the tick's timers have run."""
        self.quiet.wait()
        at = day_time(day)
        self.quiet.tick(at)
        deadline = time.monotonic() + 60
        for service in self.api.urls:
            while int(self.api.get(service, "/clock")["business_time"]) < at:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service} did not see the tick of day {day}")
                time.sleep(0.02)
        # only now: a command is stamped with the last tick its service has read (a shipment sent
        # before the order service read the tick was dated the day before: the velocity, and so a
        # replenishment quantity, then depended on the machine)
        self.fulfil(day)
        self.quiet.wait()

    def run(self) -> Counts:
        try:
            self.advance(0)
            self.setup()
            for day in range(self.days):
                if day:
                    self.advance(day)
                self.one_day(day)
                self.quiet.wait()  # (the next tick waits for it anyway) so the day's events are counted
                self.on_day(day, self.counts, self.api.events_written())
            self.advance(self.days)  # the last day's timers (holds, windows, payouts)
            return self.counts
        finally:
            self.close()

    def one_day(self, day: int) -> None:
        """The day's merchant work first, one command at a time (stock, streams, campaigns, the
        network); then the day's orders, and then its refunds, each in concurrent lanes."""
        self.receive_stock(day)
        self.live_streams(day)
        orders = self.presale(day)
        self.recruit(day)
        orders += self.member_orders(day)
        self.place_all(day, orders)
        refunds = self.plan.refund.pop(day, [])
        if refunds:  # a return restocks its sku and its gifts (an alert may clear), takes back points
            self.concurrently(lanes(refunds, self.refund_keys), self._refund)
        if day % 7 == 6:
            self.quiet.wait()  # the points of today's orders and refunds are in the loyalty's view
            self.redeem(day)
            self.review_gifts()

    def refund_keys(self, r: Refund) -> set[str]:
        return {f"sku:{s}" for s in {r.sku} | self.gifts_of[r.sku]} | {f"member:{r.member}"}

    async def _refund(self, aapi: AsyncApi, r: Refund) -> None:
        line = {"sku": r.sku, "qty": r.qty, "reason": r.reason}
        status, _ = await aapi.post("order", f"/orders/{r.order_id}/refunds", {"lines": [line]})
        self.counts.refunds += status == 200

    def fulfil(self, day: int) -> None:
        """The warehouse ships yesterday's paid orders, the carrier delivers: published without
        waiting for their events (their outcomes do not depend on their order: a shipment commits
        its own order's reservations; the quiet wait that follows the tick covers them)."""
        ship = self.plan.ship.pop(day, [])
        for oid in ship:
            self.plan.deliver[day + self.rng.choice((1, 2, 2, 3))].append(oid)
        deliver = self.plan.deliver.pop(day, [])
        sends = [("shipment", oid, {"tracking": f"SF-{oid}"}) for oid in ship] + [("delivery", oid, None) for oid in deliver]

        async def send(aapi: AsyncApi, s: tuple[str, str, dict[str, Any] | None]) -> None:
            await aapi.send("POST", "order", f"/orders/{s[1]}/{s[0]}", s[2], wait=0)

        self.concurrently([[s] for s in sends], send)

    def receive_stock(self, day: int) -> None:
        for sku, w, qty in self.plan.receive.pop(day, []):
            self.api.post("inventory", f"/skus/{sku}/receipts", {"warehouse": w, "qty": qty, "reference": f"PO-{sku}-{day}"})
            self.plan.ordered.discard(sku)
        # the merchant follows the replenishment suggestion of each low-stock alert (R-INV-5)
        for s in self.api.get("inventory", "/suggestions"):
            sku, qty = s["sku"], int((s.get("replenishment") or {}).get("qty") or 0)
            i = next((i for i, p in enumerate(self.m.products) if p.sku == sku), None)
            if qty > 0 and i is not None and sku not in self.plan.ordered:
                self.plan.ordered.add(sku)
                self.plan.receive[day + self.m.products[i].lead_time_days].append((sku, self.home(i), qty))

    def live_streams(self, day: int) -> None:
        for stream_day, (sku, expected) in self.m.live_streams.items():
            if day == stream_day - 2:  # announced two days ahead: the threshold rises (R-INV-3)
                self.api.post(
                    "inventory", f"/skus/{sku}/live-streams", {"stream_id": f"live-{stream_day}", "expected_sales": expected}
                )
            if day == stream_day + 1:
                self.api.send("DELETE", "inventory", f"/skus/{sku}/live-streams/live-{stream_day}")

    def recruit(self, day: int) -> None:
        """The network grows through recruitment: anyone may recruit (R-COM-1)."""
        for _ in range(self.rng.choices((0, 1, 2), (0.5, 0.35, 0.15))[0]):
            new = f"d{len(self.distributors):04d}-{self.m.run}"
            upline = self.rng.choice(self.distributors)
            self.api.post("commission", "/distributors", {"distributor_id": new, "upline_id": upline})
            self.distributors.append(new)

    def _order_id(self) -> str:
        self.seq += 1
        return f"o{self.seq:06d}-{self.m.run}"

    def member_orders(self, day: int) -> list[Order]:
        rng, m = self.rng, self.m
        stream = m.live_streams.get(day)
        expected = self.scale.orders_per_day + (
            stream[1] / self.scale.stream_orders_per if stream else 0
        )  # a stream sells a share of its hopes in orders
        buyers = []
        for mem in m.members:
            if mem.drift_day is not None and day >= mem.drift_day:
                continue  # drifted away (R-LOY-3 will see them decline, then churn)
            buyers.append(mem)
        weights = [1 / mem.interval_days for mem in buyers]
        n = min(len(buyers), int(expected) + (rng.random() < expected - int(expected)))
        chosen: list[Any] = []
        while len(chosen) < n and buyers:
            mem = rng.choices(buyers, weights)[0]
            i = buyers.index(mem)
            buyers.pop(i)
            weights.pop(i)
            chosen.append(mem)
        out = []
        for mem in chosen:
            if stream and rng.random() < 0.6:
                channel, sku = "live", stream[0]
            else:
                channel = rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
                sku = mem.favourite if rng.random() < 0.7 else rng.choice(m.products).sku
            out.append(self.order(day, mem.member_id, sku, channel))
        return out

    def order(self, day: int, member: str, sku: str, channel: str) -> Order:
        rng = self.rng
        p = self.products[sku]
        qty = rng.choices((1, 2, 3, 5), (0.6, 0.25, 0.1, 0.05))[0]
        oid = self._order_id()
        distributor = rng.choice(self.distributors) if rng.random() < 0.45 else None
        body = {
            "order_id": oid,
            "member_id": member,
            "channel": channel,
            "distributor_id": distributor,
            "lines": [{"sku": sku, "qty": qty, "unit_price": p.price}],
        }
        o = Order(body, abandon=rng.random() < 0.06)
        r = rng.random()
        if r < 0.05:  # no-reason return inside the window (R-ORD-2)
            o.refund = (day + rng.randint(4, 7), Refund(oid, member, sku, rng.randint(1, qty), "no_reason"))
        elif r < 0.075:  # a defect, at any time
            o.refund = (day + rng.randint(5, 30), Refund(oid, member, sku, qty, rng.choice(("defect", "damaged"))))
        return o

    # --- the day's orders, in lanes ------------------------------------------------------------------
    def contended(self, orders: list[Order]) -> set[str]:
        """The skus whose outcome could depend on the order of today's orders, from the inventory's
        own view before the orders: held in more than one warehouse (fullest first: which warehouse
        an order takes from depends on the orders before it), or whose day's demand (an upper bound:
        every unit asked for, every gift and fallback in full) could cross its low-stock threshold
        (the alert carries the available units at the crossing, its suggestion a quantity from them)
        or exhaust it (which order is rejected, or gets the fallback gift)."""
        demand: Counter[str] = Counter()
        for o in orders:
            line = o.body["lines"][0]
            demand[line["sku"]] += line["qty"]
            for g in self.gifts_of[line["sku"]]:
                demand[g] += line["qty"]  # one gift an order here (gift_qty 1): a generous bound
        out = set()
        for row in self.api.get("inventory", "/skus"):
            sku = row["sku"]
            if sku not in demand:
                continue
            available, threshold, need = int(row["available"]), int(row["threshold"]), demand[sku]
            stocked = sum(1 for w in row["warehouses"].values() if int(w["available"]) > 0)
            if stocked > 1 or available - need < 0:
                out.add(sku)
            elif row["is_gift"] and (row["low_stock_alert"] or available - need <= threshold):
                out.add(sku)  # a gift's hold may go back within the day: its alert could also clear
            elif not row["low_stock_alert"] and available - need < threshold:
                out.add(sku)
        return out

    def place_all(self, day: int, orders: list[Order]) -> None:
        if not orders:
            self.lane_stats.append((0, 0, 0))
            return
        self.quiet.wait()  # the inventory's view holds every receipt and stream of the day
        hot = self.contended(orders)

        def keys(o: Order) -> set[str]:
            b = o.body
            sku = b["lines"][0]["sku"]
            ks = {f"member:{b['member_id']}"} | {f"sku:{s}" for s in {sku} | self.gifts_of.get(sku, set()) if s in hot}
            if b.get("campaign_id"):
                ks.add(f"campaign:{b['campaign_id']}")  # pledges against the 80 % cap (R-PRE-4)
            return ks

        lanes_ = lanes(orders, keys)
        self.lane_stats.append((len(orders), len(lanes_), len(lanes_[0])))
        self.concurrently(lanes_, self._place)
        for o in orders:  # the outcomes, in the generator's order
            self.counts.placed += 1
            self.counts.rejected += not o.confirmed
            self.counts.paid += o.paid
            if o.paid and not o.body.get("campaign_id"):
                self.plan.ship[day + 1].append(o.order_id)
                if o.refund is not None:
                    self.plan.refund[o.refund[0]].append(o.refund[1])

    async def _place(self, aapi: AsyncApi, o: Order) -> None:
        oid = o.order_id
        await aapi.post("order", "/orders", o.body)
        order = await aapi.settled(oid)
        o.confirmed = order["status"] == "confirmed"
        if not o.confirmed or o.abandon:
            return
        await aapi.post("order", f"/orders/{oid}/payment", {"amount": order["total"], "payment_ref": f"pay-{oid}"})
        o.paid = True

    def presale(self, day: int) -> list[Order]:
        rng = self.rng
        orders: list[Order] = []
        for c in self.m.campaigns:
            start, end = c.start_day, c.start_day + c.days
            if day == start - 3:
                self.api.post(
                    "presale",
                    "/campaigns",
                    {
                        "campaign_id": c.campaign_id,
                        "product": c.product,
                        "unit_cost": c.unit_cost,
                        "fan_base": c.fan_base,
                        "moq": c.moq,
                        "max_capacity": c.capacity,
                    },
                )
                self.api.post(
                    "presale",
                    f"/campaigns/{c.campaign_id}/schedule",
                    {
                        "starts_at": day_time(start) - OPEN_HOUR,
                        "ends_at": day_time(end) - OPEN_HOUR,
                        "delivery_at": day_time(end + 30),
                    },
                )
            if start - 3 <= day < start:  # intent deposits (R-PRE-2)
                for mem in rng.sample(self.m.members, min(len(self.m.members), int(c.fan_base * 0.002) + 1)):
                    self.api.post(
                        "presale",
                        f"/campaigns/{c.campaign_id}/deposits",
                        {
                            "deposit_id": f"dep-{mem.member_id}-{c.campaign_id}",
                            "member_id": mem.member_id,
                            "amount": rng.choice((2000, 2500, 3000)),
                        },
                    )
            if day == start - 1:
                self.api.post("presale", f"/campaigns/{c.campaign_id}/launch", {"force": True})
            if start <= day < end:
                for _ in range(int(c.demand * (2 if day - start < 3 else 1)) + (rng.random() < c.demand % 1)):
                    mem = rng.choice(self.m.members)
                    body = {
                        "order_id": self._order_id(),
                        "member_id": mem.member_id,
                        "channel": rng.choice(("live", "short_video")),
                        "campaign_id": c.campaign_id,
                        "lines": [{"sku": c.product, "qty": rng.choice((1, 1, 2, 3)), "unit_price": 0}],
                    }
                    orders.append(Order(body))
            if c.succeeds:
                self.milestones(day, c.campaign_id, end)
        return orders

    MILESTONES = (("materials_bought", 3, 0), ("sample_approved", 10, 9), ("production_finished", 24, 0), ("shipped", 30, 0))

    def milestones(self, day: int, cid: str, end: int) -> None:
        """The supplier's plan the day after the close, then each milestone reached with its evidence
        (R-PRE-6); the sample comes 9 days late (R-PRE-9: red after 7, a buyer notice after 5)."""
        for name, offset, late in self.MILESTONES:
            if day == end + 1:
                self.api.put("presale", f"/campaigns/{cid}/milestones/{name}/plan", {"due_at": day_time(end + offset)})
            if day == end + offset + late:
                self.api.post("presale", f"/campaigns/{cid}/milestones/{name}", {"evidence": f"{name}-{cid}"})

    def review_gifts(self) -> None:
        """The merchant looks at the gift rules' figures once a week (R-ORD-6). Unchanged figures
        write no event: not waited for (the quiet wait before the next tick covers it)."""
        for r in self.m.gift_rules:
            self.api.send("POST", "order", f"/gift-rules/{r.rule_id}/review", wait=0)

    def redeem(self, day: int) -> None:
        """Some members spend points on a coupon (R-LOY-2)."""
        for mem in self.rng.sample(self.m.members, min(6, len(self.m.members))):
            try:
                points = self.api.get("loyalty", f"/members/{mem.member_id}")["points"]["available"]
            except httpx.HTTPStatusError:
                continue  # not a member yet
            if points >= 100:
                self.api.post(
                    "loyalty",
                    f"/members/{mem.member_id}/redemptions",
                    {
                        "redemption_id": f"rd-{day}-{mem.member_id}",
                        "points": (points // 2) // 10 * 10,
                        "reward": "coupon",
                    },
                )


def medium_enabled() -> bool:
    return os.environ.get("FLEXCHAIN_SIM_MEDIUM") == "1"


class Suite:
    """The five services as processes on free ports, isolated by a topic prefix and a data dir."""

    def __init__(self, bootstrap: str, prefix: str, root: Path) -> None:
        from flexchain.catalog import SERVICES
        from flexchain.procs import ServiceProcess, free_port

        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "FLEXCHAIN_TOPIC_PREFIX": prefix,
            "FLEXCHAIN_DATA_DIR": str(root / "data"),
            "FLEXCHAIN_CLOCK": "log",
            "FLEXCHAIN_LOG_LEVEL": "WARNING",
            # the simulator is one HTTP client standing for every shopper, the merchant, the
            # warehouse and the carrier: a per-client command budget would only slow the quarter
            # down (the medium scale sends ≈ 50 commands/s; the default allows 3,000 a minute)
            "FLEXCHAIN_RATE_LIMIT": "0",
            # the gift review runs on the wall clock by itself: here it is asked for once a business
            # week instead (`Simulator.review_gifts`), so when it happens does not depend on the machine
            "FLEXCHAIN_ORDER_GIFT_REVIEW_SECONDS": "100000000",
        }
        self.procs = [ServiceProcess(name, env, root / "logs", free_port()) for name in SERVICES]
        self.urls = {p.service: p.url for p in self.procs}

    def __enter__(self) -> Suite:
        for p in self.procs:
            p.start()
        try:
            for p in self.procs:
                p.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


def simulate_and_report(
    bootstrap: str,
    prefix: str,
    root: Path,
    seed: int,
    days: int,
    scale: Scale,
    out: Path,
    on_day: Callable[[int, Counts, int], None] | None = None,
) -> dict[str, Any]:
    """Start the suite on `prefix`, play the merchant of `seed`, write the report to `out`; the
    report's numbers are returned."""
    from flexchain.tools import report
    from flexchain.tools.merchant import generate

    merchant = generate(seed, days, scale)
    with Suite(bootstrap, prefix, root) as suite:
        api = Api(suite.urls)
        try:
            Simulator(api, bootstrap, prefix, merchant, scale, seed, days, on_day).run()
            numbers = report.gather(
                api,
                bootstrap,
                prefix,
                days,
                [p.sku for p in merchant.products],
                [c.campaign_id for c in merchant.campaigns],
                [r.rule_id for r in merchant.gift_rules],
            )
            numbers["refused_commands"] = dict(sorted(api.refused.items()))
        finally:
            api.close()
    report.write(out, numbers, f"A merchant's {days} days — seed {seed}, scale {scale.name}")
    return numbers


def run_cli(out: Path, seed: int, days: int, scale_name: str, port: int, root: Path, jars: Path) -> int:
    """`flexchain simulate`: a broker (ours, fresh, unless KAFKA_BOOTSTRAP_SERVERS names one), the five
    services on a fresh topic prefix, the merchant's days, the report. The broker and the services run
    in sessions of their own: however the run is stopped (Ctrl-C, SIGTERM, SIGHUP), the `finally`
    clauses stop them, as the demo's do."""
    import uuid

    from flexchain.output import emit, progress
    from flexchain.procs import stopped_like_ctrl_c
    from flexchain.tools import broker as kbroker
    from flexchain.tools.demo import fresh_local_run
    from flexchain.tools.merchant import SCALES

    scale = SCALES[scale_name]
    if scale.name == "medium" and not medium_enabled():
        print("--scale medium plays ≥ 50,000 orders (hours on a small machine): set FLEXCHAIN_SIM_MEDIUM=1 to run it")
        return 2
    cfg, external, _ = fresh_local_run(root, port)
    bootstrap = external or cfg.bootstrap
    started = time.monotonic()
    with stopped_like_ctrl_c():
        try:
            if not external:
                print(f"Starting Apache Kafka {kbroker.KAFKA_VERSION} (KRaft, one broker) on {bootstrap} ...", flush=True)
                kbroker.up(cfg, jars)
            print("Starting the five services ...", flush=True)
            with progress("simulating", total=days) as advance:

                def on_day(day: int, counts: Counts, events: int) -> None:
                    rate = events / max(time.monotonic() - started, 0.001)
                    line = f"day {day + 1}/{days} · {counts.placed} orders · {rate:,.0f} events/s"
                    advance(day + 1, description=line)
                    if not sys.stderr.isatty():  # no bar to look at: a line a day (a log of the run)
                        print(f"{time.monotonic() - started:7.0f}s {line} · {events:,} events", flush=True)

                numbers = simulate_and_report(
                    bootstrap, f"sim{seed}-{uuid.uuid4().hex[:6]}-", root / "run", seed, days, scale, out, on_day
                )
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP (`Stopped`)
            print(f"\n{exc or 'SIGINT'}: stopped before the report (its services are stopped, then its broker)", flush=True)
            return 1
        finally:
            if not external:
                kbroker.stop(cfg)
    emit(numbers["reconciliation"], as_json=False, title="Reconciliation")
    o = numbers["orders"]
    print(
        f"{o['placed']} orders ({o['paid_orders']} paid), GMV {o['gmv'] / 100:,.2f} CNY, "
        f"{sum(numbers['events'].values()):,} events in {time.monotonic() - started:.0f}s"
    )
    print(f"Report: {out / 'index.html'} (numbers: {out / 'numbers.json'})")
    return 0 if all(r["holds"] for r in numbers["reconciliation"]) else 1
