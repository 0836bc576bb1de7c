"""Rebuild (ARCHITECTURE § rebuild, R-X-2): a scenario runs; the services stop; snapshots and
databases are deleted; they start again and rebuild from the log alone — the same state, and no
derived event (low-stock alert, back-in-stock) emitted a second time."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flexchain.procs import ServiceProcess
from tests.support import Suite, digests, events, eventually, get, post

pytestmark = pytest.mark.broker


def _scenario(inv: str, order: str) -> None:
    for sku, floor in (("mask", 50), ("serum", 2)):
        assert post(f"{inv}/skus", {"sku": sku, "name": sku, "low_stock_floor": floor}).status_code == 200
    post(f"{inv}/skus/mask/receipts", {"warehouse": "sh", "qty": 60})
    post(f"{inv}/skus/mask/receipts", {"warehouse": "gz", "qty": 40})
    post(f"{inv}/skus/serum/receipts", {"warehouse": "sh", "qty": 10})
    eventually(
        lambda: (
            post(
                f"{order}/orders",
                {
                    "order_id": "probe",
                    "member_id": "m",
                    "channel": "live",
                    "lines": [{"sku": "serum", "qty": 1, "unit_price": 1}],
                },
            ).status_code
            == 200
        ),
        what="order service knows the catalogue",
    )
    orders = {
        "o1": [("mask", 55)],  # crosses the threshold: one alert
        "o2": [("mask", 5), ("serum", 3)],  # second line below threshold: no second alert
        "o3": [("serum", 50)],  # rejected
    }
    for oid, lines in orders.items():
        body = {
            "order_id": oid,
            "member_id": "m1",
            "channel": "live",
            "lines": [{"sku": s, "qty": q, "unit_price": 990} for s, q in lines],
        }
        assert post(f"{order}/orders", body).status_code == 200
    for oid in orders:
        eventually(lambda oid=oid: get(f"{order}/orders/{oid}")["status"] != "placed", what=f"{oid} settled")
    assert post(f"{order}/orders/o1/cancellation", {"reason": "changed mind"}).status_code == 200
    eventually(lambda: get(f"{inv}/skus/mask")["available"] == 95, what="o1's hold released")


def _state(inv: str, order: str) -> dict[str, object]:
    return {
        "skus": get(f"{inv}/skus"),
        "orders": {o: {k: v for k, v in get(f"{order}/orders/{o}").items() if k != "history"} for o in ("o1", "o2", "o3")},
        # the state digest per partition; next_offset differs by the commit markers, so it is left out
        "inventory_partitions": {p: d["digest"] for p, d in digests(inv).items()},
        "order_partitions": {p: d["digest"] for p, d in digests(order).items()},
    }


def test_rebuild_from_scratch_gives_the_same_state_and_no_second_alert(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SNAPSHOT_EVERY="3")
    try:
        inv = suite.start("inventory")
        order = suite.start("order")
        _scenario(inv.url, order.url)
        before = _state(inv.url, order.url)
        inv_events = events(kafka_bootstrap, suite.topic("inventory.events"))
        order_events = events(kafka_bootstrap, suite.topic("order.events"))
        alerts = [e for e in inv_events if e.envelope.event_type == "LowStockAlertRaised"]
        assert len(alerts) == 1, "one alert per crossing (R-INV-3)"

        # 1. restart with snapshots (taken every 3 events): same state
        suite.stop_all()
        inv, order = suite.start("inventory"), suite.start("order")
        assert _state(inv.url, order.url) == before
        for proc in (inv, order):  # the snapshots were used, none refused (snapshots are data: statecodec)
            lines = _log_events(proc)
            assert any(e["event"] == "snapshot loaded" for e in lines), proc.log_path
            assert not [e for e in lines if e["event"].startswith("snapshot ignored")], proc.log_path

        # 2. delete every snapshot and database, restart: same state, from the log alone
        suite.stop_all()
        shutil.rmtree(data_dir)
        data_dir.mkdir()
        inv, order = suite.start("inventory"), suite.start("order")
        assert _state(inv.url, order.url) == before

        # nothing was emitted again by either rebuild
        assert events(kafka_bootstrap, suite.topic("inventory.events")) == inv_events
        assert events(kafka_bootstrap, suite.topic("order.events")) == order_events
        ids = Counter(e.envelope.event_id for e in inv_events + order_events)
        assert max(ids.values()) == 1

        # the rebuilt state keeps deciding correctly: exactly the available stock fits, one more does not
        avail = get(f"{inv.url}/skus/mask")["available"]
        body = {
            "order_id": "o4",
            "member_id": "m2",
            "channel": "live",
            "lines": [{"sku": "mask", "qty": avail, "unit_price": 990}],
        }
        post(f"{order.url}/orders", body)
        assert (
            eventually(lambda: get(f"{order.url}/orders/o4")["status"] != "placed")
            and get(f"{order.url}/orders/o4")["status"] == "confirmed"
        )
        body["order_id"] = "o5"
        body["lines"][0]["qty"] = 1
        post(f"{order.url}/orders", body)
        eventually(lambda: get(f"{order.url}/orders/o5")["status"] == "rejected", what="o5 rejected: nothing left")
        assert get(f"{inv.url}/skus/mask")["available"] == 0
    finally:
        suite.stop_all()


def _log_events(proc: ServiceProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.log_path.read_text().splitlines() if line.startswith("{")]


def test_a_state_folded_from_the_log_is_snapshotted_at_a_clean_stop(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    """An instance that folded a long log (a new node, a lost disk) and is stopped before it commits
    anything of its own must still keep what it folded: otherwise every restart folds it all again."""
    suite = Suite(kafka_bootstrap, prefix, data_dir)  # FLEXCHAIN_SNAPSHOT_EVERY: its default, far above this log
    try:
        inv = suite.start("inventory")
        for sku in ("tea", "cup", "pot"):
            post(f"{inv.url}/skus", {"sku": sku, "name": sku})
            post(f"{inv.url}/skus/{sku}/receipts", {"warehouse": "w1", "qty": 5})
        want = get(f"{inv.url}/skus")
        suite.stop_all()
        shutil.rmtree(data_dir)  # its disk lost: the next start folds the log
        data_dir.mkdir()
        inv = suite.start("inventory")
        assert not any(e["event"] == "snapshot loaded" for e in _log_events(inv))
        assert get(f"{inv.url}/skus") == want
        suite.stop_all()  # clean: nothing decided since the fold
        inv = suite.start("inventory")
        assert any(e["event"] == "snapshot loaded" for e in _log_events(inv)), inv.log_path
        assert get(f"{inv.url}/skus") == want
    finally:
        suite.stop_all()
