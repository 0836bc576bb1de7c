"""The refund cascade (R-X-3) end to end: all five services on the real broker, on business time.

A seeded scenario (`cascade_scenario`) drives orders through the HTTP APIs — early-bird and regular
campaign orders, a three-level distributor chain, members whose tier discount prices their next
orders — and refunds some partly and some wholly (before shipping, inside the no-reason window,
defects after the window, after the commission was paid out), with a kill -9 of a randomly chosen
service in the middle of the refunds and a restart under the same instance id. After every tick and
at the end of every phase each service must show exactly what the independent calculation
(`cascade_oracle`) says — stock per sku and warehouse, escrow buckets and pledges, commission per
beneficiary and level, points and tiers — to the cent and the unit. At the end the logs are checked
too: on the inventory log, at every prefix, on hand = received − shipped + returned(A) and available
≥ 0 per sku and warehouse; each refund's effect appears exactly once in each service; money is
conserved in escrow at every prefix (R-PRE-10); nothing went to a dead-letter topic.

    CASCADE_SEED=7 CASCADE_RUNS=5 .venv/bin/pytest -q tests/e2e/test_refund_cascade.py -x -s
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from flexchain.auth import bearer
from flexchain.clock import ClockPublisher
from flexchain.messages import Enveloped
from flexchain.procs import ServiceProcess
from flexchain.settings import Settings
from tests.e2e.cascade_oracle import (
    Action,
    Cancel,
    Deliver,
    GiftRule,
    Kill,
    Milestone,
    Oracle,
    Pay,
    Place,
    Receive,
    Redeem,
    Refund,
    Ship,
    Tick,
)
from tests.e2e.cascade_scenario import GIFT_RULES as BASE_GIFT_RULES
from tests.e2e.cascade_scenario import SERVICES, Scenario, generate
from tests.faults.history import check_history, log_of
from tests.support import CODEC, Suite, read_all, run

pytestmark = pytest.mark.broker

SEED = int(os.environ.get("CASCADE_SEED", "20261101"))
RUNS = int(os.environ.get("CASCADE_RUNS", "1"))
ORDERS = int(os.environ.get("CASCADE_ORDERS", "40"))
GIFT_RULES: tuple[GiftRule, ...] = BASE_GIFT_RULES if os.environ.get("CASCADE_GIFTS", "1") != "0" else ()
KILL = os.environ.get("CASCADE_KILL")  # force the service to kill -9 (default: chosen by the seed)
SETTLE_S = float(os.environ.get("CASCADE_SETTLE_S", "60"))


@pytest.mark.parametrize("seed", [SEED + i for i in range(RUNS)], ids=lambda s: f"seed{s}")
def test_one_refund_cascades_through_every_service(kafka_bootstrap: str, prefix: str, data_dir: Path, seed: int) -> None:
    run_cascade(kafka_bootstrap, prefix, data_dir, seed)


def run_cascade(kafka_bootstrap: str, prefix: str, data_dir: Path, seed: int, soak_kills: int = 0, every: float = 4.0) -> int:
    """Play the seeded cascade and check it; with `soak_kills`, also kill -9 that many services (all
    five in turn) every `every` seconds while it plays. Returns the kills made."""
    scenario = generate(seed, ORDERS, GIFT_RULES)
    if KILL:
        scenario.kill_service = KILL
    print(f"\n[cascade] {scenario.summary()}  (rerun: CASCADE_SEED={seed})")
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_ORDER_MEMBER_DISCOUNTS="true", FLEXCHAIN_SNAPSHOT_EVERY="25")
    cascade = Cascade(suite, scenario)
    started = time.monotonic()
    try:
        cascade.start()
        if soak_kills:
            cascade.soak(soak_kills, every)
        for phase in scenario.phases:
            t = time.monotonic()
            cascade.play(phase.name, phase.steps)
            print(f"[cascade] phase {phase.name}: {time.monotonic() - t:.1f}s")
        cascade.end_soak()
        cascade.check_the_end()
        print(f"[cascade] seed {seed}: passed in {time.monotonic() - started:.1f}s ({cascade.kills} kills)")
        return cascade.kills
    finally:
        cascade.end_soak()
        cascade.close()
        suite.stop_all()


# --- driving the suite ------------------------------------------------------------------------------


class Cascade:
    def __init__(self, suite: Suite, scenario: Scenario) -> None:
        self.suite = suite
        self.sc = scenario
        self.oracle = Oracle(scenario.setup)  # played along, step by step, for the checkpoints
        self.procs: dict[str, ServiceProcess] = {}
        self.restarting = threading.RLock()  # held while a service is killed and back: HTTP waits
        self.http = _Guarded(self.restarting, timeout=15, headers=bearer())
        self.kills = 0
        self._soak: threading.Thread | None = None
        self._soak_stop = threading.Event()
        self.ticks = 0
        self.times: dict[tuple[str, str], int] = {}  # (order, event) → the business time it must carry
        self.paid_members: set[str] = set()
        self.fresh: set[str] = set()  # first payments commission may not have recorded yet (R-COM-4)
        self.wave: list[tuple[Place, str]] = []
        self.history: list[tuple[int, dict[str, Any]]] = []  # (business time, what every service showed then)

    def fail(self, what: str) -> AssertionError:
        return AssertionError(f"[seed {self.sc.seed}, kill -9 {self.sc.kill_service}] {what}")

    # -- processes ---------------------------------------------------------------------------------

    def start(self) -> None:
        for svc in SERVICES:
            self.procs[svc] = self.suite.start(svc, wait=False)
        for p in self.procs.values():
            p.wait_ready()

    def close(self) -> None:
        self.http.close()

    def url(self, svc: str) -> str:
        return str(self.procs[svc].url)

    def kill(self) -> None:
        svc = self.sc.kill_service
        print(f"[cascade] kill -9 {svc} in the middle of the refunds (seed {self.sc.seed})")
        time.sleep(random.Random(self.sc.seed).uniform(0, 0.3))  # while the last refunds cascade
        self.restart(svc, wait=svc == "order")  # the refunds go through the order API

    def restart(self, svc: str, wait: bool = True) -> None:
        """kill -9 and start again on the same port (clients keep their URL), same instance id."""
        with self.restarting:
            port = self.procs[svc].port
            self.procs[svc].kill9()
            self.procs[svc] = self.suite.start(svc, wait=False, port=port)
            self.kills += 1
            if wait:
                self.procs[svc].wait_ready()

    def soak(self, kills: int, every: float) -> None:
        """A kill -9 soak: `kills` services (all five in turn, order seeded) killed while the scenario
        plays, one every `every` seconds, each started again at once."""
        rng = random.Random(self.sc.seed)
        victims = [SERVICES[i % len(SERVICES)] for i in range(kills)]
        rng.shuffle(victims)

        def killer() -> None:
            for svc in victims:
                if self._soak_stop.wait(rng.uniform(0.5, 1.5) * every):
                    return
                print(f"[cascade] soak: kill -9 {svc} ({self.kills + 1}/{kills})")
                self.restart(svc)

        self._soak = threading.Thread(target=killer, daemon=True)
        self._soak.start()

    def end_soak(self) -> None:
        if self._soak is not None:
            self._soak_stop.set()
            self._soak.join(timeout=120)
            self._soak = None

    # -- HTTP --------------------------------------------------------------------------------------

    def get(self, svc: str, path: str) -> Any:
        r = self.http.get(self.url(svc) + path)
        r.raise_for_status()
        return r.json()

    def send(self, svc: str, method: str, path: str, body: dict[str, Any] | None, ok: bool = True) -> httpx.Response:
        r = self.http.request(method, self.url(svc) + path, json=body)
        if ok and r.status_code not in (200, 202):
            raise self.fail(f"{method} {path} {body}: HTTP {r.status_code} {r.text[:500]}")
        if not ok and r.status_code != 409:
            raise self.fail(f"{method} {path} {body}: expected a 409 refusal, got HTTP {r.status_code} {r.text[:500]}")
        return r

    # -- the scenario ------------------------------------------------------------------------------

    def play(self, name: str, steps: list[tuple[Action, str]]) -> None:
        for action, outcome in steps:
            if self.wave and (not isinstance(action, Place) or self._conflicts(action)):
                self.flush_wave()
            if isinstance(action, Place):
                self.wave.append((action, outcome))
                continue
            self.step(action, outcome, name)
        self.flush_wave()
        self.settle(f"end of phase {name}")

    def step(self, action: Action, outcome: str, phase: str) -> None:
        if isinstance(action, Tick):
            if self.ticks:  # every event of the last tick's business time is in: R-X-4 will be asked for this
                self.history.append((self.oracle.now, self.settle(f"before the tick of phase {phase}")))
            self.tick(action.at)
            self.apply(action, outcome)
            if self.ticks == 1:
                self.register()
            self.settle(f"after the tick of phase {phase}")
            return
        if isinstance(action, Kill):
            self.kill()
            return
        if isinstance(action, Pay):
            self.pay(action, outcome)
            return
        if isinstance(action, Receive):
            self.send("inventory", "POST", f"/skus/{action.sku}/receipts", {"warehouse": action.warehouse, "qty": action.qty})
        elif isinstance(action, Ship):
            self.send("order", "POST", f"/orders/{action.order_id}/shipment", {"tracking": f"SF-{action.order_id}"})
        elif isinstance(action, Deliver):
            self.send("order", "POST", f"/orders/{action.order_id}/delivery", None)
            self.times[(action.order_id, "OrderDelivered")] = self.oracle.now
        elif isinstance(action, Refund):
            lines = [{"sku": s, "qty": q, "reason": why} for s, q, why in action.lines]
            body = {"refund_id": action.refund_id, "lines": lines}
            self.send("order", "POST", f"/orders/{action.order_id}/refunds", body, ok=outcome == "ok")
        elif isinstance(action, Cancel):
            self.send("order", "POST", f"/orders/{action.order_id}/cancellation", {"reason": action.reason}, ok=outcome == "ok")
        elif isinstance(action, Redeem):
            redeem = {"points": action.points, "reward": "coupon", "redemption_id": action.redemption_id}
            self.send("loyalty", "POST", f"/members/{action.member_id}/redemptions", redeem)
        elif isinstance(action, Milestone):
            path = f"/campaigns/{action.campaign_id}/milestones/{action.milestone}"
            self.send("presale", "POST", path, {"evidence": f"supplier document for {action.milestone}"})
        self.apply(action, outcome)
        if isinstance(action, Refund | Cancel) and outcome == "ok" and self.oracle.orders[action.order_id].campaign:
            self.settle_pledge(action.order_id)  # escrow refunds one at a time: a capped bucket makes their order matter

    def apply(self, action: Action, outcome: str) -> None:
        got = self.oracle.apply(action)
        assert got == outcome, f"the oracle is not deterministic: {action} → {got}, generated {outcome}"

    def tick(self, at: int) -> None:
        async def go() -> None:
            settings = Settings(kafka_bootstrap_servers=self.suite.bootstrap, flexchain_topic_prefix=self.suite.prefix)
            async with ClockPublisher(settings) as clock:
                await clock.tick(at)

        run(go())
        self.ticks += 1
        # every API stamps its commands with the last tick it read (FLEXCHAIN_CLOCK=log), which its
        # `/clock` tells: wait until each has read this one (a service restarting after its kill -9
        # reads the ticks again before it answers)
        for svc in SERVICES:
            self.poll(
                lambda svc=svc: self.get(svc, "/clock")["business_time"] >= at, f"the {svc} service reads tick {at}", SETTLE_S
            )

    def register(self) -> None:
        """The merchant's setup at T0: skus, the distributor chain, the campaign."""
        setup = self.sc.setup
        for sku in setup.skus:
            self.send("inventory", "POST", "/skus", {"sku": sku, "name": sku.title(), "low_stock_floor": 10})
        for sku in setup.gift_skus:
            self.send("inventory", "POST", "/skus", {"sku": sku, "name": sku.title(), "is_gift": True, "low_stock_floor": 10})
        self.send("commission", "PUT", "/plan/levels", {"levels": setup.levels, "max_chain_depth": 3})
        for d in setup.distributors:
            self.send(
                "commission",
                "POST",
                "/distributors",
                {"distributor_id": d.distributor_id, "upline_id": d.upline_id, "grade": d.grade},
            )
        c = setup.campaign
        body = {
            "campaign_id": c.campaign_id,
            "product": c.sku,
            "unit_cost": c.unit_cost,
            "fan_base": c.fan_base,
            "moq": c.moq,
            "max_capacity": c.max_capacity,
        }
        self.send("presale", "POST", "/campaigns", body)
        for did, member, cents in c.deposits:
            self.send(
                "presale",
                "POST",
                f"/campaigns/{c.campaign_id}/deposits",
                {"deposit_id": did, "member_id": member, "amount": cents},
            )
        self.send("presale", "POST", f"/campaigns/{c.campaign_id}/schedule", {"starts_at": c.starts_at, "ends_at": c.ends_at})
        self.send("presale", "POST", f"/campaigns/{c.campaign_id}/launch", {"force": True})
        self.define_gift_rules()
        self.poll(self._network_replicated, "the distributor chain and the plan replicated to every commission partition", 30)

    def define_gift_rules(self) -> None:
        """R-ORD-3: the base gift rules, known to every order partition before the first order."""
        for r in self.sc.setup.gift_rules:
            body = {
                "rule_id": r.rule_id,
                "tier": "base",
                "main_sku": r.main_sku,
                "main_unit_cost": r.main_unit_cost,
                "gift_sku": r.gift_sku,
                "gift_unit_cost": r.gift_unit_cost,
                "gift_qty": r.gift_qty,
                "channels": list(r.channels),
            }
            self.poll(lambda body=body: self._accepted("/gift-rules", body), f"gift rule {r.rule_id} defined", 30)
        if self.sc.setup.gift_rules:
            self.poll(self._gift_rules_replicated, "the gift rules replicated to every order partition", 30)

    def _gift_rules_replicated(self) -> bool:
        records = run(read_all(self.suite.bootstrap, self.suite.topic("order.events"), decode=False))
        have: dict[int, set[str]] = defaultdict(set)
        for rec in records:
            item = CODEC.decode(rec.value)
            if item.envelope.event_type == "GiftRuleReplicated":
                have[rec.partition].add(item.message.rule.rule_id)
        rules = {r.rule_id for r in self.sc.setup.gift_rules}
        return all(rules <= have[p] for p in range(Settings().flexchain_partitions))

    def _network_replicated(self) -> bool:
        """Every commission partition knows the whole chain and the plan before any order is paid
        (a split uses the tree as its partition knows it, README "Rates apply by payment time")."""
        records = run(read_all(self.suite.bootstrap, self.suite.topic("commission.events"), decode=False))
        last = 1 + len(self.sc.setup.distributors)  # the plan's levels, then one registration each
        seq: dict[int, int] = defaultdict(int)
        for rec in records:
            item = CODEC.decode(rec.value)
            if item.envelope.event_type in ("NetworkReplicated", "DistributorRegistered", "CommissionPlanChanged"):
                seq[rec.partition] = max(seq[rec.partition], item.message.seq)
        partitions = Settings().flexchain_partitions
        return all(seq[p] >= last for p in range(partitions))

    # -- orders ------------------------------------------------------------------------------------

    def _skus(self, place: Place) -> set[str]:
        """What an order may reserve: its lines, and the gift of any rule on one of them."""
        if place.campaign_id is not None:
            return set()
        skus = {s for s, _, _ in place.lines}
        return skus | {r.gift_sku for r in self.sc.setup.gift_rules if r.main_sku in skus}

    def _conflicts(self, place: Place) -> bool:
        """Placed together only when no sku is shared: each sku's reservations arrive in scenario order."""
        taken = set().union(*(self._skus(p) for p, _ in self.wave))
        return bool(self._skus(place) & taken) or len(self.wave) >= 6

    def flush_wave(self) -> None:
        if not self.wave:
            return
        for place, outcome in self.wave:
            body = {
                "order_id": place.order_id,
                "member_id": place.member_id,
                "channel": place.channel,
                "lines": [{"sku": s, "qty": q, "unit_price": p} for s, q, p in place.lines],
                "distributor_id": place.distributor_id,
                "campaign_id": place.campaign_id,
            }
            self.poll(lambda body=body: self._accepted("/orders", body), f"order {place.order_id} placed", 30)
            self.times[(place.order_id, "OrderPlaced")] = self.oracle.now
            self.apply(place, outcome)
        want = {
            "orders": {p.order_id: self.oracle.orders[p.order_id].status for p, _ in self.wave},
            "stock": self.oracle.snapshot()["stock"],
        }
        self.wave = []
        seen: dict[str, Any] = {}

        def answered() -> bool:
            seen.update(
                orders={oid: self.get("order", f"/orders/{oid}")["status"] for oid in want["orders"]}, stock=self._stock()
            )
            return seen == want

        what = f"orders {sorted(want['orders'])} answered by inventory, presale and loyalty"
        self.poll(answered, what, SETTLE_S, lambda: "\n    ".join(["", *diff(want, seen)[:40]]))

    def _accepted(self, path: str, body: dict[str, Any]) -> bool:
        r = self.http.post(self.url("order") + path, json=body)
        if r.status_code == 422 and "unknown sku" in r.text:
            return False  # the order API's catalogue (inventory's SkuRegistered) is still catching up
        if r.status_code not in (200, 202):
            raise self.fail(f"POST {path} {body}: HTTP {r.status_code} {r.text[:300]}")
        return True

    def pay(self, action: Pay, outcome: str) -> None:
        order = self.oracle.orders[action.order_id]
        if order.member in self.fresh:
            self.poll(self._members_recorded, f"commission saw the first payments of {sorted(self.fresh)}", SETTLE_S)
            self.fresh.clear()
        self.send(
            "order", "POST", f"/orders/{action.order_id}/payment", {"amount": order.total, "payment_ref": f"pay-{order.order_id}"}
        )
        self.times[(action.order_id, "OrderPaid")] = self.oracle.now
        if order.member not in self.paid_members:
            self.paid_members.add(order.member)
            self.fresh.add(order.member)
        self.apply(action, outcome)

    def _members_recorded(self) -> bool:
        """A member's first payment decides who gets the referral bonus (R-COM-4): it must be recorded
        before their next one, which could take a shorter path to the member's partition."""
        seen = {e.message.member_id for e in self.events("commission.events") if e.envelope.event_type == "NewMemberRecorded"}
        return self.fresh <= seen

    def settle_pledge(self, order_id: str) -> None:
        """Wait until presale took this refund out of escrow (the next one may find a bucket capped)."""
        cid = self.sc.setup.campaign.campaign_id
        want = {**self._pledge_extra(order_id), **self.oracle.presale.view()["pledges"][order_id]}
        seen: dict[str, Any] = {}

        def refunded() -> bool:
            seen.clear()
            seen.update(self.get("presale", f"/campaigns/{cid}/pledges").get(order_id, {}))
            return seen == want

        self.poll(refunded, f"presale refunded {order_id}", SETTLE_S, lambda: f"\n    expected {want}\n    got      {seen}")

    def _pledge_extra(self, order_id: str) -> dict[str, Any]:
        p = self.oracle.presale.pledges[order_id]
        return {"member_id": p["member"], "group_id": None, "price_rise_owed": 0}

    # -- what the services show ----------------------------------------------------------------------

    def _stock(self, q: str = "") -> dict[str, Any]:
        """Per sku and warehouse: on hand, reserved, available, clearance and the R-INV-2 counters
        (received, shipped, returned A/B: in `warehouses` or beside them in `counters`); the holds."""
        return {
            s["sku"]: {
                "warehouses": {wh: {**w, **s.get("counters", {}).get(wh, {})} for wh, w in s["warehouses"].items()},
                "reservations": {o: dict(sorted(h.items())) for o, h in sorted(s["reservations"].items())},
            }
            for s in self.get("inventory", "/skus" + q)
        }

    def observe(self, final: bool = False, as_of: int | None = None, order_ids: Any = None) -> dict[str, Any]:
        """What the services show now — or, with `as_of`, what they say they showed at that business
        time (R-X-4: folded from their logs), for the orders `order_ids` (default: all so far)."""
        o, cid = self.oracle, self.sc.setup.campaign.campaign_id
        q = "" if as_of is None else f"?as_of={as_of}"
        orders = {}
        for oid in sorted(o.orders if order_ids is None else order_ids):
            v = self.get("order", f"/orders/{oid}{q}")
            orders[oid] = {
                "status": v["status"],
                "total": v["total"],
                "paid": v["paid"],
                "refunded_amount": v["refunded_amount"],
                "refunded_qty": dict(sorted(v["refunded_qty"].items())),
                "lines": [[x["sku"], x["qty"], x["unit_price"]] for x in v["lines"]],
                "gifts": v["gifts"],
            }
        c = self.get("presale", f"/campaigns/{cid}{q}")
        pledges = self.get("presale", f"/campaigns/{cid}/pledges{q}")
        presale = {
            "status": c["status"],
            "pledged_units": c["pledged_units"],
            "first_batch_units": c["first_batch_units"],
            "buckets": c["buckets"],
            "money": c["money"],
            "pledges": {
                oid: {k: p[k] for k in ("units", "unit_price", "phase", "status", "paid", "refunded")}
                for oid, p in sorted(pledges.items())
            },
        }
        commission = {}
        for d in sorted(x.distributor_id for x in self.sc.setup.distributors):
            v = self.get("commission", f"/distributors/{d}{q}")
            lines = sorted([x["kind"], x["ref"], x["sku"], x["level"], x["amount"]] for x in v["account"]["unpaid_lines"])
            commission[d] = {"balances": v["balances"], "unpaid": lines, "batches": v["account"]["batches"]}
        loyalty = {}
        for m in self.sc.members:
            r = self.http.get(self.url("loyalty") + f"/members/{m}{q}")
            if r.status_code == 404:
                continue
            r.raise_for_status()
            v = r.json()
            loyalty[m] = {
                "tier": v["tier"]["name"],
                "growth": v["tier"]["growth"],
                "orders": v["purchases"]["orders"],
                "net_spend": v["purchases"]["net_spend"],
                "available": v["points"]["available"],
                "pending": v["points"]["pending"],
                "totals": v["totals"],
            }
        stock = self._stock(q)
        snap = {"orders": orders, "stock": stock, "presale": {cid: presale}, "commission": commission, "loyalty": loyalty}
        if final:
            snap["commission_orders"] = self._commission_orders()
            snap["payout_batches"] = self._payout_batches()
        return snap

    def _commission_orders(self) -> dict[str, Any]:
        out = {}
        for oid in sorted(self.oracle.orders):
            r = self.http.get(self.url("commission") + f"/orders/{oid}/commission")
            if r.status_code == 404:
                continue
            r.raise_for_status()
            v = r.json()
            out[oid] = {
                "status": v["status"],
                "refunds": v["refunds"],
                "lines": {
                    x["sku"]: {
                        "paid": x["paid"],
                        "refunded": x["refunded"],
                        "levels": [
                            [s["level"], s["distributor_id"], s["rate"], s["accrued"], s["clawed_back"], s["net"]]
                            for s in x["levels"]
                        ],
                    }
                    for x in v["lines"]
                },
            }
        return out

    def _payout_batches(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for b in self.get("commission", "/payout-batches"):
            batch = self.get("commission", f"/payout-batches/{b['batch_id']}")
            out[b["batch_id"]] = {
                p["distributor_id"]: {
                    "gross": p["gross"],
                    "deductions": p["deductions"],
                    "net": p["net"],
                    "lines": sorted([x["kind"], x["ref"], x["sku"], x["level"], x["amount"]] for x in p["lines"]),
                }
                for p in batch["payouts"]
            }
        return out

    def settle(self, what: str, final: bool = False) -> dict[str, Any]:
        """Wait until every service shows what the oracle says; fail with a diff."""
        want = self.oracle.final_snapshot() if final else self.oracle.snapshot()
        last: dict[str, Any] = {}
        deadline = time.monotonic() + SETTLE_S
        error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                last = self.observe(final)
                broken = check_identities(last)  # must hold in every state a service shows, settled or not
                if broken:
                    raise self.fail(f"{what}: a balance identity is broken:\n    " + "\n    ".join(broken))
                if last == want:
                    return last
                error = None
            except httpx.HTTPError as exc:  # a service restarting after its kill -9
                error = exc
            time.sleep(0.3)
        lines = diff(want, last)
        raise self.fail(
            f"{what}: the services do not show what the oracle computed after {SETTLE_S:.0f}s"
            + (f" (last HTTP error: {error!r})" if error else "")
            + f"\n  {len(lines)} differences (path: expected ≠ got):\n    "
            + "\n    ".join(lines[:60])
        )

    def poll(self, check: Any, what: str, timeout: float, explain: Any = None) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                got = check()
                if got:
                    return got
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.2)
        raise self.fail(f"not reached in {timeout:.0f}s: {what} (last error: {last!r}){explain() if explain else ''}")

    def events(self, topic: str) -> list[Enveloped]:
        result: list[Enveloped] = run(read_all(self.suite.bootstrap, self.suite.topic(topic)))
        return result

    # -- the end -----------------------------------------------------------------------------------

    def wait_quiet(self) -> None:
        """No consumer of any service lags behind its topics, twice a second and a half apart."""

        def lag() -> int:
            total = 0
            for svc in SERVICES:
                text = self.http.get(self.url(svc) + "/metrics").text
                total += sum(int(float(v)) for v in re.findall(rf"flexchain_{svc}_consumer_lag_records{{[^}}]*}} (\S+)", text))
            return total

        quiet = 0
        deadline = time.monotonic() + SETTLE_S
        while quiet < 2:
            if time.monotonic() > deadline:
                raise self.fail("the suite never became quiet (consumer lag stayed above 0)")
            quiet = quiet + 1 if lag() == 0 else 0
            time.sleep(1.5)

    def check_as_of(self) -> None:
        """R-X-4: asked at the end, every service tells each past tick's balances — stock per
        warehouse, orders, escrow buckets and pledges, commission balances and lines, points and
        tiers — exactly as it showed them at that business time."""
        started = time.monotonic()
        for at, seen in self.history:
            past = self.observe(as_of=at, order_ids=seen["orders"])
            if past != seen:
                lines = diff(seen, past)
                raise self.fail(
                    f"as of business time {at} the services tell another story than they showed then "
                    f"({len(lines)} differences, path: showed then ≠ told now):\n    " + "\n    ".join(lines[:60])
                )
        took = time.monotonic() - started
        print(f"[cascade] as of {len(self.history)} past business times: every balance as shown then ({took:.1f}s)")

    def check_the_end(self) -> None:
        self.settle("the end", final=True)
        self.wait_quiet()
        self.settle("the end, once quiet", final=True)
        self.history.append((self.oracle.now, self.observe()))
        self.check_as_of()
        logs = {t: self.events(f"{t}.events") for t in SERVICES}
        cid = self.sc.setup.campaign.campaign_id
        ledger = self.get("presale", f"/campaigns/{cid}/ledger")
        problems = [
            *([] if ledger["balanced"] else [f"the presale ledger of {cid} is not balanced line by line (R-PRE-10)"]),
            *check_stock_log(logs["inventory"], self.oracle),
            *check_escrow_log(logs["presale"]),
            *check_exactly_once(logs, self.oracle),
            *check_business_times(logs["order"], self.times),
            *check_unique_ids(logs),
        ]
        for svc in SERVICES:
            dead = self.events(f"{svc}.dlq")
            if dead:
                problems.append(f"{svc}.dlq holds {len(dead)} records")
            # the history checker: no event twice, versions 1..n per aggregate, each command answered once
            problems += [
                f"{svc}.events: {p}" for p in check_history(log_of(self.suite.bootstrap, self.suite.topic(f"{svc}.events")))
            ]
        rejected = [e.message for e in logs["inventory"] if e.envelope.event_type == "InventoryCommandRejected"]
        problems += [f"inventory refused {r.command} for {r.sku}: {r.reason}" for r in rejected]
        if problems:
            raise self.fail("the logs break the cascade's invariants:\n    " + "\n    ".join(problems[:60]))


