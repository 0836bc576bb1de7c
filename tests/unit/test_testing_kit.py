"""The test kit itself (flexchain.testing), on a toy counter service defined here: a then-mismatch fails
with a readable diff, a decide that changes the state is caught, a refusal is checked, and the harness
routes commands by key, broadcasts, and turns own and foreign events into commands."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import pytest

from flexchain.messages import Message
from flexchain.runtime import Route, ServiceDef
from flexchain.testing import Harness, Scenario, events_diff, refusal_of


@dataclass(frozen=True)
class Add(Message):
    KEY = "counter"
    counter: str
    n: int


@dataclass(frozen=True)
class ResetAll(Message):
    """Keyless: a broadcast to every partition."""


@dataclass(frozen=True)
class Added(Message):
    KEY = "counter"
    counter: str
    n: int
    total: int


@dataclass(frozen=True)
class CounterCommandRejected(Message):
    KEY = "counter"
    counter: str
    command: str
    reason: str


@dataclass(frozen=True)
class Overflowed(Message):
    KEY = "counter"
    counter: str
    reason: str


@dataclass(frozen=True)
class Tick(Message):
    """A foreign event (another service's topic)."""

    counter: str


@dataclass
class Counters:
    totals: dict[str, int] = field(default_factory=dict)
    seen: list[int] = field(default_factory=list)


def decide(state: Counters, cmd: Message, now: int) -> list[Message]:
    if isinstance(cmd, Add):
        if cmd.n <= 0:
            return [CounterCommandRejected(cmd.counter, "Add", f"n must be positive, not {cmd.n}")]
        total = state.totals.get(cmd.counter, 0) + cmd.n
        if total > 100:
            return [Overflowed(cmd.counter, f"{cmd.counter} would be {total}")]
        return [Added(cmd.counter, cmd.n, total)]
    return []


def evolve(state: Counters, e: Message) -> Counters:
    if isinstance(e, Added):
        state.totals[e.counter] = e.total
    return state


def react_own(e: Message) -> list[Message]:
    # a counter past 10 tops up its shadow once (a hop to another partition)
    if isinstance(e, Added) and e.total >= 10 and not e.counter.startswith("shadow-"):
        return [Add(f"shadow-{e.counter}", 1)]
    return []


def react_tick(e: Message) -> list[Message]:
    return [Add(e.counter, 1)] if isinstance(e, Tick) else []


def toy(decider=decide) -> ServiceDef[Counters]:  # type: ignore[no-untyped-def]
    return ServiceDef(
        name="toy",
        commands=(Add, ResetAll),
        events=(Added, CounterCommandRejected, Overflowed),
        new_state=Counters,
        decide=decider,
        evolve=evolve,
        routes=(Route("ticks", (Tick,), react_tick), Route("toy.events", (Added,), react_own)),
    )


def test_given_when_then_folds_commands_and_events() -> None:
    sc = Scenario(toy(), at=5).given(Add("a", 2), Added("b", 7, 7))
    sc.when(Add("a", 3)).then(Added("a", 3, 5))
    assert sc.state.totals == {"a": 5, "b": 7}
    assert sc.log == [Added("a", 2, 2), Added("b", 7, 7), Added("a", 3, 5)]
    assert sc.rebuilt() == sc.state
    more = Scenario(toy(), state=sc.rebuilt()).when(Add("b", 1)).then(Added("b", 1, 8))
    assert more.state.totals == {"a": 5, "b": 8} and more.log == [Added("b", 1, 8)]


def test_a_then_mismatch_fails_with_the_fields_that_differ() -> None:
    sc = Scenario(toy()).given(Add("a", 2)).when(Add("a", 3))
    with pytest.raises(AssertionError) as failed:
        sc.then(Added("a", 3, 6))
    assert str(failed.value) == "expected 1 event(s), decided 1\n  event 0 (Added) total: expected 6, got 5"


def test_a_then_mismatch_of_other_events_fails_with_a_line_diff() -> None:
    sc = Scenario(toy()).when(Add("a", 3))
    with pytest.raises(AssertionError) as failed:
        sc.then(Added("a", 3, 3), Added("a", 1, 4))
    text = str(failed.value)
    assert text.startswith("expected 2 event(s), decided 1\n--- expected\n+++ decided")
    assert re.search(r"^-.*Added\(counter='a', n=1, total=4\)", text, re.M), text
    assert events_diff([], []) == "expected 0 event(s), decided 0"


def test_a_decide_that_changes_the_state_is_caught() -> None:
    def sloppy(state: Counters, cmd: Message, now: int) -> list[Message]:
        state.seen.append(now)  # a decider that writes down what it saw
        return decide(state, cmd, now)

    changed = r"decide must not change the state: Add changed\n  state.seen: expected \[\], got \[7\]"
    with pytest.raises(AssertionError, match=changed):
        Scenario(toy(sloppy)).when(Add("a", 1), at=7)
    with pytest.raises(AssertionError, match="decide must not change the state"):
        Scenario(toy(sloppy)).given(Add("a", 1))
    lax = Scenario(toy(sloppy), strict=False).when(Add("a", 1), at=7)  # strict=False: not checked
    assert lax.state.seen == [7]
    with pytest.raises(AssertionError, match="keeps no state to compare with"):
        lax.unchanged()


def test_a_refusal_gives_its_reason_and_must_leave_the_state_as_it_was() -> None:
    sc = Scenario(toy()).given(Add("a", 2))
    assert sc.when(Add("a", -1)).refused("positive", "-1") == "n must be positive, not -1"
    with pytest.raises(AssertionError, match="'zero' not in the reason"):
        sc.when(Add("a", -1)).refused("zero")
    with pytest.raises(AssertionError, match="expected Add refused"):
        sc.when(Add("a", 1)).refused()
    assert sc.when(Add("a", 1)).accepted().events == [Added("a", 1, 4)]
    with pytest.raises(AssertionError, match="Add was refused"):
        sc.when(Add("a", 0)).accepted()
    with pytest.raises(AssertionError, match="the refusal is keyed 'b', the command 'a'"):
        Scenario(toy(lambda s, c, n: [CounterCommandRejected("b", "Add", "no")])).when(Add("a", 1)).refused()
    with pytest.raises(AssertionError, match="a refusal says why"):
        Scenario(toy(lambda s, c, n: [CounterCommandRejected("a", "Add", "")])).when(Add("a", 1)).refused()
    with pytest.raises(AssertionError, match="the refusal names Other, not Add"):
        Scenario(toy(lambda s, c, n: [CounterCommandRejected("a", "Other", "no")])).when(Add("a", 1)).refused()
    # a service's own refusal type: Overflowed refuses, and is not a *CommandRejected
    over = Scenario(toy(), refusal=refusal_of(Overflowed)).given(Add("a", 99))
    assert over.when(Add("a", 5)).refused("would be 104") == "a would be 104"


def test_a_refusal_that_changes_the_state_is_caught() -> None:
    def evolve_rejections(state: Counters, e: Message) -> Counters:
        if isinstance(e, CounterCommandRejected):
            state.totals[e.counter] = -1
        return evolve(state, e)

    svc = toy()
    svc = ServiceDef(svc.name, svc.commands, svc.events, svc.new_state, svc.decide, evolve_rejections)
    changed = r"a refused command changes nothing, but:\n  state.totals\['a'\]: expected 2, got -1"
    with pytest.raises(AssertionError, match=changed):
        Scenario(svc).given(Add("a", 2)).when(Add("a", 0)).refused()


def test_unchanged_checks_the_state_is_as_before_when() -> None:
    sc = Scenario(toy()).given(Add("a", 2))
    sc.when(ResetAll()).then().unchanged()
    with pytest.raises(AssertionError, match=r"the state is as before `when`, but:\n  state.totals\['a'\]: expected 2, got 3"):
        sc.when(Add("a", 1)).unchanged()


def test_given_must_be_accepted_and_check_runs_after_every_event() -> None:
    with pytest.raises(AssertionError, match="given Add was refused"):
        Scenario(toy()).given(Add("a", 0))
    seen: list[tuple[int, Message]] = []
    sc = Scenario(toy(), check=lambda state, e: seen.append((state.totals["a"], e)))
    sc.given(Add("a", 1)).when(Add("a", 2))
    assert seen == [(1, Added("a", 1, 1)), (3, Added("a", 2, 3))]


def test_the_harness_routes_by_key_broadcasts_and_hops_through_own_events() -> None:
    h = Harness(toy(), partitions=3)
    h.send(Add("a", 9), 1)
    h.publish(Tick("a"), 2)  # the foreign route: Add a 1, total 10, then the own route tops up the shadow
    h.send(ResetAll(), 3)  # keyless: every partition gets it
    h.run()
    assert h.state_of("a").totals["a"] == 10 and h.state_of("shadow-a").totals["shadow-a"] == 1
    assert sum(1 for cmd, _ in h.decided if isinstance(cmd, ResetAll)) == 3
    assert {cid for p in h.parts for cid, cmd, _, _ in p.handled if isinstance(cmd, ResetAll)} == {"cmd-3"}
    assert sorted(e.total for e in h.events() if isinstance(e, Added)) == [1, 9, 10]
    assert h.rebuilt() == h.live()
    with pytest.raises(AssertionError, match="toy reads no Added"):
        h.publish(Added("a", 1, 1), 4)


def test_the_harness_settles_in_any_interleaving() -> None:
    rnd = random.Random(7)
    for _ in range(20):
        h = Harness(toy(), partitions=2)
        for c in "abcde":
            h.send(Add(c, 10), 0)
        h.run(pick=rnd.choice)
        assert sorted(k for p in h.parts for k in p.state.totals) == sorted([*"abcde", *(f"shadow-{c}" for c in "abcde")])
