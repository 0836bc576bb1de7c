"""Reading a service's `/metrics` (the Prometheus text format) from a tool: the simulator, the benchmarks.

The text is parsed by prometheus_client's own parser, never by splitting lines, so escaped label
values, `NaN`, histograms and `_created` samples come out as Prometheus reads them.
"""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def samples(text: str) -> list[Sample]:
    """Every sample of an exposition (`name` as written, e.g. `flexchain_order_events_out_total`,
    `flexchain_order_processing_latency_seconds_count`; `labels` a dict)."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def metric_sum(scraped: list[Sample], name: str, default: float = 0.0, **labels: str) -> float:
    """The sum of the samples called `name` whose labels match `labels` (each value a regular
    expression the whole label value must match; a label not named may hold anything); `default`
    when no sample matches."""
    patterns = {k: re.compile(v) for k, v in labels.items()}
    values = [s.value for s in scraped if s.name == name and all(rx.fullmatch(s.labels.get(k, "")) for k, rx in patterns.items())]
    return sum(values) if values else default
