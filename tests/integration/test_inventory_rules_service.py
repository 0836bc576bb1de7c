"""The inventory service on the real broker, on business time (R-X-1): sales arrive as order events,
a clock tick reviews the day — the dynamic safety stock changes (R-INV-4) and a slow mover is found
(R-INV-6) —, a presale campaign's successful close plans the regular stock (R-INV-7, 250 units) with
its alert and replenishment suggestion (R-INV-3, R-INV-5). Each derived event is in the log exactly
once, also after the same tick and close come again and after a restart that rebuilds from the log
alone (R-X-2). The stock-policy endpoint refuses bad input per field (422) and what the domain refuses
with its reason (409)."""

from __future__ import annotations

import shutil
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from flexchain.clock import ClockPublisher
from flexchain.messages import Message
from flexchain.settings import Settings
from services.order.messages import OrderLine, OrderPlaced, OrderShipped
from services.presale.messages import CampaignClosed, CampaignCreated
from tests.support import Suite, digests, envelope_for, events, eventually, get, http, post, publish, run

pytestmark = pytest.mark.broker

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
HOUR = 3_600_000
DAY = 24 * HOUR
D0 = T0 // DAY
DERIVED = ("SafetyStockSet", "SlowMovingStockDetected", "RegularStockPlanned", "LowStockAlertRaised", "ReplenishmentSuggested")


def _tick(suite: Suite, at: int, url: str) -> None:
    async def go() -> None:
        async with ClockPublisher(Settings(kafka_bootstrap_servers=suite.bootstrap, flexchain_topic_prefix=suite.prefix)) as c:
            await c.tick(at)

    run(go())
    eventually(lambda: get(f"{url}/clock")["business_time"] >= at, what="the service sees the tick")


def _publish(suite: Suite, topic: str, *items: tuple[Message, int]) -> None:
    run(publish(suite.bootstrap, suite.topic(topic), [(m, envelope_for(m, at=at)) for m, at in items]))


def _inventory(suite: Suite) -> list[Any]:
    return events(suite.bootstrap, suite.topic("inventory.events"))


def _derived(suite: Suite) -> Counter[str]:
    return Counter(e.envelope.event_type for e in _inventory(suite) if e.envelope.event_type in DERIVED)


