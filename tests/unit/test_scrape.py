"""`flexchain.tools.scrape`: the simulator's and the benchmarks' reading of a service's /metrics, on a
real exposition written by prometheus_client (counters with labels, a histogram, a gauge, a custom
collector whose label order is not the one a query names)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from flexchain.tools.scrape import metric_sum, samples
from flexchain.tools.simulate import Api


class Escrow(Collector):
    """As the presale service's campaign gauges: labels (campaign, bucket), in that order."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("flexchain_presale_campaign_escrow_cents", "Money held", labels=["campaign", "bucket"])
        for campaign, scale in (("c1", 1), ("c2", 10)):
            for i, bucket in enumerate(("production", "risk", "marketing", "operations", "fees")):
                g.add_metric([campaign, bucket], scale * (i + 1) * 100)
        yield g


def exposition(service: str = "inventory") -> str:
    r = CollectorRegistry()
    out = Counter(f"flexchain_{service}_events_out", "Records produced", ["topic", "type"], registry=r)
    out.labels(f"{service}.events", "StockReserved").inc(7)
    out.labels(f"{service}.events", "StockReleased").inc(2)
    out.labels(f"bench-1.{service}.events", "StockReserved").inc(5)  # a prefixed topic
    out.labels(f"{service}.dlq", "StockReserved").inc(1)  # not an event topic
    out.labels("order.commands", 'Odd "type", {with} = signs').inc(4)  # escaped by the exposition
    dlq = Counter(f"flexchain_{service}_dlq_records", "Dead letters", ["reason"], registry=r)
    dlq.labels("decode").inc(3)
    dlq.labels("stale command").inc(0)
    Counter(f"flexchain_{service}_duplicates_skipped", "Repeats", registry=r).inc(6)
    Gauge(f"flexchain_{service}_rebuild_duration_seconds", "Last rebuild", registry=r).set(2.5)
    latency = Histogram(f"flexchain_{service}_processing_latency_seconds", "Latency", ["stage"], registry=r)
    for v in (0.01, 0.02, 0.5):
        latency.labels("processor").observe(v)
    latency.labels("router").observe(0.25)
    r.register(Escrow())
    return generate_latest(r).decode()


def test_counters_are_summed_by_name_and_label_patterns() -> None:
    m = samples(exposition())
    name = "flexchain_inventory_events_out_total"
    assert metric_sum(m, name) == 19
    assert metric_sum(m, name, type="StockReserved") == 13
    assert metric_sum(m, name, topic=r".*\.events") == 14
    assert metric_sum(m, name, topic=r".*\.events", type="StockReserved") == 12
    assert metric_sum(m, name, type='Odd "type", {with} = signs') == 4
    assert metric_sum(m, name, type="Stock") == 0  # a label value matches whole, not in part
    assert metric_sum(m, "flexchain_inventory_dlq_records_total") == 3
    assert metric_sum(m, "flexchain_inventory_duplicates_skipped_total") == 6
    # the counters' `_created` samples are samples of their own, never counted with the totals
    assert metric_sum(m, "flexchain_inventory_events_out_created") > 1e9


def test_a_histogram_gauges_and_what_is_not_there() -> None:
    m = samples(exposition())
    pre = "flexchain_inventory_processing_latency_seconds"
    assert metric_sum(m, f"{pre}_count", stage="processor") == 3
    assert metric_sum(m, f"{pre}_sum", stage="processor") == pytest.approx(0.53)
    assert metric_sum(m, f"{pre}_count") == 4
    assert metric_sum(m, f"{pre}_bucket", stage="router", le=r"\+Inf") == 1
    assert metric_sum(m, "flexchain_inventory_rebuild_duration_seconds", default=math.nan) == 2.5
    assert math.isnan(metric_sum(m, "flexchain_inventory_rebuild_seconds", default=math.nan))
    assert metric_sum(m, "flexchain_inventory_rebuild_events_total") == 0


def test_labels_are_matched_by_name_whatever_their_order_in_the_exposition() -> None:
    m = samples(exposition())
    escrow = "flexchain_presale_campaign_escrow_cents"
    # the four buckets of both campaigns: (1 + 2 + 3 + 4) × 100 × (1 + 10)
    assert metric_sum(m, escrow, bucket="production|risk|marketing|operations") == 11_000
    assert metric_sum(m, escrow, campaign="c2", bucket="fees") == 5_000


def test_the_simulator_counts_the_events_each_service_wrote_to_its_event_topic() -> None:
    texts = {"http://inventory": exposition("inventory"), "http://order": exposition("order")}
    api = Api({"inventory": "http://inventory", "order": "http://order"})
    api.client.close()
    api.client = httpx.Client(
        transport=httpx.MockTransport(lambda req: httpx.Response(200, text=texts[f"http://{req.url.host}"]))
    )
    try:
        assert api.events_written() == 2 * 14
    finally:
        api.close()
