"""Presale HTTP API: the merchant's campaign commands (validated, then published to
`presale.commands`) and queries on the service's own state (`rt.own`): a campaign's phase, pledges,
buckets, releases, refunds and risk signals, and its money ledger line by line."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from flexchain.answers import reads
from flexchain.api import MAX_CENTS, MAX_TIME_MS, MAX_UNITS, AsOf, StrictModel, field_error, past_entity, submit
from flexchain.asof import PastStates
from flexchain.host import Runtime, base_app
from flexchain.messages import Message
from services.presale import domain, views
from services.presale.answers import Campaign as CampaignAnswer
from services.presale.answers import CampaignRow, Ledger, Pledge
from services.presale.messages import (
    AnswerPriceRise,
    AskSupplier,
    CloseCampaign,
    CollectDeposit,
    CreateCampaign,
    LaunchCampaign,
    PlanMilestone,
    RecordMilestone,
    RecordPriceRise,
    RecordSupplierAnswer,
    ScheduleCampaign,
)
from services.presale.state import Campaign, PresaleBook, new_state
from services.presale.views import CampaignCollector

Id = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
Cents = Annotated[int, Field(gt=0, le=MAX_CENTS, description="an amount in cents (fen): a positive whole number")]
Count = Annotated[int, Field(gt=0, le=MAX_UNITS, description="a positive whole number")]
Millis = Annotated[int, Field(ge=0, le=MAX_TIME_MS, description="business time, ms since the epoch (UTC)")]
Text = Annotated[str, Field(min_length=1, max_length=1000)]
Wait = Annotated[float, Query(ge=0, le=30, description="seconds to wait for the resulting events")]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]


class CampaignIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {
        "campaign_id": "notebook-26",
        "product": "Linen notebook",
        "unit_cost": 3500,
        "fan_base": 20000,
        "moq": 300,
        "max_capacity": 1000,
        "split": "standard",
    }

    campaign_id: Id
    product: Annotated[str, Field(min_length=1, max_length=200)]
    unit_cost: Cents
    fan_base: Count
    moq: Count
    max_capacity: Count
    split: Literal["standard", "simple"] = "standard"
    milestone_shares: dict[Id, Annotated[str, Field(pattern=r"^0?\.\d+$|^1(\.0+)?$")]] | None = None


class ScheduleIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {
        "starts_at": 1796169600000,
        "ends_at": 1796774400000,
        "delivery_at": 1799452800000,
    }

    starts_at: Millis
    ends_at: Millis
    delivery_at: Millis | None = None


class DepositIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"deposit_id": "d-1", "member_id": "m-1001", "amount": 2000}

    deposit_id: Id | None = None
    member_id: Id
    amount: Cents


class LaunchIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"force": False}

    force: bool = False


class CloseIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"reason": "the factory cannot deliver"}

    reason: Text


class PlanIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"due_at": 1797379200000}

    due_at: Millis


class MilestoneIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"evidence": "https://example.com/photos/samples-approved"}

    evidence: Text
    amount: Cents | None = None


class PriceRiseIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {
        "rise_id": "rise-1",
        "new_unit_cost": 3900,
        "evidence": "paper price notice of 2026-11-20",
    }

    rise_id: Id | None = None
    new_unit_cost: Cents
    evidence: Text


class AnswerIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"order_id": "o-1203-1", "accept": True}

    order_id: Id
    accept: bool


class QuestionIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"question_id": "q-1", "topic": "When will the notebooks ship?"}

    question_id: Id | None = None
    topic: Text


def build_api(rt: Runtime) -> FastAPI:
    app = base_app(rt, "flexchain presale")

    def book(cid: str) -> PresaleBook:
        state: PresaleBook = rt.own.state_for(cid)
        return state

    def campaigns() -> list[Campaign]:
        return [c for state in rt.own.all() for c in state.campaigns.values()]

    rt.metrics.registry.register(CampaignCollector(campaigns))

    def precheck(cmd: Message, now: int) -> list[Message]:
        return domain.decide(book(cmd.key), cmd, now)

    async def go(cmd: Message, key: str | None, wait: float) -> JSONResponse:
        return await submit(rt, cmd, precheck, domain.is_refusal, key, wait)

    def known(cid: str) -> Campaign:
        c = book(cid).campaigns.get(cid)
        if c is None:
            raise HTTPException(status_code=404, detail=f"unknown campaign {cid}")
        return c

    @app.post("/campaigns")
    async def create(body: CampaignIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        shares = None
        if body.milestone_shares is not None:
            shares = {m: Decimal(s) for m, s in body.milestone_shares.items()}
            if not shares or sum(shares.values()) != 1:
                raise field_error(["milestone_shares"], "the shares must add up to 1")
        cmd = CreateCampaign(
            campaign_id=body.campaign_id,
            product=body.product,
            unit_cost=body.unit_cost,
            fan_base=body.fan_base,
            moq=body.moq,
            max_capacity=body.max_capacity,
            split=body.split,
            milestone_shares=shares,
        )
        return await go(cmd, idempotency_key, wait)

    @app.post("/campaigns/{cid}/schedule")
    async def schedule(cid: str, body: ScheduleIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(cid)
        if body.ends_at <= body.starts_at:
            raise field_error(["ends_at"], "must come after starts_at")
        return await go(
            ScheduleCampaign(campaign_id=cid, starts_at=body.starts_at, ends_at=body.ends_at, delivery_at=body.delivery_at),
            idempotency_key,
            wait,
        )

    @app.post("/campaigns/{cid}/deposits")
    async def deposit(cid: str, body: DepositIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(cid)
        deposit_id = body.deposit_id or idempotency_key or f"d-{uuid.uuid4().hex[:12]}"
        return await go(
            CollectDeposit(campaign_id=cid, deposit_id=deposit_id, member_id=body.member_id, amount=body.amount),
            idempotency_key,
            wait,
        )

    @app.post("/campaigns/{cid}/launch")
    async def launch(cid: str, body: LaunchIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(cid)
        return await go(LaunchCampaign(campaign_id=cid, force=body.force), idempotency_key, wait)

    @app.post("/campaigns/{cid}/close")
    async def close(cid: str, body: CloseIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(cid)
        return await go(CloseCampaign(campaign_id=cid, reason=body.reason), idempotency_key, wait)

    @app.put("/campaigns/{cid}/milestones/{milestone}/plan")
    async def plan(cid: str, milestone: str, body: PlanIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(cid)
        return await go(PlanMilestone(campaign_id=cid, milestone=milestone, due_at=body.due_at), idempotency_key, wait)

    @app.post("/campaigns/{cid}/milestones/{milestone}")
    async def milestone(
        cid: str, milestone: str, body: MilestoneIn, idempotency_key: IdemKey = None, wait: Wait = 5.0
    ) -> JSONResponse:
        known(cid)
        return await go(
            RecordMilestone(campaign_id=cid, milestone=milestone, evidence=body.evidence, amount=body.amount),
            idempotency_key,
            wait,
        )

    @app.post("/campaigns/{cid}/price-rises")
    async def price_rise(cid: str, body: PriceRiseIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(cid)
        rise_id = body.rise_id or idempotency_key or f"rise-{uuid.uuid4().hex[:8]}"
        return await go(
            RecordPriceRise(campaign_id=cid, rise_id=rise_id, new_unit_cost=body.new_unit_cost, evidence=body.evidence),
            idempotency_key,
            wait,
        )

    @app.post("/campaigns/{cid}/price-rises/{rise_id}/answers")
    async def answer(cid: str, rise_id: str, body: AnswerIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(cid)
        return await go(
            AnswerPriceRise(campaign_id=cid, rise_id=rise_id, order_id=body.order_id, accept=body.accept), idempotency_key, wait
        )

    @app.post("/campaigns/{cid}/supplier/questions")
    async def ask(cid: str, body: QuestionIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(cid)
        qid = body.question_id or idempotency_key or f"q-{uuid.uuid4().hex[:8]}"
        return await go(AskSupplier(campaign_id=cid, question_id=qid, topic=body.topic), idempotency_key, wait)

    @app.post("/campaigns/{cid}/supplier/questions/{qid}/answer")
    async def supplier_answer(cid: str, qid: str, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(cid)
        return await go(RecordSupplierAnswer(campaign_id=cid, question_id=qid), idempotency_key, wait)

    @app.get("/campaigns", **reads(list[CampaignRow]))
    async def list_campaigns() -> list[dict[str, Any]]:
        now, cfg = rt.now(), new_state().config
        async with rt.consistent():
            return views.campaign_rows(campaigns(), now, cfg)

    async def past_campaign(cid: str, at: int) -> tuple[Campaign, PastStates]:
        """R-X-4: the campaign as it stood at business time `at`, folded from the log."""
        return await past_entity(rt, at, cid, lambda s: s.campaigns.get(cid), "campaign")

    @app.get("/campaigns/{cid}", **reads(CampaignAnswer, not_found=True))
    async def get_campaign(cid: str, as_of: AsOf = None) -> dict[str, Any]:
        if as_of is not None:
            c, past = await past_campaign(cid, as_of)
            return {**views.campaign_view(c, as_of, past.state_for(cid).config), "as_of": past.replayed.summary()}
        async with rt.consistent():
            return views.campaign_view(known(cid), rt.now(), book(cid).config)

    @app.get("/campaigns/{cid}/pledges", **reads(dict[str, Pledge], not_found=True))
    async def pledges(cid: str, as_of: AsOf = None) -> dict[str, Any]:
        if as_of is not None:
            return views.pledges_view((await past_campaign(cid, as_of))[0])
        async with rt.consistent():
            return views.pledges_view(known(cid))

    @app.get("/campaigns/{cid}/ledger", **reads(Ledger, not_found=True))
    async def ledger(cid: str, limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000) -> dict[str, Any]:
        async with rt.consistent():  # copy under the lock, format outside it: the processor waits on it
            c = known(cid)
            ledger = list(c.ledger)
            totals = {"received": c.received, "held": c.held, "released": c.released, "refunded": c.refunded}
            balanced, uncovered = c.balanced(), c.uncovered
        lines = views.ledger_lines(ledger)
        return {
            "campaign_id": cid,
            "lines": lines[-limit:],
            "total_lines": len(lines),
            "totals": totals,
            "uncovered_refunds": uncovered,
            "balanced": balanced and all(line["balanced"] for line in lines),
        }

    return app
