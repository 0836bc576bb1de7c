"""The event store reads its own past, on the real broker (issue 12, item 3; README "Schema evolution").

The order and inventory services run a short flow on business time (stock in two warehouses, an
order placed → confirmed → paid → shipped → delivered → partly refunded → completed, one cancelled,
one rejected). Then every event of `order.events` and `inventory.events` is written again, into a
fresh topic prefix, as the FIRST release would have written it: projected onto the oldest recorded
schema of its type (`schemas/history/<svc>/<Type>.v1.avsc`) under that schema's own id — the types
that never changed keep the current encoding, so old and current records are interleaved — each on
its partition, with its key and headers. Both services start on that log, without snapshots:

- each rebuilds every partition to the state an in-memory fold of the same records (decoded by
  today's codec) gives — per-partition digests of `GET /internal/partitions`;
- the records' fields the old schemas had arrive unchanged; the rest take their defaults, or their
  upcaster's value (OrderConfirmed, OrderPaid, OrderRefunded, OrderCancelled, OrderCompleted v1);
- the routers read the old events of the other service (inventory ← order.events, order ←
  inventory.events): every routed type is decoded and counted, every command they give is recognised
  as one already applied (no event is written again), and nothing lands in a dead-letter topic;
- the order API's sku catalogue (a view of inventory's old SkuRegistered records) knows the skus,
  and a new order is confirmed against the rebuilt stock;
- the entities and their as-of answers (`?as_of=`, a fold of the log to a past business time) are
  those of the original run, for everything the first release's schemas carried.
"""

from __future__ import annotations

import io
import struct
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastavro import parse_schema, schemaless_writer

from flexchain import kafka
from flexchain.fold import DIGEST_HEADER, ORIGIN_HEADER, PartitionState, fold_event, origin_of
from flexchain.history import recorded
from flexchain.messages import Enveloped, to_record
from flexchain.runtime import ServiceDef, state_digest
from flexchain.schemas import local_schema_id
from flexchain.settings import Settings
from services.inventory.app import SERVICE as INVENTORY
from services.inventory.policy import ORDER_EVENTS
from services.order.app import OrderSettings
from services.order.app import service as order_service
from tests.integration.test_inventory_rules_service import _tick
from tests.support import CODEC, Suite, eventually, get, post, read_all, run, settings

pytestmark = pytest.mark.broker

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
MINUTE = 60_000
DAY = 86_400_000
HISTORY = recorded()
SKUS = ("mask", "serum")
ORDERS = ("o1", "o2", "o3", "o5")


