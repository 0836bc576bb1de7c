"""Commission HTTP API: the network (distributors, plan, rates, rules) as commands, validated then
published to `commission.commands`; queries on the service's own partitions: a distributor's
balances and downline, the chain behind an order's commission, a payout batch (R-COM-6)."""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from flexchain.answers import reads
from flexchain.api import MAX_CENTS, MAX_COUNT, MAX_DURATION_MS, MAX_TIME_MS, AsOf, StrictModel, past_states, submit
from flexchain.host import Runtime, base_app
from flexchain.httplimits import TOO_MANY_REPLAYS
from flexchain.messages import Message, to_record
from services.commission import answers, domain, views
from services.commission.accounts import batch_progress, payout_overdue
from services.commission.messages import (
    NETWORK,
    ApplyStockSignal,
    BonusTier,
    CommissionCommandRejected,
    CommissionPlan,
    LinkDistributor,
    RateRule,
    RegisterDistributor,
    RemoveRateRule,
    RenewQualification,
    SetBonuses,
    SetCommissionLevels,
    SetDefaultSponsor,
    SetDistributorGrade,
    SetGradePremiums,
    SetLevelRates,
    SetRateRule,
    SetSettlement,
    SetSkuRate,
)
from services.commission.model import CommissionState, Totals, upline_chain
from services.commission.plan import MAX_RECRUITMENT_DEPTH, validate_plan
from services.commission.whatif import Outcome, replay_plan

Id = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
Rate = Annotated[str, Field(pattern=r"^0(\.\d{1,4})?$", description='a rate as a decimal string, e.g. "0.15"')]
SignedRate = Annotated[str, Field(pattern=r"^-?0(\.\d{1,4})?$", description='e.g. "-0.07"')]
Cents = Annotated[int, Field(ge=0, le=MAX_CENTS, description="cents (fen): a whole number")]
Millis = Annotated[int, Field(ge=0, le=MAX_TIME_MS, description="ms since the epoch, UTC (business time)")]
Wait = Annotated[float, Query(ge=0, le=30, description="seconds to wait for the resulting events")]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]


class DistributorIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {
        "distributor_id": "lin",
        "name": "Lin Xiaomei",
        "upline_id": "ming",
        "grade": "standard",
    }

    distributor_id: Id
    name: Annotated[str, Field(max_length=200)] = ""
    upline_id: Id | None = None
    grade: Id = "standard"
    qualified_until: Millis | None = None


class UplineIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"upline_id": "ming"}

    upline_id: Id


class GradeIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"grade": "gold"}

    grade: Id


class QualificationIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"qualified_until": 1798761600000}

    qualified_until: Millis


class LevelsIn(StrictModel):
    """How many levels commission flows up (1–3, R-COM-1), and optionally a cap on how deep the tree
    may grow by recruitment — a separate setting: 0 removes the cap; omitted leaves it as it is."""

    EXAMPLE: ClassVar[dict[str, Any] | None] = {"levels": 3}

    levels: Annotated[int, Field(ge=1, le=MAX_COUNT, description="levels commission reaches, the seller being level 1: 1 to 3")]
    max_chain_depth: Annotated[
        int | None,
        Field(ge=0, le=MAX_RECRUITMENT_DEPTH, description="cap on recruitment depth (0: none); omitted: unchanged"),
    ] = None


class LevelRatesIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"rates": ["0.15", "0.05", "0.02"]}

    rates: Annotated[list[Rate], Field(min_length=3, max_length=3)]


class PremiumsIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"premiums": ["0.02", "0.01"]}

    premiums: Annotated[list[Rate], Field(min_length=1, max_length=3)]


class PlanReplayIn(StrictModel):
    """R-X-4 sandbox: another plan (omitted fields: the plan in force), replayed over the past."""

    EXAMPLE: ClassVar[dict[str, Any] | None] = {"levels": 3, "level_rates": ["0.18", "0.05", "0.02"], "paid_from": 1767225600000}

    levels: Annotated[int, Field(ge=1, le=MAX_COUNT)] | None = None
    level_rates: Annotated[list[Rate], Field(min_length=3, max_length=3)] | None = None
    grade_premiums: dict[Id, Annotated[list[Rate], Field(min_length=1, max_length=3)]] | None = None
    paid_from: Millis = 0
    as_of: Millis | None = None


class SponsorIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"distributor_id": "house"}

    distributor_id: Id | None


class SettlementIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"payout_delay_ms": 604800000, "batch_interval_ms": 86400000}

    payout_delay_ms: Annotated[int, Field(ge=0, le=MAX_DURATION_MS, description="T+N: ms from payable to due")]
    batch_interval_ms: Annotated[int, Field(gt=0, le=MAX_DURATION_MS, description="ms between payout batch cutoffs")]


class TierIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"threshold": 1000000, "bonus": 20000}

    threshold: Cents
    bonus: Cents


class BonusesIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {
        "tiers": [{"threshold": 1000000, "bonus": 20000}, {"threshold": 3000000, "bonus": 80000}],
        "referral_bonus": 5000,
    }

    tiers: Annotated[list[TierIn], Field(max_length=20)]
    referral_bonus: Cents


class SkuRateIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"rate": "0.18"}

    rate: Rate | None


class RuleIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {
        "signal": "overstock",
        "skus": ["mask-01"],
        "delta": "0.03",
        "threshold": 500,
        "floor": "0.15",
        "ceiling": "0.25",
    }

    signal: Id
    skus: Annotated[list[Id], Field(max_length=1000)] = []
    delta: SignedRate
    threshold: Annotated[int, Field(ge=1, le=MAX_COUNT)]
    floor: Rate
    ceiling: Rate


class SignalIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"sku": "mask-01", "signal": "overstock", "value": 800}

    sku: Id
    signal: Id
    value: Annotated[int, Field(ge=0, le=MAX_COUNT)]


def _refusal(e: Message) -> bool:
    return isinstance(e, CommissionCommandRejected)


def _record(obj: Any) -> dict[str, Any]:
    return to_record(obj)


