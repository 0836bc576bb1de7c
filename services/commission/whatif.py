"""What a changed commission plan would have paid (R-X-4's sandbox), pure.

Given the partitions' states — live, or folded as of a past business time — and another plan,
every order paid from `paid_from` on is split again with the service's own recompute rule
(`sales.resplit`, the one a late plan change uses, R-COM-5): the chain as recorded, levels added
or dropped following the tree, the plan's level rates and grade premiums, the sku's own level-1 rate
in force when the order was paid, and what each level would keep on the line's *net* paid amount
after its refunds (`round_half_up(rate × net)`, R-COM-3). Nothing is decided or emitted: the answer
is the difference per distributor and per order. Bonuses (R-COM-4) are not plan-split commission and
are left out; orders paid before `paid_from` keep what they have.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from services.commission.messages import CommissionPlan, PlanVersion
from services.commission.model import CommissionState, Network
from services.commission.sales import resplit


@dataclass
class Outcome:
    """Commission kept on orders (bonuses aside): as it is, and as the other plan would have it."""

    kept: int = 0
    would_keep: int = 0

    @property
    def delta(self) -> int:
        return self.would_keep - self.kept


@dataclass
class WhatIf:
    distributors: dict[str, Outcome] = field(default_factory=dict)
    orders: dict[str, int] = field(default_factory=dict)  # order → change of its commission (non-zero only)
    orders_replayed: int = 0

    def total(self) -> Outcome:
        return Outcome(sum(o.kept for o in self.distributors.values()), sum(o.would_keep for o in self.distributors.values()))


def _with_plan(net: Network, plan: CommissionPlan) -> Network:
    """The partition's network with `plan` as the only plan ever in force (a copy: nothing shared changes)."""
    seq = net.seq + 1
    return Network(seq, net.distributors, net.children, [PlanVersion(effective_from=0, seq=seq, plan=plan)], net.sku_rates)


def replay_plan(states: Iterable[CommissionState], plan: CommissionPlan, paid_from: int = 0) -> WhatIf:
    out = WhatIf()

    def of(who: str) -> Outcome:
        return out.distributors.setdefault(who, Outcome())

    for state in states:
        net = _with_plan(state.network, plan)
        for order in state.orders.values():
            kept = {(line.sku, s.level): (s.distributor_id, s.net) for line in order.lines for s in line.shares}
            for who, amount in kept.values():
                of(who).kept += amount
                of(who).would_keep += amount
            if order.paid_at < paid_from:
                continue
            out.orders_replayed += 1
            changed = resplit(state, net, order, 0)
            if changed is None:
                continue
            for a in changed.adjustments:
                of(a.distributor_id).would_keep += a.delta
            delta = sum(a.delta for a in changed.adjustments)
            if delta:
                out.orders[order.order_id] = delta
    return out
