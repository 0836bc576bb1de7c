"""The commission service with its router's own-events hop held back (a test's window widener).

`python -m tests.e2e.slow_own_hop` runs the commission service unchanged, except that its router
routes a record of `commission.events` only once it is `FLEXCHAIN_TEST_OWN_HOP_DELAY_MS` old (default
1500): the network changes reach the other partitions late (`ReplicateNetwork`), and so do credits,
clawback charges and the referral-bonus hops. Records of the other input topics (`order.events`,
`inventory.events`, `clock.ticks`) are routed as usual, so an order paid right after a network change
reaches its seller's partition before the change does — the interleaving a loaded machine produces
now and then, made to happen every time. Every order of events Kafka allows stays allowed: a
partition is only paused, re-positioned and resumed, as a slow consumer would be.
"""

from __future__ import annotations

import asyncio
import os
import time

from aiokafka import ConsumerRecord, TopicPartition

from flexchain.runtime import Router

DELAY_MS = int(os.environ.get("FLEXCHAIN_TEST_OWN_HOP_DELAY_MS", "1500"))
# only these event types are held back (comma-separated; empty: every own event)
TYPES = {t.encode() for t in os.environ.get("FLEXCHAIN_TEST_OWN_HOP_TYPES", "").split(",") if t}


def _held(rec: ConsumerRecord[bytes, bytes], now: float) -> bool:
    if now - rec.timestamp >= DELAY_MS:
        return False
    return not TYPES or any(k == "type" and v in TYPES for k, v in rec.headers)


_original = Router._enqueue


def _held_back(self: Router, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> None:
    """Records fetched are queued for their partition's transactions here: the young ones of the own
    topic are not, and are read again once old enough."""
    assert self.consumer is not None
    consumer = self.consumer
    now = time.time() * 1000
    young = [r for r in records if _held(r, now)] if tp.topic.endswith("commission.events") else []
    if not young or not self.owns(tp):
        _original(self, tp, records)
        return
    old = [r for r in records if r.offset < young[0].offset]
    if old:
        _original(self, tp, old)
    # read the young records again once they are old enough (as if this consumer were slow)
    consumer.seek(tp, young[0].offset)
    consumer.pause(tp)
    wait = (DELAY_MS - (now - young[0].timestamp)) / 1000

    def resume() -> None:
        if tp in consumer.assignment():
            consumer.resume(tp)

    asyncio.get_running_loop().call_later(wait, resume)


Router._enqueue = _held_back  # type: ignore[method-assign,unused-ignore]


if __name__ == "__main__":
    from services.commission.app import main

    main()
