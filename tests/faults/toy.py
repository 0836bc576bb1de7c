"""A toy service whose domain fails on demand, run by the real kernel on the real broker (issue 12,
item 7): every position where a record can make the shell raise — the router's policy and encode, the
processor's decide, encode and evolve, a read model's fold, and the service's own log — is reached by
a message whose `mode` names it. No business here: the kernel's behaviour is what is tested.

Run as a process: `FLEXCHAIN_SCHEMAS_DIR=<dir with toy/, toysrc/, clock/, common/> python -m
tests.faults.toy` (the schemas are written by :func:`write_toy_schemas`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from fastapi import FastAPI, HTTPException

from flexchain.api import AsOf, past_states
from flexchain.host import Runtime, base_app, serve
from flexchain.messages import Enveloped, Message
from flexchain.runtime import Route, ServiceDef
from flexchain.schemas import write_schemas
from flexchain.ticks import ClockTicked


@dataclass(frozen=True, slots=True)
class Poke(Message):
    """Do something to `item`; `mode` says where to fail: decide | encode | evolve | ok."""

    KEY: ClassVar[str] = "item"
    SERVICE: ClassVar[str] = "toy"
    item: str
    n: int
    mode: str


@dataclass(frozen=True, slots=True)
class Poked(Message):
    KEY: ClassVar[str] = "item"
    SERVICE: ClassVar[str] = "toy"
    item: str
    n: int
    mode: str


@dataclass(frozen=True, slots=True)
class Source(Message):
    """Another service's event the toy reacts to; `mode`: policy | encode | view | ok."""

    KEY: ClassVar[str] = "item"
    SERVICE: ClassVar[str] = "toysrc"
    item: str
    n: int
    mode: str


@dataclass
class Items:
    items: dict[str, int] = field(default_factory=dict)


def decide(state: Items, cmd: Message, now: int) -> list[Message]:
    assert isinstance(cmd, Poke)
    if cmd.mode == "decide":
        raise ValueError("poisoned decide")
    if cmd.mode == "encode":
        return [Poked(cmd.item, "not a number", cmd.mode)]  # type: ignore[arg-type]  # does not fit its schema
    return [Poked(cmd.item, cmd.n, cmd.mode)]


def evolve(state: Items, event: Message) -> Items:
    assert isinstance(event, Poked)
    if event.mode == "evolve":
        state.items[event.item] = -1  # half-changed, then fails: the kind of state that must be dropped
        raise RuntimeError("poisoned evolve")
    state.items[event.item] = state.items.get(event.item, 0) + event.n
    return state


def react(event: Message) -> list[Message]:
    assert isinstance(event, Source)
    if event.mode == "policy":
        raise ValueError("poisoned policy")
    if event.mode == "encode":
        return [Poke(event.item, "not a number", "ok")]  # type: ignore[arg-type]
    return [Poke(event.item, event.n, "ok")]


TOY = ServiceDef(
    name="toy",
    commands=(Poke,),
    events=(Poked,),
    new_state=Items,
    decide=decide,
    evolve=evolve,
    routes=(Route("toysrc.events", (Source,), react),),
    state_format="toy-1",
)


class ToyView:
    """A read model of `toysrc.events` that fails on `mode == "view"`."""

    topics: ClassVar[list[str]] = ["toysrc.events"]
    messages: ClassVar[list[type[Message]]] = [Source]

    def __init__(self) -> None:
        self.seen: list[str] = []

    def fold(self, item: Enveloped) -> None:
        msg = item.message
        if isinstance(msg, Source):
            if msg.mode == "view":
                raise RuntimeError("poisoned view fold")
            self.seen.append(msg.item)


def build_api(rt: Runtime) -> FastAPI:
    app = base_app(rt, "toy")
    view: ToyView = rt.view

    @app.get("/items/{key}")
    async def item(key: str, as_of: AsOf = None) -> dict[str, Any]:
        if as_of is not None:
            value = (await past_states(rt, as_of)).state_for(key).items.get(key)
        else:
            async with rt.consistent():
                value = rt.own.state_for(key).items.get(key)
        if value is None:
            raise HTTPException(status_code=404, detail=f"no item {key}")
        return {"key": key, "value": value}

    @app.get("/sources")
    async def sources() -> list[str]:
        return view.seen

    return app


def write_toy_schemas(root: Path) -> None:
    write_schemas([Poke, Poked, Source, ClockTicked], root)


def main() -> None:
    asyncio.run(serve(TOY, ToyView(), build_api, default_port=8099))


if __name__ == "__main__":
    main()
