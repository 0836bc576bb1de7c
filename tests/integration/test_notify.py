"""notify on the real broker, delivering to a local HTTP sink (tests/notify_sink.py).

Derived events are written with the project's codec in Kafka transactions, as the services write
them: one of every notifiable type (R-INV-3/5/6, R-PRE-9, R-COM-6, R-LOY-3/4, R-ORD-6) among events
nobody is notified of, and one in a transaction that is aborted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from flexchain import kafka
from flexchain.messages import Enveloped
from flexchain.procs import ServiceProcess, free_port
from services.notify import delivery
from services.notify.catalog import NOTIFIABLE
from tests.notify_support import Behaviour, Sink, event
from tests.support import CODEC, eventually, read_all, run, settings

pytestmark = pytest.mark.broker

SECRETS = {"ops": "ops-secret-0123456789", "crm": "crm-secret-0123456789", "broken": "broken-secret-0123456789"}


async def produce(bootstrap: str, prefix: str, items: list[Enveloped], abort: bool = False) -> dict[str, tuple[str, int, int]]:
    """One transaction with every item on its service's event topic; event id → (topic, partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"test-{uuid.uuid4()}", enable_idempotence=True)
    await producer.start()
    try:
        await producer.begin_transaction()
        futures = []
        for item in items:
            topic = f"{prefix}{type(item.message).SERVICE}.events"
            headers = [("type", type(item.message).__name__.encode())]
            futures.append(await producer.send(topic, CODEC.encode(item), key=item.message.key.encode(), headers=headers))
        if abort:
            await producer.abort_transaction()
            return {}
        await producer.commit_transaction()
        metas = [await f for f in futures]
        return {i.envelope.event_id: (m.topic, m.partition, m.offset) for i, m in zip(items, metas, strict=True)}
    finally:
        await producer.stop()


def start_notify(kafka_bootstrap: str, prefix: str, tmp_path: Path, hooks: list[dict[str, Any]], **env: str) -> ServiceProcess:
    proc = ServiceProcess(
        "notify",
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "FLEXCHAIN_TOPIC_PREFIX": prefix,
            "FLEXCHAIN_DATA_DIR": str(tmp_path / "data"),
            "FLEXCHAIN_NOTIFY_WEBHOOKS": json.dumps(hooks),
            **env,
        },
        tmp_path / "logs",
        free_port(),
    )
    proc.start()
    return proc.wait_ready(60)


