"""R-ORD-6 gift performance (the read model): exact figures on a small history, and the same figures
whatever the interleaving of the partitions it is folded from (a restarted service folds them in
no particular order relative to each other)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flexchain.messages import Message
from services.order.giftstats import GiftStats
from services.order.messages import (
    GiftLine,
    GiftPerformance,
    GiftRule,
    GiftRuleChanged,
    OrderLine,
    OrderPaid,
    OrderRefunded,
    OrderShipped,
    RefundedGift,
)

RULE = GiftRule(
    rule_id="r1",
    version=1,
    tier="base",
    main_sku="mask",
    main_unit_cost=4000,
    gift_sku="eye",
    gift_unit_cost=500,
    gift_qty=1,
    fallback_sku=None,
    fallback_unit_cost=0,
    consumable=False,
    converts_to="eye-full",
    channels=["live"],
    members=[],
    window_start=None,
    window_end=None,
    active=True,
)
GIFT = GiftLine(
    rule_id="r1",
    sku="eye",
    qty=1,
    unit_cost=500,
    main_sku="mask",
    tier="base",
    consumable=False,
    fallback_sku=None,
    fallback_unit_cost=0,
    main_unit_cost=4000,
)


def _order(oid: str, member: str, at: int, amount: int, skus: tuple[str, ...] = ("mask",), gift: bool = False) -> list[Message]:
    lines = [OrderLine(sku=s, qty=1, unit_price=amount // len(skus)) for s in skus]
    paid = OrderPaid(
        order_id=oid,
        amount=amount,
        payment_ref="p",
        paid_at=at,
        member_id=member,
        distributor_id=None,
        campaign_id=None,
        lines=lines,
    )
    return [paid, OrderShipped(order_id=oid, tracking="t", skus=list(skus), campaign_id=None, gifts=[GIFT] if gift else [])]


def _partitions() -> list[list[Message]]:
    """Partition 0 holds the rule; the orders are spread over three more partitions."""
    return [
        [GiftRuleChanged(rule_id="r1", change="defined", rule=RULE)],
        # recipient a: gifted at t=10, later 2 orders (one with the full-size product), one refunded by 1000
        [*_order("a1", "a", 10, 10_000, gift=True), *_order("a2", "a", 20, 6_000, ("eye-full",))],
        [
            *_order("a3", "a", 30, 4_000),
            OrderRefunded(
                order_id="a3",
                refund_id="r",
                lines=[],
                amount=1_000,
                fully_refunded=False,
                member_id="a",
                distributor_id=None,
                campaign_id=None,
            ),
        ],
        # recipient b: gifted, never back, gift returned; non-recipients c (one later order of 2000) and d (none)
        [
            *_order("b1", "b", 11, 10_000, gift=True),
            OrderRefunded(
                order_id="b1",
                refund_id="r",
                lines=[],
                amount=0,
                fully_refunded=False,
                member_id="b",
                distributor_id=None,
                campaign_id=None,
                gifts=[RefundedGift(rule_id="r1", sku="eye", qty=1, goods_returned=True, written_off=False, reason="defect")],
            ),
            *_order("c1", "c", 5, 3_000),
            *_order("c2", "c", 50, 2_000),
            *_order("d1", "d", 7, 1_000),
        ],
    ]


def _fold(order: list[Message]) -> GiftPerformance:
    stats = GiftStats()
    for m in order:
        stats.fold(m)
    return stats.performance("r1")


def test_figures_of_a_small_history_are_exact() -> None:
    perf = _fold([m for p in _partitions() for m in p])
    # recipients a (after t=10: 6000 + 4000 − 1000 = 9000) and b (0): mean 4500;
    # others c (after t=5: 2000) and d (0): mean 1000 → uplift 3500; 2 recipients; cost 2 × 500
    assert perf == GiftPerformance(
        gifts_given=2,
        gifts_taken_back=1,
        recipients=2,
        acceptance="0.5000",
        conversion="0.5000",  # a bought eye-full later
        rebuy="0.5000",
        ltv_uplift=3500,
        gift_cost=1000,
        roi="7.0000",  # 3500 × 2 ÷ 1000
    )


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False))
def test_any_interleaving_of_the_partitions_gives_the_same_figures(rnd: object) -> None:
    import random

    assert isinstance(rnd, random.Random)
    queues = [list(p) for p in _partitions()]
    merged: list[Message] = []
    while any(queues):
        q = rnd.choice([q for q in queues if q])
        merged.append(q.pop(0))
    assert _fold(merged) == _fold([m for p in _partitions() for m in p])
