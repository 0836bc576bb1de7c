"""Issue 12, item 2: folding inventory's own log is idempotent — the histories of the R-INV-2 property
(receipts, reservations, sales, releases, returns, policies, presale closes, ticks), enveloped as the
processor writes them; see tests/unit/foldlog.py for what is checked."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexchain.messages import Message
from services.inventory.app import SERVICE
from services.inventory.messages import CheckStockTimers, ReceiveStock, RegisterSku
from tests.unit.foldlog import HOUR, OwnLog, check_fold, horizon_st, naive_fold, repeats_st
from tests.unit.inventory.builders import DAY, T0
from tests.unit.inventory.test_inventory_properties import step_st


@settings(max_examples=60, deadline=None)
@given(st.lists(step_st, min_size=5, max_size=50), horizon_st, repeats_st)
def test_folding_inventorys_log_with_repeats_gives_the_live_partition(
    steps: list[tuple[list[Message | None], int]], horizon: int, repeats: list[tuple[str, int, int]]
) -> None:
    own = OwnLog(SERVICE, horizon, partition=1)
    now = T0 - 40 * DAY
    setup: list[Message | None] = [
        RegisterSku(sku="s1", name="mask"),
        RegisterSku(sku="s2", name="serum", is_gift=False, low_stock_floor=5),
        RegisterSku(sku="g1", name="trial", is_gift=True, low_stock_floor=0),
    ]
    for commands, hours in [(setup, 0), *steps]:
        now += hours * HOUR
        for cmd in commands:
            own.handle(cmd if cmd is not None else CheckStockTimers(time=now), now)  # a tick: broadcast, no key
    check_fold(own, repeats)


def test_the_check_catches_a_fold_without_the_version_rule() -> None:
    """The property can fail: evolving a repeated receipt again counts its units twice."""
    own = OwnLog(SERVICE, DAY)
    own.handle(RegisterSku(sku="s1", name="mask"), T0)
    own.handle(ReceiveStock(sku="s1", warehouse="north", qty=10, reference="po-1"), T0 + HOUR)
    check_fold(own, [("event", 1, 0)])
    with pytest.raises(AssertionError, match="repeats in the log change nothing"):
        check_fold(own, [("event", 1, 0)], fold=naive_fold)
