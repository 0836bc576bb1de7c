"""Business time (R-X-1): the `clock.ticks` topic and its single event, ``ClockTicked`` — business time
advanced to ``time`` (ms since epoch, UTC).

Produced by `flexchain clock` (real time, or simulated fast for demos and tests); consumed by the
routers of every service that has time-driven rules, which turn a tick into a `CheckTimers`
command on each partition of their command topic. The kernel owns it because every service folds it
(`GET /clock`, timers); its Avro name stays `flexchain.clock.ClockTicked` (``SERVICE = "clock"``,
``schemas/clock/ClockTicked.avsc``) so the log and the schema history read as before.
"""

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