def _routed(url: str, command: str) -> float:
    """How many `command`s the processor has decoded (its metric): a broadcast one counts once per partition."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=15).text.splitlines():
        if line.startswith("flexchain_inventory_messages_in_total{") and f'type="{command}"' in line and "commands" in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _partitions(url: str) -> int:
    return len(get(f"{url}/internal/partitions")["partitions"])


def _put(url: str, body: dict[str, Any]) -> httpx.Response:
    return http("PUT", url, json=body, timeout=15)


def _sales(suite: Suite, url: str) -> None:
    """mask sells 7 units on each of 4 days in the last 28: 1 unit a day."""
    items: list[tuple[Message, int]] = []
    for i, day in enumerate((3, 9, 15, 21)):
        at = T0 - day * DAY + 10 * HOUR
        oid = f"o-{i}"
        items.append(
            (
                OrderPlaced(
                    order_id=oid,
                    member_id="m-1",
                    channel="live",
                    lines=[OrderLine(sku="mask", qty=7, unit_price=1990)],
                    distributor_id=None,
                    campaign_id=None,
                    total=13_930,
                    placed_at=at,
                ),
                at,
            )
        )
        items.append((OrderShipped(order_id=oid, tracking=f"SF{i}", skus=["mask"]), at + HOUR))
    _publish(suite, "order.events", *items)
    eventually(lambda: get(f"{url}/skus/mask")["counters"]["sh"]["shipped"] == 28, what="the sales shipped")


def test_a_tick_and_a_presale_close_derive_their_events_once_also_after_a_rebuild(
    kafka_bootstrap: str, prefix: str, data_dir: Path
) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SNAPSHOT_EVERY="3")
    try:
        url = suite.start("inventory").url
        _tick(suite, T0 - 40 * DAY, url)  # the catalogue is listed 40 days before T0
        for sku, floor in (("mask", 5), ("serum", 0), ("tote", 0)):  # tote: a new product, no stock yet
            assert post(f"{url}/skus", {"sku": sku, "name": sku, "low_stock_floor": floor}).status_code == 200
        for sku in ("mask", "serum"):
            assert post(f"{url}/skus/{sku}/receipts", {"warehouse": "sh", "qty": 100}).status_code == 200

        # the stock policy: strict input (422 per field), the domain's refusals (409), then applied
        bad = _put(f"{url}/skus/mask/stock-policy", {"lead_time_days": 14, "cover_factor": 1.5, "conversion_rate": "2"})
        assert bad.status_code == 422
        assert {tuple(e["loc"]) for e in bad.json()["detail"]} == {("body", "cover_factor"), ("body", "conversion_rate")}
        refused = _put(f"{url}/skus/mask/stock-policy", {"lead_time_days": 14, "gift_tier": 1})
        assert refused.status_code == 409 and "not a gift sku" in refused.json()["detail"]["reason"]
        assert _put(f"{url}/skus/ghost/stock-policy", {"lead_time_days": 1}).status_code == 404
        ok = _put(f"{url}/skus/mask/stock-policy", {"lead_time_days": 14, "cover_factor": "1.5"})
        assert ok.status_code == 200, ok.text
        assert [e["type"] for e in ok.json()["events"]] == ["StockPolicyConfigured"], "no sales yet: safety stock 0"
        tote = {"lead_time_days": 0, "monthly_visitors": 5000, "conversion_rate": "0.01"}
        assert _put(f"{url}/skus/tote/stock-policy", tote).status_code == 200
        hand = http("PUT", f"{url}/skus/mask/safety-stock", json={"units": 9}, timeout=15)
        assert hand.status_code == 409 and "follows its stock policy" in hand.json()["detail"]["reason"]

        # R-INV-4 and R-INV-6 on the first tick of T0's day: velocity 28 / 28 = 1 → ⌈1 × 14 × 1.5⌉ = 21
        _sales(suite, url)
        _tick(suite, T0 + HOUR, url)
        eventually(lambda: get(f"{url}/skus/serum")["sell_through"]["slow_moving"], what="serum is a slow mover")
        mask = eventually(lambda: (m := get(f"{url}/skus/mask"))["safety_stock"]["units"] == 21 and m)
        assert mask["safety_stock"]["basis"] == "velocity" and mask["velocity"]["units_per_day"] == "1.0000"
        assert mask["warehouses"]["sh"] == {"on_hand": 72, "reserved": 0, "available": 72, "clearance": 0}
        assert mask["counters"]["sh"] == {"received": 100, "shipped": 28, "returned_a": 0, "returned_b": 0}
        assert get(f"{url}/slow-movers") == [{"sku": "serum", "on_hand": 100, "episode": 1}]

        # R-INV-7: the campaign for tote closes with 500 presold: 500 × 0.3 + 5000 × 0.01 × 2 = 250
        created = CampaignCreated(
            campaign_id="camp-1",
            product="tote",
            unit_cost=2_000,
            fan_base=100_000,
            moq=50,
            max_capacity=1_000,
            split="standard",
            milestone_shares={},
            created_at=T0,
        )
        closed = CampaignClosed(
            campaign_id="camp-1", outcome="succeeded", pledged_units=500, moq=50, reason="ended", closed_at=T0 + 2 * HOUR
        )
        _publish(suite, "presale.events", (created, T0), (closed, T0 + 2 * HOUR))
        tote_view = eventually(lambda: (t := get(f"{url}/skus/tote"))["threshold"] == 250 and t, what="standing stock")
        assert tote_view["safety_stock"]["standing_stock"] == 250 and tote_view["low_stock_alert"]
        assert tote_view["suggestions"]["replenishment"]["qty"] == 250  # 250 − 0 available, no lead time
        assert [s["sku"] for s in get(f"{url}/suggestions")] == ["tote"]
        planned = [e.message for e in _inventory(suite) if e.envelope.event_type == "RegularStockPlanned"]
        assert [(p.sku, p.campaign_id, p.presold_units, p.conversion_rate, p.standing_units) for p in planned] == [
            ("tote", "camp-1", 500, Decimal("0.01"), 250)
        ]

        expected = Counter(
            {"SafetyStockSet": 1, "SlowMovingStockDetected": 1, "RegularStockPlanned": 1, "LowStockAlertRaised": 1}
        )
        expected["ReplenishmentSuggested"] = 1
        eventually(lambda: _derived(suite) == expected, what="each derived event once")

        # the same causes again: a later tick of the same day and a duplicate close change nothing
        n = _partitions(url)
        ticks, closes = _routed(url, "CheckStockTimers"), _routed(url, "RecordPresaleClose")
        _tick(suite, T0 + 3 * HOUR, url)
        again = CampaignClosed(
            campaign_id="camp-1", outcome="succeeded", pledged_units=500, moq=50, reason="ended", closed_at=T0 + 2 * HOUR
        )
        _publish(suite, "presale.events", (again, T0 + 3 * HOUR))
        eventually(lambda: _routed(url, "CheckStockTimers") == ticks + n, what="the tick reached every partition")
        eventually(lambda: _routed(url, "RecordPresaleClose") == closes + n, what="the close reached every partition")
        assert _derived(suite) == expected
        before_skus, before_log = get(f"{url}/skus"), _inventory(suite)
        before_digests = {p: d["digest"] for p, d in digests(url).items()}

        # restart with snapshots, then from the log alone: the same state, nothing emitted again
        for wipe in (False, True):
            suite.stop_all()
            if wipe:
                shutil.rmtree(data_dir)
                data_dir.mkdir()
            url = suite.start("inventory").url
            eventually(lambda url=url: get(f"{url}/clock")["business_time"] >= T0 + 3 * HOUR, what="clock read again")
            assert get(f"{url}/skus") == before_skus
            assert {p: d["digest"] for p, d in digests(url).items()} == before_digests
        assert _inventory(suite) == before_log, "a rebuild emits nothing"
        _tick(suite, T0 + 4 * HOUR, url)  # the rebuilt state knows the day is reviewed
        eventually(lambda: _routed(url, "CheckStockTimers") == n, what="the tick reached every partition")
        assert _inventory(suite) == before_log
        ids = Counter(e.envelope.event_id for e in before_log)
        assert max(ids.values()) == 1

        # the next business day's review: serum is still slow (same episode), mask's velocity moved on
        _tick(suite, T0 + DAY + HOUR, url)
        eventually(
            lambda: any(e.envelope.event_type == "DailyStockReviewed" and e.message.day == D0 + 1 for e in _inventory(suite)),
            what="day D0 + 1 reviewed",
        )
        assert _derived(suite)["SlowMovingStockDetected"] == 1
    finally:
        suite.stop_all()