class _Guarded(httpx.Client):
    """An HTTP client whose requests wait while a service is being killed and started again."""

    def __init__(self, lock: threading.RLock, **kw: Any) -> None:
        super().__init__(**kw)
        self._lock = lock

    def request(self, *args: Any, **kw: Any) -> httpx.Response:  # type: ignore[override]
        with self._lock:
            return super().request(*args, **kw)


# --- checks on the logs (independent folds, no service code) ---------------------------------------------


def check_identities(seen: dict[str, Any]) -> list[str]:
    """What holds in any state: per sku and warehouse on hand = received − shipped + returned(A),
    clearance = returned(B), 0 ≤ reserved ≤ on hand (R-INV-1, R-INV-2); per distributor accrued −
    clawed back = pending + payable + paid (R-COM-3); per member earned = available + pending +
    redeemed + expired + reversed (R-LOY-2)."""
    out = []
    for sku, s in seen["stock"].items():
        for wh, w in s["warehouses"].items():
            if w["on_hand"] != w["received"] - w["shipped"] + w["returned_a"] or w["clearance"] != w["returned_b"]:
                out.append(f"stock {sku}@{wh}: on hand ≠ received − shipped + returned(A) or clearance ≠ returned(B): {w}")
            if not 0 <= w["reserved"] <= w["on_hand"] or w["available"] != w["on_hand"] - w["reserved"]:
                out.append(f"stock {sku}@{wh}: available below zero or inconsistent: {w}")

    for who, v in seen["commission"].items():
        b = v["balances"]
        earned = b["commission"] + b["bonuses"]
        if b["earned"] - b["clawed_back"] != b["pending"] + b["payable"] + b["paid"] or b["earned"] != earned:
            out.append(f"commission {who}: earned − clawed back ≠ pending + payable + paid, or ≠ commission + bonuses: {b}")
    for m, v in seen["loyalty"].items():
        t = v["totals"]
        if v["available"] + v["pending"] + t["redeemed"] + t["expired"] + t["reversed"] != t["earned"]:
            out.append(f"loyalty {m}: available + pending + redeemed + expired + reversed ≠ earned: {v}")
    return out


