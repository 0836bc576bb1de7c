"""A history checker over the logs themselves (issue 12, item 9): whatever fault was injected, the
committed log of a service must look as if nothing had happened —

* no event id written twice;
* per partition and aggregate, versions 1, 2, 3, … with no gap and no repeat;
* every command answered exactly once: the events caused by one command id are written together,
  once (a repeat would show up as a second run of the same causation id).

Reads committed records only (read_committed), like every subscriber.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from flexchain.fold import DIGEST_HEADER, ORIGIN_HEADER, PartitionState, fold_event, origin_of
from flexchain.messages import Enveloped
from flexchain.runtime import ServiceDef, state_digest
from flexchain.serde import Codec, DecodeError
from flexchain.settings import Settings
from tests.support import CODEC


@dataclass(frozen=True)
class Logged:
    partition: int
    offset: int
    item: Enveloped
    digest: str = ""  # the command digest header the processor writes
    origin: int = 0  # the origin time the dedup memory keeps (header, else the record timestamp)

    @property
    def type(self) -> str:
        return self.item.envelope.event_type


async def read_log(bootstrap: str, topic: str, codec: Codec = CODEC, strict: bool = True) -> list[Logged]:
    """Every committed record of `topic`, decoded, in partition-then-offset order (`strict=False`:
    records that do not decode are left out)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        parts = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            await asyncio.sleep(0.01)
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Logged] = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=500)
                for rec in batch.get(tp, []):
                    digest = next((v.decode() for k, v in rec.headers if k == DIGEST_HEADER), "")
                    try:
                        item = codec.decode(rec.value)
                    except DecodeError:
                        if strict:
                            raise
                        continue
                    origin = origin_of(rec.timestamp, next((v for k, v in rec.headers if k == ORIGIN_HEADER), None))
                    out.append(Logged(tp.partition, rec.offset, item, digest, origin))
        return out
    finally:
        await consumer.stop()


def log_of(bootstrap: str, topic: str) -> list[Logged]:
    result: list[Logged] = asyncio.run(read_log(bootstrap, topic))
    return result


def check_history(log: list[Logged]) -> list[str]:
    """What is wrong with a service's event log (empty: nothing)."""
    problems: list[str] = []
    ids = Counter(x.item.envelope.event_id for x in log)
    twice = [i for i, n in ids.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} event ids written more than once, e.g. {twice[:3]}")
    versions: dict[tuple[int, str], list[int]] = defaultdict(list)
    for x in log:
        env = x.item.envelope
        versions[(x.partition, env.aggregate_id)].append(env.aggregate_version)
    broken = {k: v for k, v in versions.items() if v != list(range(1, len(v) + 1))}
    if broken:
        (p, agg), v = next(iter(broken.items()))
        problems.append(f"{len(broken)} aggregates with versions not 1..n, e.g. partition {p} {agg!r}: {v[:12]}…")
    # one command's events are written in one transaction, next to each other: a second run is a repeat
    runs: dict[tuple[int, str], list[int]] = defaultdict(list)  # (partition, command) → offsets where a run starts
    last: dict[int, str | None] = {}
    for x in log:
        cause = x.item.envelope.causation_id
        if cause is None:
            continue
        if last.get(x.partition) != cause:
            runs[(x.partition, cause)].append(x.offset)
        last[x.partition] = cause
    repeated = {k: v for k, v in runs.items() if len(v) > 1}
    if repeated:
        shown = [f"partition {p} command {c} at offsets {v}" for (p, c), v in list(repeated.items())[:3]]
        problems.append(f"{len(repeated)} commands answered more than once, e.g. {shown}")
    return problems


def folded_digests(svc: ServiceDef[Any], log: list[Logged], partitions: int = 6) -> dict[str, str]:
    """Per partition, the digest of the state a rebuild from the log gives — the kernel's own fold,
    so it can be compared with what a running service shows (`GET /internal/partitions`)."""
    horizon = int(Settings().flexchain_dedup_horizon_hours * 3_600_000)
    states = {p: PartitionState(svc.new_state()) for p in range(partitions)}
    for x in log:
        fold_event(svc.evolve, states[x.partition], x.item, x.digest, x.origin, horizon)
    return {str(p): state_digest(ps) for p, ps in states.items()}