def _flow(suite: Suite, inv: str, order: str) -> int:
    """The original run; returns a business time in its middle (for the as-of questions)."""
    _at(suite, T0, inv, order)
    for sku in SKUS:
        assert post(f"{inv}/skus", {"sku": sku, "name": sku.title(), "low_stock_floor": 3}).status_code == 200
    assert post(f"{inv}/skus/mask/receipts", {"warehouse": "sh", "qty": 30}).status_code == 200
    assert post(f"{inv}/skus/mask/receipts", {"warehouse": "gz", "qty": 10}).status_code == 200
    assert post(f"{inv}/skus/serum/receipts", {"warehouse": "sh", "qty": 8}).status_code == 200
    orders = {
        "o1": [("mask", 5, 1990)],
        "o2": [("mask", 2, 1990), ("serum", 3, 4900)],
        "o3": [("serum", 500, 4900)],
        "o5": [("serum", 5, 4900)],  # the last serum: cancelled, it is available again (R-INV-6a, a renamed event)
    }
    for oid, lines in orders.items():
        body = {"order_id": oid, "member_id": f"m-{oid}", "channel": "live",
                "lines": [{"sku": s, "qty": q, "unit_price": p} for s, q, p in lines]}  # fmt: skip
        eventually(lambda body=body: post(f"{order}/orders", body).status_code == 200, what=f"{oid} placed")
    for oid in orders:
        eventually(lambda oid=oid: get(f"{order}/orders/{oid}")["status"] != "placed", what=f"{oid} settled")
    assert get(f"{order}/orders/o3")["status"] == "rejected"
    assert post(f"{order}/orders/o1/payment", {"amount": 9950, "payment_ref": "pay-1"}).status_code == 200
    assert post(f"{order}/orders/o1/shipment", {"tracking": "SF1"}).status_code == 200
    assert post(f"{order}/orders/o2/cancellation", {"reason": "changed mind"}).status_code == 200
    assert post(f"{order}/orders/o5/cancellation", {"reason": "changed mind"}).status_code == 200
    eventually(lambda: get(f"{inv}/skus/serum")["available"] == 8, what="o2 and o5 released")
    eventually(lambda: get(f"{inv}/skus/mask")["reserved"] == 0 and get(f"{inv}/skus/mask")["on_hand"] == 35, what="o1 shipped")
    mid = T0 + MINUTE
    _at(suite, mid + MINUTE, inv, order)  # after `mid`: what follows is not in the as-of answers at `mid`
    assert post(f"{order}/orders/o1/delivery").status_code == 200
    refund = {"refund_id": "r1", "lines": [{"sku": "mask", "qty": 1, "reason": "defect"}]}
    assert post(f"{order}/orders/o1/refunds", refund).status_code == 200
    assert post(f"{inv}/skus/mask/receipts", {"warehouse": "sh", "qty": 4}).status_code == 200
    _at(suite, mid + 8 * DAY, inv, order)  # the return window closes: o1 completes
    eventually(lambda: get(f"{order}/orders/o1")["status"] == "completed", what="o1 completed")
    eventually(lambda: get(f"{inv}/skus/mask")["on_hand"] >= 39, what="the refund's stock back and the receipt")
    return mid


def _at(suite: Suite, at: int, inv: str, order: str) -> None:
    """One clock tick; both services have seen it."""
    _tick(suite, at, inv)
    eventually(lambda: get(f"{order}/clock")["business_time"] >= at, what="the order service sees the tick")


def _sku(url: str, sku: str, at: int | None = None) -> dict[str, Any]:
    s = get(f"{url}/skus/{sku}" + ("" if at is None else f"?as_of={at}"))
    return {k: s[k] for k in ("sku", "on_hand", "reserved", "available", "warehouses")}


def _order(url: str, oid: str, at: int | None = None) -> dict[str, Any]:
    o = get(f"{url}/orders/{oid}" + ("" if at is None else f"?as_of={at}"))
    return {k: v for k, v in o.items() if k not in ("history", "as_of")}  # the events themselves are the old records


def _answers(inv: str, order: str, at: int | None) -> dict[str, Any]:
    return {"skus": {s: _sku(inv, s, at) for s in SKUS}, "orders": {o: _order(order, o, at) for o in ORDERS}}


# --- writing a record as the first release did -----------------------------------------------------


def _project(value: Any, t: Any, named: dict[str, Any]) -> Any:
    """`value` (today's record) as a value of the old Avro type `t`: the fields it has, nothing more."""
    if isinstance(t, list):
        if value is None:
            assert "null" in t
            return None
        (branch,) = [b for b in t if b != "null"]
        return _project(value, branch, named)
    if isinstance(t, str):
        return _project(value, named[t], named) if t in named else value
    kind = t["type"]
    if kind == "record":
        named[t["name"]] = named[f"{t.get('namespace', '')}.{t['name']}"] = t
        return {
            f["name"]: _project(value[f["name"]], f["type"], named) if f["name"] in value else f["default"] for f in t["fields"]
        }
    if kind == "array":
        return [_project(v, t["items"], named) for v in value]
    if kind == "map":
        return {k: _project(v, t["values"], named) for k, v in value.items()}
    return value if kind == "enum" else _project(value, kind, named)


