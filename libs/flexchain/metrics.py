"""Prometheus metrics of one service process, named `flexchain_<service>_<noun>_<unit>`.

| metric | kind | meaning |
|---|---|---|
| messages_in_total{topic,type} | counter | records consumed and decoded (commands, routed events) |
| events_out_total{topic,type} | counter | records produced in committed transactions |
| processing_latency_seconds{stage} | histogram | record append time → its transaction committed |
| batch_size_records{stage} | histogram | records per transaction |
| consumer_lag_records{topic,partition} | gauge | log-end (last stable) offset − position |
| rebuild_duration_seconds | gauge | how long the last rebuild of a partition took |
| rebuild_progress_ratio{partition} | gauge | 0…1 while a partition is being rebuilt; 1 when done |
| rebuild_events_total | counter | events folded while rebuilding |
| dlq_records_total{reason} | counter | records sent to `<service>.dlq` (each reason exported from 0) |
| duplicates_skipped_total | counter | commands whose id was already applied |
| ready | gauge | 1 once every owned partition is rebuilt (0 while one is stopped) |
| partition_stopped{loop,partition} | gauge | 1 while a partition is stopped on an own-log event it cannot read |
| transactions_failed_total{stage,kind} | counter | transactions that failed or aborted (fenced, kafka, poison, injected, error) |
| loop_restarts_total{loop} | counter | loops started again from what is committed after a failure |
| records_skipped_total{loop,reason} | counter | foreign records a read model could not decode or fold (each reason from 0) |

Business gauges (`gauge()`, or a collector) are listed in README "Metrics"; the alert rules on all of
them are deploy/prometheus/alerts.yml.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flexchain.fold import UnreadableEvent

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BusinessGauge(Gauge):
    """A gauge whose function reads the service's state: while a partition is stopped on an unreadable
    event that state cannot be read whole (`UnreadableEvent`), and the gauge says NaN ("cannot say")
    instead of failing the whole scrape — which would hide `partition_stopped` itself."""

    def set_function(self, f: Callable[[], float]) -> None:
        def read() -> float:
            try:
                return f()
            except UnreadableEvent:
                return math.nan

        super().set_function(read)


#: The label of a value outside a label's closed set (a type this service does not know).
OTHER = "other"


class ServiceMetrics:
    """Every label value comes from a closed set — message class names of the service's codec
    (`types`), its own topics, loop and stage names, partition numbers, fixed reasons — never from a
    record's contents or headers: a crafted record cannot add a series (README "Limits")."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None, types: Iterable[str] = ()) -> None:
        self.types = frozenset(types)
        self.registry = registry or CollectorRegistry()
        p = f"flexchain_{service}_"
        r = self.registry
        self.messages_in = Counter(p + "messages_in", "Records consumed and decoded", ["topic", "type"], registry=r)
        self.events_out = Counter(p + "events_out", "Records produced (committed)", ["topic", "type"], registry=r)
        self.latency = Histogram(
            p + "processing_latency_seconds",
            "Record append time to transaction commit",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            p + "batch_size_records",
            "Records per transaction",
            ["stage"],
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000),
            registry=r,
        )
        self.lag = Gauge(p + "consumer_lag_records", "Last stable offset minus position", ["topic", "partition"], registry=r)
        self.rebuild_duration = Gauge(p + "rebuild_duration_seconds", "Duration of the last partition rebuild", registry=r)
        self.rebuild_progress = Gauge(p + "rebuild_progress_ratio", "Rebuild progress per partition", ["partition"], registry=r)
        self.rebuild_events = Counter(p + "rebuild_events", "Events folded while rebuilding", registry=r)
        self.dlq = Counter(p + "dlq_records", "Records sent to the dead-letter topic", ["reason"], registry=r)
        self.duplicates = Counter(p + "duplicates_skipped", "Commands already applied, skipped", registry=r)
        self.ready = Gauge(p + "ready", "1 when every owned partition is rebuilt", registry=r)
        self.partition_stopped = Gauge(
            p + "partition_stopped",
            "1 while a partition is stopped on an unreadable own-log event",
            ["loop", "partition"],
            registry=r,
        )
        self.transactions_failed = Counter(
            p + "transactions_failed", "Transactions that failed or aborted", ["stage", "kind"], registry=r
        )
        self.loop_restarts = Counter(p + "loop_restarts", "Loops started again after a failure", ["loop"], registry=r)
        self.records_skipped = Counter(
            p + "records_skipped", "Foreign records a read model could not decode or fold", ["loop", "reason"], registry=r
        )
        self.http_refused = Counter(
            p + "http_refused", "HTTP requests refused by authentication (401) or roles (403)", ["reason"], registry=r
        )
        self.service = service

    def type_label(self, name: str) -> str:
        """`name` if it is a message type this service knows, else "other"."""
        return name if name in self.types else OTHER

    def gauge(self, name: str, doc: str, labels: list[str]) -> Gauge:
        """A business gauge of this service (e.g. skus below their low-stock threshold)."""
        return BusinessGauge(f"flexchain_{self.service}_{name}", doc, labels, registry=self.registry)
