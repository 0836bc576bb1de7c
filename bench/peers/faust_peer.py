"""The inventory job on faust-streaming (processing_guarantee="exactly_once", a table per sku), for the benchmark.

Run by bench/run.py in its own virtualenv (bench/peers/requirements-faust.txt):
``<venv>/bin/python bench/peers/faust_peer.py <config.json>``. See bench/peers/job.py for the job.
The table is faust's default store (in memory, restored from its changelog topic on start).
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
    import faust

    cfg = load_config(argv[1])
    job = Job(cfg)
    extra: dict[str, Any] = {}
    if cfg.get("commit_interval_ms") is not None:
        extra["broker_commit_interval"] = cfg["commit_interval_ms"] / 1000
    brokers = ";".join(f"kafka://{b}" for b in str(cfg["bootstrap"]).split(","))
    app = faust.App(
        cfg["group"],
        broker=brokers,
        processing_guarantee="exactly_once",
        consumer_auto_offset_reset="earliest",
        topic_partitions=cfg["partitions"],
        topic_replication_factor=cfg["replication_factor"],
        datadir=cfg["state_dir"],
        web_enabled=False,
        **extra,
    )
    source = app.topic(cfg["input"], key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    sink = app.topic(cfg["output"], key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    # raw keys (the sku), JSON values (the state list of bench/peers/job.py; a value_type other than a
    # faust Record breaks the table's recovery from its changelog)
    table = app.Table("stock", default=None, partitions=cfg["partitions"], key_type=bytes)

    @app.agent(source)
    async def reserve(stream: Any) -> None:
        async for event in stream.events():
            got = job.command(event.value)
            if got is None:
                continue
            name, cmd = got
            new, out = job.apply(table.get(event.key), name, cmd)
            if new is not None:
                table[event.key] = new
            if out is not None:
                await sink.send(key=event.key, value=out, headers=[("type", job.type_header(out))])

    print("faust peer: starting", flush=True)
    sys.argv = [argv[0], "worker", "--loglevel", "warn", "--without-web"]
    app.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
