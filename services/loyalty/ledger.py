"""Every member's points ledger, on disk: what `GET /members/{id}/ledger` pages through and the
member's ledger totals sum (R-LOY-2).

A year of a million members is ~14 million events and ~3 million ledger movements: held as Python
objects that was 1.8 GB of the loyalty process (bench/loyalty.py --measure-service). Here each
movement is a packed entry (MessagePack: kind, business time, event id, causation id, the event)
in a private temporary SQLite database — SQLite's own "" filename: a file in SQLITE_TMPDIR (or
TMPDIR, /var/tmp, /tmp), deleted when the connection closes — so the process holds only SQLite's
page cache. The read model is folded again from `loyalty.events` at every start,
so nothing here needs to outlive the process.

Appends are buffered and written in one transaction when `FLUSH_EVERY` are pending and before any
read, so a read sees every movement folded before it.
"""

from __future__ import annotations

import sqlite3
import threading

import msgspec

from flexchain.messages import Message
from services.loyalty.messages import LEDGER

FLUSH_EVERY = 5000

_KIND = {t: i for i, t in enumerate(LEDGER)}
_ENCODER = msgspec.msgpack.Encoder()
_ENTRY = msgspec.msgpack.Decoder(tuple[int, int, str, str | None, msgspec.Raw])
_MOVEMENTS = [msgspec.msgpack.Decoder(t) for t in LEDGER]


def pack_entry(business_time: int, event_id: str, causation_id: str | None, movement: Message) -> bytes:
    """A ledger movement as bytes: its kind (index in LEDGER), business time, ids and the event."""
    return _ENCODER.encode((_KIND[type(movement)], business_time, event_id, causation_id, movement))


def unpack_entry(packed: bytes) -> tuple[int, str, str | None, Message]:
    """(business time, event id, causation id, the movement) of a packed entry."""
    kind, business_time, event_id, causation_id, movement = _ENTRY.decode(packed)
    return business_time, event_id, causation_id, _MOVEMENTS[kind].decode(movement)


class LedgerStore:
    """Members' ledgers in append order, in a temporary SQLite database of this process."""

    def __init__(self) -> None:
        # check_same_thread off: an as-of model may be folded on one thread and read on another,
        # never both at once (the lock keeps the buffer and the connection consistent anyway)
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")  # a scratch copy of the log: nothing to recover
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE ledger (member TEXT NOT NULL, entry BLOB NOT NULL)")
        self._db.execute("CREATE INDEX ledger_by_member ON ledger (member)")  # (member, rowid): append order
        self._pending: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

    def append(self, member_id: str, entry: bytes) -> None:
        with self._lock:
            self._pending.append((member_id, entry))
            if len(self._pending) >= FLUSH_EVERY:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO ledger (member, entry) VALUES (?, ?)", self._pending)
            self._db.execute("COMMIT")
            self._pending.clear()

    def count(self, member_id: str) -> int:
        with self._lock:
            self._flush()
            (n,) = self._db.execute("SELECT COUNT(*) FROM ledger WHERE member = ?", (member_id,)).fetchone()
            return int(n)

    def entries(self, member_id: str, offset: int = 0, limit: int | None = None) -> list[bytes]:
        """The member's packed entries in the order they were appended, `limit` of them from `offset`."""
        with self._lock:
            self._flush()
            rows = self._db.execute(
                "SELECT entry FROM ledger WHERE member = ? ORDER BY rowid LIMIT ? OFFSET ?",
                (member_id, -1 if limit is None else limit, offset),
            ).fetchall()
            return [bytes(r[0]) for r in rows]

    def size(self) -> tuple[int, int]:
        """(movements, bytes of the database file) — for the bench."""
        with self._lock:
            self._flush()
            (n,) = self._db.execute("SELECT COUNT(*) FROM ledger").fetchone()
            (pages,) = self._db.execute("PRAGMA page_count").fetchone()
            (page,) = self._db.execute("PRAGMA page_size").fetchone()
            return int(n), int(pages) * int(page)
