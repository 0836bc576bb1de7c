"""What dedup guarantees (issue 12, item 8; README "Exactly once, dedup, rebuild"):

* an `Idempotency-Key` sent again with the same body changes nothing and answers 200 `duplicate` —
  from either instance, before and after a restart; sent with another body it answers 422 and
  changes nothing either;
* the dedup memory is bounded by time (`FLEXCHAIN_DEDUP_HORIZON_HOURS` of wall clock after a command's
  origin): a command whose record originates before the horizon — a replay, a late redelivery, a
  router re-reading an old log — can no longer be proven new, so it is refused to the DLQ
  (`stale command`), never applied a second time.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from flexchain.messages import Envelope, Enveloped, Message
from services.inventory.messages import ReceiveStock, RegisterSku
from tests.support import CODEC, Suite, envelope_for, eventually, get, post, read_all, run

pytestmark = pytest.mark.broker

HOUR = 3_600_000


def test_an_idempotency_key_applies_once_and_refuses_another_body(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        inv0 = suite.start("inventory", instance="0", FLEXCHAIN_DATA_DIR=str(data_dir / "i0"))
        inv1 = suite.start("inventory", instance="1", FLEXCHAIN_DATA_DIR=str(data_dir / "i1"))
        assert post(f"{inv0.url}/skus", {"sku": "idem", "name": "idem"}).status_code == 200
        key = {"Idempotency-Key": "receipt-po-77"}
        first = post(f"{inv0.url}/skus/idem/receipts", {"warehouse": "w1", "qty": 5}, headers=key)
        assert first.status_code == 200 and first.json()["status"] == "applied"
        for url in (inv0.url, inv1.url):
            # the same request again, to either instance (once it has seen the first): nothing changes
            again = eventually(
                lambda url=url: (
                    (r := post(f"{url}/skus/idem/receipts", {"warehouse": "w1", "qty": 5}, headers=key))
                    and r.json().get("status") == "duplicate"
                    and r
                ),
                what=f"{url} answers duplicate",
            )
            assert again.status_code == 200 and again.json()["command_id"] == "receipt-po-77"
            other = post(f"{url}/skus/idem/receipts", {"warehouse": "w1", "qty": 6}, headers=key)
            assert other.status_code == 422, other.text
            assert "already used for a different request" in other.json()["detail"]["reason"]
        inv0.stop()
        inv0 = suite.start("inventory", instance="0", FLEXCHAIN_DATA_DIR=str(data_dir / "i0"))
        assert post(f"{inv0.url}/skus/idem/receipts", {"warehouse": "w1", "qty": 6}, headers=key).status_code == 422
        assert post(f"{inv0.url}/skus/idem/receipts", {"warehouse": "w1", "qty": 1}).status_code == 200  # no key: new
        for url in (inv0.url, inv1.url):
            eventually(lambda url=url: get(f"{url}/skus/idem")["on_hand"] == 6, what="5 once, then 1")
    finally:
        suite.stop_all()


def publish_at(bootstrap: str, topic: str, items: list[tuple[Message, Envelope, int]]) -> None:
    """Commands whose records carry the given creation time (ms): a replayed or late record."""

    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for msg, env, ts in items:
                await producer.send_and_wait(
                    topic, CODEC.encode(Enveloped(envelope=env, message=msg)), key=msg.key.encode(), timestamp_ms=ts
                )
        finally:
            await producer.stop()

    run(go())


def test_a_command_older_than_the_dedup_horizon_is_refused_not_applied_twice(
    kafka_bootstrap: str, prefix: str, data_dir: Path
) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_DEDUP_HORIZON_HOURS="1")
    topic = suite.topic("inventory.commands")
    now = int(time.time() * 1000)
    try:
        inv = suite.start("inventory")
        reg, first = RegisterSku(sku="hz", name="horizon"), ReceiveStock(sku="hz", warehouse="w1", qty=10, reference="PO-1")
        env_first = envelope_for(first, "po-1-receipt")
        publish_at(kafka_bootstrap, topic, [(reg, envelope_for(reg), now - 2 * HOUR), (first, env_first, now - 2 * HOUR)])
        later = ReceiveStock(sku="hz", warehouse="w1", qty=1, reference="PO-2")
        publish_at(kafka_bootstrap, topic, [(later, envelope_for(later), now)])  # the partition moves on
        eventually(lambda: get(f"{inv.url}/skus/hz")["on_hand"] == 11, what="both receipts applied")
        # the first receipt's record again (a replay): its id is forgotten — and it is refused, not applied
        publish_at(kafka_bootstrap, topic, [(first, env_first, now - 2 * HOUR)])
        old_new = ReceiveStock(sku="hz", warehouse="w1", qty=100, reference="PO-0")  # never seen, but from before the horizon
        publish_at(kafka_bootstrap, topic, [(old_new, envelope_for(old_new), now - 90 * 60_000)])
        fresh = ReceiveStock(sku="hz", warehouse="w1", qty=2, reference="PO-3")
        publish_at(kafka_bootstrap, topic, [(fresh, envelope_for(fresh), now + 1)])
        eventually(lambda: get(f"{inv.url}/skus/hz")["on_hand"] == 13, what="the fresh one applied")
        dlq = eventually(
            lambda: (r := run(read_all(kafka_bootstrap, suite.topic("inventory.dlq"), decode=False))) and len(r) >= 2 and r,
            what="two refused",
        )
        reasons = sorted(dict(r.headers)["flexchain.dlq.reason"].decode().split(":")[0] for r in dlq)
        assert reasons == ["stale command", "stale command"]
        # within the horizon a repeat is a duplicate, as always; and after a restart the same holds
        inv.stop()
        inv = suite.start("inventory")
        publish_at(kafka_bootstrap, topic, [(fresh, envelope_for(fresh, "po-3"), now + 2), (later, envelope_for(later), now + 3)])
        eventually(lambda: get(f"{inv.url}/skus/hz")["on_hand"] == 16, what="two new receipts (new ids) applied")
        assert len(run(read_all(kafka_bootstrap, suite.topic("inventory.dlq"), decode=False))) == 2
        assert httpx.get(f"{inv.url}/ready", timeout=5).status_code == 200
    finally:
        suite.stop_all()
