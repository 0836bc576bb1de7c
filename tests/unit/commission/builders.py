"""Commission's sugar on top of flexchain.testing: the service as `main` builds it, the start of business
time, a registration in one call, and a distributor's totals summed over the harness's partitions."""

from __future__ import annotations

from flexchain.testing import Harness
from services.commission.app import service
from services.commission.messages import NETWORK, RegisterDistributor
from services.commission.state import CommissionState, Totals

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
COMMISSION = service()


def reg(d: str, upline: str | None = None, **kw: object) -> RegisterDistributor:
    return RegisterDistributor(network_id=NETWORK, distributor_id=d, upline_id=upline, **kw)  # type: ignore[arg-type]


def totals(h: Harness[CommissionState], who: str) -> Totals:
    t = Totals()
    for p in h.parts:
        x = p.state.totals.get(who)
        if x is not None:
            for f in ("accrued", "bonuses", "clawed", "pending", "payable", "paid"):
                setattr(t, f, getattr(t, f) + getattr(x, f))
    return t
