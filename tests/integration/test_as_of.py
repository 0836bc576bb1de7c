"""Balances as of a past business time (R-X-4) on the real broker, through the inventory API.

Stock moves on three business days; asked afterwards, the service tells each day's stock as it
stood then: nothing before the sku existed (404), the receipts of each day, a reservation held then
and released later. An answer kept for reuse is not served once the log below its time has grown
(a receipt stamped with the last tick's time after the question was first asked). After a restart
that rebuilds from the log alone, the same questions get the same answers. A bad time is a 422.
The cascade test (tests/e2e/test_refund_cascade.py) asks the same of all five services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.order.messages import OrderCancelled, OrderLine, OrderPlaced
from tests.integration.test_inventory_rules_service import _publish, _tick
from tests.support import Suite, eventually, get, http, post

pytestmark = pytest.mark.broker

T1 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
DAY = 86_400_000


def _stock(url: str, at: int | None = None) -> dict[str, Any]:
    q = "" if at is None else f"?as_of={at}"
    s = get(f"{url}/skus/mask{q}")
    return {"on_hand": s["on_hand"], "reserved": s["reserved"], "available": s["available"], "warehouses": s["warehouses"]}


def test_stock_as_of_each_past_day(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        inv = suite.start("inventory")
        url = str(inv.url)
        _tick(suite, T1, url)
        post(f"{url}/skus", {"sku": "mask", "name": "Face mask", "low_stock_floor": 5})
        post(f"{url}/skus/mask/receipts", {"warehouse": "shanghai", "qty": 100})
        day1 = _stock(url)

        _tick(suite, T1 + DAY, url)
        post(f"{url}/skus/mask/receipts", {"warehouse": "guangzhou", "qty": 40})
        place = OrderPlaced(
            order_id="o-1",
            member_id="m-1",
            channel="live",
            lines=[OrderLine(sku="mask", qty=30, unit_price=5900)],
            distributor_id=None,
            campaign_id=None,
            total=177_000,
            placed_at=T1 + DAY,
        )
        _publish(suite, "order.events", (place, T1 + DAY))
        eventually(lambda: _stock(url)["reserved"] == 30, what="the order's hold")
        day2 = _stock(url)

        _tick(suite, T1 + 2 * DAY, url)
        cancel = OrderCancelled(
            order_id="o-1",
            reason="buyer changed mind",
            release_skus=["mask"],
            refund_amount=0,
            member_id="m-1",
            distributor_id=None,
            campaign_id=None,
        )
        _publish(suite, "order.events", (cancel, T1 + 2 * DAY))
        eventually(lambda: _stock(url)["reserved"] == 0, what="the hold released")
        day3 = _stock(url)
        assert day1["on_hand"] == 100 and day2["available"] == 110 and day3["available"] == 140

        r = http("GET", f"{url}/skus/mask", params={"as_of": T1 - 1}, timeout=30)
        assert r.status_code == 404 and "as of business time" in r.text  # it did not exist yet
        for bad in ("-1", "yesterday", "1.5"):
            assert http("GET", f"{url}/skus/mask", params={"as_of": bad}, timeout=30).status_code == 422
        assert _stock(url, T1) == day1
        assert _stock(url, T1 + DAY) == day2  # the hold as it was, released later
        assert _stock(url, T1 + 2 * DAY) == day3
        answer = get(f"{url}/skus/mask?as_of={T1 + DAY}")["as_of"]
        assert answer["business_time"] == T1 + DAY and answer["events_folded"] > 0

        # The last day is still open: a receipt now is stamped with its time, and must be told.
        post(f"{url}/skus/mask/receipts", {"warehouse": "shanghai", "qty": 7})
        assert _stock(url, T1 + 2 * DAY)["available"] == 147
        assert _stock(url, T1) == day1  # a closed day never changes
        listed = get(f"{url}/skus?as_of={T1}")
        assert [s["sku"] for s in listed] == ["mask"] and listed[0]["on_hand"] == 100

        inv.stop()
        for f in data_dir.glob("*.db"):
            f.unlink()  # no snapshot: the restarted service rebuilds from the log alone
        url = str(suite.start("inventory").url)
        assert (_stock(url, T1), _stock(url, T1 + DAY)) == (day1, day2)
        eventually(lambda: _stock(url)["available"] == 147, what="the live state rebuilt")
    finally:
        suite.stop_all()
