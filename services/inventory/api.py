"""Inventory HTTP API: stock commands (validated, then published to `inventory.commands`) and
queries on the read model (stock of a sku per warehouse)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from flexchain.api import StrictModel, submit
from flexchain.host import Runtime, base_app
from flexchain.messages import Message
from services.inventory import domain
from services.inventory.messages import (
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


class SkuIn(StrictModel):
    sku: Name
    name: Annotated[str, Field(min_length=1, max_length=200)]
    is_gift: bool = False
    low_stock_floor: Annotated[int, Field(ge=0)] | None = None


class ReceiptIn(StrictModel):
    warehouse: Name
    qty: Annotated[int, Field(gt=0)]
    reference: Annotated[str, Field(max_length=200)] = ""


class SafetyStockIn(StrictModel):
    units: Annotated[int, Field(ge=0)]


class LiveStreamIn(StrictModel):
    stream_id: Name
    expected_sales: Annotated[int, Field(ge=0)]


def _refusal(e: Message) -> bool:
    return isinstance(e, InventoryCommandRejected)


def sku_view(item: domain.Sku) -> dict[str, Any]:
    return {
        "sku": item.sku,
        "name": item.name,
        "is_gift": item.is_gift,
        "on_hand": item.on_hand,
        "reserved": item.reserved,
        "available": item.available,
        "threshold": item.threshold(),
        "low_stock_alert": item.alert_active,
        "warehouses": {
            name: {"on_hand": w.on_hand, "reserved": w.reserved, "available": w.available, "clearance": w.clearance}
            for name, w in sorted(item.warehouses.items())
        },
        "reservations": {order: dict(held) for order, held in item.reservations.items()},
    }


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
        return await go(RegisterSku(body.sku, body.name, body.is_gift, body.low_stock_floor), idempotency_key, wait)

    @app.post("/skus/{sku}/receipts")
    async def receive(sku: str, body: ReceiptIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(sku)
        return await go(ReceiveStock(sku, body.warehouse, body.qty, body.reference), idempotency_key, wait)

    @app.put("/skus/{sku}/safety-stock")
    async def safety(sku: str, body: SafetyStockIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(sku)
        return await go(SetSafetyStock(sku, body.units), idempotency_key, wait)

    @app.post("/skus/{sku}/live-streams")
    async def stream(sku: str, body: LiveStreamIn, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(sku)
        return await go(ScheduleLiveStream(sku, body.stream_id, body.expected_sales), idempotency_key, wait)

    @app.delete("/skus/{sku}/live-streams/{stream_id}")
    async def end_stream(sku: str, stream_id: str, idempotency_key: IdemKey = None, wait: Wait = 5.0) -> JSONResponse:
        known(sku)
        return await go(EndLiveStream(sku, stream_id), idempotency_key, wait)

    @app.get("/skus")
    async def list_skus() -> list[dict[str, Any]]:
        async with rt.consistent():
            return [sku_view(s) for s in sorted(every_sku(), key=lambda s: s.sku)]

    @app.get("/skus/{sku}")
    async def get_sku(sku: str) -> dict[str, Any]:
        async with rt.consistent():
            return sku_view(known(sku))

    return app
