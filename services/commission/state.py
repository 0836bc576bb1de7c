"""Commission's state and its fold: `new_state`, and `evolve(state, event)` that applies one event to
a partition's state (the `CommissionState` of `model.py`) through its evolver in `EVOLVERS`, one per
event type, and returns the state.

Each rule family keeps the evolvers of the events it decides (`tree`, `rates`, `sales`, `accounts`,
each an `EVOLVERS` table); this module joins them into one table. An event two families fold
(`MonthlyTargetClosed`) runs both, in that order. `CommissionCommandRejected` changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flexchain.messages import Message
from services.commission import accounts, rates, sales, tree
from services.commission.messages import CommissionCommandRejected, CommissionPlan, PlanVersion
from services.commission.model import CommissionState, Network, Totals, upline_chain
from services.commission.plan import DEFAULT_PLAN

__all__ = ["EVOLVERS", "CommissionState", "Network", "Totals", "evolve", "new_state", "upline_chain"]

Evolver = Callable[[CommissionState, Any], None]


def new_state(plan: CommissionPlan | None = None) -> CommissionState:
    """An empty partition; `plan` is the merchant's starting plan (the defaults of DOMAIN.md)."""
    return CommissionState(network=Network(plans=[PlanVersion(effective_from=0, seq=0, plan=plan or DEFAULT_PLAN)]))


def evolve(state: CommissionState, e: Message) -> CommissionState:
    """Fold one event through its evolver (`EVOLVERS`); returns the state, changed in place."""
    evolver = EVOLVERS.get(type(e))
    if evolver is not None:
        evolver(state, e)
    return state


def _unchanged(state: CommissionState, e: Message) -> None:
    """A refusal changes nothing."""


def _in_turn(fns: list[Evolver]) -> Evolver:
    if len(fns) == 1:
        return fns[0]

    def evolver(state: CommissionState, e: Message) -> None:
        for fn in fns:
            fn(state, e)

    return evolver


def _joined() -> dict[type[Message], Evolver]:
    families: dict[type[Message], list[Evolver]] = {}
    for family in (tree, rates, sales, accounts):
        for event_type, fn in family.EVOLVERS.items():
            families.setdefault(event_type, []).append(fn)
    return {event_type: _in_turn(fns) for event_type, fns in families.items()} | {CommissionCommandRejected: _unchanged}


EVOLVERS: dict[type[Message], Evolver] = _joined()
