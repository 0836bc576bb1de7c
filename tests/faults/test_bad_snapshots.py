"""Bad snapshots in a running deployment (issue 12, item 6): the service stops (a snapshot of every
partition is saved), then its snapshot rows are damaged in the store — a flipped byte (corrupt or
tampered, the tag no longer matches), a cut blob (truncated), another partition's row copied over
(foreign) — and the service starts again. Each damaged snapshot is ignored with a warning naming
why, the partition is folded from the log instead, and the state is exactly what it was."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.support import Suite, digests, eventually, get, post

pytestmark = [pytest.mark.broker, pytest.mark.faults]

SKUS = [f"bs-{i}" for i in range(30)]


def test_damaged_snapshots_are_ignored_and_the_log_rebuilds_the_same_state(
    kafka_bootstrap: str, prefix: str, data_dir: Path
) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SNAPSHOT_KEY="test-key-not-a-secret")
    try:
        inv = suite.start("inventory")
        for sku in SKUS:
            assert post(f"{inv.url}/skus", {"sku": sku, "name": sku}).status_code == 200
            assert post(f"{inv.url}/skus/{sku}/receipts", {"warehouse": "w1", "qty": 9}).status_code == 200
        before = {p: d["digest"] for p, d in digests(inv.url).items()}
        skus_before = get(f"{inv.url}/skus")
        inv.stop()  # a clean stop saves a snapshot of every partition

        db = sqlite3.connect(data_dir / "inventory-snapshots.db")
        rows = db.execute("SELECT partition, state FROM flexchain_partition_snapshots ORDER BY partition").fetchall()
        assert len(rows) >= 4, "a snapshot per partition with events"
        blobs = {p: bytes(b) for p, b in rows}
        corrupt, cut, foreign, source = sorted(blobs)[:4]
        flipped = bytearray(blobs[corrupt])
        flipped[len(flipped) // 2] ^= 0x01
        update = "UPDATE flexchain_partition_snapshots SET state = ? WHERE partition = ?"
        db.execute(update, (bytes(flipped), corrupt))
        db.execute(update, (blobs[cut][: len(blobs[cut]) // 2], cut))
        other = db.execute("SELECT * FROM flexchain_partition_snapshots WHERE partition = ?", (source,)).fetchone()
        cols = [c[1] for c in db.execute("PRAGMA table_info(flexchain_partition_snapshots)")]
        row = dict(zip(cols, other, strict=True))
        db.execute("DELETE FROM flexchain_partition_snapshots WHERE partition = ?", (foreign,))
        row["partition"] = foreign  # another partition's snapshot, signed for it, now claims to be this one's
        db.execute(
            f"INSERT INTO flexchain_partition_snapshots ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            [row[c] for c in cols],
        )
        db.commit()
        db.close()

        inv = suite.start("inventory")
        after = eventually(lambda: (d := digests(inv.url)) and len(d) == 6 and d, what="all partitions rebuilt")
        assert {p: d["digest"] for p, d in after.items()} == before
        assert get(f"{inv.url}/skus") == skus_before
        warnings = [
            json.loads(line)
            for line in inv.log_path.read_text().splitlines()
            if line.startswith("{") and "snapshot ignored" in line
        ]
        assert sorted(w["partition"] for w in warnings) == sorted([corrupt, cut, foreign]), warnings
        loaded = [line for line in inv.log_path.read_text().splitlines() if '"snapshot loaded"' in line]
        assert len(loaded) >= 3, "the undamaged snapshots are still used"
    finally:
        suite.stop_all()
