"""Commission HTTP API, routes only: the network (distributors, plan, rates, rules) as commands,
validated then published to `commission.commands`; queries on the service's own partitions — a
distributor's balances and downline, the chain behind an order's commission, a payout batch
(R-COM-6) — answered by `views.py`, which also computes the business gauges."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from flexchain.answers import reads
from flexchain.api import MAX_CENTS, MAX_COUNT, MAX_DURATION_MS, MAX_TIME_MS, AsOf, StrictModel, past_states, submit
from flexchain.host import Runtime, base_app
from flexchain.httplimits import TOO_MANY_REPLAYS
from flexchain.messages import Message
from services.commission import answers, domain, views
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
from services.commission.model import CommissionState
from services.commission.plan import MAX_RECRUITMENT_DEPTH, validate_plan
from services.commission.whatif import replay_plan

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


def build_api(rt: Runtime) -> FastAPI:
    app = base_app(rt, "flexchain commission")
    views.Figures(rt.own, rt.now).register(rt.metrics)

    def precheck(cmd: Message, now: int) -> list[Message]:
        return domain.decide(rt.own.state_for(cmd.key), cmd, now)

    async def go(cmd: Message, key: str | None, wait: float) -> JSONResponse:
        return await submit(rt, cmd, precheck, _refusal, key, wait)

    def known(who: str) -> None:
        if not views.known(rt.own, who):
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
            return views.distributor_list(rt.own)

    def distributor(src: views.Partitions, distributor_id: str) -> dict[str, Any]:
        found = views.distributor_view(src, distributor_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"unknown distributor {distributor_id}")
        return found

    @app.get("/distributors/{distributor_id}", **reads(answers.Distributor, not_found=True))
    async def get_distributor(distributor_id: str, as_of: AsOf = None) -> dict[str, Any]:
        if as_of is not None:  # R-X-4: balances and account as they stood at that business time
            past = await past_states(rt, as_of)
            return {**distributor(past, distributor_id), "as_of": past.replayed.summary()}
        async with rt.consistent():
            return distributor(rt.own, distributor_id)

    @app.get("/distributors/{distributor_id}/downline", **reads(answers.Downline, not_found=True))
    async def get_downline(distributor_id: str) -> dict[str, Any]:
        async with rt.consistent():
            known(distributor_id)
            return views.downline_view(rt.own, distributor_id)

    @app.get("/distributors/{distributor_id}/payouts", **reads(list[answers.Payout], not_found=True))
    async def payouts(distributor_id: str) -> list[dict[str, Any]]:
        async with rt.consistent():
            known(distributor_id)
            return views.payouts(rt.own, distributor_id)

    # --- the plan, rates and rules (R-COM-1..5) ---------------------------------------------------

    @app.get("/plan", **reads(answers.Plan))
    async def get_plan() -> dict[str, Any]:
        async with rt.consistent():
            return views.plan_view(rt.own)

    replays = {429: {**TOO_MANY_REPLAYS[429], "description": "too many replays at once, or too many commands from this client"}}

    @app.post("/sandbox/plan-replay", responses=replays)
    async def plan_replay(body: PlanReplayIn) -> dict[str, Any]:
        """What another plan would have paid on the orders paid from `paid_from` (R-X-4): the
        orders as they stand now (or `as_of` a past business time) split again with it, in memory.
        Nothing is published and the live state is not touched. A replay counts against
        `FLEXCHAIN_MAX_CONCURRENT_REPLAYS`, as an as-of read does (README "Limits")."""
        if body.as_of is not None:
            past = await past_states(rt, body.as_of)
            result = _plan_replay(body, views.network(past).network.plan, views.partitions(past))
        else:
            async with rt.replays.slot(), rt.consistent():
                result = _plan_replay(body, views.network(rt.own).network.plan, views.partitions(rt.own))
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
            return views.sku_rates(rt.own)

    @app.put("/rates/skus/{sku}")
    async def set_sku_rate(sku: str, body: SkuRateIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        rate = Decimal(body.rate) if body.rate is not None else None
        return await go(SetSkuRate(network_id=NETWORK, sku=sku, rate=rate), idempotency_key, wait)

    @app.get("/rate-rules", **reads(answers.RateRules))
    async def rules() -> dict[str, Any]:
        async with rt.consistent():
            return views.rate_rules(rt.own)

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
            found = views.order_commission(rt.own, order_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no commission recorded for order {order_id}")
        return found

    @app.get("/payout-batches", **reads(list[answers.PayoutBatchListed]))
    async def list_batches() -> list[dict[str, Any]]:
        async with rt.consistent():
            return views.batch_list(rt.own)

    @app.get("/payout-batches/{batch_id}", **reads(answers.PayoutBatch, not_found=True))
    async def get_batch(batch_id: str) -> dict[str, Any]:
        async with rt.consistent():
            found = views.batch_view(rt.own, batch_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"unknown payout batch {batch_id}")
        return found

    return app


def _plan_replay(body: PlanReplayIn, current: CommissionPlan, states: list[CommissionState]) -> dict[str, Any]:
    """The request's plan (omitted fields: `current`), validated (422), replayed over `states`."""
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
    return views.replay_view(plan, replay_plan(states, plan, body.paid_from), body.paid_from, body.as_of)
