"""A simulated year on business time through the loyalty service (R-LOY-3, R-LOY-4, R-X-1, R-X-2):
members buy on their own habits, some stop, consumables run out, some orders are refunded or
cancelled; the week's order events and then its daily clock ticks are published to the broker.

The service is killed with SIGKILL at mid-year and restarted; at the end it is stopped, its
snapshots deleted and it is rebuilt from the log alone. Churn warnings and replenishment reminders
must be exactly those the pure domain decides over the same year — each once — and the rebuild
must reach the same state (digests) and emit nothing.

CI runs LOYALTY_YEAR_MEMBERS (default 1,000) members to stay within its time; `bench/loyalty.py`
runs the issue's 10,000 through the same scenario.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.loyalty import YearScenario, check_year, drive_year, read_topic
from flexchain.procs import ServiceProcess
from tests.support import Suite, digests, eventually, get, run, settings

pytestmark = pytest.mark.broker

MEMBERS = int(os.environ.get("LOYALTY_YEAR_MEMBERS", "1000"))


def test_a_simulated_year_with_a_kill_9_and_a_rebuild(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    scenario = YearScenario(MEMBERS)
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SNAPSHOT_EVERY="2000")
    s = settings(kafka_bootstrap, prefix)
    current: dict[str, ServiceProcess] = {"loyalty": suite.start("loyalty")}
    kills = []

    async def on_week(week: int) -> None:
        if week == len(scenario.weeks) // 2:  # mid-year, with the week's orders in flight
            current["loyalty"].kill9()
            kills.append(week)
            current["loyalty"] = suite.start("loyalty", wait=False)

    try:
        counts = run(drive_year(scenario, s, on_week, timeout=300))
        assert kills and counts["order_events"] == sum(len(w) for w in scenario.weeks)
        log = run(read_topic(s, s.name("loyalty.events")))
        result = check_year(scenario, log)
        assert result["churn_warnings"]["expected"] > 0 and result["reminders"]["expected"] > 0
        assert result["exact"], result

        url = current["loyalty"].url
        eventually(lambda: get(f"{url}/ready")["ready"], what="the read model caught up")
        for member in [j.key for j in scenario.joins[:: max(1, MEMBERS // 50)]]:
            m = get(f"{url}/members/{member}")
            p, t = m["points"], m["totals"]
            assert p["held"] + p["pending"] + t["redeemed"] + t["expired"] + t["reversed"] == t["earned"], (member, m)

        before = {p: d["digest"] for p, d in digests(url).items()}
        suite.stop_all()
        shutil.rmtree(data_dir)  # every snapshot: the state comes from the log alone
        data_dir.mkdir()
        url = suite.start("loyalty").url
        assert {p: d["digest"] for p, d in digests(url).items()} == before
        assert len(run(read_topic(s, s.name("loyalty.events")))) == len(log), "a rebuild emits nothing"
    finally:
        suite.stop_all()
