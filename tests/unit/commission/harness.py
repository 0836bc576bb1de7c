"""An in-memory stand-in for the kernel, to run the commission service's pure parts end to end.

Partitions with their own state and event log; commands keyed by aggregate go to the partition of
their key (a broadcast to all); the router's policies turn foreign events, clock ticks and the
service's own events into commands. Steps can run in any interleaving that Kafka allows (each
partition's commands in order, each partition's events routed in order), chosen by a `pick`
function — a test drives it with hypothesis or a seeded random. Each command sent gets an id (one
for every partition a broadcast reaches), and each partition keeps the commands it decided with
their events, so a test can envelope its log as the processor writes it (tests/unit/foldlog.py).
"""

from __future__ import annotations

import copy
import itertools
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flexchain.messages import Message
from flexchain.runtime import canonical
from flexchain.ticks import ClockTicked
from services.commission import domain, policy
from services.commission.messages import CommissionPlan
from services.commission.state import CommissionState, Totals


@dataclass
class Partition:
    state: CommissionState
    queue: deque[tuple[Message, int, str]] = field(default_factory=deque)  # command, business time, id
    log: list[tuple[Message, int]] = field(default_factory=list)
    handled: list[tuple[str, Message, int, list[Message]]] = field(default_factory=list)  # id, command, time, events
    routed: int = 0


class Harness:
    def __init__(self, partitions: int = 3, plan: CommissionPlan | None = None) -> None:
        self.plan = plan
        self.parts = [Partition(domain.new_state(plan)) for _ in range(partitions)]
        self.decided: list[tuple[Message, list[Message]]] = []
        self._ids = itertools.count(1)

    def partition_of(self, key: str) -> int:
        return zlib.crc32(key.encode()) % len(self.parts)

    def send(self, cmd: Message, now: int) -> None:
        cid = f"cmd-{next(self._ids)}"
        if cmd.key:
            self.parts[self.partition_of(cmd.key)].queue.append((cmd, now, cid))
        else:
            for p in self.parts:
                p.queue.append((cmd, now, cid))

    def publish(self, event: Message, now: int) -> None:
        """A foreign event (order, inventory, clock) as the router would see it."""
        if isinstance(event, ClockTicked):
            commands = policy.react_clock(event)
        elif type(event).__module__.startswith("services.order"):
            commands = policy.react_order(event)
        else:
            commands = policy.react_inventory(event)
        for cmd in commands:
            self.send(cmd, now)

    def state_of(self, key: str) -> CommissionState:
        return self.parts[self.partition_of(key)].state

    # --- steps -----------------------------------------------------------------------------------

    def steps(self) -> list[tuple[str, int]]:
        out = [("decide", i) for i, p in enumerate(self.parts) if p.queue]
        out += [("route", i) for i, p in enumerate(self.parts) if p.routed < len(p.log)]
        return out

    def step(self, kind: str, i: int) -> None:
        p = self.parts[i]
        if kind == "decide":
            cmd, now, cid = p.queue.popleft()
            events = domain.decide(p.state, cmd, now)
            self.decided.append((cmd, events))
            p.handled.append((cid, cmd, now, events))
            for e in events:
                domain.evolve(p.state, e)
                p.log.append((e, now))
        else:
            e, now = p.log[p.routed]
            p.routed += 1
            for cmd in policy.react_own(e):
                self.send(cmd, now)

    def run(self, pick: Callable[[list[tuple[str, int]]], tuple[str, int]] | None = None, limit: int = 200_000) -> None:
        for _ in range(limit):
            options = self.steps()
            if not options:
                return
            self.step(*(pick(options) if pick else options[0]))
        raise AssertionError("the harness did not settle")

    # --- checks ----------------------------------------------------------------------------------

    def events(self) -> list[Message]:
        return [e for p in self.parts for e, _ in p.log]

    def totals(self, who: str) -> Totals:
        t = Totals()
        for p in self.parts:
            x = p.state.totals.get(who)
            if x is not None:
                for f in ("accrued", "bonuses", "clawed", "pending", "payable", "paid"):
                    setattr(t, f, getattr(t, f) + getattr(x, f))
        return t

    def rebuilt(self) -> list[Any]:
        """Each partition's state folded again from its log (a rebuild), in canonical form."""
        out = []
        for p in self.parts:
            s = domain.new_state(self.plan)
            for e, _ in p.log:
                domain.evolve(s, e)
            out.append(canonical(s))
        return out

    def live(self) -> list[Any]:
        return [canonical(copy.deepcopy(p.state)) for p in self.parts]
