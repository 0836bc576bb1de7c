"""Gift performance per rule (R-ORD-6), folded from `order.events` of every partition (read model).

Per rule, over the orders that shipped with its gift:

* acceptance = 1 − gift units taken back ÷ gift units shipped (a gift the member kept counts as
  accepted: the service cannot see whether it was used);
* conversion = recipients who later paid for an order holding the rule's `converts_to` product
  (the full-size product of the gift; the main product by default) ÷ recipients;
* re-buy = recipients who paid for another order later ÷ recipients;
* LTV uplift (cents per member) = mean net spend of a recipient on orders paid after the first gifted
  order − mean net spend of a member without this gift on orders paid after that member's first order
  (net = paid − refunded);
* ROI = LTV uplift × recipients ÷ total gift cost — DOMAIN's "uplift × share of members affected ÷
  gift cost", with the share taken of the member base (share × members = recipients) so the ratio
  has no unit. ≥ 1.5 healthy, < 1.2 → `GiftRuleReviewSuggested` (decided by the rule's aggregate).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from flexchain.messages import Message
from services.order.messages import (
    GiftPerformance,
    GiftRule,
    GiftRuleChanged,
    GiftRuleRecovered,
    GiftRuleReviewSuggested,
    OrderCancelled,
    OrderPaid,
    OrderRefunded,
    OrderShipped,
)

FOLDED = (
    "OrderPaid",
    "OrderShipped",
    "OrderRefunded",
    "OrderCancelled",
    "GiftRuleChanged",
    "GiftRuleReviewSuggested",
    "GiftRuleRecovered",
)


@dataclass
class PaidOrder:
    member_id: str
    paid_at: int
    net: int
    skus: frozenset[str]


@dataclass
class RuleFigures:
    """Partitions are folded in no particular order relative to each other: a rule's shipments may
    be folded before the rule itself (`rule` None until then)."""

    rule: GiftRule | None = None
    units_given: int = 0
    units_back: int = 0
    orders: int = 0
    cost: int = 0
    first_gift: dict[str, int] = field(default_factory=dict)  # member → paid_at of the first gifted order
    review_open: bool = False


def _ratio(n: int | Decimal, d: int) -> Decimal:
    return (Decimal(n) / d).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP) if d else Decimal(0)


@dataclass
class GiftStats:
    orders: dict[str, PaidOrder] = field(default_factory=dict)
    by_member: dict[str, list[str]] = field(default_factory=dict)
    rules: dict[str, RuleFigures] = field(default_factory=dict)
    shipped_gifts: dict[str, dict[str, int]] = field(default_factory=dict)  # order → rule → units shipped

    def fold(self, m: Message) -> None:
        if isinstance(m, GiftRuleChanged):
            self._figures(m.rule_id).rule = m.rule
        elif isinstance(m, (GiftRuleReviewSuggested, GiftRuleRecovered)):
            self._figures(m.rule_id).review_open = isinstance(m, GiftRuleReviewSuggested)
        elif isinstance(m, OrderPaid):
            self.orders[m.order_id] = PaidOrder(m.member_id, m.paid_at, m.amount, frozenset(line.sku for line in m.lines))
            self.by_member.setdefault(m.member_id, []).append(m.order_id)
        elif isinstance(m, OrderShipped):
            paid = self.orders.get(m.order_id)
            for g in m.gifts:
                figures = self._figures(g.rule_id)
                if paid is None:
                    continue
                figures.units_given += g.qty
                figures.orders += 1
                figures.cost += g.qty * g.unit_cost
                first = figures.first_gift.get(paid.member_id)
                if first is None or paid.paid_at < first:
                    figures.first_gift[paid.member_id] = paid.paid_at
                self.shipped_gifts.setdefault(m.order_id, {})[g.rule_id] = g.qty
        elif isinstance(m, OrderRefunded):
            if m.order_id in self.orders:
                self.orders[m.order_id].net -= m.amount
            shipped = self.shipped_gifts.get(m.order_id, {})
            for back in m.gifts:
                if back.rule_id in shipped:
                    self._figures(back.rule_id).units_back += back.qty
        elif isinstance(m, OrderCancelled) and m.order_id in self.orders:
            self.orders[m.order_id].net -= m.refund_amount

    def _figures(self, rule_id: str) -> RuleFigures:
        figures = self.rules.get(rule_id)
        if figures is None:
            figures = self.rules[rule_id] = RuleFigures()
        return figures

    def known(self) -> list[str]:
        """Rule ids whose rule record has been folded."""
        return sorted(rule_id for rule_id, f in self.rules.items() if f.rule is not None)

    def _spend_after(self, member: str, since: int, strictly: bool) -> tuple[int, int, frozenset[str]]:
        """(net spend, orders, skus) of a member's orders paid after `since`."""
        spend = n = 0
        skus: set[str] = set()
        for oid in self.by_member.get(member, []):
            o = self.orders[oid]
            if o.paid_at > since or (not strictly and o.paid_at == since):
                spend += o.net
                n += 1
                skus |= o.skus
        return spend, n, frozenset(skus)

    def performance(self, rule_id: str) -> GiftPerformance:
        f = self.rules[rule_id]
        recipients = f.first_gift
        converted = rebuy = spend_r = 0
        for member, since in recipients.items():
            spend, n, skus = self._spend_after(member, since, strictly=True)
            spend_r += spend
            rebuy += n > 0
            converted += f.rule is not None and f.rule.converts_to in skus
        spend_o = others = 0
        for member, oids in self.by_member.items():
            if member in recipients:
                continue
            first = min(self.orders[o].paid_at for o in oids)
            spend, _, _ = self._spend_after(member, first, strictly=True)
            spend_o += spend
            others += 1
        mean_r = Decimal(spend_r) / len(recipients) if recipients else Decimal(0)
        mean_o = Decimal(spend_o) / others if others else Decimal(0)
        uplift = (mean_r - mean_o).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        roi = _ratio(uplift * len(recipients), f.cost) if f.cost else None
        return GiftPerformance(
            gifts_given=f.units_given,
            gifts_taken_back=f.units_back,
            recipients=len(recipients),
            acceptance=str(1 - _ratio(f.units_back, f.units_given)) if f.units_given else "",
            conversion=str(_ratio(converted, len(recipients))),
            rebuy=str(_ratio(rebuy, len(recipients))),
            ltv_uplift=int(uplift),
            gift_cost=f.cost,
            roi="" if roi is None else str(roi),
        )


