"""The inventory job on quixstreams (exactly-once, RocksDB state per sku), for the benchmark.

Run by bench/run.py in its own virtualenv (bench/peers/requirements-quix.txt):
``<venv>/bin/python bench/peers/quix_peer.py <config.json>``. See bench/peers/job.py for the job.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.peers.job import Job, load_config  # noqa: E402


def main(argv: list[str]) -> int:
    from quixstreams import Application
    from quixstreams.state import State

    cfg = load_config(argv[1])
    job = Job(cfg)
    extra: dict[str, Any] = {}
    if cfg.get("commit_interval_ms") is not None:
        extra["commit_interval"] = cfg["commit_interval_ms"] / 1000
    app = Application(
        broker_address=cfg["bootstrap"],
        consumer_group=cfg["group"],
        processing_guarantee="exactly-once",
        auto_offset_reset="earliest",
        state_dir=cfg["state_dir"],
        loglevel="WARNING",
        **extra,
    )
    source = app.topic(cfg["input"], key_deserializer="bytes", value_deserializer="bytes")
    sink = app.topic(cfg["output"], key_serializer="bytes", value_serializer="bytes")

    def handle(value: bytes, state: State) -> bytes | None:
        got = job.command(value)
        if got is None:
            return None
        name, cmd = got
        new, out = job.apply(state.get("stock"), name, cmd)
        if new is not None:
            state.set("stock", new)
        return out

    sdf = app.dataframe(source)
    sdf = sdf.apply(handle, stateful=True).filter(lambda v: v is not None)
    sdf = sdf.set_headers(lambda value, key, timestamp, headers: [("type", job.type_header(value))])
    sdf.to_topic(sink)
    print("quix peer: running", flush=True)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
