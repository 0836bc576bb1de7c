"""What a loop writes into the metadata of the input offsets it commits (`flexchain lag` reads it).

Kafka's OffsetFetch answers an offset and a free metadata string, but no commit time (the broker
keeps one internally and never tells it). So each transaction's `send_offsets_to_transaction` puts
its own: the wall-clock time (ms) at which the offsets were added — the transaction commits a
moment later — and the instance that committed them, as compact JSON, e.g. ``{"t":1795001860000,
"i":"0"}``. Offsets committed before this existed carry an empty string: their age is unknown.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class CommitInfo:
    at_ms: int  # wall clock of the committing instance, ms
    instance: str


def commit_metadata(instance: str, now_ms: int | None = None) -> str:
    at = int(time.time() * 1000) if now_ms is None else now_ms
    return json.dumps({"t": at, "i": instance}, separators=(",", ":"))


def read_commit_metadata(metadata: str | None) -> CommitInfo | None:
    """The time and instance of a commit, or None when the metadata is not ours (or empty)."""
    if not metadata:
        return None
    try:
        doc = json.loads(metadata)
        return CommitInfo(int(doc["t"]), str(doc["i"]))
    except (ValueError, KeyError, TypeError):
        return None