def check_stock_log(log: list[Enveloped], oracle: Oracle) -> list[str]:
    """At every prefix, per sku and warehouse: reserved ≥ 0, available = received − shipped +
    returned(A) − reserved ≥ 0 (R-INV-1); a commit takes exactly what the order held; the availability
    the service states in its own events (alerts, back in stock, rejections) is the fold's."""
    out: list[str] = []
    received: Counter[tuple[str, str]] = Counter()
    shipped: Counter[tuple[str, str]] = Counter()
    returned: Counter[tuple[str, str]] = Counter()
    reserved: Counter[tuple[str, str]] = Counter()
    held: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    places: set[tuple[str, str]] = set()  # (sku, warehouse) seen: stock received or returned there

    def available(sku: str, wh: str | None = None) -> int:
        keys = [k for k in places if k[0] == sku and (wh is None or k[1] == wh)]
        return sum(received[k] - shipped[k] + returned[k] - reserved[k] for k in keys)

    for i, e in enumerate(log):
        m, kind = e.message, e.envelope.event_type
        if kind in ("ReservationRejected", "LowStockAlertRaised", "LowStockAlertCleared", "StockBecameAvailable"):
            if m.available != available(m.sku):
                out.append(f"inventory event {i} {kind} {m.sku}: says available {m.available}, the log gives {available(m.sku)}")
            continue
        if kind in ("StockReceived", "StockReturned"):
            places.add((m.sku, m.warehouse))
        if kind == "StockReceived":
            received[(m.sku, m.warehouse)] += m.qty
        elif kind == "StockReserved":
            for a in m.allocations:
                reserved[(m.sku, a.warehouse)] += a.qty
                held[(m.sku, m.order_id)][a.warehouse] += a.qty
        elif kind == "ReservationReleased":
            for a in m.allocations:
                reserved[(m.sku, a.warehouse)] -= a.qty
                held[(m.sku, m.order_id)][a.warehouse] -= a.qty
        elif kind == "ReservationCommitted":
            had = {w: q for w, q in held.pop((m.sku, m.order_id), Counter()).items() if q}
            if had != {a.warehouse: a.qty for a in m.allocations}:
                out.append(f"inventory event {i}: {m.sku} {m.order_id} committed {m.allocations}, held {had}")
            for a in m.allocations:
                reserved[(m.sku, a.warehouse)] -= a.qty
                shipped[(m.sku, a.warehouse)] += a.qty
        elif kind == "StockReturned" and m.grade == "A":
            returned[(m.sku, m.warehouse)] += m.qty
        else:
            continue
        for key in {*places, *reserved}:
            if key[0] == m.sku and (reserved[key] < 0 or available(*key) < 0):
                out.append(f"inventory event {i} {kind}: {key} reserved {reserved[key]}, available {available(*key)}")
        if kind != "StockReceived" and any(q < 0 for q in held[(m.sku, m.order_id)].values()):
            out.append(f"inventory event {i} {kind}: {m.sku} {m.order_id} released more than it held")
    identity = {
        sku: {
            wh: received[(sku, wh)] - shipped[(sku, wh)] + returned[(sku, wh)] for wh in sorted(w for s, w in places if s == sku)
        }
        for sku in sorted({s for s, _ in places})
    }
    if identity != oracle.stock_identity():
        out.append(f"on hand from the log {identity} ≠ the oracle's received − shipped + returned(A) {oracle.stock_identity()}")
    on_hand = {sku: {wh: w["on_hand"] for wh, w in s.view()["warehouses"].items()} for sku, s in sorted(oracle.stock.items())}
    if identity != on_hand:
        out.append(f"on hand {on_hand} ≠ received − shipped + returned(A) {identity}")
    return out