def _as_first_release(service: str, item: Enveloped) -> tuple[bytes, int, str]:
    """The record projected onto the oldest schema of its type, under that schema's id; the version, and
    the type name it was written under (a renamed type's first name: its schema, envelope and header)."""
    name = next(iter(item.message.FORMERLY), type(item.message).__name__)
    oldest = HISTORY[(service, name)][0]
    schema = oldest.schema()
    record = {**to_record(item.message), "envelope": {**to_record(item.envelope), "event_type": name}}
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, local_schema_id(schema)))
    schemaless_writer(buf, parse_schema(schema), _project(record, schema, {}), strict=True)
    return buf.getvalue(), oldest.number, name


async def _append(bootstrap: str, topic: str, records: list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for partition, key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, partition=partition, headers=headers)
    finally:
        await producer.stop()


# --- the expected state: an in-memory fold ---------------------------------------------------------


def _fold_digests(
    svc: ServiceDef[Any], records: list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]], partitions: list[str]
) -> dict[str, str]:
    """Per partition, the digest `GET /internal/partitions` gives for the kernel's fold of `records`
    decoded by today's codec (state, versions, dedup memory: `flexchain.runtime.state_digest`)."""
    horizon = int(Settings().flexchain_dedup_horizon_hours * 3_600_000)
    states = {int(p): PartitionState(svc.new_state()) for p in partitions}
    for partition, _key, value, headers in records:
        digest = next((v.decode() for k, v in headers if k == DIGEST_HEADER), "")
        stamp = next((v for k, v in headers if k == ORIGIN_HEADER), None)
        assert stamp is not None, "every event the processor writes carries its origin"
        origin = origin_of(0, stamp)
        fold_event(svc.evolve, states[partition], CODEC.decode(value), digest, origin, horizon)
    return {str(p): state_digest(ps) for p, ps in states.items()}


def _counted(url: str, service: str, topic: str) -> Counter[str]:
    """The records of `topic` a service has decoded, per type (its `messages_in` metric)."""
    out: Counter[str] = Counter()
    for line in httpx.get(f"{url}/metrics", timeout=15).text.splitlines():
        if line.startswith(f"flexchain_{service}_messages_in_total{{") and f'topic="{topic}"' in line:
            kind = line.split('type="', 1)[1].split('"', 1)[0]
            out[kind] += int(float(line.rsplit(" ", 1)[1]))
    return out


