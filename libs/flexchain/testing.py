"""The test kit for deciders: given/when/then on one partition, and a multi-partition harness.

Both reach a service only through its `ServiceDef` (`new_state`, `decide`, `evolve`, `routes`), so a
test does not depend on which module holds which function.

`Scenario(service).given(...).when(command).then(*events)` — *given* commands accepted by the real
`decide` (or events folded as they are), *when* one more command is decided at business time `at`,
*then* exactly these events follow (a mismatch fails with a diff, field by field). `.refused(...)`:
the command was refused — one refusal event, with the given fragments in its reason — and the state is
as before. Every `when` and `given` checks that `decide` left the state as it found it (a decider
answers with events; only `evolve` changes the state).

`Harness(service)` — partitions with their own state and log; commands keyed by aggregate go to the
partition of their key (a keyless command to all of them); the service's routes turn foreign events
(`publish`) and its own events into commands. Steps run in any interleaving Kafka allows (each
partition's commands in order, each partition's events routed in order), chosen by a `pick`
function — a test drives it with hypothesis or a seeded random.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import itertools
import pprint
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from flexchain.messages import Message
from flexchain.runtime import ServiceDef, canonical

S = TypeVar("S")

Refusal = Callable[[Message], bool]
Check = Callable[[Any, Message], None]


def is_command_rejected(e: Message) -> bool:
    """The convention of every service: a refused command is one `<Aggregate>CommandRejected` event."""
    return type(e).__name__.endswith("CommandRejected")


def refusal_of(*types: type[Message]) -> Refusal:
    """A refusal predicate for services with refusals of their own (e.g. `PledgeRejected`)."""
    return lambda e: isinstance(e, types)


# --- readable differences ------------------------------------------------------------------------


def _fields(obj: Any) -> dict[str, Any] | None:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return None


def describe_difference(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where `actual` differs from `expected`, one line a difference (empty: they are equal)."""
    if expected == actual:
        return []
    where = path or "value"
    if type(expected) is not type(actual):
        return [f"{where}: expected {expected!r}, got {actual!r}"]
    fe, fa = _fields(expected), _fields(actual)
    if fe is not None and fa is not None:
        return [line for name in fe for line in describe_difference(fe[name], fa[name], f"{path}.{name}" if path else name)]
    if isinstance(expected, list | tuple) and len(expected) == len(actual):
        pairs = enumerate(zip(expected, actual, strict=True))
        return [line for i, (x, y) in pairs for line in describe_difference(x, y, f"{path}[{i}]")]
    if isinstance(expected, dict) and expected.keys() == actual.keys():
        return [line for k in expected for line in describe_difference(expected[k], actual[k], f"{path}[{k!r}]")]
    return [f"{where}: expected {expected!r}, got {actual!r}"]


def events_diff(expected: list[Message], actual: list[Message]) -> str:
    """The expected and decided events side by side: field differences when the types line up, else a
    line diff of the two lists."""
    head = f"expected {len(expected)} event(s), decided {len(actual)}"
    if [type(e) for e in expected] == [type(e) for e in actual]:
        lines = []
        for i, (x, y) in enumerate(zip(expected, actual, strict=True)):
            lines += [f"  event {i} ({type(x).__name__}) {d}" for d in describe_difference(x, y)]
        return "\n".join([head, *lines])
    want = pprint.pformat(expected, width=120).splitlines()
    got = pprint.pformat(actual, width=120).splitlines()
    diff = difflib.unified_diff(want, got, "expected", "decided", lineterm="")
    return "\n".join([head, *diff])


# --- one partition -------------------------------------------------------------------------------


