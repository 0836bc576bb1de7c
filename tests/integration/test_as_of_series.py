"""A time series of as-of answers (R-X-4) reads the log once, and says the same as fresh folds.

`flexchain simulate`'s report asks every service for each day's close of a quarter; each question
used to fold the topic from offset 0, so 90 days read the log ≈ 45 times over. Now a question for T
continues the kept answer of the latest earlier time. On the real broker, a topic of three
partitions with events over eight business days — among them a repeated aggregate version written
after a later day's events (the repeat must stay skipped when an answer is continued past them) — is
asked for each day in order, then afresh in reverse; each answer must equal the sum of the events
up to that day (the oracle, computed from what was published), and the series in order must read
each record about once."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from flexchain import kafka
from flexchain.asof import AsOf, Replayed
from flexchain.messages import Envelope, Enveloped
from services.inventory.messages import StockReceived
from tests.support import CODEC, settings

pytestmark = pytest.mark.broker

T1 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
DAY = 86_400_000
DAYS = 8
SKUS = [f"sku-{i}" for i in range(6)]
PARTITIONS = 3


class Totals:
    """A read model: units received per sku, folded event by event."""

    def __init__(self, partitions: list[int]) -> None:
        self.units: Counter[str] = Counter()

    def fold(self, partition: int, item: Enveloped) -> None:
        assert isinstance(item.message, StockReceived)
        self.units[item.message.sku] += item.message.qty


def received(sku: str, version: int, at: int, qty: int) -> bytes:
    msg = StockReceived(sku=sku, warehouse="shanghai", qty=qty, reference=f"{sku}/{version}")
    env = Envelope(
        event_id=f"{sku}-{version}",
        event_type="StockReceived",
        aggregate_id=sku,
        aggregate_version=version,
        business_time=at,
        correlation_id=sku,
        causation_id=None,
        producer="inventory",
    )
    data: bytes = CODEC.encode(Enveloped(envelope=env, message=msg))
    return data


def close_of(day: int) -> int:
    return T1 + (day + 1) * DAY - 1


def test_a_series_asked_in_order_reads_the_log_once_and_equals_fresh_folds(kafka_bootstrap: str, prefix: str) -> None:
    s = settings(kafka_bootstrap, prefix)
    topic = s.name("inventory.events")
    records: list[tuple[int, str, bytes]] = []  # (partition, key, value) in the order written
    oracle: list[tuple[int, str, int]] = []  # (business time, sku, qty) of every event that counts
    versions: Counter[str] = Counter()
    for day in range(DAYS):
        for i, sku in enumerate(SKUS):
            for k in range(3):
                versions[sku] += 1
                at, qty = T1 + day * DAY + 3_600_000 * (i + k), 1 + (day * 7 + i * 3 + k) % 11
                records.append((i % PARTITIONS, sku, received(sku, versions[sku], at, qty)))
                oracle.append((at, sku, qty))
        if day == 2:  # a sku seen once, on day 2 ...
            records.append((0, "rare", received("rare", 1, T1 + 2 * DAY + 1, 5)))
            oracle.append((T1 + 2 * DAY + 1, "rare", 5))
        if day == 3:  # ... written again (the same version) after day 3's events of its partition,
            # which end day 2's answer there: a continued answer must still know version 1 was folded
            records.append((0, "rare", received("rare", 1, T1 + 2 * DAY + 1, 999)))

    async def go() -> tuple[list[tuple[Counter[str], Replayed]], list[tuple[Counter[str], Replayed]], Replayed]:
        await kafka.ensure_topics(s, [topic], partitions=PARTITIONS)
        producer = kafka.producer(s)
        await producer.start()
        try:
            for partition, key, value in records:
                await producer.send_and_wait(topic, value, key=key.encode(), partition=partition)
        finally:
            await producer.stop()
        in_order, fresh = AsOf(s, CODEC, topic, size=4), AsOf(s, CODEC, topic, size=4)
        try:
            forward = []
            for day in range(DAYS):
                model, r = await in_order.model("totals", close_of(day), Totals)
                forward.append((Counter(model.units), r))
            backward = []
            for day in reversed(range(DAYS)):  # never continued: each folds from offset 0
                model, r = await fresh.model("totals", close_of(day), Totals)
                backward.append((Counter(model.units), r))
            _, again = await in_order.model("totals", close_of(2), Totals)  # taken by the series: asked anew
            return forward, backward[::-1], again
        finally:
            await in_order.close()
            await fresh.close()

    forward, backward, again = asyncio.run(go())
    for day in range(DAYS):
        expected: Counter[str] = Counter()
        for at, sku, qty in oracle:
            if at <= close_of(day):
                expected[sku] += qty
        assert forward[day][0] == expected, f"day {day}: the continued answer"
        assert backward[day][0] == expected, f"day {day}: the fresh fold"
        assert forward[day][1].folded == backward[day][1].folded, f"day {day}: events folded per partition"

    total = len(records)
    read_in_order = sum(r.read for _, r in forward)
    read_fresh = sum(r.read for _, r in backward)
    # in order: each record once, plus each day's re-read of the event that closed a partition
    assert read_in_order <= total + PARTITIONS * DAYS, (read_in_order, total)
    assert read_fresh > 3 * total, (read_fresh, total)  # ≈ DAYS / 2 times the log
    assert again.read > 0 and again.folded == forward[2][1].folded
