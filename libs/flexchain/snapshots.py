"""Snapshots of a partition's state: (state, next offset of the event topic) in a SQLAlchemy store.

SQLite by default, PostgreSQL (or any SQLAlchemy URL) in production. A snapshot is only a shortcut:
deleting them all gives the same state after a longer rebuild. A snapshot is ignored when it was
taken on another cluster, in another state format, or points past the end of the log.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from typing import Any

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
    select,
)
from sqlalchemy.engine import Engine

metadata = MetaData()
snapshots = Table(
    "flexchain_snapshots",
    metadata,
    Column("service", String(64), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("cluster_id", String(64), nullable=False),
    Column("state_format", String(64), nullable=False),
    Column("next_offset", BigInteger, nullable=False),
    Column("taken_at", Integer, nullable=False),
    Column("state", LargeBinary, nullable=False),
)


@dataclass(frozen=True)
class Snapshot:
    next_offset: int
    state: Any


class SnapshotStore:
    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, future=True)
        metadata.create_all(self.engine)

    def load(self, service: str, partition: int, cluster_id: str, state_format: str) -> Snapshot | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(snapshots.c.cluster_id, snapshots.c.state_format, snapshots.c.next_offset, snapshots.c.state).where(
                    snapshots.c.service == service, snapshots.c.partition == partition
                )
            ).first()
        if row is None or row.cluster_id != cluster_id or row.state_format != state_format:
            return None
        return Snapshot(row.next_offset, pickle.loads(row.state))

    def save(self, service: str, partition: int, cluster_id: str, state_format: str, snap: Snapshot) -> None:
        blob = pickle.dumps(snap.state, protocol=pickle.HIGHEST_PROTOCOL)
        with self.engine.begin() as conn:
            conn.execute(delete(snapshots).where(snapshots.c.service == service, snapshots.c.partition == partition))
            conn.execute(
                snapshots.insert().values(
                    service=service,
                    partition=partition,
                    cluster_id=cluster_id,
                    state_format=state_format,
                    next_offset=snap.next_offset,
                    taken_at=int(time.time()),
                    state=blob,
                )
            )

    def clear(self, service: str | None = None) -> None:
        with self.engine.begin() as conn:
            stmt = delete(snapshots)
            if service is not None:
                stmt = stmt.where(snapshots.c.service == service)
            conn.execute(stmt)

    def close(self) -> None:
        self.engine.dispose()