def check_escrow_log(log: list[Enveloped]) -> list[str]:
    """R-PRE-10 at every prefix: received = held in buckets + released + refunded; no bucket below 0."""
    out: list[str] = []
    money: dict[str, Counter[str]] = defaultdict(Counter)
    for i, e in enumerate(log):
        m, kind = e.message, e.envelope.event_type
        c = money[e.envelope.aggregate_id]
        if kind == "PaymentEscrowed":
            c["received"] += m.amount
            for b, cents in m.buckets.items():
                c[b] += cents
        elif kind == "DepositCollected":
            c["received"] += m.amount
            c["deposits"] += m.amount
        elif kind == "EscrowRefunded":
            for b, cents in m.taken.items():
                c[b] -= cents
                c["refunded"] += cents
        elif kind == "DepositRefunded":
            c["deposits"] -= m.amount
            c["refunded"] += m.amount
        elif kind == "FundsReleased":
            c["production"] -= m.amount
            c["released"] += m.amount
        else:
            continue
        held = sum(c[b] for b in ("production", "risk", "marketing", "operations", "deposits"))
        if (
            c["received"] != held + c["released"] + c["refunded"]
            or min(c[b] for b in ("production", "risk", "marketing", "operations", "deposits")) < 0
        ):
            out.append(f"presale event {i} {kind}: money not conserved {dict(c)}")
    return out


