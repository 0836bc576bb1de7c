"""The ops commands on the real broker, through typer's CliRunner (README "Operating").

* `flexchain lag`: after commands are processed every input partition of inventory's processor and
  router shows lag 0 — counted in records, although the routers' transactional writes leave commit
  markers that an offset difference would count — with the age and instance of the last commit
  (from the commit metadata); once the service is stopped, it says `down` and the lag of the
  partition commands keep arriving on grows with them.
* `flexchain as-of` answers what `GET …?as_of=<ms>` answers (R-X-4), given the time as ISO 8601.
* `flexchain rebuild`: a running instance drops its snapshots and folds its partitions from offset 0
  (progress followed until done), ends with the very same state digests, and the commands sent
  while it rebuilt are applied exactly once afterwards; a partition it does not own is refused,
  naming the instance that holds it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from click.testing import Result
from typer.testing import CliRunner

from flexchain.cli import app
from services.inventory.messages import ReceiveStock
from tests.integration.test_inventory_rules_service import _tick
from tests.support import Suite, digests, envelope_for, events, eventually, get, post, publish, run

pytestmark = pytest.mark.broker

T1 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
DAY = 86_400_000
RUNNER = CliRunner()


def _cli(suite: Suite, url: str, *args: str) -> Result:
    env = {"KAFKA_BOOTSTRAP_SERVERS": suite.bootstrap, "FLEXCHAIN_TOPIC_PREFIX": suite.prefix, "FLEXCHAIN_INVENTORY_URL": url}
    env["COLUMNS"] = "200"  # a table as wide as it needs
    return RUNNER.invoke(app, list(args), env=env)


def _lag(suite: Suite, url: str) -> list[dict[str, Any]]:
    result = _cli(suite, url, "lag", "--service", "inventory", "--json")
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def _partition(key: str) -> int:
    parts = list(range(6))
    p: int = DefaultPartitioner()(key.encode(), parts, parts)
    return p


def _receive(suite: Suite, *receipts: tuple[str, int, str]) -> None:
    """ReceiveStock commands (sku, qty, command id) straight to the command topic, in one go."""
    cmds = [ReceiveStock(sku=sku, warehouse="sh", qty=qty, reference=cid) for sku, qty, cid in receipts]
    run(publish(suite.bootstrap, suite.topic("inventory.commands"), [(c, envelope_for(c, c.reference)) for c in cmds]))


def test_lag_from_the_broker_and_as_of_from_the_command_line(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        inv = suite.start("inventory")
        url = inv.url
        _tick(suite, T1, url)
        post(f"{url}/skus", {"sku": "mask", "name": "Face mask", "low_stock_floor": 5})
        post(f"{url}/skus/mask/receipts", {"warehouse": "sh", "qty": 100})
        _tick(suite, T1 + DAY, url)  # the router turns a day's tick into a review on every partition
        post(f"{url}/skus/mask/receipts", {"warehouse": "gz", "qty": 40})

        rows = eventually(lambda: (r := _lag(suite, url)) and all(x["lag"] == 0 for x in r) and r, what="lag 0 everywhere")
        processor = [r for r in rows if r["loop"] == "processor"]
        router = {r["topic"].removeprefix(prefix) for r in rows if r["loop"] == "router"}
        assert len(processor) == 6 and router == {"order.events", "presale.events", "clock.ticks"}
        assert all(r["lag_exact"] and r["http"] == "ready" and r["group_members"] == 1 for r in rows)
        mine = next(r for r in processor if r["partition"] == _partition("mask"))
        assert mine["committed"] is not None and mine["committed_by"] == "0" and 0 <= mine["last_commit_age_s"] < 120
        # the routed reviews are written in transactions: their commit markers sit after the last record,
        # so the offsets differ by the markers while no record waits
        markers = [r for r in processor if r["committed"] is not None and r["end"] > r["committed"]]
        assert markers, "no marker after a committed offset: the test would prove nothing"

        # as-of: the same answer as the route, the time given as ISO 8601 (with an offset, with Z, naive = UTC)
        for at, text in ((T1, "2026-01-01T08:00:00+08:00"), (T1, "2026-01-01T00:00:00Z"), (T1 + DAY, "2026-01-02")):
            result = _cli(suite, url, "as-of", "inventory", "sku/mask", text, "--json")
            assert result.exit_code == 0, result.output
            assert json.loads(result.stdout) == get(f"{url}/skus/mask?as_of={at}")
        assert json.loads(_cli(suite, url, "as-of", "inventory", "sku/mask", str(T1), "--json").stdout)["on_hand"] == 100
        table = _cli(suite, url, "as-of", "inventory", "sku/mask", "2026-01-02T00:00")
        assert table.exit_code == 0 and "as of 2026-01-02T00:00:00.000Z" in table.stdout and "140" in table.stdout
        missing = _cli(suite, url, "as-of", "inventory", "sku/mask", "2025-12-31T23:59:59.999")
        assert missing.exit_code == 1 and "404" in missing.output  # R-X-4: it did not exist yet

        # the service stops: its lag is read from the broker alone, and grows with the commands that arrive
        inv.stop()
        p = _partition("mask")
        _receive(suite, *[("mask", 1, f"late-{i}") for i in range(3)])
        rows = eventually(lambda: [r for r in _lag(suite, url) if r["group_members"] == 0], what="the group empty")
        assert all(r["http"] == "down" for r in rows)
        lags = {r["partition"]: r["lag"] for r in rows if r["loop"] == "processor"}
        assert lags == {q: 3 if q == p else 0 for q in range(6)}
        _receive(suite, *[("mask", 1, f"late-{i}") for i in range(3, 5)])
        assert {r["partition"]: r["lag"] for r in _lag(suite, url) if r["loop"] == "processor"}[p] == 5
        table = _cli(suite, url, "lag", "--service", "inventory")
        assert table.exit_code == 0 and "down" in table.stdout and "inventory.commands" in table.stdout
    finally:
        suite.stop_all()


def _snapshots(data_dir: Path, prefix: str) -> dict[int, int]:
    with sqlite3.connect(data_dir / "inventory-snapshots.db") as db:
        rows = db.execute(
            "select partition, next_offset from flexchain_partition_snapshots where service = ?", (prefix + "inventory",)
        ).fetchall()
    return dict(rows)


def _log_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_rebuild_a_running_instance_from_the_log(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    # snapshots every 2 events; each batch a rebuild folds is followed by a pause, so commands can be sent meanwhile
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SNAPSHOT_EVERY="2", FLEXCHAIN_FAULT_REBUILD_DELAY_MS="3000")
    try:
        inv = suite.start("inventory")
        url = inv.url
        skus = ["mask", "serum", "toner", "balm"]
        for sku in skus:
            post(f"{url}/skus", {"sku": sku, "name": sku})
            for qty in (10, 20):
                assert post(f"{url}/skus/{sku}/receipts", {"warehouse": "sh", "qty": qty}).status_code == 200
        quiet = {_partition("toner"), _partition("balm")}  # no command reaches them during the rebuild
        assert not quiet & {_partition("mask"), _partition("serum")}
        taken = eventually(lambda: (s := _snapshots(data_dir, prefix)) and quiet <= set(s) and s, what="snapshots taken")
        before = {p: d["digest"] for p, d in digests(url).items()}
        stock = {sku: get(f"{url}/skus/{sku}")["on_hand"] for sku in skus}

        # the rebuild runs in the CLI (a thread); commands arrive while it runs, one of them twice
        outcome: dict[str, Result] = {}
        cli = threading.Thread(target=lambda: outcome.update(r=_cli(suite, url, "rebuild", "inventory", "--json")))
        cli.start()
        eventually(lambda: get(f"{url}/internal/rebuild")["state"] == "running", what="the rebuild running")
        during = [("mask", 1, "during-1"), ("mask", 2, "during-2"), ("serum", 4, "during-3"), ("mask", 1, "during-1")]
        _receive(suite, *during)
        assert get(f"{url}/internal/rebuild")["state"] == "running", "the commands were not sent during the rebuild"
        cli.join(timeout=120)
        result = outcome["r"]
        assert result.exit_code == 0, result.output
        status = json.loads(result.stdout)
        assert status["state"] == "done" and sorted(status["partitions"]) == sorted(before)
        assert {p: d["digest"] for p, d in status["partitions"].items()} == before  # the same state, from the log
        assert all(d["progress"] == 1.0 for d in status["partitions"].values())

        # the snapshots were dropped and every partition folded from offset 0
        assert not quiet & set(_snapshots(data_dir, prefix)), "a snapshot of a rebuilt partition is left"
        log = _log_events(inv.log_path)
        forced = next(i for i, e in enumerate(log) if e["event"].startswith("forced rebuild from the log"))
        started = next(e for e in log[forced:] if e["event"] == "rebuild started")
        ends = {int(p): d["next_offset"] for p, d in status["partitions"].items()}
        assert started["events"] == sum(ends.values()) and sum(taken.values()) > 0
        assert not [e for e in log[forced:] if e["event"] == "snapshot loaded"]

        # the commands sent during the rebuild: applied once each, afterwards
        eventually(lambda: get(f"{url}/skus/mask")["on_hand"] == stock["mask"] + 3, what="mask's receipts applied")
        eventually(lambda: get(f"{url}/skus/serum")["on_hand"] == stock["serum"] + 4, what="serum's receipt applied")
        caused = [e.envelope.causation_id for e in events(kafka_bootstrap, suite.topic("inventory.events"))]
        assert {cid: caused.count(cid) for cid in ("during-1", "during-2", "during-3")} == {
            "during-1": 1,
            "during-2": 1,
            "during-3": 1,
        }
        assert get(f"{url}/skus/mask")["on_hand"] == stock["mask"] + 3  # the repeat of during-1 changed nothing

        # one partition again (table output): the live state after those commands is what the log folds to
        p = _partition("mask")
        live = digests(url)[str(p)]["digest"]
        table = _cli(suite, url, "rebuild", "inventory", "--partition", str(p))
        assert table.exit_code == 0, table.output
        assert "rebuilt from the log" in table.stdout and live[:16] in table.stdout
        assert digests(url)[str(p)]["digest"] == live

        # a second instance takes some partitions: instance 0 refuses one it does not own, naming its holder
        suite.start("inventory", instance="1")
        owned = eventually(lambda: (d := get(f"{url}/internal/partitions")) and d["ready"] and len(d["partitions"]) < 6 and d)
        other = min(q for q in range(6) if str(q) not in owned["partitions"])
        refused = _cli(suite, url, "rebuild", "inventory", "--partition", str(other))
        assert refused.exit_code == 1
        assert f"does not own partition {other}" in refused.output and "instance 1 holds it" in refused.output
    finally:
        suite.stop_all()
