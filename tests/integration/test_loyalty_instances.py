"""Two loyalty instances share the partitions; each answers for every member from its read model:
what one instance answered is what the other reads at once (read-your-writes: a member it does not
know yet waits for the read model to catch up before a 404), and the members' gauges count each
member once on each instance."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexchain.clock import ClockPublisher
from flexchain.settings import Settings
from flexchain.tools.scrape import metric_sum, samples
from tests.support import Suite, digests, eventually, get, http, post, run

pytestmark = pytest.mark.broker

T0 = 1_767_196_800_000  # 2026-01-01 00:00 UTC+8
MEMBERS = [f"m-{i:03d}" for i in range(24)]  # over every partition of 6


def test_a_member_joined_on_one_instance_is_known_on_the_other_at_once(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    try:
        a = suite.start("loyalty", instance="0", FLEXCHAIN_DATA_DIR=str(data_dir / "a"))
        b = suite.start("loyalty", instance="1", FLEXCHAIN_DATA_DIR=str(data_dir / "b"))

        def owned() -> tuple[set[str], set[str]]:
            return set(digests(a.url)), set(digests(b.url))

        pa, pb = eventually(lambda: (o := owned()) and o[0] and o[1] and o, what="both instances own partitions")
        assert pa | pb == {str(p) for p in range(6)} and not pa & pb

        async def tick() -> None:
            async with ClockPublisher(
                Settings(kafka_bootstrap_servers=suite.bootstrap, flexchain_topic_prefix=suite.prefix)
            ) as c:
                await c.tick(T0 + 3_600_000)

        run(tick())
        for url in (a.url, b.url):
            eventually(lambda u=url: get(f"{u}/clock")["business_time"] >= T0, what="both see the tick")

        referrer = None
        for i, member in enumerate(MEMBERS):
            joins, reads = (a, b) if i % 2 == 0 else (b, a)
            body = {"member_id": member} if referrer is None else {"member_id": member, "referrer_id": referrer}
            r = post(f"{joins.url}/members", body)
            assert r.status_code == 200, r.text
            # at once, on the other instance: the member is there, whichever instance owns its partition
            got = http("GET", f"{reads.url}/members/{member}", timeout=15)
            assert got.status_code == 200, (member, got.text)
            assert got.json()["member_id"] == member and got.json()["stage"] == "prospect"
            checkin = post(f"{reads.url}/members/{member}/behaviours", {"action": "checkin", "reference": "day-1"})
            assert checkin.status_code == 200, checkin.text
            referrer = member  # the next member, joined on the other instance, names this one

        assert http("GET", f"{a.url}/members/nobody", timeout=15).status_code == 404

        def counted(url: str) -> float:
            return metric_sum(samples(http("GET", f"{url}/metrics").text), "flexchain_loyalty_members_by_tier")

        for url in (a.url, b.url):  # each instance counts every member once: its own and the folded partitions
            eventually(lambda u=url: counted(u) == len(MEMBERS), what="members counted once on each instance")
    finally:
        suite.stop_all()
