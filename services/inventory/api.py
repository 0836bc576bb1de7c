"""Inventory HTTP API: stock commands (validated, then published to `inventory.commands`) and
queries on the read model (stock of a sku per warehouse, its plans and suggestions)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from flexchain.answers import reads
from flexchain.api import MAX_COUNT, MAX_UNITS, AsOf, StrictModel, past_entity, past_states, submit
from flexchain.host import Runtime, base_app
from flexchain.messages import Message
from services.inventory import domain, stock_math, views
from services.inventory.answers import LowStockSuggestion, SkuView, SlowMover
from services.inventory.messages import (
    ConfigureStockPolicy,
    EndLiveStream,
    InventoryCommandRejected,
    ReceiveStock,
    RegisterSku,
    ScheduleLiveStream,
    SetSafetyStock,
)

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
Wait = Annotated[float, Query(ge=0, le=30, description="seconds to wait for the resulting events")]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]
Amount = Annotated[str, Field(pattern=r"^\d{1,6}(\.\d{1,4})?$", description='a decimal >= 0 as a string, e.g. "1.5"')]
Rate = Annotated[str, Field(pattern=r"^(0(\.\d{1,4})?|1(\.0{1,4})?)$", description='between 0 and 1, e.g. "0.01"')]
Days = Annotated[int, Field(ge=1, le=stock_math.MAX_WINDOW_DAYS)]


class SkuIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {
        "sku": "mask-01",
        "name": "Hydrating mask",
        "is_gift": False,
        "low_stock_floor": 20,
    }

    sku: Name
    name: Annotated[str, Field(min_length=1, max_length=200)]
    is_gift: bool = False
    low_stock_floor: Annotated[int, Field(ge=0, le=MAX_UNITS)] | None = None


class ReceiptIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"warehouse": "hz-1", "qty": 100, "reference": "PO-2026-118"}

    warehouse: Name
    qty: Annotated[int, Field(gt=0, le=MAX_UNITS)]
    reference: Annotated[str, Field(max_length=200)] = ""


class SafetyStockIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"units": 30}

    units: Annotated[int, Field(ge=0, le=MAX_UNITS)]


class LiveStreamIn(StrictModel):
    EXAMPLE: ClassVar[dict[str, Any] | None] = {"stream_id": "live-1203", "expected_sales": 300}

    stream_id: Name
    expected_sales: Annotated[int, Field(ge=0, le=MAX_UNITS)]


class StockPolicyIn(StrictModel):
    """R-INV-4, R-INV-6, R-INV-7: the sku's planning figures (the whole policy: omitted = default)."""

    EXAMPLE: ClassVar[dict[str, Any] | None] = {
        "lead_time_days": 5,
        "cover_factor": "1.5",
        "gift_tier": 2,
        "forecast_daily_units": "12",
        "monthly_visitors": 40000,
        "conversion_rate": "0.02",
    }

    lead_time_days: Annotated[int, Field(ge=0, le=stock_math.MAX_LEAD_TIME_DAYS)]
    cover_factor: Amount = "1"
    gift_tier: Literal[1, 2, 3] | None = None
    forecast_daily_units: Amount | None = None
    monthly_visitors: Annotated[int, Field(ge=0, le=MAX_COUNT)] = 0
    conversion_rate: Rate = "0"
    velocity_window_days: Days | None = None
    slow_mover_window_days: Days | None = None
    sell_through_floor: Rate | None = None

    def command(self, sku: str) -> ConfigureStockPolicy:
        def dec(v: str | None) -> Decimal | None:
            return None if v is None else Decimal(v)

        return ConfigureStockPolicy(
            sku=sku,
            lead_time_days=self.lead_time_days,
            cover_factor=Decimal(self.cover_factor),
            gift_tier=self.gift_tier,
            forecast_daily_units=dec(self.forecast_daily_units),
            monthly_visitors=self.monthly_visitors,
            conversion_rate=Decimal(self.conversion_rate),
            velocity_window_days=self.velocity_window_days,
            slow_mover_window_days=self.slow_mover_window_days,
            sell_through_floor=dec(self.sell_through_floor),
        )


def _refusal(e: Message) -> bool:
    return isinstance(e, InventoryCommandRejected)


