"""README "Subscribe from your own system": each example subscriber (confluent-kafka, faust), run as a user would run it, against
the topics of real services on the real broker — decoded, read_committed, a redelivered event dropped by
its event id. (The registry variant of the confluent-kafka example runs in tests/deploy/test_registry.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from flexchain.procs import ChildProcess
from flexchain.settings import PROJECT_ROOT
from tests.support import Suite, eventually, get, http, post, publish_raw, read_all, run

pytestmark = pytest.mark.broker

EXAMPLES = PROJECT_ROOT / "examples" / "subscribe"


def run_example(args: list[str], timeout: float = 120) -> list[dict[str, Any]]:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture
def stocked(kafka_bootstrap: str, prefix: str, data_dir: Path) -> Suite:
    """Inventory's events of a small day: a sku registered, stock received twice, a safety stock set — and
    then one event delivered twice (the same bytes appended again, as a redelivery would)."""
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        inv = suite.start("inventory")
        assert post(f"{inv.url}/skus", {"sku": "mask", "name": "Mask"}).status_code == 200
        assert post(f"{inv.url}/skus/mask/receipts", {"warehouse": "w1", "qty": 40}).status_code == 200
        assert post(f"{inv.url}/skus/mask/receipts", {"warehouse": "w2", "qty": 5}).status_code == 200
        assert http("PUT", f"{inv.url}/skus/mask/safety-stock", json={"units": 9}, timeout=15).status_code == 200
        eventually(lambda: get(f"{inv.url}/skus/mask")["on_hand"] == 45, what="both receipts applied")
    finally:
        suite.stop_all()
    records = run(read_all(kafka_bootstrap, suite.topic("inventory.events"), decode=False))
    first = records[0]
    run(publish_raw(kafka_bootstrap, suite.topic("inventory.events"), [(first.key, first.value)]))
    return suite


def test_confluent_kafka_example_reads_every_event_once(stocked: Suite, kafka_bootstrap: str) -> None:
    topic = stocked.topic("inventory.events")
    events = run(read_all(kafka_bootstrap, topic))
    distinct = {e.envelope.event_id for e in events}
    assert len(events) == len(distinct) + 1, "the fixture appended one event twice"

    lines = run_example(
        [str(EXAMPLES / "confluent_subscriber.py"), "--bootstrap", kafka_bootstrap, "--schemas",
         str(PROJECT_ROOT / "schemas" / "history"), "--group", f"sub-{uuid.uuid4().hex[:6]}", "--to-end", topic]
    )  # fmt: skip
    ids = [line["event_id"] for line in lines]
    assert len(ids) == len(set(ids)), "an event printed twice: the dedup by event id failed"
    assert set(ids) == distinct, "an event missing (or one the services never committed)"
    by_type = {line["type"]: line for line in lines}
    assert by_type["SkuRegistered"]["body"]["name"] == "Mask"
    assert sorted(line["body"]["qty"] for line in lines if line["type"] == "StockReceived") == [5, 40]
    assert {line["aggregate_id"] for line in lines} == {"mask"}


def test_faust_example_reads_every_event_once(stocked: Suite, kafka_bootstrap: str, tmp_path: Path) -> None:
    """faust runs until stopped: wait until it has printed every event, then stop it and look for repeats."""
    topic = stocked.topic("inventory.events")
    distinct = {e.envelope.event_id for e in run(read_all(kafka_bootstrap, topic))}
    out = tmp_path / "faust.out"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SUBSCRIBE_TOPICS": topic,
        "SUBSCRIBE_GROUP": f"sub-{uuid.uuid4().hex[:6]}",
        "SUBSCRIBE_DATA_DIR": str(tmp_path / "faust-data"),
        "FLEXCHAIN_SCHEMAS_DIR": str(PROJECT_ROOT / "schemas"),
    }
    argv = [sys.executable, str(EXAMPLES / "faust_subscriber.py"), "worker", "--without-web", "-l", "warn"]
    proc = ChildProcess("faust-subscriber", argv, env, out, cwd=tmp_path).start()

    def printed() -> list[dict[str, Any]]:
        if not proc.running:
            raise RuntimeError(f"the faust subscriber exited: {proc.tail()}")  # not retried by eventually
        return [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]

    try:
        eventually(lambda: {line["event_id"] for line in printed()} >= distinct, 90, what="every event printed")
    finally:
        proc.stop()
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    ids = [line["event_id"] for line in lines]
    assert len(ids) == len(set(ids)), "an event printed twice: the dedup by event id failed"
    assert set(ids) == distinct
    assert sorted(line["body"]["qty"] for line in lines if line["type"] == "StockReceived") == [5, 40]