def check_exactly_once(logs: dict[str, list[Enveloped]], oracle: Oracle) -> list[str]:
    """Each refund's effect in each service, once — no more, no less — and what the oracle expects."""
    want = oracle.expected_effects()

    def of(svc: str, kind: str) -> list[Any]:
        return [e.message for e in logs[svc] if e.envelope.event_type == kind]

    refunds = Counter(m.refund_id for m in of("order", "OrderRefunded"))
    released: Counter[tuple[str, str, int]] = Counter(
        (m.order_id, m.sku, sum(a.qty for a in m.allocations))
        for m in of("inventory", "ReservationReleased")
        if m.reason in ("order refunded", "gift taken back with its main line")
    )
    got = {
        "order_refunds": sorted(refunds),
        "stock_returned": dict(Counter((m.order_id, m.sku, m.qty, m.grade) for m in of("inventory", "StockReturned"))),
        "stock_released": dict(released),
        "clawbacks": sorted((m.order_id, m.refund_id) for m in of("commission", "CommissionClawedBack")),
        "charges": sorted((m.distributor_id, m.order_id, m.refund_id) for m in of("commission", "ClawbackCharged")),
        "points_reversed": sorted((m.order_id, m.refund_id, m.points) for m in of("loyalty", "PointsReversed")),
        "escrow_refunds": sorted(m.refund_id for m in of("presale", "EscrowRefunded")),
    }
    out = [f"{k}: expected {want[k]}, the logs hold {got[k]}" for k in want if got[k] != want[k]]
    out += [f"OrderRefunded {rid} appears {n} times" for rid, n in refunds.items() if n > 1]
    reversed_ = Counter((m.order_id, m.refund_id) for m in of("loyalty", "PurchaseReversed"))
    expected_reversals = Counter(oracle.refunds)
    if reversed_ != expected_reversals:
        out.append(f"PurchaseReversed per refund: expected {dict(expected_reversals)}, got {dict(reversed_)}")
    return out