class Scenario(Generic[S]):
    """One partition of `service` in memory: its state, its log, and the events of the last `when`.

    `refusal`: which events are refusals (default: `*CommandRejected`); `check(state, event)` runs
    after every folded event (an invariant a service keeps, e.g. presale's R-PRE-10). `strict=False`
    skips the copies of the state that the purity and refusal checks compare with: for long generated
    histories where those copies cost more than the test (a big state copied at every command)."""

    def __init__(
        self,
        service: ServiceDef[S],
        *,
        at: int = 0,
        refusal: Refusal = is_command_rejected,
        check: Check | None = None,
        state: S | None = None,
        strict: bool = True,
    ) -> None:
        self.service = service
        self.state: S = service.new_state() if state is None else state  # `state`: e.g. a rebuilt one
        self.now = at
        self.refusal = refusal
        self.check = check
        self.strict = strict
        self.log: list[Message] = []  # every event folded, in order
        self.events: list[Message] = []  # what the last `when` decided
        self.command: Message | None = None
        self._before: Any = None  # the state before the last `when`

    def decide(self, command: Message, at: int | None = None) -> list[Message]:
        """`decide` at business time `at` (default: the scenario's time), which must not change the state."""
        now = self.now if at is None else at
        if not self.strict:
            return self.service.decide(self.state, command, now)
        before = copy.deepcopy(self.state)
        events = self.service.decide(self.state, command, now)
        if self.state != before:
            changes = describe_difference(before, self.state, "state")
            raise AssertionError(f"decide must not change the state: {type(command).__name__} changed\n  " + "\n  ".join(changes))
        return events

    def fold(self, *events: Message) -> S:
        for e in events:
            self.state = self.service.evolve(self.state, e)
            self.log.append(e)
            if self.check is not None:
                self.check(self.state, e)
        return self.state

    def given(self, *messages: Message, at: int | None = None) -> Scenario[S]:
        """Commands decided (and accepted) and their events folded; events folded as they are."""
        commands = tuple(self.service.commands)
        for m in messages:
            if isinstance(m, commands):
                events = self.decide(m, at)
                refused = [e for e in events if self.refusal(e)]
                assert not refused, f"given {type(m).__name__} was refused: {refused}"
                self.fold(*events)
            else:
                self.fold(m)
        return self

    def when(self, command: Message, at: int | None = None) -> Scenario[S]:
        self._before = copy.deepcopy(self.state) if self.strict else None
        self.command = command
        self.events = self.decide(command, at)
        self.fold(*self.events)
        return self

    def then(self, *events: Message) -> Scenario[S]:
        """Exactly these events, in this order."""
        if self.events != list(events):
            raise AssertionError(events_diff(list(events), self.events))
        return self

    def accepted(self) -> Scenario[S]:
        """None of the events of the last `when` is a refusal (a command the history needs accepted)."""
        refused = [e for e in self.events if self.refusal(e)]
        assert not refused, f"{type(self.command).__name__} was refused: {refused}"
        return self

    def refused(self, *fragments: str) -> str:
        """One refusal, on the command's aggregate, naming the command, whose reason holds every fragment; the
        state as before `when`. Returns the reason."""
        assert self.command is not None, "refused() checks a `when`"
        assert len(self.events) == 1 and self.refusal(self.events[0]), (
            f"expected {type(self.command).__name__} refused, decided {self.events}"
        )
        refusal = self.events[0]
        named = getattr(refusal, "command", None)  # a *CommandRejected names the command it refuses
        assert named in (None, type(self.command).__name__), f"the refusal names {named}, not {type(self.command).__name__}"
        if self.command.key:  # on the command's aggregate, so the refusal follows it in the log
            assert refusal.key == self.command.key, f"the refusal is keyed {refusal.key!r}, the command {self.command.key!r}"
        reason: str = getattr(refusal, "reason", "")
        assert reason, f"a refusal says why: {refusal}"
        for fragment in fragments:
            assert fragment in reason, f"{fragment!r} not in the reason {reason!r}"
        self.unchanged("a refused command changes nothing")
        return reason

    def unchanged(self, why: str = "the state is as before `when`") -> Scenario[S]:
        """The last `when` left the state as it found it (e.g. an idempotent repeat)."""
        assert self.strict, "a Scenario(strict=False) keeps no state to compare with"
        if self.state != self._before:
            changes = describe_difference(self._before, self.state, "state")
            raise AssertionError(f"{why}, but:\n  " + "\n  ".join(changes))
        return self

    def rebuilt(self) -> S:
        """A fresh state folded from the log (a rebuild)."""
        state = self.service.new_state()
        for e in self.log:
            state = self.service.evolve(state, e)
        return state


# --- many partitions -----------------------------------------------------------------------------


@dataclass
class Partition(Generic[S]):
    state: S
    queue: deque[tuple[Message, int, str]] = field(default_factory=deque)  # command, business time, id
    log: list[tuple[Message, int]] = field(default_factory=list)
    handled: list[tuple[str, Message, int, list[Message]]] = field(default_factory=list)  # id, command, time, events
    routed: int = 0


class Harness(Generic[S]):
    """The service's pure parts run end to end over `partitions` partitions, in memory.

    Each command sent gets an id (one for every partition a broadcast reaches), and each partition keeps
    the commands it decided with their events, so a test can envelope its log as the processor writes
    it (tests/unit/foldlog.py)."""

    def __init__(self, service: ServiceDef[S], partitions: int = 3) -> None:
        self.service = service
        self.parts = [Partition(service.new_state()) for _ in range(partitions)]
        self.decided: list[tuple[Message, list[Message]]] = []
        self._ids = itertools.count(1)
        own = service.topics["events"]
        self._own = [r for r in service.routes if r.topic == own]
        self._foreign = [r for r in service.routes if r.topic != own]

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
        """A foreign event (another service's, a clock tick) as the router would see it."""
        routes = [r for r in self._foreign if isinstance(event, r.messages)]
        assert routes, f"{self.service.name} reads no {type(event).__name__}"
        for route in routes:
            for cmd in route.react(event):
                self.send(cmd, now)

    def state_of(self, key: str) -> S:
        return self.parts[self.partition_of(key)].state

    def steps(self) -> list[tuple[str, int]]:
        out = [("decide", i) for i, p in enumerate(self.parts) if p.queue]
        out += [("route", i) for i, p in enumerate(self.parts) if p.routed < len(p.log)]
        return out

    def step(self, kind: str, i: int) -> None:
        p = self.parts[i]
        if kind == "decide":
            cmd, now, cid = p.queue.popleft()
            events = self.service.decide(p.state, cmd, now)
            self.decided.append((cmd, events))
            p.handled.append((cid, cmd, now, events))
            for e in events:
                p.state = self.service.evolve(p.state, e)
                p.log.append((e, now))
        else:
            e, now = p.log[p.routed]
            p.routed += 1
            for route in self._own:
                if isinstance(e, route.messages):
                    for cmd in route.react(e):
                        self.send(cmd, now)

    def run(self, pick: Callable[[list[tuple[str, int]]], tuple[str, int]] | None = None, limit: int = 200_000) -> None:
        for _ in range(limit):
            options = self.steps()
            if not options:
                return
            self.step(*(pick(options) if pick else options[0]))
        raise AssertionError("the harness did not settle")

    def events(self) -> list[Message]:
        return [e for p in self.parts for e, _ in p.log]

    def rebuilt(self) -> list[Any]:
        """Each partition's state folded again from its log (a rebuild), in canonical form."""
        out = []
        for p in self.parts:
            s = self.service.new_state()
            for e, _ in p.log:
                s = self.service.evolve(s, e)
            out.append(canonical(s))
        return out

    def live(self) -> list[Any]:
        return [canonical(copy.deepcopy(p.state)) for p in self.parts]