def build_api(rt: Runtime) -> FastAPI:
    app = base_app(rt, "flexchain inventory")

    def partition(sku: str) -> domain.Inventory:
        state: domain.Inventory = rt.own.state_for(sku)
        return state

    def every_sku() -> list[domain.Sku]:
        return [item for state in rt.own.all() for item in state.skus.values()]

    rt.metrics.gauge("low_stock_skus", "Skus whose available stock is below their threshold", []).set_function(
        lambda: sum(1 for s in every_sku() if s.alert_active)
    )
    rt.metrics.gauge("slow_moving_skus", "Skus inside a slow-mover episode (R-INV-6)", []).set_function(
        lambda: sum(1 for s in every_sku() if s.slow_moving)
    )

    def precheck(cmd: Message, now: int) -> list[Message]:
        return domain.decide(partition(cmd.key), cmd, now)

    def known(sku: str) -> domain.Sku:
        item = partition(sku).skus.get(sku)
        if item is None:
            raise HTTPException(status_code=404, detail=f"unknown sku {sku}")
        return item

    async def go(cmd: Message, key: str | None, wait: float) -> JSONResponse:
        return await submit(rt, cmd, precheck, _refusal, key, wait)

    @app.post("/skus")
    async def register(body: SkuIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        return await go(
            RegisterSku(sku=body.sku, name=body.name, is_gift=body.is_gift, low_stock_floor=body.low_stock_floor),
            idempotency_key,
            wait,
        )

    @app.post("/skus/{sku}/receipts")
    async def receive(sku: str, body: ReceiptIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(sku)
        return await go(
            ReceiveStock(sku=sku, warehouse=body.warehouse, qty=body.qty, reference=body.reference), idempotency_key, wait
        )

    @app.put("/skus/{sku}/safety-stock")
    async def safety(sku: str, body: SafetyStockIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(sku)
        return await go(SetSafetyStock(sku=sku, units=body.units), idempotency_key, wait)

    @app.put("/skus/{sku}/stock-policy")
    async def stock_policy(sku: str, body: StockPolicyIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(sku)
        return await go(body.command(sku), idempotency_key, wait)

    @app.post("/skus/{sku}/live-streams")
    async def stream(sku: str, body: LiveStreamIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(sku)
        return await go(
            ScheduleLiveStream(sku=sku, stream_id=body.stream_id, expected_sales=body.expected_sales), idempotency_key, wait
        )

    @app.delete("/skus/{sku}/live-streams/{stream_id}")
    async def end_stream(sku: str, stream_id: str, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(sku)
        return await go(EndLiveStream(sku=sku, stream_id=stream_id), idempotency_key, wait)

    @app.get("/skus", **reads(list[SkuView]))
    async def list_skus(as_of: AsOf = None) -> list[dict[str, Any]]:
        if as_of is not None:  # R-X-4: the catalogue as it stood at that business time
            past = await past_states(rt, as_of)
            skus: list[domain.Sku] = [item for state in past.all() for item in state.skus.values()]
            return [views.sku_view(s, as_of) for s in sorted(skus, key=lambda s: s.sku)]
        async with rt.consistent():
            return [views.sku_view(s, rt.now()) for s in sorted(every_sku(), key=lambda s: s.sku)]

    @app.get("/skus/{sku}", **reads(SkuView, not_found=True))
    async def get_sku(sku: str, as_of: AsOf = None) -> dict[str, Any]:
        if as_of is not None:  # R-X-4
            item, past = await past_entity(rt, as_of, sku, lambda s: s.skus.get(sku), "sku")
            return {**views.sku_view(item, as_of), "as_of": past.replayed.summary()}
        async with rt.consistent():
            return views.sku_view(known(sku), rt.now())

    @app.get("/suggestions", **reads(list[LowStockSuggestion]))
    async def suggestions() -> list[dict[str, Any]]:
        """R-INV-5: the skus below their threshold now, with what their alert suggested."""
        async with rt.consistent():
            return views.low_stock(every_sku())

    @app.get("/slow-movers", **reads(list[SlowMover]))
    async def slow_movers() -> list[dict[str, Any]]:
        """R-INV-6: the skus inside a slow-mover episode."""
        async with rt.consistent():
            return views.slow_movers(every_sku())

    return app
