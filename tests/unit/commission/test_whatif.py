"""R-X-4's sandbox for commission: replaying another plan over a past history shows what it would
have paid. The check is the real thing: the same random history (payments, partial refunds,
cancels, completions, payouts, sku-rate changes, in random interleavings on three partitions) is
lived twice — under plan A and under plan B — and the what-if of B over A's states must give, per
distributor and to the cent, what B's world actually keeps. Replaying A itself changes nothing."""

from __future__ import annotations

import dataclasses
import random
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.commission.messages import NETWORK, SetLevelRates
from services.commission.state import CommissionState
from services.commission.whatif import replay_plan
from tests.unit.commission.test_properties import PROPERTY_SETTINGS, T0, TREE, World, history_st

D = Decimal
OTHER_RATES = [D("0.18"), D("0.04"), D("0.01")]


def kept(states: list[CommissionState]) -> dict[str, int]:
    out = dict.fromkeys(TREE, 0)
    for state in states:
        for order in state.orders.values():
            for line in order.lines:
                for s in line.shares:
                    out[s.distributor_id] += s.net
    return out


def lived(levels: int, rates: list[Decimal] | None, ops: list, seed: int) -> World:  # type: ignore[type-arg]
    w = World(levels, random.Random(seed))
    if rates is not None:
        w.h.send(SetLevelRates(network_id=NETWORK, rates=rates), T0)
        w.h.run()
    for op in ops:
        w.apply(op)
    w.settle()
    return w


@PROPERTY_SETTINGS
@given(st.sampled_from((2, 3)), st.sampled_from((2, 3)), history_st, st.integers(0, 2**32))
def test_another_plan_replayed_over_the_past_pays_what_living_under_it_pays(
    levels_a: int,
    levels_b: int,
    ops: list,
    seed: int,  # type: ignore[type-arg]
) -> None:
    a = lived(levels_a, None, ops, seed)
    b = lived(levels_b, OTHER_RATES, ops, seed)
    states_a = [p.state for p in a.h.parts]
    plan_a = a.h.state_of(NETWORK).network.plan
    plan_b = dataclasses.replace(plan_a, levels=levels_b, level_rates=OTHER_RATES)

    same = replay_plan(states_a, plan_a)
    assert {who: o.would_keep for who, o in same.distributors.items()} == {who: o.kept for who, o in same.distributors.items()}
    assert same.orders == {}

    other = replay_plan(states_a, plan_b)
    outcome = {who: other.distributors.get(who) for who in TREE}
    assert {who: o.would_keep if o else 0 for who, o in outcome.items()} == kept([p.state for p in b.h.parts])
    assert {who: o.kept if o else 0 for who, o in outcome.items()} == kept(states_a)
    assert other.orders_replayed == len(a.orders)


def test_only_orders_paid_from_the_given_time_are_replayed() -> None:
    ops = [("pay", "c", [("s1", 1, 5000)], "m1"), ("tick", 2), ("pay", "c", [("s1", 1, 5000)], "m2")]
    a = lived(3, None, ops, 1)
    states = [p.state for p in a.h.parts]
    plan = dataclasses.replace(a.h.state_of(NETWORK).network.plan, level_rates=OTHER_RATES)
    second = a.orders["o1"].paid_at
    later = replay_plan(states, plan, paid_from=second)
    assert later.orders_replayed == 1 and set(later.orders) == {"o1"}
    # c sells: level 1 is c at 0.15 → 0.18 on 5000 = +150; b (gold, +0.01) 0.06 → 0.05 = −50; a 0.02 → 0.01 = −50
    assert {w: o.delta for w, o in later.distributors.items()} == {"c": 150, "b": -50, "a": -50}
