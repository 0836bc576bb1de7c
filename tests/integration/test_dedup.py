"""What dedup guarantees (issue 12, item 8; README "Exactly once, dedup, rebuild"):

* an `Idempotency-Key` sent again with the same body changes nothing and answers 200 `duplicate` —
  from either instance, before and after a restart; sent with another body it answers 422 and
  changes nothing either;
* the dedup memory is bounded by business time (`FLEXCHAIN_DEDUP_HORIZON_HOURS`): a command from
  outside stamped older than the horizon — a replay, a late redelivery — can no longer be proven
  new, so it is refused to the DLQ (`stale command`), never applied a second time.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from flexchain.clock import ClockPublisher
from flexchain.settings import Settings
from services.inventory.messages import ReceiveStock, RegisterSku
from tests.support import Suite, envelope_for, eventually, get, post, publish, read_all, run

pytestmark = pytest.mark.broker

HOUR = 3_600_000
T0 = 1_790_035_200_000


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


def test_a_command_older_than_the_dedup_horizon_is_refused_not_applied_twice(
    kafka_bootstrap: str, prefix: str, data_dir: Path
) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_DEDUP_HORIZON_HOURS="1")
    topic = suite.topic("inventory.commands")
    try:
        inv = suite.start("inventory")
        reg, first = RegisterSku("hz", "horizon"), ReceiveStock("hz", "w1", 10, "PO-1")
        env_first = envelope_for(first, "po-1-receipt", at=T0)
        run(publish(kafka_bootstrap, topic, [(reg, envelope_for(reg, at=T0)), (first, env_first)]))
        later = ReceiveStock("hz", "w1", 1, "PO-2")
        run(publish(kafka_bootstrap, topic, [(later, envelope_for(later, at=T0 + 2 * HOUR))]))  # the partition moves on
        eventually(lambda: get(f"{inv.url}/skus/hz")["on_hand"] == 11, what="both receipts applied")
        # the first receipt again, two hours later: its id is forgotten — and it is refused, not applied
        run(publish(kafka_bootstrap, topic, [(first, env_first)]))
        old_new = ReceiveStock("hz", "w1", 100, "PO-0")  # never seen, but stamped before the horizon
        run(publish(kafka_bootstrap, topic, [(old_new, envelope_for(old_new, at=T0 + HOUR // 2))]))
        fresh = ReceiveStock("hz", "w1", 2, "PO-3")
        run(publish(kafka_bootstrap, topic, [(fresh, envelope_for(fresh, at=T0 + 2 * HOUR + 1))]))
        eventually(lambda: get(f"{inv.url}/skus/hz")["on_hand"] == 13, what="the fresh one applied")
        dlq = eventually(
            lambda: (r := run(read_all(kafka_bootstrap, suite.topic("inventory.dlq"), decode=False))) and len(r) >= 2 and r,
            what="two refused",
        )
        reasons = sorted(dict(r.headers)["flexchain.dlq.reason"].decode().split(":")[0] for r in dlq)
        assert reasons == ["stale command", "stale command"]
        assert get(f"{inv.url}/skus/hz")["on_hand"] == 13

        # routed commands are not refused for their age: the clock's broadcast still moves the service
        async def tick() -> None:
            async with ClockPublisher(Settings(kafka_bootstrap_servers=kafka_bootstrap, flexchain_topic_prefix=prefix)) as c:
                await c.tick(T0)  # older than the horizon, routed: applied (a daily review, nothing to refuse)

        run(tick())
        assert httpx.get(f"{inv.url}/ready", timeout=5).status_code == 200
    finally:
        suite.stop_all()
