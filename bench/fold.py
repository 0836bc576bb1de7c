"""The rebuild's per-event CPU cost without Kafka: decode + fold of M inventory events.

    .venv/bin/python bench/fold.py                 # M = 60 000
    .venv/bin/python bench/fold.py --events 200000

The events are bench/run.py's rebuild log (`log_events`: registrations, receipts, then reservation
and commit pairs), encoded once; each one goes through `flexchain.fold.fold_record`, the function
the rebuild and the read side call per record. CPU seconds of this process, best of five (decode
alone: best of three), so the figure drifts less than the broker runs on a shared machine.

To compare with an older commit (its kernel, services and `bench.run` together), alternate runs
with one that imports a worktree of it: `git worktree add /tmp/old <rev>`, then
`PYTHONPATH=/tmp/old/libs:/tmp/old .venv/bin/python bench/fold.py`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # last: a PYTHONPATH of another checkout wins (comparing commits)

from bench.run import CODEC, log_events, sku_names  # noqa: E402
from flexchain.fold import PartitionState, fold_record  # noqa: E402
from services.inventory.state import evolve, new_state  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--skus", type=int, default=200)
    args = ap.parse_args()
    m = args.events
    records = [
        SimpleNamespace(topic="inventory.events", partition=0, offset=i, timestamp=0, key=k, value=v, headers=h)
        for i, (k, v, h) in enumerate(log_events(m, sku_names(args.skus), random.Random(7)))
    ]
    folds = []
    for _ in range(5):
        ps = PartitionState(state=new_state())
        t = time.process_time()
        for rec in records:
            fold_record(CODEC.decode, evolve, ps, rec, 10**12)
        folds.append(time.process_time() - t)
    decodes = []
    for _ in range(3):
        t = time.process_time()
        for rec in records:
            CODEC.decode(rec.value)
        decodes.append(time.process_time() - t)
    fold_us, decode_us = min(folds) / m * 1e6, min(decodes) / m * 1e6
    rate = 1e6 / fold_us
    print(f"{m:,} inventory events: decode + fold {fold_us:.1f} µs/event ({rate:,.0f} ev/s of one core)")
    print(f"decode alone {decode_us:.1f} µs/event")
    checkout = Path(fold_record.__code__.co_filename).parents[2]  # which kernel was measured
    print(f"checkout {checkout}")
    print(f'BENCH_JSON {{"events": {m}, "fold_us": {fold_us:.2f}, "decode_us": {decode_us:.2f}, "checkout": "{checkout}"}}')


if __name__ == "__main__":
    main()
