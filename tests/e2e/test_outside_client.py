"""The contract as a client outside the project meets it: it knows only the HTTP APIs, the AsyncAPI
document (`flexchain asyncapi`) and its own Kafka and Avro libraries (aiokafka, fastavro) — never
the project's Python code.

- Business time (R-X-1): ticks an outside scheduler publishes move the timers and `GET /clock` alike.
- A sku inventory has answered for is never refused as unknown by the order service, however soon
  the order follows its registration (read-your-writes).
- A member loyalty has answered for can refer and act at once (read-your-writes within a service).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import fastavro
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from tests.support import Suite, eventually, get, post, run

# README "Security": a client sends its token as `Authorization: Bearer …` (here the one the
# environment gives, as a deployment would)
AUTH = {"Authorization": f"Bearer {os.environ['FLEXCHAIN_TOKEN']}"}

pytestmark = pytest.mark.broker

T0 = 1_790_000_000_000
MIN = 60_000


def asyncapi(tmp_path: Path) -> dict[str, Any]:
    """The published AsyncAPI document, as a subscriber would download it."""
    out = tmp_path / "asyncapi.json"
    subprocess.run([sys.executable, "-m", "flexchain.cli", "asyncapi", "--out", str(out)], check=True, capture_output=True)
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


class Scheduler:
    """Someone else's scheduler: publishes `ClockTicked` with aiokafka and fastavro from the AsyncAPI
    document — its own producer name, no `type` header, one event id per tick."""

    def __init__(self, bootstrap: str, doc: dict[str, Any], prefix: str) -> None:
        message = doc["components"]["messages"]["clock.ClockTicked"]
        self.schema = fastavro.parse_schema(message["payload"]["schema"])
        self.schema_id: int = message["x-flexchain-local-schema-id"]
        self.topic = prefix + doc["channels"]["clock-ticks"]["address"]
        self.bootstrap = bootstrap

    def encode(self, at: int) -> bytes:
        tick_id = str(uuid.uuid4())
        record = {
            "envelope": {
                "event_id": tick_id,
                "event_type": "ClockTicked",
                "aggregate_id": "main",
                "aggregate_version": 0,
                "business_time": at,
                "correlation_id": tick_id,
                "causation_id": None,
                "producer": "acme-scheduler",
            },
            "clock_id": "main",
            "time": at,
        }
        body = io.BytesIO()
        fastavro.schemaless_writer(body, self.schema, record)
        return b"\x00" + self.schema_id.to_bytes(4, "big") + body.getvalue()

    def tick(self, at: int) -> None:
        async def go() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
            await producer.start()
            try:
                await producer.send_and_wait(self.topic, self.encode(at), key=b"main")
            finally:
                await producer.stop()

        run(go())


def _status(order: str, oid: str) -> str:
    return str(get(f"{order}/orders/{oid}")["status"])


def test_ticks_from_an_outside_scheduler_move_the_timers_and_the_clock_alike(
    kafka_bootstrap: str, prefix: str, data_dir: Path, tmp_path: Path
) -> None:
    """R-X-1, R-ORD-2: one rule for both — an order left unpaid 31 minutes is cancelled by the timers,
    and every `/clock` shows those 31 minutes, so the next order's payment is taken at that time."""
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    scheduler = Scheduler(kafka_bootstrap, asyncapi(tmp_path), prefix)
    try:
        inv, order = suite.start("inventory").url, suite.start("order").url

        def at(t: int) -> None:
            scheduler.tick(t)
            for url in (inv, order):
                eventually(lambda url=url: get(f"{url}/clock")["business_time"] == t, what=f"{url}/clock at the tick {t}")

        at(T0)
        assert post(f"{inv}/skus", {"sku": "soap", "name": "Soap", "low_stock_floor": 0}).status_code == 200
        assert post(f"{inv}/skus/soap/receipts", {"warehouse": "w1", "qty": 10}).status_code == 200
        for oid in ("paid", "idle"):
            line = {"sku": "soap", "qty": 1, "unit_price": 900}
            placed = post(f"{order}/orders", {"order_id": oid, "member_id": "m", "channel": "live", "lines": [line]})
            assert placed.status_code == 200, placed.text
        eventually(lambda: _status(order, "paid") == "confirmed" and _status(order, "idle") == "confirmed")

        at(T0 + 10 * MIN)
        assert post(f"{order}/orders/paid/payment", {"amount": 900, "payment_ref": "p1"}).status_code == 200
        at(T0 + 31 * MIN)
        eventually(lambda: _status(order, "idle") == "cancelled", what="the unpaid order cancelled by the outside tick")
        assert _status(order, "paid") == "paid"

        # an order placed now is stamped with the time the timers run on: its 30-minute hold starts
        # at T0 + 31 min, so its payment is taken (with `/clock` behind, it would be refused)
        late = {"order_id": "late", "member_id": "m", "channel": "live", "lines": [{"sku": "soap", "qty": 1, "unit_price": 900}]}
        assert post(f"{order}/orders", late).status_code == 200
        eventually(lambda: _status(order, "late") == "confirmed")
        assert post(f"{order}/orders/late/payment", {"amount": 900, "payment_ref": "p2"}).status_code == 200
    finally:
        suite.stop_all()


