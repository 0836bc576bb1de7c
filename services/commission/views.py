"""Commission's read-model queries (pure): a distributor's totals, an order's commission chain, a
downline tree — what the read routes of `api.py` answer, built from the partitions' state; the
answer models are in `answers.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flexchain.messages import Enveloped
from services.commission.model import Network, OrderCommission, Totals


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
