"""`OwnView.catch_up`, the read-your-writes of a service's own state on the partitions an instance
folds from the log (another instance's processor owns them): it returns True only once everything
written before the call is folded — a member joined on another instance is then in the state — and
False while the view is behind."""

from __future__ import annotations

import asyncio

import pytest

from flexchain import kafka
from flexchain.messages import Envelope
from flexchain.serde import Codec
from flexchain.views import OwnView, Waiters
from services.loyalty.app import service
from services.loyalty.messages import MemberJoined
from tests.support import publish, run, settings

pytestmark = pytest.mark.broker

MEMBERS = [f"m-{i:03d}" for i in range(12)]


def _joined(member: str, at: int) -> tuple[MemberJoined, Envelope]:
    msg = MemberJoined(member_id=member, joined_at=at, referrer_id=None, via="api")
    env = Envelope(
        event_id=f"joined-{member}",
        event_type="MemberJoined",
        aggregate_id=member,
        aggregate_version=1,
        business_time=at,
        correlation_id=member,
        causation_id=f"join-{member}",
        producer="loyalty",
    )
    return msg, env


def test_catch_up_waits_until_what_was_written_is_folded(kafka_bootstrap: str, prefix: str) -> None:
    svc = service()
    s = settings(kafka_bootstrap, prefix)
    topic = s.name(svc.topics["events"])

    async def go() -> None:
        await kafka.ensure_topics(s, [topic], partitions=6)
        own = OwnView(svc, s, Codec(list(svc.events)), Waiters())
        await own.start()
        stopping = asyncio.Event()
        try:
            own.sync(set())  # another instance's processor owns every partition: all folded here
            assert await own.catch_up(5.0)  # nothing written yet
            await publish(kafka_bootstrap, topic, [_joined(m, 1_767_200_000_000) for m in MEMBERS])
            # the view does not run: it cannot have folded them, and says so
            assert not await own.catch_up(0.5)
            assert all(own.state_for(m).member(m) is None for m in MEMBERS)
            runner = asyncio.create_task(own.run(stopping))
            assert await own.catch_up(30.0)
            # at once, not eventually: catch_up's True means every member is there
            assert [m for m in MEMBERS if own.state_for(m).member(m) is None] == []
            stopping.set()
            await runner
        finally:
            stopping.set()
            await own.stop()

    run(go())
