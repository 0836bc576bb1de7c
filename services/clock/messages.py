"""The clock's event: business time advanced to ``time`` (ms since epoch, UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from flexchain.messages import Message

TOPIC = "clock.ticks"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockTicked(Message):
    """Business time has advanced to `time` (ms since the epoch, UTC)."""

    KEY: ClassVar[str] = "clock_id"
    SERVICE: ClassVar[str] = "clock"
    clock_id: str
    time: int


MESSAGES: list[type[Message]] = [ClockTicked]