def test_a_log_written_by_the_first_release_rebuilds_routes_and_answers(
    kafka_bootstrap: str, prefix: str, data_dir: Path, tmp_path: Path
) -> None:
    # 1. the original run
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        inv, order = suite.start("inventory"), suite.start("order")
        mid = _flow(suite, inv.url, order.url)
        original = {"now": _answers(inv.url, order.url, None), "mid": _answers(inv.url, order.url, mid)}
        assert original["mid"] != original["now"], "the flow went on after `mid`"
    finally:
        suite.stop_all()

    # 2. the same events, as the first release wrote them, into a fresh prefix
    old_prefix = prefix + "v1-"
    copied: dict[str, list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]]] = {}
    versions_used: Counter[tuple[str, int]] = Counter()
    for service in ("order", "inventory"):
        out = copied[f"{service}.events"] = []
        for rec in run(read_all(kafka_bootstrap, suite.topic(f"{service}.events"), decode=False)):
            item = CODEC.decode(rec.value)
            value, version, name = _as_first_release(service, item)
            versions_used[(name, version)] += 1
            headers = [(k, name.encode() if k == "type" else v) for k, v in rec.headers]
            out.append((rec.partition, rec.key, value, headers))
    assert versions_used[("OrderShipped", 1)] and versions_used[("OrderConfirmed", 1)] and versions_used[("StockReserved", 1)]
    assert versions_used[("OrderCompleted", 1)] and versions_used[("OrderRefunded", 1)] and versions_used[("SkuRegistered", 1)]
    assert any(len(HISTORY[("order", t)]) == 1 for t, _ in versions_used), "current encodings interleaved"
    assert versions_used[("StockBackInStock", 1)], "a renamed event, written under its former name"  # formerly
    names = {t: old_prefix + t for t in copied}
    run(kafka.ensure_topics(settings(kafka_bootstrap, old_prefix), list(names.values())))
    for topic, records in copied.items():
        run(_append(kafka_bootstrap, names[topic], records))

    # what today's codec reads from that log: the old fields unchanged, the rest defaults/upcasters
    decoded: dict[str, dict[int, list[Enveloped]]] = {}
    for topic, records in copied.items():
        decoded[topic] = defaultdict(list)
        for partition, _key, value, _headers in records:
            decoded[topic][partition].append(CODEC.decode(value))
    confirmed = [
        i.message for items in decoded["order.events"].values() for i in items if i.envelope.event_type == "OrderConfirmed"
    ]
    assert confirmed and all(c.lines == [] and c.total == 0 for c in confirmed)  # type: ignore[attr-defined]
    paid = [i.message for items in decoded["order.events"].values() for i in items if i.envelope.event_type == "OrderPaid"]
    assert [(p.order_id, p.amount, p.payment_ref, p.member_id) for p in paid] == [("o1", 9950, "pay-1", "")]  # type: ignore[attr-defined]

    # 3. both services start on that log: no snapshots, a fresh data dir
    old_dir = tmp_path / "old-data"
    old_dir.mkdir()
    old = Suite(kafka_bootstrap, old_prefix, old_dir)
    try:
        inv, order = old.start("inventory"), old.start("order")
        for svc, url, topic in (
            (INVENTORY, inv.url, "inventory.events"),
            (order_service(OrderSettings().config()), order.url, "order.events"),
        ):
            live = {p: d["digest"] for p, d in get(f"{url}/internal/partitions")["partitions"].items()}
            assert live == _fold_digests(svc, copied[topic], sorted(live)), f"{svc.name} rebuilt another state"

        # the routers read the other service's old events: every routed type decoded, each command known
        routed_by_inventory = Counter(
            i.envelope.event_type for items in decoded["order.events"].values() for i in items if type(i.message) in ORDER_EVENTS
        )
        routed_by_order = Counter(i.envelope.event_type for items in decoded["inventory.events"].values() for i in items)
        eventually(
            lambda: _counted(inv.url, "inventory", names["order.events"]) == routed_by_inventory, what="inventory's router"
        )
        eventually(lambda: _counted(order.url, "order", names["inventory.events"]) == routed_by_order, what="order's router")
        for service, url in (("inventory", inv.url), ("order", order.url)):
            commands = len(run(read_all(kafka_bootstrap, old.topic(f"{service}.commands"), decode=False)))
            eventually(
                lambda service=service, url=url, commands=commands: (
                    sum(_counted(url, service, old.topic(f"{service}.commands")).values()) >= commands
                ),
                what=f"{service} processed what its router sent",
            )
        for topic, records in copied.items():  # every routed command was one already applied: nothing new
            assert len(run(read_all(kafka_bootstrap, names[topic], decode=False))) == len(records), topic
        for service in ("order", "inventory"):
            assert run(read_all(kafka_bootstrap, old.topic(f"{service}.dlq"), decode=False)) == [], f"{service}.dlq"

        # entities and as-of answers are the original run's, for all the first release carried
        assert _answers(inv.url, order.url, None) == original["now"]
        assert _answers(inv.url, order.url, mid) == original["mid"]

        # the sku catalogue (a view of inventory's old SkuRegistered) and the rebuilt stock decide on
        available = get(f"{inv.url}/skus/mask")["available"]
        body = {
            "order_id": "o4",
            "member_id": "m-o4",
            "channel": "live",
            "lines": [{"sku": "mask", "qty": available, "unit_price": 1990}],
        }
        assert post(f"{order.url}/orders", body).status_code == 200
        eventually(lambda: get(f"{order.url}/orders/o4")["status"] == "confirmed", what="o4 confirmed on the rebuilt stock")
        assert get(f"{inv.url}/skus/mask")["available"] == 0
        for service in ("order", "inventory"):
            assert run(read_all(kafka_bootstrap, old.topic(f"{service}.dlq"), decode=False)) == [], f"{service}.dlq"
    finally:
        old.stop_all()
