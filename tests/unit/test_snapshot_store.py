"""The snapshot store returns only what it can trust (issue 12, item 6), on SQLite and PostgreSQL.

Each way a row can be wrong — missing, corrupt, truncated, foreign (another service's, partition's,
cluster's or state format's row), tampered by someone without the key, a pickle of old, a blob of
another shape — gives None and a WARNING saying why; a good row loads. An older snapshot never
replaces a newer one, also when instances race. PostgreSQL runs as a throwaway server of Debian's
package started in a temp dir (skipped, saying why, when there is none).
"""

from __future__ import annotations

import glob
import hashlib
import os
import pickle
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, create_engine, select, update
from structlog.testing import capture_logs

from flexchain import statecodec
from flexchain.fold import Applied, PartitionState
from flexchain.snapshots import SnapshotStore, SnapshotStoreUnavailable, integrity_tag, snapshots
from services.inventory.domain import Inventory, evolve
from services.inventory.messages import SkuRegistered, StockReceived
from services.loyalty.state import Loyalty

KEY = "correct horse battery staple"
SVC, CLUSTER, FORMAT = "inventory", "cluster-a", "inventory-2"
MARKER = Path(tempfile.gettempdir()) / f"flexchain-pickle-ran-{os.getpid()}"


class Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {MARKER}",))


# --- backends ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster in a temp dir (as user postgres when run as root)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[postgres]')")
    bindir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="flexchain-pg-"))
    data, port = root / "data", _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -F"
    log = root / "server.log"
    subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'snapshots.db'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    engine = create_engine(base)
    with engine.begin() as conn:  # each test on an empty table
        snapshots.drop(conn, checkfirst=True)
        Table("flexchain_snapshots", MetaData()).drop(conn, checkfirst=True)
    engine.dispose()
    yield base


# --- helpers -------------------------------------------------------------------------------------


def partition(next_offset: int = 42, skus: int = 3) -> PartitionState:
    state = Inventory()
    for i in range(skus):
        evolve(state, SkuRegistered(sku=f"sku-{i}", name="mask", is_gift=False, low_stock_floor=50, registered_at=1))
        evolve(state, StockReceived(sku=f"sku-{i}", warehouse="north", qty=10 + i, reference="r"))
    return PartitionState(state, {"cmd-1": Applied(1000, "d1"), "cmd-2": Applied(2000, "d2")}, {"sku-0": 2}, 2000, next_offset)


def load(store: SnapshotStore, p: int = 0, **kw: Any) -> tuple[PartitionState | None, list[dict[str, Any]]]:
    with capture_logs() as logs:
        got = store.load(kw.pop("service", SVC), p, kw.pop("cluster", CLUSTER), kw.pop("fmt", FORMAT), Inventory, **kw)
    return got, logs


def ignored(logs: list[dict[str, Any]]) -> str:
    """The reason of the one warning that says the snapshot was ignored."""
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1, logs
    assert warnings[0]["event"] == "snapshot ignored: the partition is folded from the log"
    reason: str = warnings[0]["reason"]
    return reason


def row(store: SnapshotStore, service: str = SVC, p: int = 0) -> Any:
    with store.engine.connect() as conn:
        return conn.execute(select(snapshots).where(snapshots.c.service == service, snapshots.c.partition == p)).one()


def change(store: SnapshotStore, service: str = SVC, p: int = 0, **values: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(snapshots).where(snapshots.c.service == service, snapshots.c.partition == p).values(**values))


@pytest.fixture
def store(url: str) -> Iterator[SnapshotStore]:
    s = SnapshotStore(url, key=KEY)
    yield s
    s.close()


# --- what loads, what does not -------------------------------------------------------------------


def test_a_good_snapshot_loads_whole(store: SnapshotStore) -> None:
    ps = partition()
    assert store.save(SVC, 0, CLUSTER, FORMAT, ps, Inventory)
    got, logs = load(store)
    assert got == ps
    assert list(got.seen) == ["cmd-1", "cmd-2"]
    assert not [e for e in logs if e["log_level"] == "warning"]
    assert row(store).tag.startswith("hmac-sha256:")


