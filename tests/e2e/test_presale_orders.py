"""A presale campaign driven through the real order service (R-PRE-3, R-PRE-4, R-PRE-5, R-PRE-7):
the order is priced by the campaign's phase at placement, reserves no stock, its payment is
escrowed; an order beyond 80 % of capacity is rejected with the campaign's reason; a failed
campaign refunds every paid order once, and the order service records the refund without moving
the money a second time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_presale_money import END, START, campaign, tick
from tests.support import Suite, events, eventually, get, post

pytestmark = pytest.mark.broker


def _order(url: str, oid: str, qty: int, cid: str = "tee-drop") -> None:
    body = {
        "order_id": oid,
        "member_id": f"m-{oid}",
        "channel": "live",
        "campaign_id": cid,
        "lines": [{"sku": "tee", "qty": qty, "unit_price": 0}],
    }
    assert post(f"{url}/orders", body).status_code == 200


def test_presale_orders_through_the_order_service(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        pre, order = suite.start("presale").url, suite.start("order").url
        tick(suite, START, pre, order)  # the campaign and the orders are stamped on business time
        campaign(pre, "tee-drop", moq=5, capacity=10)  # intake closes at 8 units (R-PRE-4)

        _order(order, "p1", 2)  # early bird: cost 2000 × 1.2 = 2400 a unit (R-PRE-3)
        eventually(lambda: get(f"{order}/orders/p1")["status"] == "confirmed", what="priced by the campaign")
        p1 = get(f"{order}/orders/p1")
        assert p1["total"] == 4_800 and p1["lines"] == [{"sku": "tee", "qty": 2, "unit_price": 2_400}]
        assert p1["reservations"] == {}, "a presale order reserves no stock"
        assert post(f"{order}/orders/p1/payment", {"amount": 4_800, "payment_ref": "pay-p1"}).status_code == 200
        eventually(lambda: get(f"{pre}/campaigns/tee-drop")["money"]["received"] == 4_800, what="escrowed")

        _order(order, "p2", 7)  # 2 + 7 > 8
        eventually(lambda: get(f"{order}/orders/p2")["status"] == "rejected")
        assert "presale refused" in get(f"{order}/orders/p2")["history"][-1]["reason"]

        _order(order, "p3", 1)  # confirmed but never paid
        eventually(lambda: get(f"{order}/orders/p3")["status"] == "confirmed")

        tick(suite, END)  # the close: 3 pledged < MOQ 5 → failed, everything refunded (R-PRE-7)
        eventually(lambda: get(f"{order}/orders/p1")["status"] == "refunded", what="paid order refunded")
        eventually(lambda: get(f"{order}/orders/p3")["status"] == "cancelled", what="unpaid order cancelled")
        assert get(f"{order}/orders/p1")["refunded_amount"] == 4_800
        money = eventually(lambda: (m := get(f"{pre}/campaigns/tee-drop")["money"]) and m["refunded"] == 4_800 and m)
        assert money["received"] == 4_800 and money["refunded"] == 4_800, money
        refunds = [e for e in events(kafka_bootstrap, suite.topic("presale.events")) if e.envelope.event_type == "EscrowRefunded"]
        assert [e.message.requested for e in refunds] == [4_800], "the echo of the order's refund moved no money"
        assert refunds[0].message.initiated_by == "presale"
    finally:
        suite.stop_all()