class GiftCollector(Collector):
    """R-ORD-6 gauges per rule, computed from the read model at scrape time."""

    def __init__(self, stats: Callable[[], GiftStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        p = "flexchain_order_gift_"
        doc = {
            "acceptance_ratio": "Gift units kept ÷ gift units shipped, per rule (R-ORD-6)",
            "conversion_ratio": "Recipients who later bought the gift's full-size product ÷ recipients (R-ORD-6)",
            "rebuy_ratio": "Recipients who paid for another order later ÷ recipients (R-ORD-6)",
            "roi": "LTV uplift × recipients ÷ gift cost; < 1.2 suggests a review (R-ORD-6)",
            "cost_cents": "Cost of the gifts shipped, per rule",
            "recipients": "Members who received the rule's gift",
            "review_suggested": "1 while a review of the rule is suggested and it has not become healthy",
        }
        families = {k: GaugeMetricFamily(p + k, v, labels=["rule"]) for k, v in doc.items()}
        stats = self.stats()
        for rule_id in stats.known():
            perf = stats.performance(rule_id)
            values: dict[str, float] = {
                "conversion_ratio": float(perf.conversion),
                "rebuy_ratio": float(perf.rebuy),
                "cost_cents": perf.gift_cost,
                "recipients": perf.recipients,
                "review_suggested": float(stats.rules[rule_id].review_open),
            }
            if perf.acceptance:
                values["acceptance_ratio"] = float(perf.acceptance)
            if perf.roi:
                values["roi"] = float(perf.roi)
            for k, v in values.items():
                families[k].add_metric([rule_id], v)
        yield from families.values()

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return iter(())
