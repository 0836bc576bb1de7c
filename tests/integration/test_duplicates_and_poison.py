"""Duplicates change nothing (also after a restart); poison records go to the DLQ with the reason
in headers, the DLQ metric counts them, and processing goes on."""

from __future__ import annotations

import struct
from pathlib import Path

import httpx
import pytest

from services.inventory.messages import ReceiveStock, RegisterSku
from services.order.messages import OrderLine, OrderPlaced
from tests.support import Suite, envelope_for, events, eventually, get, publish, publish_raw, read_all, run

pytestmark = pytest.mark.broker


def _metric(url: str, name: str) -> float:
    total = 0.0
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_same_command_twice_changes_nothing_also_after_restart(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    topic = suite.topic("inventory.commands")
    try:
        inv = suite.start("inventory")
        reg = RegisterSku(sku="dup", name="Duplicate test")
        receive = ReceiveStock(sku="dup", warehouse="w1", qty=10, reference="PO-9")
        env = envelope_for(receive)
        run(publish(kafka_bootstrap, topic, [(reg, envelope_for(reg)), (receive, env), (receive, env)]))
        eventually(lambda: get(f"{inv.url}/skus/dup")["on_hand"] == 10)
        eventually(lambda: _metric(inv.url, "flexchain_inventory_duplicates_skipped_total") == 1)

        inv.stop()
        inv = suite.start("inventory")
        run(publish(kafka_bootstrap, topic, [(receive, env)]))  # the same id again, after a rebuild
        marker = ReceiveStock(sku="dup", warehouse="w1", qty=1, reference="marker")
        run(publish(kafka_bootstrap, topic, [(marker, envelope_for(marker))]))
        eventually(lambda: get(f"{inv.url}/skus/dup")["on_hand"] == 11, what="marker applied")
        received = [
            e for e in events(kafka_bootstrap, suite.topic("inventory.events")) if e.envelope.event_type == "StockReceived"
        ]
        assert [e.message.qty for e in received] == [10, 1]
        assert _metric(inv.url, "flexchain_inventory_duplicates_skipped_total") == 1  # counted by the new process
    finally:
        suite.stop_all()


def test_poison_records_go_to_the_dlq_and_processing_continues(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        inv = suite.start("inventory")
        unknown_schema = struct.pack(">bI", 0, 999_999) + b"\x02\x04"
        wrong_service = OrderPlaced(
            order_id="o1",
            member_id="m",
            channel="live",
            lines=[OrderLine(sku="x", qty=1, unit_price=1)],
            distributor_id=None,
            campaign_id=None,
            total=1,
            placed_at=0,
        )
        run(
            publish_raw(
                kafka_bootstrap,
                suite.topic("inventory.commands"),
                [
                    (b"junk", b"\xde\xad\xbe\xef not avro at all"),
                    (b"unknown", unknown_schema),
                ],
            )
        )
        run(publish(kafka_bootstrap, suite.topic("inventory.commands"), [(wrong_service, envelope_for(wrong_service))]))
        # the router's input can be poisoned too
        run(publish_raw(kafka_bootstrap, suite.topic("order.events"), [(b"o-junk", b"\x00\x00")]))
        good = RegisterSku(sku="after-poison", name="still working")
        run(publish(kafka_bootstrap, suite.topic("inventory.commands"), [(good, envelope_for(good))]))

        eventually(lambda: get(f"{inv.url}/skus/after-poison")["sku"] == "after-poison", what="processing continued")
        dlq = eventually(
            lambda: (r := run(read_all(kafka_bootstrap, suite.topic("inventory.dlq"), decode=False))) and len(r) == 4 and r,
            what="4 dead letters",
        )
        by_key = {rec.key: dict(rec.headers) for rec in dlq}
        assert by_key[b"junk"]["flexchain.dlq.reason"].startswith(b"not in the wire format")
        assert by_key[b"unknown"]["flexchain.dlq.reason"].startswith(b"unknown schema id 999999: not a current schema")
        assert by_key[b"o1"]["flexchain.dlq.reason"].startswith(b"not a command of inventory")
        assert by_key[b"o-junk"]["flexchain.source.topic"] == suite.topic("order.events").encode()
        for headers in by_key.values():
            assert {"flexchain.source.topic", "flexchain.source.partition", "flexchain.source.offset"} <= set(headers)
        original = next(rec.value for rec in dlq if rec.key == b"junk")
        assert original == b"\xde\xad\xbe\xef not avro at all", "the DLQ keeps the record as it was"
        eventually(lambda: _metric(inv.url, "flexchain_inventory_dlq_records_total") == 4, what="DLQ metric")
    finally:
        suite.stop_all()