def metric(url: str, name: str, type_name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(f'{name}{{type="{type_name}"}} '):
            return float(line.split()[-1])
    return 0.0


def test_every_derived_event_delivered_signed_retried_and_parked(kafka_bootstrap: str, prefix: str, tmp_path: Path) -> None:
    with Sink() as sink:
        sink.behaviour["/broken"] = Behaviour(always=500)
        hooks = [
            {"name": "ops", "url": sink.url("/ops"), "secret": SECRETS["ops"], "events": ["*"]},
            {
                "name": "crm",
                "url": sink.url("/crm"),
                "secret_env": "CRM_SECRET",
                "events": ["ChurnWarningRaised", "ReplenishmentReminderRaised"],
            },
            {"name": "broken", "url": sink.url("/broken"), "secret": SECRETS["broken"], "events": ["SupplierPenaltyIncurred"]},
        ]
        env = {
            "CRM_SECRET": SECRETS["crm"],
            "FLEXCHAIN_NOTIFY_MAX_ATTEMPTS": "6",
            "FLEXCHAIN_NOTIFY_BACKOFF_INITIAL_S": "0.1",
            "FLEXCHAIN_NOTIFY_BACKOFF_MAX_S": "0.5",
        }
        notify = start_notify(kafka_bootstrap, prefix, tmp_path, hooks, **env)
        try:
            # it serves its probes and /metrics, not faust's own pages (key routing, tables, stats)
            for page in ("/router/", "/table/", "/stats/", "/graph/"):
                assert httpx.get(notify.url + page, timeout=5).status_code == 404, page
            derived = [event(t, i) for i, t in enumerate(NOTIFIABLE)]
            quiet = [
                event(t, 100 + i) for i, t in enumerate(("StockReceived", "OrderPlaced", "PointsEarned", "CommissionAccrued"))
            ]
            # an aborted alert for the same sku as a committed one (same partition, before it): never delivered
            aborted = Enveloped(envelope=dataclasses.replace(derived[0].envelope, event_id="aborted"), message=derived[0].message)
            run(produce(kafka_bootstrap, prefix, [aborted], abort=True))
            where = run(produce(kafka_bootstrap, prefix, quiet + derived))
            ids = {e.envelope.event_id for e in derived}

            eventually(
                lambda: {r.headers["Idempotency-Key"] for r in sink.ok("/ops")} >= ids, 30, what="every derived event at ops"
            )
            eventually(lambda: len(sink.ok("/crm")) >= 2, 10, what="the loyalty events at crm")
            dead = eventually(
                lambda: run(read_all(kafka_bootstrap, prefix + "notify.dlq", decode=False)), 20, what="a dead letter"
            )

            # everything notifiable once per webhook that wants it, nothing else, nothing aborted
            ops = sink.ok("/ops")
            assert sorted(r.headers["Idempotency-Key"] for r in ops) == sorted(ids)
            crm = {r.headers["Idempotency-Key"]: r for r in sink.ok("/crm")}
            assert {crm[k].doc["type"] for k in crm} == {"ChurnWarningRaised", "ReplenishmentReminderRaised"}
            by_id = {e.envelope.event_id: e for e in derived}
            for path, secret in (("/ops", SECRETS["ops"]), ("/crm", SECRETS["crm"])):
                for r in sink.ok(path):
                    doc, e = r.doc, by_id[r.headers["Idempotency-Key"]]
                    assert doc["id"] == e.envelope.event_id and doc["type"] == type(e.message).__name__
                    assert r.headers["X-Flexchain-Event-Type"] == doc["type"]
                    assert delivery.verify(secret.encode(), r.body, r.headers["X-Flexchain-Signature"])
                    assert not delivery.verify(b"another-secret-0123456", r.body, r.headers["X-Flexchain-Signature"])
                    assert doc["text"]["zh"] and doc["text"]["en"] and doc["rule"] == NOTIFIABLE[doc["type"]].rule
                    assert doc["data"][type(e.message).KEY] == e.message.key

            # the webhook that always fails: 6 attempts with one key, then notify.dlq with our DLQ headers
            penalty = next(e for e in derived if type(e.message).__name__ == "SupplierPenaltyIncurred").envelope.event_id
            attempts = sink.all("/broken")
            assert len(attempts) == 6 and {r.headers["Idempotency-Key"] for r in attempts} == {penalty}
            assert len({r.headers["X-Flexchain-Signature"] for r in attempts}) == 1
            (rec,) = dead
            h = {k: bytes(v).decode() for k, v in rec.headers}
            topic, partition, offset = where[penalty]
            assert h["flexchain.source.topic"] == topic and int(h["flexchain.source.partition"]) == partition
            assert int(h["flexchain.source.offset"]) == offset
            assert "failed 6 times" in h["flexchain.dlq.reason"] and "500" in h["flexchain.dlq.reason"]
            assert h["flexchain.target.webhook"] == "broken" and h["type"] == "SupplierPenaltyIncurred"
            assert CODEC.decode(rec.value).envelope.event_id == penalty  # the record as it was read
            assert metric(notify.url, "flexchain_notify_dead_lettered_total", "SupplierPenaltyIncurred") == 1
            assert metric(notify.url, "flexchain_notify_delivered_total", "ChurnWarningRaised") == 2  # ops + crm

            # the dead letter redriven by the operator's command once the webhook works again: delivered to
            # that webhook alone, with the same key
            sink.behaviour["/broken"] = Behaviour()
            ops_before = len(sink.ok("/ops"))
            env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "FLEXCHAIN_TOPIC_PREFIX": prefix}
            cli = [sys.executable, "-m", "flexchain.cli", "dlq", "redrive", "notify", "--all", "--yes", "--json"]
            done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr[-2000:]
            assert "notify.redrive" in done.stdout, done.stdout
            eventually(lambda: sink.ok("/broken"), 20, what="the redriven dead letter delivered")
            assert [r.headers["Idempotency-Key"] for r in sink.ok("/broken")] == [penalty]
            assert sink.ok("/broken")[0].body == attempts[0].body
            assert len(sink.ok("/ops")) == ops_before

            # the sink down for a while (503): delivered after it recovers, with retries counted
            before = metric(notify.url, "flexchain_notify_retried_total", "LowStockAlertRaised")
            sink.behaviour["/ops"] = Behaviour(fail_until=time.monotonic() + 0.8)
            late = event("LowStockAlertRaised", 500)
            run(produce(kafka_bootstrap, prefix, [late]))
            key = late.envelope.event_id
            eventually(
                lambda: any(r.headers["Idempotency-Key"] == key for r in sink.ok("/ops")), 20, what="delivery after recovery"
            )
            tries = [r for r in sink.all("/ops") if r.headers["Idempotency-Key"] == key]
            assert tries[0].status == 503 and tries[-1].status == 200 and len(tries) >= 2
            assert len({r.body for r in tries}) == 1
            assert metric(notify.url, "flexchain_notify_retried_total", "LowStockAlertRaised") >= before + len(tries) - 1
            parked = run(read_all(kafka_bootstrap, prefix + "notify.dlq", decode=False))
            markers = [r for r in parked if any(k == "flexchain.redrive.marker" for k, _ in r.headers)]
            assert len(markers) == 1 and len(parked) == 2, "one dead letter (and the marker of its redrive), no more"
        finally:
            notify.stop()


