"""Order's read side: its read model (`OrderView`: the sku catalogue and the gift figures, folded from
other topics) and the pure queries the read routes of `api.py` answer — an order with its history,
a gift rule with its replication, review and performance — built from the folded state; the answer
models are in `answers.py`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from flexchain.messages import Enveloped, to_record
from services.inventory.messages import EVENTS as INVENTORY_EVENTS
from services.inventory.messages import SkuRegistered
from services.order import giftstats
from services.order.messages import GiftPerformance, GiftRule
from services.order.state import Order


@dataclass
class OrderView:
    """The sku catalogue (inventory's SkuRegistered) and the gift figures of every partition (R-ORD-6).

    The orders themselves are the service's own state (`rt.own`), history included."""

    topics: list[str] = field(default_factory=lambda: ["inventory.events", "order.events"])
    types: set[str] = field(default_factory=lambda: {"SkuRegistered", *giftstats.FOLDED})
    messages: tuple[type, ...] = INVENTORY_EVENTS
    skus: set[str] = field(default_factory=set)
    gifts: giftstats.GiftStats = field(default_factory=giftstats.GiftStats)

    def fold(self, item: Enveloped) -> None:
        if isinstance(item.message, SkuRegistered):
            self.skus.add(item.message.sku)
        else:
            self.gifts.fold(item.message)


def order_view(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "status": order.status,
        "member_id": order.member_id,
        "channel": order.channel,
        "distributor_id": order.distributor_id,
        "campaign_id": order.campaign_id,
        "lines": [asdict(line) for line in order.lines],
        "total": order.total,
        "paid": order.paid,
        "refunded_amount": order.refunded_amount,
        "refunded_qty": order.refunded_qty,
        "pay_by": order.pay_by,
        "return_window_ends": order.return_window_ends,
        "reservations": {sku: ("reserved" if ok else "rejected") for sku, ok in order.answers.items()},
        "tier": order.tier,
        "discount_rate": str(order.discount_rate) if order.discount_rate is not None else None,
        "gifts": {
            rule_id: {"sku": g.sku, "qty": g.qty, "unit_cost": g.unit_cost, "status": g.status, "taken_back": g.taken_back}
            for rule_id, g in sorted(order.gifts.items())
        },
        "history": [{"event_type": type(e).__name__, **to_record(e)} for e in order.history],
    }


def rule_view(
    rule: GiftRule, copies: list[GiftRule | None], review_open: bool, figures: GiftPerformance | None
) -> dict[str, Any]:
    """A gift rule as its aggregate holds it, with `copies`: each partition's replica of it."""
    return {
        **asdict(rule),
        # the rule applies to new orders once every partition holds this version of it
        "replicated": all(c is not None and c.version >= rule.version for c in copies),
        "review_suggested": review_open,
        "performance": asdict(figures) if figures else None,
    }
