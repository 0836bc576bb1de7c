"""Commission's read side: what the read routes of `api.py` answer, built from the partitions'
state — the live view (`rt.own`) or the partitions as of a past business time (R-X-4), both read
through `state_for`/`all` (`Partitions`). A distributor's totals summed over every partition, its
account, downline and payouts; the plan, rates and rules; an order's commission chain; payout
batches; and the business gauges (`Figures`, computed at most once a second). The queries are pure;
the answer models are in `answers.py`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, Protocol

from flexchain.messages import Enveloped, to_record
from flexchain.metrics import ServiceMetrics
from services.commission.accounts import batch_progress, payout_overdue
from services.commission.messages import NETWORK, CommissionPlan
from services.commission.model import CommissionState, Network, OrderCommission, Totals, upline_chain
from services.commission.whatif import Outcome, WhatIf


@dataclass
class CommissionView:
    """Commission's queries read its own partitions' state (`rt.own`); nothing from other services."""

    topics: list[str] = field(default_factory=list)

    def fold(self, item: Enveloped) -> None:
        pass


def totals_view(t: Totals) -> dict[str, int]:
    """Commission and bonuses apart; `earned` = commission + bonuses, and
    earned − clawed_back = pending + payable + paid (cents)."""
    return {
        "commission": t.accrued - t.bonuses,
        "bonuses": t.bonuses,
        "earned": t.accrued,
        "clawed_back": t.clawed,
        "pending": t.pending,
        "payable": t.payable,
        "paid": t.paid,
    }


def order_view(order: OrderCommission) -> dict[str, Any]:
    """The chain behind an order's commission: order → lines → levels → distributors → amounts."""
    return {
        "order_id": order.order_id,
        "seller_id": order.seller_id,
        "member_id": order.member_id,
        "paid_at": order.paid_at,
        "status": order.status,
        "network_seq": order.network_seq,
        "payable_at": order.payable_at,
        "due_at": order.due_at,
        "refunds": list(order.refunds),
        "lines": [
            {
                "sku": line.sku,
                "qty": line.qty,
                "paid": line.paid,
                "refunded": line.refunded,
                "net_paid": line.paid - line.refunded,
                "levels": [
                    {
                        "level": s.level,
                        "distributor_id": s.distributor_id,
                        "grade": s.grade,
                        "rate": str(s.rate),
                        "accrued": s.accrued,
                        "clawed_back": s.clawed,
                        "net": s.net,
                        "in_account": s.in_account,
                        "note": s.note,
                    }
                    for s in line.shares
                ],
            }
            for line in order.lines
        ],
        "total": sum(s.net for line in order.lines for s in line.shares),
    }


def downline(net: Network, who: str, level: int = 1) -> list[dict[str, Any]]:
    return [
        {"distributor_id": c, "level": level, "grade": net.distributors[c].grade, "downline": downline(net, c, level + 1)}
        for c in sorted(net.children.get(who, ()))
        if c in net.distributors
    ]


def count(tree: list[dict[str, Any]]) -> int:
    return sum(1 + count(node["downline"]) for node in tree)


class Partitions(Protocol):
    """Every partition's state: the live view (`OwnView`) or a past one (`PastStates`)."""

    def state_for(self, key: str) -> Any: ...

    def all(self) -> list[Any]: ...


def network(src: Partitions) -> CommissionState:
    """The partition that holds the network: the tree, the plan, the rates and rules."""
    state: CommissionState = src.state_for(NETWORK)
    return state


def partitions(src: Partitions) -> list[CommissionState]:
    states: list[CommissionState] = src.all()
    return states


def known(src: Partitions, who: str) -> bool:
    return who in network(src).network.distributors


def totals(src: Partitions, who: str) -> Totals:
    """A distributor's balances over every partition (lines accrue on the seller's partition)."""
    out = Totals()
    for state in partitions(src):
        t = state.totals.get(who)
        if t is not None:
            for f in ("accrued", "bonuses", "clawed", "pending", "payable", "paid"):
                setattr(out, f, getattr(out, f) + getattr(t, f))
    return out


