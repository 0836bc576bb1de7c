"""bench/loyalty.py's measure of what a loyalty process holds for its members (issue 18's memory
target): the processor's partition and the read model, folded from the events the service writes."""

from __future__ import annotations

import random

from bench.loyalty import history, measure_service


def test_the_service_measure_folds_every_member_into_both_sides_and_counts_every_part() -> None:
    got = measure_service(200, seed=3)
    assert got["service_members"] == 200  # every member of the synthetic year joined
    assert got["service_view_members"] == got["service_members"]  # the read model folds what the processor did
    assert got["service_ledger_entries"] > got["service_members"]  # points movements: several a member
    assert got["service_ledger_disk_mib"] > 0  # the ledger is on disk, not among the parts in memory
    parts = got["service_parts_mib"]
    assert set(parts) == {
        "processor_state",
        "processor_versions",
        "processor_dedup",
        "view_state",
        "view_indexes",
        "view_versions",
    }
    assert all(mib > 0 for mib in parts.values()), parts
    assert abs(got["service_total_mib"] - sum(parts.values())) < 1e-9
    assert got["service_process_rss_mib"] > got["service_total_mib"]  # the interpreter and modules besides
    assert got["service_restarted_members"] == 200  # a fresh process loaded what was built
    assert got["service_restarted_peak_rss_mib"] >= got["service_restarted_rss_mib"] > 0
    assert got["service_commands"] == len(history(200, random.Random(3)))
