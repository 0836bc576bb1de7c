"""Snapshots of a partition (`flexchain.fold.PartitionState`) in a SQLAlchemy store — data, never code.

SQLite by default, PostgreSQL (or any SQLAlchemy URL) in production, shared by a service's
instances. A snapshot is only a shortcut: deleting them all gives the same state after a longer
rebuild, so the store returns only what it can trust and otherwise None (with a WARNING saying why),
and the runtime folds the log instead.

* The state is encoded by `flexchain.statecodec` (MessagePack driven by the state class's type
  hints): loading one can never run code, whoever wrote the row.
* Each row carries an integrity tag over (service, partition, cluster id, state format, next
  offset, blob). With `FLEXCHAIN_SNAPSHOT_KEY` set it is an HMAC-SHA256 with that key: a row
  altered, truncated, or copied from another service, partition or cluster by someone without the
  key is refused. Without a key it is a plain SHA-256: it catches corruption, truncation and a row
  copied under another key, but NOT a deliberate change by someone who can write the table (they
  can recompute it) — set a key wherever the database is shared.
* `load` refuses a row of another cluster or state format, one whose blob is written for another
  shape of the state class, one that does not decode, and one that points past the end of the log.
  Rows of the former pickle table (`flexchain_snapshots`) are never read.
* `save` keeps the newer snapshot when two instances race: a row is replaced only by one with a
  greater next offset (or by any snapshot when the stored row is of another cluster or state
  format), atomically in one conditional UPDATE or INSERT.
* A database that cannot be reached raises :class:`SnapshotStoreUnavailable`; the caller rebuilds
  from the log.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import threading
import time
from typing import Any

import structlog
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from flexchain import statecodec
from flexchain.fold import PartitionState

LEGACY_TABLE = "flexchain_snapshots"  # pickles, up to issue 12: never read
metadata = MetaData()
snapshots = Table(
    "flexchain_partition_snapshots",
    metadata,
    Column("service", String(128), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("cluster_id", String(128), nullable=False),
    Column("state_format", String(256), nullable=False),
    Column("next_offset", BigInteger, nullable=False),
    Column("taken_at", BigInteger, nullable=False),  # wall time, ms (for people)
    Column("size", BigInteger, nullable=False),  # bytes of `state`
    Column("tag", String(96), nullable=False),  # "hmac-sha256:<hex>" or "sha256:<hex>"
    Column("state", LargeBinary, nullable=False),
)
HMAC = "hmac-sha256"
PLAIN = "sha256"


class SnapshotStoreUnavailable(Exception):
    """The snapshot database cannot be used (unreachable, refused, failed): rebuild from the log."""


def _message(service: str, partition: int, cluster_id: str, state_format: str, next_offset: int, blob: bytes) -> bytes:
    """What the tag covers: each field length-prefixed, so no two field lists give the same bytes."""
    parts = [b"flexchain-snapshot-1", service.encode(), str(partition).encode(), cluster_id.encode(), state_format.encode()]
    parts.append(str(next_offset).encode())
    return b"".join(struct.pack(">Q", len(p)) + p for p in parts) + struct.pack(">Q", len(blob)) + blob


def integrity_tag(
    key: bytes | None, service: str, partition: int, cluster_id: str, state_format: str, next_offset: int, blob: bytes
) -> str:
    msg = _message(service, partition, cluster_id, state_format, next_offset, blob)
    if key:
        return f"{HMAC}:{hmac.new(key, msg, hashlib.sha256).hexdigest()}"
    return f"{PLAIN}:{hashlib.sha256(msg).hexdigest()}"


class SnapshotStore:
    """Snapshots of partitions, one row per (service, partition). `key`: FLEXCHAIN_SNAPSHOT_KEY."""

    def __init__(self, url: str, key: str | bytes | None = None) -> None:
        connect_args: dict[str, Any] = {}
        if url.startswith("postgresql") and "connect_timeout" not in url:
            connect_args["connect_timeout"] = 5  # an unreachable server fails fast, not after minutes
        self.engine: Engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        raw = key.encode() if isinstance(key, str) else key
        self.key: bytes | None = raw or None
        self.log = structlog.get_logger().bind(component="snapshots")
        self._ready = False
        self._lock = threading.Lock()

    # --- the table ---------------------------------------------------------------------------

    def _ensure(self) -> None:
        """Create the table on first use (not in __init__: a database down at start is not fatal)."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                try:
                    metadata.create_all(self.engine)
                except SQLAlchemyError:
                    if not inspect(self.engine).has_table(snapshots.name):
                        raise
                    # another instance created it at the same moment (PostgreSQL: a duplicate key)
                legacy = inspect(self.engine).has_table(LEGACY_TABLE)
            except SQLAlchemyError as exc:
                raise SnapshotStoreUnavailable(f"snapshot store: {exc}") from exc
            if legacy:
                self.log.warning(
                    "legacy pickle snapshots ignored",
                    table=LEGACY_TABLE,
                    reason="rows written before snapshots were data are never loaded; the table can be dropped",
                )
            self._ready = True

    # --- load --------------------------------------------------------------------------------

    def load(
        self,
        service: str,
        partition: int,
        cluster_id: str,
        state_format: str,
        state_type: Any,
        end_offset: int | None = None,
    ) -> PartitionState | None:
        """The partition's snapshot if it can be trusted, else None and a WARNING saying why.

        `state_type` is the class of the service's state (`type(svc.new_state())`); `end_offset`,
        when given, is the end of the event partition: a snapshot past it is refused. Raises
        SnapshotStoreUnavailable when the database cannot be read, never for what a row holds."""
        self._ensure()
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(snapshots).where(snapshots.c.service == service, snapshots.c.partition == partition)
                ).first()
        except SQLAlchemyError as exc:
            raise SnapshotStoreUnavailable(f"snapshot store: {exc}") from exc
        where = {"service": service, "partition": partition}
        if row is None:
            self.log.info("no snapshot: the partition is folded from the log", **where)
            return None
        reason = self._distrust(row, service, partition, cluster_id, state_format)
        if reason is None and end_offset is not None and row.next_offset > end_offset:
            reason = f"points past the end of the log (next offset {row.next_offset} > end {end_offset})"
        if reason is None:
            try:
                ps = statecodec.decode_partition(bytes(row.state), state_type)
            except statecodec.ForeignFormatError as exc:
                reason = f"written for another shape of {getattr(state_type, '__qualname__', state_type)} ({exc})"
            except Exception as exc:  # StateDecodeError, or anything else bad data provokes: never raised
                reason = f"does not decode into {getattr(state_type, '__qualname__', state_type)}: {exc!r:.300}"
            else:
                if ps.next_offset == row.next_offset:
                    self.log.info("snapshot loaded", next_offset=ps.next_offset, **where)
                    return ps
                reason = f"blob says next offset {ps.next_offset}, row says {row.next_offset}"
        self.log.warning("snapshot ignored: the partition is folded from the log", reason=reason, **where)
        return None

    def _distrust(self, row: Any, service: str, partition: int, cluster_id: str, state_format: str) -> str | None:
        """Why the row cannot be trusted, or None."""
        if row.cluster_id != cluster_id:
            return f"foreign: taken on another cluster ({row.cluster_id!r}, this is {cluster_id!r})"
        if row.state_format != state_format:
            return f"foreign: another state format ({row.state_format!r}, this is {state_format!r})"
        blob = bytes(row.state)
        if len(blob) != row.size:
            return f"corrupt: the blob has {len(blob)} bytes, {row.size} were written (truncated or extended)"
        kind, _, _ = str(row.tag).partition(":")
        if self.key is not None and kind != HMAC:
            return "untrusted: not signed (a plain checksum) while FLEXCHAIN_SNAPSHOT_KEY is set"
        if self.key is None and kind != PLAIN:
            return f"cannot verify: tagged {kind!r} and FLEXCHAIN_SNAPSHOT_KEY is not set here"
        want = integrity_tag(self.key, service, partition, cluster_id, state_format, row.next_offset, blob)
        if not hmac.compare_digest(want.encode(), str(row.tag).encode()):
            why = "corrupted, altered, copied from another service or partition"
            return f"integrity tag mismatch: the row was {why}" + (", or signed with another key" if self.key else "")
        return None

    # --- save --------------------------------------------------------------------------------

    def save(self, service: str, partition: int, cluster_id: str, state_format: str, ps: PartitionState, state_type: Any) -> bool:
        """Store `ps` unless the stored snapshot of this cluster and format is as new or newer.

        True if written. A state that cannot be encoded is logged as an ERROR and not written (a
        snapshot is a shortcut: the log still has everything). Raises SnapshotStoreUnavailable when
        the database cannot be written."""
        try:
            blob = statecodec.encode_partition(ps, state_type)
        except TypeError as exc:
            self.log.error("snapshot not saved: the state does not encode", service=service, partition=partition, error=str(exc))
            return False
        self._ensure()
        n = ps.next_offset
        values = {
            "cluster_id": cluster_id,
            "state_format": state_format,
            "next_offset": n,
            "taken_at": int(time.time() * 1000),
            "size": len(blob),
            "tag": integrity_tag(self.key, service, partition, cluster_id, state_format, n, blob),
            "state": blob,
        }
        key = (snapshots.c.service == service, snapshots.c.partition == partition)
        newer = update(snapshots).where(
            *key,
            or_(
                snapshots.c.next_offset < n,
                snapshots.c.cluster_id != cluster_id,
                snapshots.c.state_format != state_format,
            ),
        )
        try:
            for _ in range(3):
                with self.engine.begin() as conn:
                    if conn.execute(newer.values(**values)).rowcount == 1:
                        return True
                    if conn.execute(select(snapshots.c.next_offset).where(*key)).first() is not None:
                        return False  # a row as new or newer is there: keep it
                try:
                    with self.engine.begin() as conn:
                        conn.execute(snapshots.insert().values(service=service, partition=partition, **values))
                    return True
                except IntegrityError:
                    continue  # another instance inserted meanwhile: compare with its row
            return False
        except SQLAlchemyError as exc:
            raise SnapshotStoreUnavailable(f"snapshot store: {exc}") from exc

    # --- the rest ----------------------------------------------------------------------------

    def offsets(self, service: str) -> dict[int, int]:
        """Partition → next offset of the service's stored snapshots (what a restart would resume from)."""
        self._ensure()
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(snapshots.c.partition, snapshots.c.next_offset).where(snapshots.c.service == service))
                return {int(p): int(n) for p, n in rows}
        except SQLAlchemyError as exc:
            raise SnapshotStoreUnavailable(f"snapshot store: {exc}") from exc

    def clear(self, service: str | None = None) -> None:
        self._ensure()
        try:
            with self.engine.begin() as conn:
                stmt = delete(snapshots)
                if service is not None:
                    stmt = stmt.where(snapshots.c.service == service)
                conn.execute(stmt)
        except SQLAlchemyError as exc:
            raise SnapshotStoreUnavailable(f"snapshot store: {exc}") from exc

    def drop(self, service: str, partitions: list[int]) -> None:
        """Delete the snapshots of these partitions (a forced rebuild folds them from the log)."""
        self._ensure()
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(snapshots).where(snapshots.c.service == service, snapshots.c.partition.in_(partitions)))
        except SQLAlchemyError as exc:
            raise SnapshotStoreUnavailable(f"snapshot store: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()