# --- the business gauges --------------------------------------------------------------------------

GAUGES = (
    ("distributors", "Registered distributors"),
    ("parked_orders", "Paid orders waiting for their distributor to be known"),
    ("pending_cents", "Commission accrued, in the return window"),
    ("payable_cents", "Commission payable, not yet paid (negative balances included)"),
    ("paid_cents", "Commission and bonuses paid in batches"),
    ("negative_balances", "Distributors whose clawbacks exceed what they have payable"),
    ("payout_overdue_seconds", "Business time since the cutoff of the oldest payout batch not settled everywhere"),
)


class Figures:
    """The business gauges (`flexchain_commission_<name>`, `GAUGES`), computed in one pass at most
    once a second (scrapes are cheap) from the live view; `now` is the business time."""

    def __init__(self, src: Partitions, now: Callable[[], int], clock: Callable[[], float] = time.monotonic) -> None:
        self.src = src
        self.now = now
        self.clock = clock
        self._at = -1.0
        self._figures: dict[str, float] = {}

    def register(self, metrics: ServiceMetrics) -> None:
        for name, doc in GAUGES:
            metrics.gauge(name, doc, []).set_function(partial(self.figure, name))

    def figure(self, name: str) -> float:
        return self.figures()[name]

    def figures(self) -> dict[str, float]:
        now = self.clock()
        if now - self._at >= 1.0:
            self._figures = self._compute()
            self._at = now
        return self._figures

    def _compute(self) -> dict[str, float]:
        src = self.src
        payable: dict[str, int] = {}
        pending = paid = 0
        for state in partitions(src):
            for who, t in state.totals.items():
                payable[who] = payable.get(who, 0) + t.payable
                pending += t.pending
                paid += t.paid
        return {
            "distributors": len(network(src).network.distributors),
            "parked_orders": sum(len(s.parked) for s in partitions(src)),
            "pending_cents": pending,
            "payable_cents": sum(payable.values()),
            "paid_cents": paid,
            "negative_balances": sum(1 for v in payable.values() if v < 0),
            "payout_overdue_seconds": payout_overdue(partitions(src), self.now(), network(src).network.plan.batch_interval_ms)
            / 1000,
        }


# --- the tree (R-COM-1, R-COM-5a, R-COM-6) ----------------------------------------------------------


def distributor_list(src: Partitions) -> list[dict[str, Any]]:
    net = network(src).network
    return [{**to_record(r), "depth": len(upline_chain(net.distributors, d))} for d, r in sorted(net.distributors.items())]


def distributor_view(src: Partitions, distributor_id: str) -> dict[str, Any] | None:
    """A distributor with its balances over every partition and its account; None if unknown."""
    state = network(src)
    net, auth = state.network, state.authority
    if distributor_id not in net.distributors:
        return None
    home: CommissionState = src.state_for(distributor_id)
    acc = home.accounts.get(distributor_id)
    return {
        **to_record(net.distributors[distributor_id]),
        "chain": upline_chain(net.distributors, distributor_id),
        "downline_size": count(downline(net, distributor_id)),
        "balances": totals_view(totals(src, distributor_id)),
        "account": {
            "unpaid_lines": [to_record(e.line) for e in acc.entries] if acc else [],
            "balance": sum(e.line.amount for e in acc.entries) if acc else 0,
            "batches": list(acc.batches) if acc else [],
        },
        "open_months": dict(home.sales.get(distributor_id, {})),
        "growth_value": home.growth.get(distributor_id, 0) // 100,
        "qualification_warned_for": auth.warned.get(distributor_id),
        "qualification_expired": auth.expired.get(distributor_id),
    }


def downline_view(src: Partitions, distributor_id: str) -> dict[str, Any]:
    tree = downline(network(src).network, distributor_id)
    return {"distributor_id": distributor_id, "size": count(tree), "downline": tree}


def payouts(src: Partitions, distributor_id: str) -> list[dict[str, Any]]:
    """The distributor's payouts, batch by batch, from its own partition."""
    home: CommissionState = src.state_for(distributor_id)
    acc = home.accounts.get(distributor_id)
    batches = acc.batches if acc else []
    return [to_record(p) for b in batches for p in home.batches.get(b, []) if p.distributor_id == distributor_id]