def build_api(rt: Runtime) -> FastAPI:
    app = base_app(rt, "flexchain commission")

    def network_state() -> CommissionState:
        state: CommissionState = rt.own.state_for(NETWORK)
        return state

    def partitions() -> list[CommissionState]:
        states: list[CommissionState] = rt.own.all()
        return states

    def totals(who: str, src: Any = None) -> Totals:
        """A distributor's balances over every partition (lines accrue on the seller's partition);
        `src`: the live view by default, or the partitions as of a past business time (R-X-4)."""
        out = Totals()
        states: list[CommissionState] = (src or rt.own).all()
        for state in states:
            t = state.totals.get(who)
            if t is not None:
                for f in ("accrued", "bonuses", "clawed", "pending", "payable", "paid"):
                    setattr(out, f, getattr(out, f) + getattr(t, f))
        return out

    cache: dict[str, Any] = {"at": -1.0, "figures": {}}

    def figures() -> dict[str, float]:
        """The business gauges, computed in one pass at most once a second (scrapes are cheap)."""
        now = time.monotonic()
        if now - cache["at"] >= 1.0:
            payable: dict[str, int] = {}
            pending = paid = 0
            for state in partitions():
                for who, t in state.totals.items():
                    payable[who] = payable.get(who, 0) + t.payable
                    pending += t.pending
                    paid += t.paid
            cache["figures"] = {
                "distributors": len(network_state().network.distributors),
                "parked_orders": sum(len(s.parked) for s in partitions()),
                "pending_cents": pending,
                "payable_cents": sum(payable.values()),
                "paid_cents": paid,
                "negative_balances": sum(1 for v in payable.values() if v < 0),
                "payout_overdue_seconds": payout_overdue(partitions(), rt.now(), network_state().network.plan.batch_interval_ms)
                / 1000,
            }
            cache["at"] = now
        result: dict[str, float] = cache["figures"]
        return result

    for name, doc in (
        ("distributors", "Registered distributors"),
        ("parked_orders", "Paid orders waiting for their distributor to be known"),
        ("pending_cents", "Commission accrued, in the return window"),
        ("payable_cents", "Commission payable, not yet paid (negative balances included)"),
        ("paid_cents", "Commission and bonuses paid in batches"),
        ("negative_balances", "Distributors whose clawbacks exceed what they have payable"),
        ("payout_overdue_seconds", "Business time since the cutoff of the oldest payout batch not settled everywhere"),
    ):
        rt.metrics.gauge(name, doc, []).set_function(lambda name=name: figures()[name])  # type: ignore[misc]

    def precheck(cmd: Message, now: int) -> list[Message]:
        return domain.decide(rt.own.state_for(cmd.key), cmd, now)

    async def go(cmd: Message, key: str | None, wait: float) -> JSONResponse:
        return await submit(rt, cmd, precheck, _refusal, key, wait)

    def known(who: str) -> None:
        if who not in network_state().network.distributors:
            raise HTTPException(status_code=404, detail=f"unknown distributor {who}")

    # --- the tree (R-COM-1, R-COM-5a, R-COM-6) ----------------------------------------------------

    @app.post("/distributors")
    async def register(body: DistributorIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        cmd = RegisterDistributor(
            network_id=NETWORK,
            distributor_id=body.distributor_id,
            name=body.name,
            upline_id=body.upline_id,
            grade=body.grade,
            qualified_until=body.qualified_until,
        )
        return await go(cmd, idempotency_key, wait)

    @app.put("/distributors/{distributor_id}/upline")
    async def link(distributor_id: str, body: UplineIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(distributor_id)
        return await go(
            LinkDistributor(network_id=NETWORK, distributor_id=distributor_id, upline_id=body.upline_id), idempotency_key, wait
        )

    @app.put("/distributors/{distributor_id}/grade")
    async def grade(distributor_id: str, body: GradeIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(distributor_id)
        return await go(
            SetDistributorGrade(network_id=NETWORK, distributor_id=distributor_id, grade=body.grade), idempotency_key, wait
        )

    @app.put("/distributors/{distributor_id}/qualification")
    async def qualification(
        distributor_id: str, body: QualificationIn, idempotency_key: IdemKey = None, wait: Wait = 5.0
    ) -> JSONResponse:
        known(distributor_id)
        return await go(
            RenewQualification(network_id=NETWORK, distributor_id=distributor_id, qualified_until=body.qualified_until),
            idempotency_key,
            wait,
        )

    @app.get("/distributors", **reads(list[answers.DistributorListed]))
    async def list_distributors() -> list[dict[str, Any]]:
        async with rt.consistent():
            net = network_state().network
            return [{**_record(r), "depth": len(upline_chain(net.distributors, d))} for d, r in sorted(net.distributors.items())]

    def distributor_view(src: Any, distributor_id: str) -> dict[str, Any]:
        network: CommissionState = src.state_for(NETWORK)
        net, auth = network.network, network.authority
        if distributor_id not in net.distributors:
            raise HTTPException(status_code=404, detail=f"unknown distributor {distributor_id}")
        home: CommissionState = src.state_for(distributor_id)
        acc = home.accounts.get(distributor_id)
        return {
            **_record(net.distributors[distributor_id]),
            "chain": upline_chain(net.distributors, distributor_id),
            "downline_size": views.count(views.downline(net, distributor_id)),
            "balances": views.totals_view(totals(distributor_id, src)),
            "account": {
                "unpaid_lines": [_record(e.line) for e in acc.entries] if acc else [],
                "balance": sum(e.line.amount for e in acc.entries) if acc else 0,
                "batches": list(acc.batches) if acc else [],
            },
            "open_months": dict(home.sales.get(distributor_id, {})),
            "growth_value": home.growth.get(distributor_id, 0) // 100,
            "qualification_warned_for": auth.warned.get(distributor_id),
            "qualification_expired": auth.expired.get(distributor_id),
        }

    @app.get("/distributors/{distributor_id}", **reads(answers.Distributor, not_found=True))
    async def get_distributor(distributor_id: str, as_of: AsOf = None) -> dict[str, Any]:
        if as_of is not None:  # R-X-4: balances and account as they stood at that business time
            past = await past_states(rt, as_of)
            return {**distributor_view(past, distributor_id), "as_of": past.replayed.summary()}
        async with rt.consistent():
            return distributor_view(rt.own, distributor_id)

    @app.get("/distributors/{distributor_id}/downline", **reads(answers.Downline, not_found=True))
    async def get_downline(distributor_id: str) -> dict[str, Any]:
        async with rt.consistent():
            known(distributor_id)
            tree = views.downline(network_state().network, distributor_id)
            return {"distributor_id": distributor_id, "size": views.count(tree), "downline": tree}

    @app.get("/distributors/{distributor_id}/payouts", **reads(list[answers.Payout], not_found=True))
    async def payouts(distributor_id: str) -> list[dict[str, Any]]:
        async with rt.consistent():
            known(distributor_id)
            home = rt.own.state_for(distributor_id)
            acc = home.accounts.get(distributor_id)
            batches = acc.batches if acc else []
            return [_record(p) for b in batches for p in home.batches.get(b, []) if p.distributor_id == distributor_id]

    # --- the plan, rates and rules (R-COM-1..5) ---------------------------------------------------

    @app.get("/plan", **reads(answers.Plan))
    async def get_plan() -> dict[str, Any]:
        async with rt.consistent():
            net = network_state().network
            return {"current": _record(net.current), "history": [_record(v) for v in net.plans]}

    replays = {429: {**TOO_MANY_REPLAYS[429], "description": "too many replays at once, or too many commands from this client"}}

    @app.post("/sandbox/plan-replay", responses=replays)
    async def plan_replay(body: PlanReplayIn) -> dict[str, Any]:
        """What another plan would have paid on the orders paid from `paid_from` (R-X-4): the
        orders as they stand now (or `as_of` a past business time) split again with it, in memory.
        Nothing is published and the live state is not touched. A replay counts against
        `FLEXCHAIN_MAX_CONCURRENT_REPLAYS`, as an as-of read does (README "Limits")."""
        if body.as_of is not None:
            past = await past_states(rt, body.as_of)
            current, states = past.state_for(NETWORK).network.plan, past.all()
            result = _plan_replay(body, current, states)
        else:
            async with rt.replays.slot(), rt.consistent():
                result = _plan_replay(body, network_state().network.plan, partitions())
        return result

    @app.put("/plan/levels")
    async def levels(body: LevelsIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        return await go(
            SetCommissionLevels(network_id=NETWORK, levels=body.levels, max_chain_depth=body.max_chain_depth),
            idempotency_key,
            wait,
        )

    @app.put("/plan/level-rates")
    async def level_rates(body: LevelRatesIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        return await go(SetLevelRates(network_id=NETWORK, rates=[Decimal(r) for r in body.rates]), idempotency_key, wait)

    @app.put("/plan/grades/{grade}")
    async def premiums(grade: str, body: PremiumsIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        return await go(
            SetGradePremiums(network_id=NETWORK, grade=grade, premiums=[Decimal(p) for p in body.premiums]), idempotency_key, wait
        )

    @app.put("/plan/default-sponsor")
    async def sponsor(body: SponsorIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        return await go(SetDefaultSponsor(network_id=NETWORK, distributor_id=body.distributor_id), idempotency_key, wait)

    @app.put("/plan/settlement")
    async def settlement(body: SettlementIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        return await go(
            SetSettlement(network_id=NETWORK, payout_delay_ms=body.payout_delay_ms, batch_interval_ms=body.batch_interval_ms),
            idempotency_key,
            wait,
        )

    @app.put("/plan/bonuses")
    async def bonuses(body: BonusesIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        tiers = [BonusTier(threshold=t.threshold, bonus=t.bonus) for t in body.tiers]
        return await go(SetBonuses(network_id=NETWORK, tiers=tiers, referral_bonus=body.referral_bonus), idempotency_key, wait)

    @app.get("/rates/skus", **reads(dict[str, answers.SkuRate]))
    async def sku_rates() -> dict[str, Any]:
        async with rt.consistent():
            state = network_state()
            net = state.network
            return {
                sku: {
                    "rate": _str(net.current_sku_rate(sku)),
                    "manual_rate": _str(state.authority.manual.get(sku)),
                    "active_rules": list(state.authority.active.get(sku, [])),
                    "history": [_record(v) for v in versions],
                }
                for sku, versions in sorted(net.sku_rates.items())
            }

    @app.put("/rates/skus/{sku}")
    async def set_sku_rate(sku: str, body: SkuRateIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        rate = Decimal(body.rate) if body.rate is not None else None
        return await go(SetSkuRate(network_id=NETWORK, sku=sku, rate=rate), idempotency_key, wait)

    @app.get("/rate-rules", **reads(answers.RateRules))
    async def rules() -> dict[str, Any]:
        async with rt.consistent():
            auth = network_state().authority
            return {
                "rules": [_record(r) for _, r in sorted(auth.rules.items())],
                "active": {sku: list(ids) for sku, ids in sorted(auth.active.items())},
            }

    @app.put("/rate-rules/{rule_id}")
    async def set_rule(rule_id: str, body: RuleIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        rule = RateRule(
            rule_id=rule_id,
            signal=body.signal,
            skus=list(body.skus),
            delta=Decimal(body.delta),
            threshold=body.threshold,
            floor=Decimal(body.floor),
            ceiling=Decimal(body.ceiling),
        )
        return await go(SetRateRule(network_id=NETWORK, rule=rule), idempotency_key, wait)

    @app.delete("/rate-rules/{rule_id}")
    async def remove_rule(rule_id: str, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        return await go(RemoveRateRule(network_id=NETWORK, rule_id=rule_id), idempotency_key, wait)

    @app.post("/stock-signals")
    async def signal(body: SignalIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        """A stock signal by hand (e.g. `overstock` before inventory detects it) for the rate rules."""
        return await go(
            ApplyStockSignal(network_id=NETWORK, sku=body.sku, signal=body.signal, value=body.value, source="http"),
            idempotency_key,
            wait,
        )

    # --- the chain of an order, payout batches (R-COM-3, R-COM-6) ---------------------------------

    @app.get("/orders/{order_id}/commission", **reads(answers.OrderCommissionAnswer, not_found=True))
    async def order_commission(order_id: str) -> dict[str, Any]:
        async with rt.consistent():
            for state in partitions():
                order = state.orders.get(order_id)
                if order is not None:
                    return views.order_view(order)
                parked = state.parked.get(order_id)
                if parked is not None:
                    return {**_record(parked), "status": "parked"}
        raise HTTPException(status_code=404, detail=f"no commission recorded for order {order_id}")

    def settled(cutoff: int) -> dict[str, Any]:
        done, total = batch_progress(partitions(), cutoff)
        return {"complete": done == total, "partitions_settled": done, "partitions": total}

    @app.get("/payout-batches", **reads(list[answers.PayoutBatchListed]))
    async def list_batches() -> list[dict[str, Any]]:
        async with rt.consistent():
            found: dict[str, dict[str, int]] = {}
            for state in partitions():
                for bid, payouts in state.batches.items():
                    agg = found.setdefault(bid, {"distributors": 0, "net": 0, "cutoff": payouts[0].cutoff})
                    agg["distributors"] += len(payouts)
                    agg["net"] += sum(p.net for p in payouts)
            return [{"batch_id": b, **v, **settled(v["cutoff"])} for b, v in sorted(found.items())]

    @app.get("/payout-batches/{batch_id}", **reads(answers.PayoutBatch, not_found=True))
    async def get_batch(batch_id: str) -> dict[str, Any]:
        async with rt.consistent():
            payouts = [p for state in partitions() for p in state.batches.get(batch_id, [])]
            status = settled(payouts[0].cutoff) if payouts else {}
        if not payouts:
            raise HTTPException(status_code=404, detail=f"unknown payout batch {batch_id}")
        payouts.sort(key=lambda p: p.distributor_id)
        return {
            "batch_id": batch_id,
            "cutoff": payouts[0].cutoff,
            **status,
            "net": sum(p.net for p in payouts),
            "lines": sum(len(p.lines) for p in payouts),
            "payouts": [_record(p) for p in payouts],
        }

    return app


def _plan_replay(body: PlanReplayIn, current: CommissionPlan, states: list[CommissionState]) -> dict[str, Any]:
    plan = dataclasses.replace(
        current,
        levels=current.levels if body.levels is None else body.levels,
        level_rates=current.level_rates if body.level_rates is None else [Decimal(r) for r in body.level_rates],
        grade_premiums=current.grade_premiums
        if body.grade_premiums is None
        else {g: [Decimal(r) for r in rates] for g, rates in body.grade_premiums.items()},
    )
    why = validate_plan(plan)
    if why is not None:
        raise HTTPException(status_code=422, detail=[{"loc": ["body"], "msg": why, "type": "value_error"}])
    result = replay_plan(states, plan, body.paid_from)

    def outcome(o: Outcome) -> dict[str, int]:
        return {"kept": o.kept, "would_keep": o.would_keep, "delta": o.delta}

    return {
        "as_of": body.as_of,
        "paid_from": body.paid_from,
        "plan": {
            "levels": plan.levels,
            "level_rates": [str(r) for r in plan.level_rates],
            "grade_premiums": {g: [str(r) for r in rates] for g, rates in sorted(plan.grade_premiums.items())},
        },
        "orders_replayed": result.orders_replayed,
        "total": outcome(result.total()),
        "distributors": {who: outcome(o) for who, o in sorted(result.distributors.items())},
        "orders": dict(sorted(result.orders.items())),
        "note": "commission on orders only (bonuses are not split by the plan); nothing was published",
    }


def _str(d: Decimal | None) -> str | None:
    return str(d) if d is not None else None
