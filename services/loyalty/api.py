"""Loyalty HTTP API: member commands (validated, then published to `loyalty.commands`) and queries on
the read model (a member's tier, points, ledger, stage and segment; members by stage or segment)."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any, ClassVar, Literal

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from flexchain.answers import Clock, reads
from flexchain.api import MAX_UNITS, AsOf, StrictModel, field_error, past_model, submit
from flexchain.host import Runtime, base_app, clock_view
from flexchain.messages import Message
from services.loyalty import domain, views
from services.loyalty.answers import Ledger, MemberAnswer, MemberPage, UsageCycles
from services.loyalty.members import Member
from services.loyalty.messages import (
    SEGMENTS,
    STAGES,
    TIERS,
    ConfigureUsageCycle,
    JoinMember,
    LoyaltyCommandRejected,
    RecordBehaviour,
    RedeemPoints,
)
from services.loyalty.rules import day_of
from services.loyalty.views import LoyaltyView

CATCH_UP_S = 5.0  # how long a member unknown to the read model waits for it to catch up

Id = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
Wait = Annotated[float, Query(ge=0, le=30, description="seconds to wait for the resulting events")]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]
Offset = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=500)]


class JoinIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"member_id": "m-1001", "referrer_id": "m-0042"}

    member_id: Id
    referrer_id: Id | None = None


class BehaviourIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"action": "checkin", "reference": "2026-12-03"}

    action: Literal["checkin", "share", "review"]
    reference: Annotated[str, Field(max_length=200)] = ""


class RedeemIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"points": 500, "reward": "5 CNY coupon", "redemption_id": "rd-77"}

    points: Annotated[int, Field(gt=0, le=MAX_UNITS, description="a positive whole number of points")]
    reward: Annotated[str, Field(min_length=1, max_length=200)]
    redemption_id: Id | None = None


class CycleIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"cycle_days": 30}

    cycle_days: Annotated[int, Field(ge=0, le=domain.MAX_CYCLE_DAYS, description="days one unit lasts; 0: not a consumable")]


def _refusal(e: Message) -> bool:
    return isinstance(e, LoyaltyCommandRejected)


def build_api(rt: Runtime) -> FastAPI:
    app = base_app(rt, "flexchain loyalty")
    view: LoyaltyView = rt.view
    st = view.state
    members = rt.metrics.gauge("members", "Members per life-cycle stage (R-LOY-3)", ["stage"])

    def in_stage(stage: str) -> int:
        return len(view.by_stage[stage])

    def in_tier(tier: int) -> int:
        return st.tier.count(tier)

    for s in STAGES:
        members.labels(s).set_function(partial(in_stage, s))
    tiers = rt.metrics.gauge("members_by_tier", "Members per tier (R-LOY-1)", ["tier"])
    for i, name in enumerate(TIERS):
        tiers.labels(name).set_function(partial(in_tier, i))
    points = rt.metrics.gauge("points", "Points held by members: pending or in batches (R-LOY-2)", ["state"])
    points.labels("pending").set_function(lambda: sum(st.pending))
    points.labels("held").set_function(st.held_points)

    def precheck(cmd: Message, now: int) -> list[Message]:
        return domain.decide(st, cmd, now)

    async def go(cmd: Message, key: str | None, wait: float) -> JSONResponse:
        return await submit(rt, cmd, precheck, _refusal, key, wait)

    async def joined(member_id: str) -> bool:
        """Whether the member has joined — read-your-writes: a join answered 200 before this call
        (by any instance) counts, even if the read model had not folded it yet (503 if it cannot
        catch up in time)."""
        if member_id not in st.rows and not await rt.projection.catch_up(CATCH_UP_S):
            raise HTTPException(status_code=503, detail="the member read model is behind the event log; try again")
        return member_id in st.rows

    async def known(member_id: str) -> Member:
        m = st.member(member_id) if await joined(member_id) else None
        if m is None:
            raise HTTPException(status_code=404, detail=f"unknown member {member_id}")
        return m

    @app.post("/members")
    async def join(body: JoinIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        if body.referrer_id is not None and not await joined(body.referrer_id):
            raise field_error(["referrer_id"], f"unknown member {body.referrer_id}")
        return await go(JoinMember(member_id=body.member_id, referrer_id=body.referrer_id), idempotency_key, wait)

    @app.post("/members/{member_id}/behaviours")
    async def behave(member_id: str, body: BehaviourIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        await known(member_id)
        return await go(RecordBehaviour(member_id=member_id, action=body.action, reference=body.reference), idempotency_key, wait)

    @app.post("/members/{member_id}/redemptions")
    async def redeem(member_id: str, body: RedeemIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        await known(member_id)
        rid = body.redemption_id or idempotency_key or f"rd-{uuid.uuid4().hex[:12]}"
        return await go(
            RedeemPoints(member_id=member_id, redemption_id=rid, points=body.points, reward=body.reward), idempotency_key, wait
        )

    @app.put("/usage-cycles/{sku}")
    async def cycle(sku: str, body: CycleIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        return await go(ConfigureUsageCycle(sku=sku, cycle_days=body.cycle_days), idempotency_key, wait)

    @app.get("/usage-cycles", **reads(UsageCycles))
    async def cycles() -> dict[str, Any]:
        return {"configured": dict(sorted(view.cycles.items())), "applied": dict(sorted(st.cycles.items()))}

    @app.get("/clock", **reads(Clock))
    async def clock() -> dict[str, Any]:
        """The business time this instance stamps on commands, and its business date (the merchant's
        time zone, `FLEXCHAIN_LOYALTY_*`)."""
        return clock_view(rt, lambda now: day_of(now, view.config))

    @app.get("/members/{member_id}", **reads(MemberAnswer, not_found=True))
    async def get_member(member_id: str, as_of: AsOf = None) -> dict[str, Any]:
        if as_of is None:
            return views.member_view(view, await known(member_id), rt.now())
        # R-X-4: the same read model, folded up to that business time
        folded, replayed = await past_model(rt, "members", as_of, lambda _parts: views.PastView(view.config))
        past = folded.view
        m = past.state.member(member_id)
        if m is None:
            raise HTTPException(status_code=404, detail=f"no member {member_id} as of business time {as_of}")
        return {**views.member_view(past, m, as_of), "as_of": replayed.summary()}

    @app.get("/members/{member_id}/ledger", **reads(Ledger, not_found=True))
    async def ledger(member_id: str, offset: Offset = 0, limit: Limit = 100) -> dict[str, Any]:
        await known(member_id)
        return views.ledger_page(view, member_id, offset, limit)

    @app.get("/members", **reads(MemberPage))
    async def list_members(
        stage: Literal[STAGES] | None = None,  # type: ignore[valid-type]
        segment_: Annotated[Literal[SEGMENTS] | None, Query(alias="segment")] = None,  # type: ignore[valid-type]
        offset: Offset = 0,
        limit: Limit = 50,
    ) -> dict[str, Any]:
        if stage is None and segment_ is None:
            raise HTTPException(status_code=422, detail="give a stage or a segment")
        return views.members_page(view, stage, segment_, offset, limit)

    return app
