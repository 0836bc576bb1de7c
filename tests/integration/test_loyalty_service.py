"""The loyalty service on the real broker, driven by hand-made order events, clock ticks and its
HTTP API: the tier discount quote (R-LOY-1), a purchase's points pending then available, a partial
refund, the two-sided referral across partitions (R-LOY-2, R-LOY-5), a usage cycle configured once
and applied on every partition with its reminder (R-LOY-4), and bad commands refused with a clear
reason while nothing changes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner

from flexchain.clock import ClockPublisher
from flexchain.messages import Message
from flexchain.settings import Settings
from services.order.messages import OrderCompleted, OrderLine, OrderPaid, OrderPlaced, OrderRefunded, RefundedLine
from tests.support import Suite, envelope_for, events, eventually, get, http, post, publish, run

pytestmark = pytest.mark.broker

T0 = 1_767_196_800_000  # 2026-01-01 00:00 UTC+8
HOUR = 3_600_000
DAY = 24 * HOUR
ANN, BOB = "ann", "bob"  # partitions 2 and 0 of 6: the referral reward crosses partitions


def _tick(suite: Suite, at: int, url: str | None = None) -> None:
    async def go() -> None:
        async with ClockPublisher(Settings(kafka_bootstrap_servers=suite.bootstrap, flexchain_topic_prefix=suite.prefix)) as c:
            await c.tick(at)

    run(go())
    if url is not None:  # the API stamps commands with the last tick it has seen
        eventually(lambda: get(f"{url}/clock")["business_time"] >= at, what="the service sees the tick")


def _order_events(suite: Suite, *items: tuple[Message, int]) -> None:
    run(publish(suite.bootstrap, suite.topic("order.events"), [(m, envelope_for(m, at=at)) for m, at in items]))


def _loyalty(suite: Suite, kind: str) -> list[Any]:
    return [e.message for e in events(suite.bootstrap, suite.topic("loyalty.events")) if e.envelope.event_type == kind]


def test_points_tiers_referral_and_refusals_through_the_service(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    part = DefaultPartitioner()
    assert part(ANN.encode(), list(range(6)), list(range(6))) != part(BOB.encode(), list(range(6)), list(range(6)))
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        url = suite.start("loyalty").url
        _tick(suite, T0 + HOUR, url)  # API commands take business time from the clock (FLEXCHAIN_CLOCK=log)
        eventually(lambda: post(f"{url}/members", {"member_id": ANN}).status_code == 200, what="ann joins")
        bad_referrer = post(f"{url}/members", {"member_id": BOB, "referrer_id": "nobody"})
        assert bad_referrer.status_code == 422 and "unknown member nobody" in bad_referrer.text
        assert post(f"{url}/members", {"member_id": BOB, "referrer_id": ANN}).status_code == 200
        again = post(f"{url}/members", {"member_id": ANN})
        assert again.status_code == 409 and "already joined" in again.json()["detail"]["reason"]

        # a usage cycle is configured once and used on every partition (R-LOY-4)
        assert post(f"{url}/usage-cycles/water", None).status_code == 405
        assert http("PUT", f"{url}/usage-cycles/water", json={"cycle_days": -1}, timeout=15).status_code == 422
        r = http("PUT", f"{url}/usage-cycles/water", json={"cycle_days": 10}, timeout=15)
        assert r.status_code == 200, r.text
        eventually(lambda: get(f"{url}/usage-cycles")["applied"] == {"water": 10}, what="cycle applied")
        eventually(lambda: len(_loyalty(suite, "UsageCycleApplied")) == 6, what="on all six partitions")

        # R-LOY-1: an order placed by a regular member is quoted 1.0; an unknown one too
        lines = [OrderLine(sku="water", qty=2, unit_price=50_000), OrderLine(sku="mug", qty=1, unit_price=50_050)]
        _order_events(
            suite,
            (
                OrderPlaced(
                    order_id="o1",
                    member_id=BOB,
                    channel="live",
                    lines=lines,
                    distributor_id=None,
                    campaign_id=None,
                    total=150_050,
                    placed_at=T0 + 2 * HOUR,
                ),
                T0 + 2 * HOUR,
            ),
            (
                OrderPlaced(
                    order_id="o0",
                    member_id="walk-in",
                    channel="live",
                    lines=lines,
                    distributor_id=None,
                    campaign_id=None,
                    total=150_050,
                    placed_at=T0 + 2 * HOUR,
                ),
                T0 + 2 * HOUR,
            ),
        )
        quotes = eventually(lambda: len(_loyalty(suite, "MemberDiscountQuoted")) == 2 and _loyalty(suite, "MemberDiscountQuoted"))
        assert {(q.order_id, q.tier, q.discount_rate) for q in quotes} == {
            ("o1", "regular", Decimal("1.0")),
            ("o0", "regular", Decimal("1.0")),
        }

        # R-LOY-2: 1 point per whole CNY, pending until the return window closes; a refund takes its share back
        paid = OrderPaid(
            order_id="o1",
            amount=150_050,
            payment_ref="pay-1",
            paid_at=T0 + 3 * HOUR,
            member_id=BOB,
            distributor_id=None,
            campaign_id=None,
            lines=lines,
        )
        _order_events(suite, (paid, T0 + 3 * HOUR))
        eventually(lambda: get(f"{url}/members/{BOB}")["points"]["pending"] == 1_500, what="pending points")
        bob = get(f"{url}/members/{BOB}")
        assert bob["tier"]["name"] == "silver" and bob["stage"] == "new" and bob["points"]["available"] == 0
        assert bob["reminders"] == [{"sku": "water", "run_out": {"date": "2026-01-21", "at": T0 + 20 * DAY}, "order_id": "o1"}]
        refund = OrderRefunded(
            order_id="o1",
            refund_id="r1",
            lines=[RefundedLine(sku="mug", qty=1, reason="no_reason", amount=50_050, goods_returned=True)],
            amount=50_050,
            fully_refunded=False,
            member_id=BOB,
            distributor_id=None,
            campaign_id=None,
        )
        _order_events(suite, (refund, T0 + 2 * DAY))
        # 1 500 × 500.50 / 1 500.50 = 500.17: 500 taken back, 1 000 left pending
        eventually(lambda: get(f"{url}/members/{BOB}")["points"]["pending"] == 1_000, what="refund taken back")
        _order_events(
            suite,
            (
                OrderCompleted(order_id="o1", completed_at=T0 + 9 * DAY, member_id=BOB, distributor_id=None, campaign_id=None),
                T0 + 9 * DAY,
            ),
        )
        eventually(lambda: get(f"{url}/members/{BOB}")["points"]["available"] == 1_200, what="released + referral")
        eventually(lambda: get(f"{url}/members/{ANN}")["points"]["available"] == 200, what="the referrer rewarded")

        # bad commands: a clear refusal, nothing changes
        _tick(suite, T0 + 9 * DAY + HOUR, url)
        before = get(f"{url}/members/{BOB}")
        too_much = post(f"{url}/members/{BOB}/redemptions", {"points": 1_201, "reward": "mug"})
        assert too_much.status_code == 409 and "cannot redeem 1201 points: 1200 available" in too_much.json()["detail"]["reason"]
        assert post(f"{url}/members/{BOB}/behaviours", {"action": "checkin"}).status_code == 200
        twice = post(f"{url}/members/{BOB}/behaviours", {"action": "checkin"})
        assert twice.status_code == 409 and "at most once per day" in twice.json()["detail"]["reason"]
        assert post(f"{url}/members/nobody/redemptions", {"points": 1, "reward": "mug"}).status_code == 404
        assert post(f"{url}/members/{BOB}/redemptions", {"points": "5", "reward": "mug"}).status_code == 422
        after = get(f"{url}/members/{BOB}")
        assert after["points"]["available"] == before["points"]["available"] + 5  # only the one check-in
        ok = post(f"{url}/members/{BOB}/redemptions", {"points": 1_205, "reward": "mug", "redemption_id": "rd-1"})
        # the release, the referral and the check-in of day 9 expire together: one batch
        assert ok.status_code == 200 and ok.json()["events"][0]["taken"] == [{"expires_at": T0 + 374 * DAY, "points": 1_205}]

        # the ledger: every movement with its reason and source
        ledger = get(f"{url}/members/{BOB}/ledger")
        assert [(e["type"], e.get("reason"), e["source"]) for e in ledger["entries"]] == [
            ("PointsEarned", "order", "OrderPaid:o1"),
            ("PointsReversed", None, "OrderRefunded:o1/r1"),
            ("PointsReleased", None, "OrderCompleted:o1"),
            ("PointsEarned", "referral", f"referral:{BOB}"),
            ("PointsEarned", "checkin", "checkin:2026-01-10"),
            ("PointsRedeemed", None, "redemption:rd-1"),
        ]
        assert all(e["event_id"] and e["causation_id"] for e in ledger["entries"])
        t = get(f"{url}/members/{BOB}")
        p, tot = t["points"], t["totals"]
        assert p["available"] + p["pending"] + tot["redeemed"] + tot["expired"] + tot["reversed"] == tot["earned"] == 1_705

        # business time: the water reminder 7 days before the estimated run-out (day 20 → day 13)
        _tick(suite, T0 + 13 * DAY + HOUR)
        reminders = eventually(lambda: _loyalty(suite, "ReplenishmentReminderRaised"), what="reminder")
        assert [(r.member_id, r.sku, r.run_out_at) for r in reminders] == [(BOB, "water", T0 + 20 * DAY)]
        assert get(f"{url}/members?stage=new")["members"] == [BOB]
        alone = "RFM: alone in its partition, in the middle"
        eventually(lambda: get(f"{url}/members?segment=loyal")["members"] == [BOB], what=alone)
        metrics = httpx.get(f"{url}/metrics", timeout=15).text
        assert 'flexchain_loyalty_members{stage="prospect"} 1.0' in metrics
        assert 'flexchain_loyalty_members_by_tier{tier="silver"} 1.0' in metrics
    finally:
        suite.stop_all()
