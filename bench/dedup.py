"""The dedup memory's per-event cost at steady state: `PartitionState.remember` with H command ids
inside the horizon, each new id forgetting the oldest (what every folded event does once a service
has run longer than its horizon — a week by default).

    .venv/bin/python bench/dedup.py                     # H = 10 000, 80 000, 640 000
    .venv/bin/python bench/dedup.py --horizon-ids 1000000

CPU µs per `remember`, best of three runs of N ids each. To compare with an older commit, import a
worktree of it: `git worktree add /tmp/old <rev>`, then
`PYTHONPATH=/tmp/old/libs .venv/bin/python bench/dedup.py` (before 2026-12-05 the memory was a plain
dict, forgetting from its front: 6.8, 49 and 30 µs per event at these sizes; an OrderedDict from then
until 2026-12-06: 0.4, 0.5 and 1.3 µs; now a dict with a deque of its ids: 0.31, 0.45 and 0.78 µs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "libs") not in sys.path:
    sys.path.append(str(ROOT / "libs"))  # last: a PYTHONPATH of another checkout wins (comparing commits)

import flexchain.fold  # noqa: E402
from flexchain.fold import Applied, PartitionState  # noqa: E402


def per_remember(horizon_ids: int, n: int) -> float:
    """CPU µs per remember, steady state: the horizon holds `horizon_ids` ids, one forgotten per id."""
    ps = PartitionState(None)
    for i in range(horizon_ids):
        ps.remember(f"cmd-{i}", Applied(i, ""), horizon_ids)
    ids = [(f"cmd-{i}", Applied(i, "")) for i in range(horizon_ids, horizon_ids + n)]
    t = time.process_time()
    for cid, applied in ids:
        ps.remember(cid, applied, horizon_ids)
    assert len(ps.seen) == horizon_ids + 1
    return (time.process_time() - t) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--horizon-ids", type=int, nargs="*", default=[10_000, 80_000, 640_000])
    ap.add_argument("--ids", type=int, default=100_000, help="ids remembered per measured run")
    args = ap.parse_args(argv)
    print(f"flexchain.fold from {flexchain.fold.__file__}")
    print(f"{'ids in the horizon':>20}  {'µs per remember (best of 3)':>28}")
    for h in args.horizon_ids:
        best = min(per_remember(h, args.ids) for _ in range(3))
        print(f"{h:>20,}  {best:>28.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
