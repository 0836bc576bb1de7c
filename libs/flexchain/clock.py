"""The clock producer: business time on `clock.ticks` (R-X-1), real or simulated."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaProducer

from flexchain import kafka
from flexchain.messages import Envelope, Enveloped
from flexchain.serde import Codec
from flexchain.settings import Settings

TOPIC = "clock.ticks"
CLOCK_ID = "main"


class ClockPublisher:
    def __init__(self, settings: Settings) -> None:
        from flexchain.ticks import MESSAGES

        self.settings = settings
        self.codec = Codec(MESSAGES)
        self.producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> ClockPublisher:
        await kafka.ensure_topics(self.settings, [self.settings.name(TOPIC)])
        self.producer = kafka.producer(self.settings)
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def tick(self, at: int) -> None:
        from flexchain.ticks import ClockTicked

        assert self.producer is not None
        tick_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"flexchain-clock/{CLOCK_ID}/{at}"))
        env = Envelope(
            event_id=tick_id,
            event_type="ClockTicked",
            aggregate_id=CLOCK_ID,
            aggregate_version=0,
            business_time=at,
            correlation_id=tick_id,
            causation_id=None,
            producer="clock",
        )
        value = self.codec.encode(Enveloped(envelope=env, message=ClockTicked(clock_id=CLOCK_ID, time=at)))
        await self.producer.send_and_wait(
            self.settings.name(TOPIC), value, key=CLOCK_ID.encode(), headers=[("type", b"ClockTicked")]
        )


async def run_clock(settings: Settings, speed: float, interval: float, start: int | None, count: int) -> None:
    origin_real = time.time()
    origin = start if start is not None else int(origin_real * 1000)
    n = 0
    async with ClockPublisher(settings) as clock:
        while count == 0 or n < count:
            now = origin + int((time.time() - origin_real) * 1000 * speed)
            await clock.tick(now)
            n += 1
            await asyncio.sleep(interval)