def check_business_times(log: list[Enveloped], times: dict[tuple[str, str], int]) -> list[str]:
    """The harness's own premise: each order command carried the business time of the tick before it."""
    field_of = {"OrderPlaced": "placed_at", "OrderPaid": "paid_at", "OrderDelivered": "delivered_at"}
    got = {
        (e.message.order_id, e.envelope.event_type): getattr(e.message, field_of[e.envelope.event_type])
        for e in log
        if e.envelope.event_type in field_of
    }
    return [
        f"{k}: business time {got.get(k)}, the tick before it was {t} (the order API had not read the tick?)"
        for k, t in sorted(times.items())
        if got.get(k) != t
    ]


def check_unique_ids(logs: dict[str, list[Enveloped]]) -> list[str]:
    out = []
    for svc, log in logs.items():
        dup = [i for i, n in Counter(e.envelope.event_id for e in log).items() if n > 1]
        if dup:
            out.append(f"{svc}.events: {len(dup)} event ids appear twice, e.g. {dup[:3]}")
    return out


def diff(want: Any, got: Any, path: str = "") -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        out: list[str] = []
        for k in sorted({*want, *got}, key=str):
            if k not in got:
                out.append(f"{path}/{k}: expected {want[k]!r}, missing")
            elif k not in want:
                out.append(f"{path}/{k}: unexpected {got[k]!r}")
            else:
                out += diff(want[k], got[k], f"{path}/{k}")
        return out
    return [] if want == got else [f"{path}: {want!r} ≠ {got!r}"]
