"""A kill -9 soak over all five services (issue 12, item 9): the refund cascade (R-X-3, every balance
checked against an independent oracle after every tick) plays while services are killed with SIGKILL
one after another — all five in turn — and started again at once. At the end the history checker
reads every service's log: no event twice, per-aggregate versions 1..n with no gap or repeat, each
command answered once; and the cascade's own checks (stock identity at every prefix, each refund's
effect once per service, escrow conserved, nothing dead-lettered).

CI plays a bounded soak (5 kills, one every ~5 s); `FLEXCHAIN_SOAK_KILLS=30 FLEXCHAIN_SOAK_EVERY=2`
runs the long one: the cascade is played again (next seed, fresh topics) until every kill has landed
while it played."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.test_refund_cascade import SEED, run_cascade

pytestmark = [pytest.mark.broker, pytest.mark.faults]

KILLS = int(os.environ.get("FLEXCHAIN_SOAK_KILLS", "5"))
EVERY = float(os.environ.get("FLEXCHAIN_SOAK_EVERY", "5"))


def test_kill_9_soak_while_the_cascade_plays(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    """The cascade is played again, with the next seed (fresh topics and data), until all the kills
    have landed while it played; every play is checked whole."""
    kills, plays = 0, 0
    while kills < KILLS:
        assert plays < 1 + KILLS // 5, f"only {kills} of {KILLS} kills in {plays} plays of the cascade"
        run, where = f"{prefix}s{plays}-", data_dir / f"play{plays}"
        where.mkdir()
        kills += run_cascade(kafka_bootstrap, run, where, SEED + 100 + plays, soak_kills=KILLS - kills, every=EVERY)
        plays += 1