def test_kill_9_and_a_stop_mid_stream_lose_nothing_and_repeats_carry_the_same_key(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    n = 120
    with Sink() as sink:
        sink.behaviour["/ops"] = Behaviour(delay=0.02)
        hooks = [{"name": "ops", "url": sink.url("/ops"), "secret": SECRETS["ops"], "events": ["LowStockAlertRaised"]}]
        alerts = [event("LowStockAlertRaised", i) for i in range(n)]
        run(kafka.ensure_topics(settings(kafka_bootstrap, prefix), [prefix + "inventory.events"]))
        run(produce(kafka_bootstrap, prefix, alerts[: n // 2]))
        run(produce(kafka_bootstrap, prefix, alerts[n // 2 :]))
        ids = {a.envelope.event_id for a in alerts}
        notify = start_notify(kafka_bootstrap, prefix, tmp_path, hooks)
        try:
            eventually(lambda: len(sink.ok("/ops")) >= 25, 30, interval=0.02, what="deliveries under way")
            notify.kill9()
            at_kill = {r.headers["Idempotency-Key"] for r in sink.ok("/ops")}
            assert len(at_kill) < n, "the kill must come mid-stream"
            notify = start_notify(kafka_bootstrap, prefix, tmp_path, hooks)
            # then a clean stop (SIGTERM) mid-stream: the event in delivery stays unacked for the next start
            eventually(lambda: len({r.headers["Idempotency-Key"] for r in sink.ok("/ops")}) >= 70, 30, interval=0.02)
            assert notify.stop() == 0
            assert len({r.headers["Idempotency-Key"] for r in sink.ok("/ops")}) < n, "the stop must come mid-stream"
            notify = start_notify(kafka_bootstrap, prefix, tmp_path, hooks)
            eventually(lambda: {r.headers["Idempotency-Key"] for r in sink.ok("/ops")} >= ids, 60, what="every alert")
            seen: dict[str, list[Any]] = {}
            for r in sink.ok("/ops"):
                seen.setdefault(r.headers["Idempotency-Key"], []).append(r)
            assert set(seen) == ids
            for key, reqs in seen.items():  # a repeat is the same notification: same key, body and signature
                assert {r.doc["id"] for r in reqs} == {key}
                assert len({(r.body, r.headers["X-Flexchain-Signature"]) for r in reqs}) == 1
                assert all(delivery.verify(SECRETS["ops"].encode(), r.body, r.headers["X-Flexchain-Signature"]) for r in reqs)
        finally:
            notify.stop()


def test_bad_webhook_url_is_a_clear_error_at_start(tmp_path: Path) -> None:
    hooks = [{"name": "ops", "url": "htps//hooks.example.com", "secret": SECRETS["ops"], "events": ["*"]}]
    proc = ServiceProcess("notify", {"FLEXCHAIN_NOTIFY_WEBHOOKS": json.dumps(hooks)}, tmp_path / "logs", free_port())
    proc.start()
    assert proc.proc is not None
    assert proc.proc.wait(60) == 2
    out = proc.tail()
    assert "bad notify configuration" in out and "webhook 'ops'.url" in out and "htps//hooks.example.com" in out
