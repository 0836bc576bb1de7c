"""Commission's read side without Kafka: the queries and the business gauges of `views.py` read any
`state_for`/`all` source — here the in-memory harness's partitions."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from flexchain.metrics import ServiceMetrics
from flexchain.testing import Harness
from services.commission import views
from services.commission.state import CommissionState, Totals
from tests.unit.commission.builders import COMMISSION, T0, reg


class HarnessView:
    """The harness's partitions as the API reads them (`state_for`, `all`)."""

    def __init__(self, h: Harness[CommissionState]) -> None:
        self.h = h

    def state_for(self, key: str) -> Any:
        return self.h.state_of(key)

    def all(self) -> list[Any]:
        return [p.state for p in self.h.parts]


def network_of(*sent: Any) -> Harness[CommissionState]:
    h = Harness(COMMISSION, 3)
    for cmd in sent:
        h.send(cmd, T0)
    h.run()
    return h


def test_a_distributors_totals_are_summed_over_every_partition() -> None:
    h = network_of(reg("a"), reg("b", "a"))
    h.parts[0].state.totals["a"] = Totals(accrued=700, bonuses=200, pending=300, payable=400)
    h.parts[2].state.totals["a"] = Totals(accrued=100, clawed=50, paid=50)
    h.parts[1].state.totals["b"] = Totals(accrued=999, payable=999)
    src = HarnessView(h)
    assert views.totals(src, "a") == Totals(accrued=800, bonuses=200, clawed=50, pending=300, payable=400, paid=50)
    assert views.totals(src, "nobody") == Totals()
    seen = views.distributor_view(src, "a")
    assert seen is not None and seen["downline_size"] == 1 and seen["chain"] == ["a"]
    assert seen["balances"] == {
        "commission": 600,
        "bonuses": 200,
        "earned": 800,
        "clawed_back": 50,
        "pending": 300,
        "payable": 400,
        "paid": 50,
    }
    assert views.distributor_view(src, "nobody") is None
    assert views.downline_view(src, "a") == {
        "distributor_id": "a",
        "size": 1,
        "downline": [{"distributor_id": "b", "level": 1, "grade": "standard", "downline": []}],
    }
    assert views.order_commission(src, "no-such-order") is None and views.batch_view(src, "no-such-batch") is None


def test_the_business_gauges_are_computed_at_most_once_a_second() -> None:
    h = network_of(reg("a"), reg("b", "a"))
    h.parts[0].state.totals["a"] = Totals(accrued=500, pending=100, payable=-300)
    h.parts[1].state.totals["b"] = Totals(accrued=500, payable=200, paid=300)
    clock = [100.0]
    figures = views.Figures(HarnessView(h), now=lambda: T0, clock=lambda: clock[0])
    metrics = ServiceMetrics("commission", registry=CollectorRegistry())
    figures.register(metrics)

    def gauge(name: str) -> float | None:
        value: float | None = metrics.registry.get_sample_value(f"flexchain_commission_{name}")
        return value

    assert {name: gauge(name) for name, _ in views.GAUGES} == {
        "distributors": 2,
        "parked_orders": 0,
        "pending_cents": 100,
        "payable_cents": -100,
        "paid_cents": 300,
        "negative_balances": 1,
        "payout_overdue_seconds": 0,
    }
    h.parts[1].state.totals["b"].paid += 700
    clock[0] += 0.5
    assert gauge("paid_cents") == 300  # the figures of half a second ago
    clock[0] += 0.5
    assert gauge("paid_cents") == 1000
