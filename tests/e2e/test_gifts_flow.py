"""Gifts through the real order and inventory services (R-ORD-3 … R-ORD-6, R-ORD-2a, R-INV-2).

Gift stock is reserved like any line; an out-of-stock gift becomes its fallback, then nothing, and
the orders are confirmed all the same; a rule over the cost cap is skipped and recorded; a surprise
window announced afterwards attaches the gift to open orders; refunds take gifts back (returned to
stock, or the hold released); the rules survive a restart of the order service (rebuilt from the
log); a poor ROI raises one review suggestion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Suite, events, eventually, get, post

pytestmark = pytest.mark.broker

PRICE, COST = 10_000, 4_000  # the main product: margin 60.00, cap 9.00


def _order(url: str, oid: str, member: str = "m1", qty: int = 1) -> None:
    body = {"order_id": oid, "member_id": member, "channel": "live", "lines": [{"sku": "mask", "qty": qty, "unit_price": PRICE}]}
    assert post(f"{url}/orders", body).status_code == 200


def _types(suite: Suite, oid: str) -> list[str]:
    return [e.envelope.event_type for e in events(suite.bootstrap, suite.topic("order.events")) if e.envelope.aggregate_id == oid]


def _stock(inv: str, sku: str) -> dict[str, Any]:
    item: dict[str, Any] = get(f"{inv}/skus/{sku}")
    return item


def test_gifts_reserve_fall_back_never_fail_and_come_back_with_refunds(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    fast_review = {"FLEXCHAIN_ORDER_GIFT_REVIEW_MIN_GIFTS": "1", "FLEXCHAIN_ORDER_GIFT_REVIEW_SECONDS": "0.5"}
    try:
        inv = suite.start("inventory").url
        order_proc = suite.start("order", **fast_review)
        order = order_proc.url
        for sku, gift, qty in (("mask", False, 50), ("eye", True, 1), ("cloth", True, 1), ("pen", True, 5)):
            assert post(f"{inv}/skus", {"sku": sku, "name": sku, "is_gift": gift, "low_stock_floor": 0}).status_code == 200
            assert post(f"{inv}/skus/{sku}/receipts", {"warehouse": "w1", "qty": qty}).status_code == 200
        eventually(
            lambda: (
                post(
                    f"{order}/gift-rules",
                    {
                        "rule_id": "bad",
                        "tier": "base",
                        "main_sku": "nope",
                        "main_unit_cost": 1,
                        "gift_sku": "pen",
                        "gift_unit_cost": 1,
                    },
                ).status_code
                == 422
            )
        )
        eye_rule = {
            "rule_id": "r-eye",
            "tier": "base",
            "main_sku": "mask",
            "main_unit_cost": COST,
            "gift_sku": "eye",
            "gift_unit_cost": 800,
            "fallback_sku": "cloth",
            "fallback_unit_cost": 300,
        }
        assert post(f"{order}/gift-rules", eye_rule).status_code == 200
        pen_rule = {
            "rule_id": "r-pen",
            "tier": "base",
            "main_sku": "mask",
            "main_unit_cost": COST,
            "gift_sku": "pen",
            "gift_unit_cost": 901,
        }  # over the cap: 15 % of 60.00 = 9.00
        assert post(f"{order}/gift-rules", pen_rule).status_code == 200
        eventually(
            lambda: [r["replicated"] for r in get(f"{order}/gift-rules")] == [True, True],
            what="rules replicated to every partition",
        )

        # eye: 1 in stock, cloth (the fallback): 1 → o1 gets eye, o2 cloth, o3 nothing; all confirmed
        for oid in ("o1", "o2", "o3"):
            _order(order, oid)
            eventually(lambda oid=oid: get(f"{order}/orders/{oid}")["status"] == "confirmed", what=f"{oid} confirmed")
        gifts = {oid: get(f"{order}/orders/{oid}")["gifts"] for oid in ("o1", "o2", "o3")}
        assert gifts["o1"]["r-eye"] == {"sku": "eye", "qty": 1, "unit_cost": 800, "status": "reserved", "taken_back": 0}
        assert gifts["o2"]["r-eye"]["sku"] == "cloth" and gifts["o2"]["r-eye"]["status"] == "reserved"
        assert gifts["o3"]["r-eye"]["status"] == "omitted"
        for oid in ("o1", "o2", "o3"):
            assert "r-pen" not in gifts[oid] and _types(suite, oid).count("GiftRuleSkipped") == 1
        assert _types(suite, "o2").count("GiftSubstituted") == 1 and _types(suite, "o3").count("GiftOmitted") == 1
        assert _stock(inv, "eye")["available"] == 0 and _stock(inv, "cloth")["available"] == 0
        assert _stock(inv, "pen")["available"] == 5  # a skipped rule holds nothing

        # o1 ships with its gift; a no-reason refund of the main line brings the gift back (grade A)
        assert post(f"{order}/orders/o1/payment", {"amount": PRICE, "payment_ref": "p1"}).status_code == 200
        shipped = post(f"{order}/orders/o1/shipment", {"tracking": "SF1"}).json()
        assert shipped["events"][0]["skus"] == ["mask", "eye"]
        eventually(lambda: _stock(inv, "eye")["on_hand"] == 0, what="gift shipped")
        assert post(f"{order}/orders/o1/delivery").status_code == 200
        refund = post(
            f"{order}/orders/o1/refunds", {"refund_id": "r1", "lines": [{"sku": "mask", "qty": 1, "reason": "no_reason"}]}
        )
        assert refund.status_code == 200, refund.text
        assert refund.json()["events"][0]["gifts"] == [
            {"rule_id": "r-eye", "sku": "eye", "qty": 1, "goods_returned": True, "written_off": False, "reason": "no_reason"}
        ]
        eventually(lambda: _stock(inv, "eye")["on_hand"] == 1 and _stock(inv, "eye")["available"] == 1, what="gift restocked")
        # o2 is refunded before shipping: the fallback gift's hold is released
        assert post(f"{order}/orders/o2/payment", {"amount": PRICE, "payment_ref": "p2"}).status_code == 200
        post(f"{order}/orders/o2/refunds", {"refund_id": "r2", "lines": [{"sku": "mask", "qty": 1, "reason": "no_reason"}]})
        eventually(lambda: _stock(inv, "cloth")["available"] == 1 and _stock(inv, "cloth")["reserved"] == 0, what="hold released")

        # the order service restarts: its rules come back from the log, a new order still gets the gift
        order_proc.stop()
        order = suite.start("order", **fast_review).url
        _order(order, "o4", member="m2")
        eventually(lambda: get(f"{order}/orders/o4")["status"] == "confirmed")
        assert get(f"{order}/orders/o4")["gifts"]["r-eye"]["status"] == "reserved"

        # a poor ROI (no recipient came back) raises one review suggestion, also after the restart
        eventually(lambda: get(f"{order}/gift-rules/r-eye")["review_suggested"] is True, what="review suggested")
        suggested = [e for e in _types(suite, "r-eye") if e == "GiftRuleReviewSuggested"]
        assert len(suggested) == 1
        perf = get(f"{order}/gift-rules/r-eye")["performance"]
        assert perf["gifts_given"] == 1 and perf["gifts_taken_back"] == 1 and perf["acceptance"] == "0.0000"
        text = httpx.get(f"{order}/metrics", timeout=10).text
        assert 'flexchain_order_gift_review_suggested{rule="r-eye"} 1.0' in text

        # stock: on hand = received − shipped + returned(A), per sku, at the end
        for sku, received in (("eye", 1), ("cloth", 1), ("pen", 5)):
            inv_events = [
                e.message for e in events(kafka_bootstrap, suite.topic("inventory.events")) if e.envelope.aggregate_id == sku
            ]
            shipped_units = sum(
                sum(a.qty for a in m.allocations) for m in inv_events if type(m).__name__ == "ReservationCommitted"
            )
            returned_a = sum(m.qty for m in inv_events if type(m).__name__ == "StockReturned" and m.grade == "A")
            assert _stock(inv, sku)["on_hand"] == received - shipped_units + returned_a, sku
    finally:
        suite.stop_all()
