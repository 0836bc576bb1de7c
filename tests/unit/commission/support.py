"""Given/when/then helpers for the commission decider (one partition, no routing)."""

from __future__ import annotations

import copy

from flexchain.messages import Message
from flexchain.runtime import canonical
from services.commission.domain import decide, evolve, new_state
from services.commission.messages import NETWORK, CommissionCommandRejected, RegisterDistributor
from services.commission.state import CommissionState

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z


def given(*commands: Message, now: int = T0) -> CommissionState:
    state = new_state()
    for cmd in commands:
        events = decide(state, cmd, now)
        assert not any(isinstance(e, CommissionCommandRejected) for e in events), events
        for e in events:
            evolve(state, e)
    return state


def when(state: CommissionState, cmd: Message, now: int = T0) -> list[Message]:
    events = decide(state, cmd, now)
    for e in events:
        evolve(state, e)
    return events


def refused(state: CommissionState, cmd: Message, now: int = T0) -> str:
    before = canonical(copy.deepcopy(state))
    events = when(state, cmd, now)
    assert len(events) == 1 and isinstance(events[0], CommissionCommandRejected), events
    assert canonical(state) == before, "a refused command changes nothing"
    return events[0].reason


def reg(d: str, upline: str | None = None, **kw: object) -> RegisterDistributor:
    return RegisterDistributor(network_id=NETWORK, distributor_id=d, upline_id=upline, **kw)  # type: ignore[arg-type]