ROUNDS = 200


def test_a_sku_just_registered_is_never_refused_as_unknown(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    """Register a sku, then order it at once, a few hundred times: inventory's 200 is enough — the order
    service never answers 422 "unknown sku" because its catalogue was behind. A sku nobody registered
    is still refused, with the field named."""
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        inv, order = suite.start("inventory").url, suite.start("order").url
        refused: list[str] = []
        with httpx.Client(timeout=15, headers=AUTH) as http:
            for i in range(ROUNDS):
                sku = f"new-{i}"
                registered = http.post(f"{inv}/skus", json={"sku": sku, "name": sku, "low_stock_floor": 0})
                assert registered.status_code == 200, registered.text
                body = {"member_id": "m", "channel": "live", "lines": [{"sku": sku, "qty": 1, "unit_price": 100}]}
                placed = http.post(f"{order}/orders", params={"wait": 0}, json=body)
                if placed.status_code != 202:
                    refused.append(f"{sku}: {placed.status_code} {placed.text}")
            assert refused == [], f"{len(refused)} of {ROUNDS} orders refused right after their sku: {refused[:3]}"

            unknown = http.post(
                f"{order}/orders",
                json={"member_id": "m", "channel": "live", "lines": [{"sku": "never-registered", "qty": 1, "unit_price": 1}]},
            )
            assert unknown.status_code == 422
            assert unknown.json()["detail"] == [
                {"loc": ["body", "lines", 0, "sku"], "msg": "unknown sku never-registered", "type": "value_error"}
            ]
    finally:
        suite.stop_all()


def test_a_member_just_joined_can_refer_and_act_at_once(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    """Join a member, then at once join another with the first as referrer and record a behaviour of
    the first, a few hundred times: the join's 200 is enough — never 422 "unknown member" or 404
    because the loyalty read model was behind. A referrer nobody joined is still refused."""
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        loyalty = suite.start("loyalty").url
        refused: list[str] = []
        with httpx.Client(timeout=15, headers=AUTH) as http:
            for i in range(ROUNDS):
                first, second = f"ann-{i}", f"bob-{i}"
                joined = http.post(f"{loyalty}/members", json={"member_id": first})
                assert joined.status_code == 200, joined.text
                referred = http.post(f"{loyalty}/members", params={"wait": 0}, json={"member_id": second, "referrer_id": first})
                if referred.status_code != 202:
                    refused.append(f"{second}: {referred.status_code} {referred.text}")
                acted = http.post(f"{loyalty}/members/{first}/behaviours", params={"wait": 0}, json={"action": "share"})
                if acted.status_code != 202:
                    refused.append(f"{first}: {acted.status_code} {acted.text}")
            assert refused == [], f"{len(refused)} refused right after the join: {refused[:3]}"

            unknown = http.post(f"{loyalty}/members", json={"member_id": "carol", "referrer_id": "nobody"})
            assert unknown.status_code == 422
            assert unknown.json()["detail"][0]["loc"] == ["body", "referrer_id"]
    finally:
        suite.stop_all()
