"""A business gauge reads the service's whole state; while a partition is stopped on an unreadable
event that read raises `UnreadableEvent`. The scrape must still answer — with the gauge NaN and
`partition_stopped` at 1 — or Prometheus would see the service down and FlexchainPartitionStopped
(deploy/prometheus/alerts.yml) could never fire."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest

from flexchain.fold import UnreadableEvent
from flexchain.metrics import ServiceMetrics


def stopped() -> float:
    raise UnreadableEvent("inventory.events", 3, 42, "unknown schema id 999")


def test_a_gauge_that_cannot_read_a_stopped_partition_says_nan_and_the_scrape_answers() -> None:
    m = ServiceMetrics("inventory")
    m.gauge("low_stock_skus", "skus below threshold", []).set_function(stopped)
    m.gauge("members", "per stage", ["stage"]).labels("new").set_function(stopped)
    m.gauge("slow_moving_skus", "slow movers", []).set_function(lambda: 2)
    m.partition_stopped.labels("processor", "3").set(1)
    text = generate_latest(m.registry).decode()
    assert "flexchain_inventory_low_stock_skus NaN" in text
    assert 'flexchain_inventory_members{stage="new"} NaN' in text
    assert "flexchain_inventory_slow_moving_skus 2.0" in text
    assert 'flexchain_inventory_partition_stopped{loop="processor",partition="3"} 1.0' in text
    assert math.isnan(m.registry.get_sample_value("flexchain_inventory_low_stock_skus") or 0.0)


def test_any_other_failure_of_a_gauge_still_fails_loudly() -> None:
    m = ServiceMetrics("inventory")
    m.gauge("low_stock_skus", "skus below threshold", []).set_function(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        generate_latest(m.registry)
