"""R-COM-3: how long the oldest payout batch due has waited for every partition to settle it — the
figure behind the FlexchainPayoutBatchOverdue alert (its cutoff + N, N in deploy/prometheus/alerts.yml)."""

from __future__ import annotations

from services.commission.accounts import payout_overdue
from services.commission.state import CommissionState

DAY = 86_400_000
CUTOFF = 20_000 * DAY  # a batch cutoff (00:00 UTC)


def partitions(*settled: int) -> list[CommissionState]:
    states = []
    for cutoff in settled:
        state = CommissionState()
        state.settled_cutoff = cutoff
        states.append(state)
    return states


def test_every_partition_past_the_latest_cutoff_means_nothing_overdue() -> None:
    assert payout_overdue(partitions(CUTOFF, CUTOFF, CUTOFF), CUTOFF + 5 * 3_600_000, DAY) == 0


def test_one_partition_behind_counts_from_the_cutoff_it_has_not_passed() -> None:
    now = CUTOFF + 3 * 3_600_000
    assert payout_overdue(partitions(CUTOFF, CUTOFF - DAY, CUTOFF), now, DAY) == 3 * 3_600_000


def test_a_partition_days_behind_counts_from_the_oldest_open_batch_not_the_latest() -> None:
    """Else the figure would fall back to 0 at each new cutoff while a batch stays unpaid for days."""
    now = CUTOFF + 3_600_000
    assert payout_overdue(partitions(CUTOFF, CUTOFF - 3 * DAY), now, DAY) == 2 * DAY + 3_600_000


def test_a_partition_that_never_passed_a_cutoff_counts_from_the_latest_not_the_epoch() -> None:
    now = CUTOFF + 60_000
    assert payout_overdue(partitions(-1, CUTOFF), now, DAY) == 60_000


def test_no_business_time_yet_means_nothing_overdue() -> None:
    """FLEXCHAIN_CLOCK=log before the first tick: business time 0, no batch is due."""
    assert payout_overdue(partitions(-1, -1), 0, DAY) == 0
    assert payout_overdue([], CUTOFF, DAY) == 0
