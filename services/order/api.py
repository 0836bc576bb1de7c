"""Order HTTP API: order commands (validated, then published to `order.commands`) and queries on
the read model (an order with its history)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar, Literal

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from flexchain.answers import reads
from flexchain.api import MAX_CENTS, MAX_TIME_MS, MAX_UNITS, AsOf, StrictModel, field_error, past_entity, submit
from flexchain.auth import SERVICE, allow
from flexchain.host import Runtime, base_app
from flexchain.messages import Message
from services.order import domain, views
from services.order.answers import GiftRule, Order
from services.order.app import OrderView
from services.order.giftstats import GiftCollector
from services.order.messages import (
    GIFT_CHANNELS,
    AnnounceSurpriseWindow,
    CancelOrder,
    ConfirmDelivery,
    DefineGiftRule,
    GiftRuleCommandRejected,
    GrantInteractionGift,
    OrderCommandRejected,
    OrderLine,
    PayOrder,
    PlaceOrder,
    RefundLine,
    RefundOrder,
    RetireGiftRule,
    ReviewGiftRule,
    ShipOrder,
)

Id = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
Cents = Annotated[int, Field(ge=0, le=MAX_CENTS, description="an amount in cents (fen): a whole number")]
Qty = Annotated[int, Field(gt=0, le=MAX_UNITS, description="a positive whole number of units")]
Wait = Annotated[float, Query(ge=0, le=30, description="seconds to wait for the resulting events")]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]
CATALOGUE_WAIT_S = 5.0  # how long an unknown sku waits for the catalogue to catch up before a 422


class LineIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"sku": "mask-01", "qty": 2, "unit_price": 5900}

    sku: Id
    qty: Qty
    unit_price: Annotated[
        int | None,
        Field(
            ge=0,
            le=MAX_CENTS,
            description="cents (fen) per unit; required, except on a presale campaign's order "
            "(`campaign_id`), which is priced by the campaign's phase price — omit it there (ignored if given)",
        ),
    ] = None


class OrderIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {
        "order_id": "o-1203-1",
        "member_id": "m-1001",
        "channel": "live",
        "lines": [{"sku": "mask-01", "qty": 2, "unit_price": 5900}],
        "distributor_id": "lin",
    }

    order_id: Id | None = None
    member_id: Id
    channel: Literal["live", "short_video", "article", "mini_program"]
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=100)]
    distributor_id: Id | None = None
    campaign_id: Id | None = None
    group_id: Id | None = None


class PaymentIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"amount": 11800, "payment_ref": "wx-4200001234"}

    amount: Cents
    payment_ref: Annotated[str, Field(min_length=1, max_length=200)]


class ShipmentIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"tracking": "SF1234567890"}

    tracking: Annotated[str, Field(min_length=1, max_length=200)]


class CancelIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"reason": "changed my mind"}

    reason: Annotated[str, Field(min_length=1, max_length=500)]


class RefundLineIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"sku": "mask-01", "qty": 1, "reason": "defect"}

    sku: Id
    qty: Qty
    reason: Literal["no_reason", "defect", "damaged", "late"]


class RefundIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"refund_id": "r-1", "lines": [{"sku": "mask-01", "qty": 1, "reason": "defect"}]}

    refund_id: Id | None = None
    lines: Annotated[list[RefundLineIn], Field(min_length=1, max_length=100)]


class GiftRuleIn(StrictModel):
    """A gift rule (R-ORD-3..5); costs are unit costs in cents."""

    EXAMPLE: ClassVar[dict[str, Any] | None] = {
        "rule_id": "mask-trial",
        "tier": "base",
        "main_sku": "mask-01",
        "main_unit_cost": 2000,
        "gift_sku": "serum-mini",
        "gift_unit_cost": 300,
        "gift_qty": 1,
        "converts_to": "serum-01",
        "channels": ["live", "short_video"],
    }

    rule_id: Id
    tier: Literal["base", "interaction", "surprise"]
    main_sku: Id
    main_unit_cost: Cents
    gift_sku: Id
    gift_unit_cost: Cents
    gift_qty: Qty = 1
    fallback_sku: Id | None = None
    fallback_unit_cost: Cents = 0
    consumable: bool = False
    converts_to: Id | None = Field(None, description="the full-size product whose purchase counts as conversion")
    channels: Annotated[list[Literal["live", "short_video", "article", "mini_program"]], Field(min_length=1)] = Field(
        default_factory=lambda: list(GIFT_CHANNELS)
    )


class MemberIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"member_id": "m-1001"}

    member_id: Id


class WindowIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"starts_at": 1796288400000, "ends_at": 1796292000000}

    starts_at: Annotated[int, Field(ge=0, le=MAX_TIME_MS, description="business time, ms since the epoch (UTC)")]
    ends_at: Annotated[int, Field(ge=0, le=MAX_TIME_MS, description="business time, ms since the epoch (UTC); exclusive")]


def _refusal(e: Message) -> bool:
    return isinstance(e, (OrderCommandRejected, GiftRuleCommandRejected))


def build_api(rt: Runtime) -> FastAPI:
    app = base_app(rt, "flexchain order")
    view: OrderView = rt.view
    rt.metrics.registry.register(GiftCollector(lambda: view.gifts))

    def book(order_id: str) -> domain.OrderBook:
        state: domain.OrderBook = rt.own.state_for(order_id)
        return state

    def precheck(cmd: Message, now: int) -> list[Message]:
        return domain.decide(book(cmd.key), cmd, now)

    async def go(cmd: Message, key: str | None, wait: float) -> JSONResponse:
        return await submit(rt, cmd, precheck, _refusal, key, wait)

    def known(order_id: str) -> domain.Order:
        order = book(order_id).orders.get(order_id)
        if order is None:
            raise HTTPException(status_code=404, detail=f"unknown order {order_id}")
        return order

    async def catalogue_has(skus: list[str]) -> set[str]:
        """The skus of `skus` the catalogue knows — read-your-writes: a sku inventory has answered for
        (POST /skus returned 200) before this call is known, even if the catalogue was behind."""
        if any(sku not in view.skus for sku in skus) and not await rt.projection.catch_up(CATALOGUE_WAIT_S):
            # behind, not wrong: "unknown sku" (422) would blame the client for our lag
            raise HTTPException(status_code=503, detail="the sku catalogue is behind inventory's events; try again")
        return {sku for sku in skus if sku in view.skus}

    @app.post("/orders", **allow(SERVICE))
    async def place(body: OrderIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        if body.campaign_id is None:  # a campaign prices its own product
            for i, line in enumerate(body.lines):
                if line.unit_price is None:
                    raise field_error(["lines", i, "unit_price"], "unit_price is required (only a campaign's order may omit it)")
            known_skus = await catalogue_has([line.sku for line in body.lines])
            for i, line in enumerate(body.lines):
                if line.sku not in known_skus:
                    raise field_error(["lines", i, "sku"], f"unknown sku {line.sku}")
        # a campaign's line is priced when presale answers (the phase price, R-PRE-3); until then 0
        lines = [OrderLine(sku=line.sku, qty=line.qty, unit_price=line.unit_price or 0) for line in body.lines]
        problem = domain.validate_lines(lines)
        if problem:
            raise field_error(["lines"], problem)
        order_id = body.order_id or idempotency_key or f"o-{uuid.uuid4().hex[:12]}"
        cmd = PlaceOrder(
            order_id=order_id,
            member_id=body.member_id,
            channel=body.channel,
            lines=lines,
            distributor_id=body.distributor_id,
            campaign_id=body.campaign_id,
            group_id=body.group_id,
        )
        return await go(cmd, idempotency_key, wait)

    @app.post("/orders/{order_id}/payment", **allow(SERVICE))
    async def pay(order_id: str, body: PaymentIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(order_id)
        return await go(PayOrder(order_id=order_id, amount=body.amount, payment_ref=body.payment_ref), idempotency_key, wait)

    @app.post("/orders/{order_id}/shipment")
    async def ship(order_id: str, body: ShipmentIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(order_id)
        return await go(ShipOrder(order_id=order_id, tracking=body.tracking), idempotency_key, wait)

    @app.post("/orders/{order_id}/delivery")
    async def deliver(order_id: str, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(order_id)
        return await go(ConfirmDelivery(order_id=order_id), idempotency_key, wait)

    @app.post("/orders/{order_id}/cancellation", **allow(SERVICE))
    async def cancel(order_id: str, body: CancelIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(order_id)
        return await go(CancelOrder(order_id=order_id, reason=body.reason), idempotency_key, wait)

    @app.post("/orders/{order_id}/refunds")
    async def refund(order_id: str, body: RefundIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(order_id)
        refund_id = body.refund_id or idempotency_key or f"r-{uuid.uuid4().hex[:12]}"
        lines = [RefundLine(sku=line.sku, qty=line.qty, reason=line.reason) for line in body.lines]
        return await go(RefundOrder(order_id=order_id, refund_id=refund_id, lines=lines), idempotency_key, wait)

    # --- gift rules (R-ORD-3..6) -------------------------------------------------------------------

    def rule_view(rule_id: str) -> dict[str, Any]:
        rule = book(rule_id).gift_rules.get(rule_id)
        if rule is None:
            raise HTTPException(status_code=404, detail=f"unknown gift rule {rule_id}")
        figures = view.gifts.performance(rule_id) if rule_id in view.gifts.known() else None
        copies = [b.rule_replicas.get(rule_id) for b in rt.own.all()]
        return views.rule_view(rule, copies, rule_id in book(rule_id).reviews_open, figures)

    @app.post("/gift-rules")
    async def define_rule(body: GiftRuleIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        named = {name: getattr(body, name) for name in ("main_sku", "gift_sku", "fallback_sku", "converts_to")}
        known_skus = await catalogue_has([sku for sku in named.values() if sku is not None])
        for name, sku in named.items():
            if sku is not None and sku not in known_skus:
                raise field_error([name], f"unknown sku {sku}")
        cmd = DefineGiftRule(**body.model_dump())
        return await go(cmd, idempotency_key, wait)

    @app.post("/gift-rules/{rule_id}/members")
    async def grant(rule_id: str, body: MemberIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        return await go(GrantInteractionGift(rule_id=rule_id, member_id=body.member_id), idempotency_key, wait)

    @app.post("/gift-rules/{rule_id}/surprise-window")
    async def window(rule_id: str, body: WindowIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        return await go(
            AnnounceSurpriseWindow(rule_id=rule_id, starts_at=body.starts_at, ends_at=body.ends_at), idempotency_key, wait
        )

    @app.post("/gift-rules/{rule_id}/retirement")
    async def retire(rule_id: str, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        return await go(RetireGiftRule(rule_id=rule_id), idempotency_key, wait)

    @app.post("/gift-rules/{rule_id}/review")
    async def review(rule_id: str, wait: Wait = 5.0) -> JSONResponse:
        """Send the rule's current figures to its aggregate now (the service also does it by itself)."""
        async with rt.consistent():
            rule_view(rule_id)
            perf = view.gifts.performance(rule_id) if rule_id in view.gifts.known() else None
        if perf is None:
            raise HTTPException(status_code=409, detail={"command": "ReviewGiftRule", "reason": "no figures for the rule yet"})
        return await go(ReviewGiftRule(rule_id=rule_id, performance=perf), None, wait)

    @app.get("/gift-rules", **reads(list[GiftRule]))
    async def list_rules() -> list[dict[str, Any]]:
        async with rt.consistent():
            return [rule_view(rule_id) for rule_id in view.gifts.known() if book(rule_id).gift_rules.get(rule_id)]

    @app.get("/gift-rules/{rule_id}", **reads(GiftRule, not_found=True))
    async def get_rule(rule_id: str) -> dict[str, Any]:
        async with rt.consistent():
            return rule_view(rule_id)

    @app.get("/orders/{order_id}", **reads(Order, not_found=True), **allow(SERVICE))
    async def get_order(order_id: str, as_of: AsOf = None) -> dict[str, Any]:
        if as_of is not None:  # R-X-4: the order as it stood at that business time
            order, past = await past_entity(rt, as_of, order_id, lambda s: s.orders.get(order_id), "order")
            return {**views.order_view(order), "as_of": past.replayed.summary()}
        async with rt.consistent():
            return views.order_view(known(order_id))

    return app