def test_no_row_is_none(store: SnapshotStore) -> None:
    got, logs = load(store, 3)
    assert got is None
    assert [e["event"] for e in logs] == ["no snapshot: the partition is folded from the log"]


def test_offsets_are_what_each_partition_would_resume_from(store: SnapshotStore) -> None:
    assert store.offsets(SVC) == {}
    store.save(SVC, 0, CLUSTER, FORMAT, partition(next_offset=42), Inventory)
    store.save(SVC, 3, CLUSTER, FORMAT, partition(next_offset=7), Inventory)
    store.save("other-service", 1, CLUSTER, FORMAT, partition(next_offset=9), Inventory)
    assert store.offsets(SVC) == {0: 42, 3: 7}


def test_a_corrupt_blob_is_ignored(store: SnapshotStore) -> None:
    store.save(SVC, 0, CLUSTER, FORMAT, partition(), Inventory)
    blob = bytearray(row(store).state)
    blob[len(blob) // 2] ^= 0x01
    change(store, state=bytes(blob))
    got, logs = load(store)
    assert got is None
    assert "integrity tag mismatch" in ignored(logs)


def test_a_truncated_blob_is_ignored(store: SnapshotStore) -> None:
    store.save(SVC, 0, CLUSTER, FORMAT, partition(), Inventory)
    blob = row(store).state
    change(store, state=blob[:-7])
    got, logs = load(store)
    assert got is None
    assert "truncated" in ignored(logs)
    change(store, state=blob[:-7], size=len(blob) - 7)  # the size column made to agree
    got, logs = load(store)
    assert got is None
    assert "integrity tag mismatch" in ignored(logs)


@pytest.mark.parametrize("source", [("order", 0), (SVC, 2)])
def test_a_row_copied_from_another_service_or_partition_is_ignored(store: SnapshotStore, source: tuple[str, int]) -> None:
    service, p = source
    store.save(service, p, CLUSTER, FORMAT, partition(next_offset=99, skus=5), Inventory)
    store.save(SVC, 0, CLUSTER, FORMAT, partition(next_offset=10), Inventory)
    other = row(store, service, p)
    change(store, next_offset=other.next_offset, size=other.size, tag=other.tag, state=other.state)
    got, logs = load(store)
    assert got is None
    assert "copied from another service or partition" in ignored(logs)


def test_a_row_of_another_cluster_or_state_format_is_ignored(store: SnapshotStore) -> None:
    store.save(SVC, 0, "cluster-b", FORMAT, partition(), Inventory)
    got, logs = load(store)
    assert got is None
    assert "another cluster" in ignored(logs)
    store.save(SVC, 0, CLUSTER, "inventory-1", partition(), Inventory)
    got, logs = load(store)
    assert got is None
    assert "another state format" in ignored(logs)


def test_a_row_tampered_by_someone_without_the_key_is_ignored(store: SnapshotStore) -> None:
    """A byte of the blob changed — here a count of units, so the blob still decodes — and the
    checksum recomputed the only way an attacker without the key can."""
    store.save(SVC, 0, CLUSTER, FORMAT, partition(), Inventory)
    r = row(store)
    forged = r.state.replace(b"\xa8received\x0c", b"\xa8received\x7f")  # sku-2: 12 → 127 units
    assert forged != r.state
    assert statecodec.decode_partition(forged, Inventory).state.skus["sku-2"].warehouses["north"].received == 127
    plain = integrity_tag(None, SVC, 0, CLUSTER, FORMAT, r.next_offset, forged)
    change(store, state=forged, tag=plain)
    got, logs = load(store)
    assert got is None
    assert "not signed" in ignored(logs)
    change(store, tag="hmac-sha256:" + plain.partition(":")[2])
    got, logs = load(store)
    assert got is None
    assert "integrity tag mismatch" in ignored(logs)
    other_key = integrity_tag(b"guessed", SVC, 0, CLUSTER, FORMAT, r.next_offset, forged)
    change(store, tag=other_key)
    assert load(store)[0] is None


def test_without_a_key_the_checksum_catches_corruption_but_not_a_deliberate_change(url: str) -> None:
    """What README says: a plain SHA-256 is no protection against someone who can write the table."""
    store = SnapshotStore(url)
    try:
        store.save(SVC, 0, CLUSTER, FORMAT, partition(), Inventory)
        r = row(store)
        assert r.tag.startswith("sha256:")
        change(store, state=r.state[:-1] + b"\x00", size=r.size)
        assert "integrity tag mismatch" in ignored(load(store)[1])
        forged = r.state.replace(b"\xa8received\x0c", b"\xa8received\x7f")
        change(store, state=forged, tag=integrity_tag(None, SVC, 0, CLUSTER, FORMAT, r.next_offset, forged))
        got, _ = load(store)
        assert got is not None and got.state.skus["sku-2"].warehouses["north"].received == 127  # accepted: set a key
        keyed = SnapshotStore(url, key=KEY)  # and a row of a keyless store is not trusted by a keyed one
        assert "not signed" in ignored(load(keyed)[1])
        keyed.save(SVC, 1, CLUSTER, FORMAT, partition(), Inventory)
        assert "cannot verify" in ignored(load(store, 1)[1])
        keyed.close()
    finally:
        store.close()


def test_a_pickle_is_never_loaded(url: str) -> None:
    """Rows of the old pickle table are never read; a pickle in the new table, even signed by
    someone holding the key, does not decode — and is never executed."""
    MARKER.unlink(missing_ok=True)
    evil = pickle.dumps(Boom())
    legacy = Table(
        "flexchain_snapshots",
        MetaData(),
        Column("service", String(64), primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("cluster_id", String(64)),
        Column("state_format", String(64)),
        Column("next_offset", Integer),
        Column("taken_at", Integer),
        Column("state", LargeBinary),
    )
    engine = create_engine(url)
    legacy.create(engine)
    with engine.begin() as conn:
        conn.execute(
            legacy.insert().values(
                service=SVC, partition=0, cluster_id=CLUSTER, state_format=FORMAT, next_offset=5, taken_at=0, state=evil
            )
        )
    engine.dispose()
    fresh = SnapshotStore(url, key=KEY)
    got, logs = load(fresh)
    assert got is None
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["legacy pickle snapshots ignored"]
    fresh.save(SVC, 0, CLUSTER, FORMAT, partition(next_offset=5), Inventory)
    change(fresh, state=evil, size=len(evil), tag=integrity_tag(KEY.encode(), SVC, 0, CLUSTER, FORMAT, 5, evil))
    got, logs = load(fresh)
    assert got is None
    assert "does not decode" in ignored(logs)
    fresh.close()
    assert not MARKER.exists()


def test_a_blob_of_another_state_shape_or_that_does_not_decode_is_ignored(store: SnapshotStore) -> None:
    store.save(SVC, 0, CLUSTER, FORMAT, PartitionState(Loyalty(), next_offset=8), Loyalty)  # same name, other class
    got, logs = load(store)
    assert got is None
    assert "another shape of Inventory" in ignored(logs)
    header = statecodec._ENCODER.encode((statecodec.LAYOUT, statecodec.fingerprint(statecodec.partition_type(Inventory)), [1]))
    change(store, state=header, size=len(header), tag=integrity_tag(KEY.encode(), SVC, 0, CLUSTER, FORMAT, 8, header))
    got, logs = load(store)
    assert got is None
    assert "does not decode into Inventory" in ignored(logs)


def test_a_snapshot_past_the_end_of_the_log_is_ignored(store: SnapshotStore) -> None:
    store.save(SVC, 0, CLUSTER, FORMAT, partition(next_offset=50), Inventory)
    assert load(store, end_offset=50)[0] is not None
    got, logs = load(store, end_offset=49)
    assert got is None
    assert "past the end of the log" in ignored(logs)


# --- saving never makes things worse ------------------------------------------------------------


def test_an_older_snapshot_never_replaces_a_newer_one(store: SnapshotStore) -> None:
    assert store.save(SVC, 0, CLUSTER, FORMAT, partition(next_offset=10), Inventory)
    assert not store.save(SVC, 0, CLUSTER, FORMAT, partition(next_offset=5), Inventory)
    assert not store.save(SVC, 0, CLUSTER, FORMAT, partition(next_offset=10, skus=1), Inventory)
    got, _ = load(store)
    assert got is not None and got.next_offset == 10 and len(got.state.skus) == 3
    assert store.save(SVC, 0, CLUSTER, FORMAT, partition(next_offset=11, skus=1), Inventory)
    got, _ = load(store)
    assert got is not None and got.next_offset == 11 and len(got.state.skus) == 1
    # a foreign row (another cluster or format) is replaced by any snapshot of this one
    assert store.save(SVC, 0, "cluster-b", FORMAT, partition(next_offset=500), Inventory)
    assert store.save(SVC, 0, CLUSTER, FORMAT, partition(next_offset=12), Inventory)
    assert load(store)[0] is not None


def test_a_state_that_does_not_encode_is_not_saved_and_the_stored_one_stays(store: SnapshotStore) -> None:
    assert store.save(SVC, 0, CLUSTER, FORMAT, partition(next_offset=10), Inventory)
    wrong = PartitionState(Loyalty(), next_offset=20)
    with capture_logs() as logs:
        assert not store.save(SVC, 0, CLUSTER, FORMAT, wrong, Inventory)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["snapshot not saved: the state does not encode"]
    got, _ = load(store)
    assert got is not None and got.next_offset == 10


def test_racing_instances_leave_the_newest_snapshot(url: str) -> None:
    stores = [SnapshotStore(url, key=KEY) for _ in range(3)]
    offsets = list(range(1, 61))
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            for n in offsets[i::3][::-1] + offsets[i::3]:  # each instance goes down, then up
                stores[i].save(SVC, 0, CLUSTER, FORMAT, partition(next_offset=n, skus=n % 4), Inventory)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    got, _ = load(stores[0])
    assert got is not None and got.next_offset == 60 and len(got.state.skus) == 0
    for s in stores:
        s.close()


# --- a database that cannot be reached ----------------------------------------------------------


def test_an_unreachable_store_raises_a_clear_error(tmp_path: Path) -> None:
    missing = SnapshotStore(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}", key=KEY)
    with pytest.raises(SnapshotStoreUnavailable):
        missing.load(SVC, 0, CLUSTER, FORMAT, Inventory)
    with pytest.raises(SnapshotStoreUnavailable):
        missing.save(SVC, 0, CLUSTER, FORMAT, partition(), Inventory)
    nobody = SnapshotStore(f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/postgres", key=KEY)
    if importable("psycopg"):
        with pytest.raises(SnapshotStoreUnavailable):
            nobody.load(SVC, 0, CLUSTER, FORMAT, Inventory)


def importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def test_tags_cover_every_field() -> None:
    base = (b"k", SVC, 0, CLUSTER, FORMAT, 7, b"blob")
    tags = {integrity_tag(*base)}
    for i, other in [(1, "order"), (2, 1), (3, "cluster-b"), (4, "inventory-3"), (5, 8), (6, b"blob!")]:
        changed = list(base)
        changed[i] = other
        tags.add(integrity_tag(*changed))  # type: ignore[arg-type]
    assert len(tags) == 7
    fields = (b"flexchain-snapshot-1", b"inventory", b"0", b"cluster-a", b"inventory-2", b"7", b"blob")
    framed = b"".join(len(p).to_bytes(8, "big") + p for p in fields)
    assert integrity_tag(None, *base[1:]) == "sha256:" + hashlib.sha256(framed).hexdigest()
