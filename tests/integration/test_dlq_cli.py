"""`flexchain dlq list|show|redrive` through the command line (typer's CliRunner) on the real broker:
dead letters written with the runtime's own headers, listed and filtered (table and --json), shown
decoded or as raw bytes, and a dry run that plans without sending — refusing to append to another
service's event log when the service has no `<service>.redrive` topic; then a real redrive of a command, and a second one that
sends nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from typer.testing import CliRunner

from flexchain import kafka
from flexchain.cli import app
from flexchain.messages import Enveloped
from flexchain.settings import Settings
from flexchain.step import dlq_headers
from services.inventory.messages import RegisterSku
from services.order.messages import OrderLine, OrderPlaced
from tests.support import CODEC, end_offsets, envelope_for, read_all, run

pytestmark = pytest.mark.broker


def parked(topic: str, partition: int, offset: int, key: bytes, value: bytes, reason: str) -> tuple[bytes, bytes, Any]:
    """A record as the runtime parks it (`dlq_headers` of the record it read)."""
    rec: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        topic, partition, offset, 1_700_000_000_000, 0, key, value, None, len(key), len(value), (("type", b"RegisterSku"),)
    )
    return key, value, dlq_headers(rec, reason)


def test_list_show_and_dry_run(kafka_bootstrap: str, prefix: str) -> None:
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, flexchain_topic_prefix=prefix)
    commands, dlq_topic = prefix + "inventory.commands", prefix + "inventory.dlq"
    run(kafka.ensure_topics(settings, [commands, dlq_topic], partitions=2))
    sku = RegisterSku(sku="sku-1", name="A thing")
    order = OrderPlaced(
        order_id="o1",
        member_id="m",
        channel="live",
        lines=[OrderLine(sku="x", qty=1, unit_price=1)],
        distributor_id=None,
        campaign_id=None,
        total=1,
        placed_at=0,
    )
    records = [
        parked(
            commands,
            1,
            7,
            b"sku-1",
            CODEC.encode(Enveloped(envelope=envelope_for(sku, "cmd-1"), message=sku)),
            "decide failed: ValueError('x')",
        ),
        parked(commands, 0, 3, b"junk", b"\xde\xad not avro", "not in the wire format: magic byte -34"),
        parked(
            prefix + "order.events",
            2,
            11,
            b"o1",
            CODEC.encode(Enveloped(envelope=envelope_for(order), message=order)),
            "policy failed: boom",
        ),
    ]

    async def write() -> list[str]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            ids = []
            for key, value, headers in records:
                md = await producer.send_and_wait(dlq_topic, value, key=key, partition=0, headers=headers)
                ids.append(f"{md.partition}:{md.offset}")
            return ids
        finally:
            await producer.stop()

    sku_id, junk_id, order_id = run(write())
    runner = CliRunner()
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "FLEXCHAIN_TOPIC_PREFIX": prefix, "COLUMNS": "240"}

    def cli(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, ["dlq", *args], env=env)
        assert result.exit_code == code, (args, result.output, result.exception)
        return json.loads(result.stdout) if "--json" in args else result.output

    rows = {r["id"]: r for r in cli("list", "inventory", "--json")}
    assert set(rows) == {sku_id, junk_id, order_id}
    assert rows[sku_id]["type"] == "RegisterSku" and rows[sku_id]["source"] == f"{commands}:1:7"
    assert rows[junk_id]["type"] == "unreadable" and rows[junk_id]["reason"].startswith("not in the wire format")
    assert rows[order_id]["type"] == "OrderPlaced" and rows[order_id]["status"] == "parked"
    assert all(r["redrives"] == 0 for r in rows.values())
    assert [r["id"] for r in cli("list", "inventory", "--reason", "POLICY", "--json")] == [order_id]
    assert [r["id"] for r in cli("list", "inventory", "--type", "unreadable", "--json")] == [junk_id]
    assert len(cli("list", "inventory", "--since", "1h", "--json")) == 3
    assert cli("list", "inventory", "--until", "2020-01-01T00:00:00Z", "--json") == []
    table = cli("list", "inventory")
    assert sku_id in table and "decide failed" in table and "RegisterSku" in table

    shown = cli("show", "inventory", sku_id, "--json")
    assert shown["body"]["sku"] == "sku-1" and shown["body"]["name"] == "A thing"
    assert shown["envelope"]["event_id"] == "cmd-1"
    assert ["flexchain.original.type", "RegisterSku"] in shown["headers"]
    raw = cli("show", "inventory", junk_id, "--json")
    assert raw["raw_hex"] == b"\xde\xad not avro".hex() and "body" not in raw
    cli("show", "inventory", "1:99", code=1)

    before = run(end_offsets(kafka_bootstrap, dlq_topic)), run(end_offsets(kafka_bootstrap, commands))
    steps = {s["id"]: s for s in cli("redrive", "inventory", "--all", "--dry-run", "--json")}
    assert steps[sku_id]["action"] == "redrive" and steps[sku_id]["to"] == f"{commands}:1" and steps[sku_id]["redrives"] == 1
    assert steps[junk_id]["to"] == f"{commands}:0"
    assert steps[order_id]["action"] == "refuse" and "never appended" in steps[order_id]["note"]
    text = cli("redrive", "inventory", sku_id, "--dry-run")
    assert "would redrive: 1; refused: 0; selected: 1" in text
    assert (run(end_offsets(kafka_bootstrap, dlq_topic)), run(end_offsets(kafka_bootstrap, commands))) == before, (
        "a dry run sends nothing"
    )
    cli("redrive", "inventory", code=1)  # no selection: refused, nothing sent

    # for real: the command goes back to its partition, as it was, marked; a second redrive sends nothing
    sent = cli("redrive", "inventory", sku_id, "--yes", "--json")
    assert [(s["id"], s["action"], s["to"]) for s in sent] == [(sku_id, "redrive", f"{commands}:1:0")]
    (back,) = run(read_all(kafka_bootstrap, commands, decode=False))
    assert back.partition == 1 and back.key == b"sku-1" and back.value == records[0][1]
    assert back.timestamp == 1_700_000_000_000, "the record time is the original's (the dedup horizon counts from it)"
    assert dict(back.headers) == {
        "type": b"RegisterSku",
        "flexchain.redrive.count": b"1",
        "flexchain.redrive.from": f"{dlq_topic}:{sku_id}".encode(),
    }
    assert {r["id"]: r["status"] for r in cli("list", "inventory", "--json")}[sku_id] == f"redriven to {commands}:1:0"
    again = cli("redrive", "inventory", sku_id, "--yes")
    assert "redriven: 0; refused: 1" in again and "already redriven" in again
    assert len(run(read_all(kafka_bootstrap, commands, decode=False))) == 1