# --- the plan, rates and rules (R-COM-1..5) ---------------------------------------------------------


def plan_view(src: Partitions) -> dict[str, Any]:
    net = network(src).network
    return {"current": to_record(net.current), "history": [to_record(v) for v in net.plans]}


def sku_rates(src: Partitions) -> dict[str, Any]:
    state = network(src)
    net = state.network
    return {
        sku: {
            "rate": _str(net.current_sku_rate(sku)),
            "manual_rate": _str(state.authority.manual.get(sku)),
            "active_rules": list(state.authority.active.get(sku, [])),
            "history": [to_record(v) for v in versions],
        }
        for sku, versions in sorted(net.sku_rates.items())
    }


def rate_rules(src: Partitions) -> dict[str, Any]:
    auth = network(src).authority
    return {
        "rules": [to_record(r) for _, r in sorted(auth.rules.items())],
        "active": {sku: list(ids) for sku, ids in sorted(auth.active.items())},
    }


def replay_view(plan: CommissionPlan, result: WhatIf, paid_from: int, as_of: int | None) -> dict[str, Any]:
    """What another plan would have paid (R-X-4 sandbox): the plan replayed and its outcomes."""

    def outcome(o: Outcome) -> dict[str, int]:
        return {"kept": o.kept, "would_keep": o.would_keep, "delta": o.delta}

    return {
        "as_of": as_of,
        "paid_from": paid_from,
        "plan": {
            "levels": plan.levels,
            "level_rates": [str(r) for r in plan.level_rates],
            "grade_premiums": {g: [str(r) for r in rates] for g, rates in sorted(plan.grade_premiums.items())},
        },
        "orders_replayed": result.orders_replayed,
        "total": outcome(result.total()),
        "distributors": {who: outcome(o) for who, o in sorted(result.distributors.items())},
        "orders": dict(sorted(result.orders.items())),
        "note": "commission on orders only (bonuses are not split by the plan); nothing was published",
    }


# --- an order's chain, payout batches (R-COM-3, R-COM-6) --------------------------------------------


def order_commission(src: Partitions, order_id: str) -> dict[str, Any] | None:
    """The chain behind an order's commission, or the paid order parked for its distributor; None
    if no partition has recorded it."""
    for state in partitions(src):
        order = state.orders.get(order_id)
        if order is not None:
            return order_view(order)
        parked = state.parked.get(order_id)
        if parked is not None:
            return {**to_record(parked), "status": "parked"}
    return None


def settled(states: Iterable[CommissionState], cutoff: int) -> dict[str, Any]:
    done, total = batch_progress(states, cutoff)
    return {"complete": done == total, "partitions_settled": done, "partitions": total}


def batch_list(src: Partitions) -> list[dict[str, Any]]:
    found: dict[str, dict[str, int]] = {}
    for state in partitions(src):
        for bid, paid in state.batches.items():
            agg = found.setdefault(bid, {"distributors": 0, "net": 0, "cutoff": paid[0].cutoff})
            agg["distributors"] += len(paid)
            agg["net"] += sum(p.net for p in paid)
    return [{"batch_id": b, **v, **settled(partitions(src), v["cutoff"])} for b, v in sorted(found.items())]


def batch_view(src: Partitions, batch_id: str) -> dict[str, Any] | None:
    """A payout batch over every partition, with how far it is settled; None if no partition has it."""
    paid = [p for state in partitions(src) for p in state.batches.get(batch_id, [])]
    if not paid:
        return None
    status = settled(partitions(src), paid[0].cutoff)
    paid.sort(key=lambda p: p.distributor_id)
    return {
        "batch_id": batch_id,
        "cutoff": paid[0].cutoff,
        **status,
        "net": sum(p.net for p in paid),
        "lines": sum(len(p.lines) for p in paid),
        "payouts": [to_record(p) for p in paid],
    }


def _str(d: Decimal | None) -> str | None:
    return str(d) if d is not None else None
