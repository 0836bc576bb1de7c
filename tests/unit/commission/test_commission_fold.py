"""Issue 12, item 2: folding the commission service's own log is idempotent — the histories of the
commission property (orders paid, refunded, cancelled and completed, rate changes, ticks, payout
batches) on three partitions with every event routed by the real policies in a random interleaving,
so a partition's log also holds broadcast replicas of the network and events of aggregates homed in
another partition. Each partition's log is enveloped as its processor writes it; see
tests/unit/foldlog.py for what is checked."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.commission.app import service
from tests.unit.commission.test_properties import World, history_st
from tests.unit.foldlog import OwnLog, check_fold, horizon_st, repeats_st


@settings(max_examples=25, deadline=None)
@given(history_st, st.randoms(use_true_random=False), horizon_st, st.lists(repeats_st, min_size=3, max_size=3))
def test_folding_each_commission_partition_with_repeats_gives_the_live_partition(
    ops: list[tuple[Any, ...]], rnd: random.Random, horizon: int, repeats: list[list[tuple[str, int, int]]]
) -> None:
    w = World(3, rnd)
    for op in ops:
        w.apply(op)
    w.settle()
    svc = service()
    for i, part in enumerate(w.h.parts):
        own = OwnLog(svc, horizon, partition=i, state=part.state)
        for cid, cmd, now, events in part.handled:
            own.write(cid, cmd, now, events)
        check_fold(own, repeats[i])
