"""Gifts on the order decider: R-ORD-3 (tiers), R-ORD-4 (cost cap), R-ORD-5 (fallback, never fail the
order), R-ORD-2a (a main line's refund takes its gifts back) and the R-ORD-6 review suggestion.

One `OrderBook` plays one partition: a rule is defined (its aggregate) and replicated to it, as the
order router does for every partition.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from flexchain.messages import Message
from flexchain.testing import Scenario
from services.order.app import service
from services.order.domain import OrderBook, OrderConfig
from services.order.messages import (
    AnnounceSurpriseWindow,
    CancelOrder,
    ConfirmDelivery,
    DefineGiftRule,
    GiftLine,
    GiftOmitted,
    GiftPerformance,
    GiftRuleChanged,
    GiftRuleCommandRejected,
    GiftRuleRecovered,
    GiftRuleReplicated,
    GiftRuleReviewSuggested,
    GiftRuleSkipped,
    GiftSubstituted,
    GrantInteractionGift,
    OrderCancelled,
    OrderConfirmed,
    OrderLine,
    OrderPlaced,
    OrderRefunded,
    OrderRejected,
    OrderShipped,
    PayOrder,
    PlaceOrder,
    RecordLineReservation,
    RecordMemberDiscount,
    RefundedGift,
    RefundLine,
    RefundOrder,
    ReplicateGiftRule,
    ReviewGiftRule,
    ShipOrder,
)

T0 = 1_767_225_600_000
MASK, EYE, CLOTH, PEN = "mask-01", "eye-trial", "cloth-01", "pen-01"
# a face mask sold at 100.00 CNY that costs 40.00: margin 60.00 per unit, cap 15 % = 9.00 per unit
MASK_PRICE, MASK_COST = 10_000, 4_000
ORDER = service()


def rule(rule_id: str = "r-eye", tier: str = "base", gift_cost: int = 800, **kw: object) -> DefineGiftRule:
    args: dict[str, object] = dict(
        rule_id=rule_id, tier=tier, main_sku=MASK, main_unit_cost=MASK_COST, gift_sku=EYE, gift_unit_cost=gift_cost
    )
    args.update(kw)
    return DefineGiftRule(**args)  # type: ignore[arg-type]


def with_rule(sc: Scenario[OrderBook], cmd: Message) -> list[Message]:
    """Decide the rule change on its aggregate, then replicate it like the router does."""
    changed = sc.when(cmd).accepted().events
    assert isinstance(changed[0], GiftRuleChanged)
    return sc.when(ReplicateGiftRule(rule=changed[0].rule)).accepted().events


def place(
    sc: Scenario[OrderBook], oid: str = "o1", qty: int = 1, channel: str = "live", member: str = "m1", at: int = T0
) -> list[Message]:
    return (
        sc.when(
            PlaceOrder(
                order_id=oid, member_id=member, channel=channel, lines=[OrderLine(sku=MASK, qty=qty, unit_price=MASK_PRICE)]
            ),
            at,
        )
        .accepted()
        .events
    )


def answer(sc: Scenario[OrderBook], sku: str, ok: bool = True, oid: str = "o1") -> list[Message]:
    return (
        sc.when(RecordLineReservation(order_id=oid, sku=sku, reserved=ok, reason="" if ok else "only 0 available"))
        .accepted()
        .events
    )


def confirmed_with_gift(sc: Scenario[OrderBook], oid: str = "o1", qty: int = 1) -> None:
    place(sc, oid, qty)
    answer(sc, MASK, oid=oid)
    out = answer(sc, EYE, oid=oid)
    assert isinstance(out[-1], OrderConfirmed)


# --- R-ORD-3: who gets a gift ---------------------------------------------------------------------


def test_base_gift_is_attached_to_a_live_order_of_the_main_sku() -> None:
    sc = Scenario(ORDER, at=T0)
    with_rule(sc, rule())
    placed = place(sc)[0]
    assert isinstance(placed, OrderPlaced)
    assert placed.gifts == [
        GiftLine(
            rule_id="r-eye",
            sku=EYE,
            qty=1,
            unit_cost=800,
            main_sku=MASK,
            tier="base",
            consumable=False,
            fallback_sku=None,
            fallback_unit_cost=0,
            main_unit_cost=MASK_COST,
        )
    ]


def test_no_gift_outside_the_rule_channels_without_the_main_sku_or_for_a_campaign_order() -> None:
    sc = Scenario(ORDER, at=T0)
    with_rule(sc, rule())
    assert place(sc, "o-article", channel="article")[0].gifts == []  # type: ignore[attr-defined]
    other = (
        sc.when(PlaceOrder(order_id="o-pen", member_id="m1", channel="live", lines=[OrderLine(sku=PEN, qty=1, unit_price=500)]))
        .accepted()
        .events
    )
    assert other[0].gifts == []  # type: ignore[attr-defined]
    campaign = (
        sc.when(
            PlaceOrder(
                order_id="o-pre",
                member_id="m1",
                channel="live",
                lines=[OrderLine(sku=MASK, qty=1, unit_price=MASK_PRICE)],
                campaign_id="c1",
            )
        )
        .accepted()
        .events
    )
    assert campaign[0].gifts == [] and len(campaign) == 1  # type: ignore[attr-defined]


def test_an_interaction_gift_goes_only_to_granted_members() -> None:
    sc = Scenario(ORDER, at=T0)
    with_rule(sc, rule("r-q", tier="interaction"))
    assert place(sc, "o1", member="m1")[0].gifts == []  # type: ignore[attr-defined]
    with_rule(sc, GrantInteractionGift(rule_id="r-q", member_id="m2"))
    assert [g.rule_id for g in place(sc, "o2", member="m2")[0].gifts] == ["r-q"]  # type: ignore[attr-defined]
    assert place(sc, "o3", member="m1")[0].gifts == []  # type: ignore[attr-defined]


def test_a_surprise_window_announced_afterwards_attaches_the_gift_to_open_orders_placed_in_it() -> None:
    sc = Scenario(ORDER, at=T0)
    with_rule(sc, rule("r-s", tier="surprise"))
    place(sc, "o-in", at=T0 + 10)
    place(sc, "o-shipped", at=T0 + 20)
    place(sc, "o-late", at=T0 + 1_000)
    for oid in ("o-in", "o-shipped", "o-late"):
        answer(sc, MASK, oid=oid)
    sc.when(PayOrder(order_id="o-shipped", amount=MASK_PRICE, payment_ref="p")).accepted()
    sc.when(ShipOrder(order_id="o-shipped", tracking="t")).accepted()
    out = with_rule(sc, AnnounceSurpriseWindow(rule_id="r-s", starts_at=T0, ends_at=T0 + 500))
    assert isinstance(out[0], GiftRuleReplicated)
    assert [(type(e).__name__, e.key) for e in out[1:]] == [("GiftAttached", "o-in")]
    assert sc.when(ReplicateGiftRule(rule=out[0].rule)).accepted().events == []  # a re-delivered copy changes nothing
    # the confirmed order ships with the surprise gift once the warehouse holds it
    answer(sc, EYE, oid="o-in")
    sc.when(PayOrder(order_id="o-in", amount=MASK_PRICE, payment_ref="p")).accepted()
    shipped = sc.when(ShipOrder(order_id="o-in", tracking="t")).accepted().events
    assert isinstance(shipped[0], OrderShipped) and shipped[0].skus == [MASK, EYE]


# --- R-ORD-4: the cost cap ------------------------------------------------------------------------


def test_a_gift_over_15_percent_of_the_margin_is_skipped_and_the_skip_recorded() -> None:
    sc = Scenario(ORDER, at=T0)
    with_rule(sc, rule(gift_cost=901))  # cap: 15 % × 60.00 = 9.00
    out = place(sc)
    assert out[0].gifts == []  # type: ignore[attr-defined]
    assert isinstance(out[1], GiftRuleSkipped) and "over 15%" in out[1].reason
    assert out[1] in sc.state.orders["o1"].history


def test_a_gift_exactly_at_the_cap_is_attached() -> None:
    sc = Scenario(ORDER, at=T0)
    with_rule(sc, rule(gift_cost=900))
    assert len(place(sc)[0].gifts) == 1  # type: ignore[attr-defined]


def test_the_cap_is_checked_again_on_the_discounted_price_at_confirmation() -> None:
    sc = Scenario(service(OrderConfig(member_discounts=True)), at=T0)
    with_rule(sc, rule(gift_cost=900))  # fits at 100.00; at 0.9 the margin is 50.00, cap 7.50
    place(sc)
    answer(sc, MASK)
    answer(sc, EYE)
    out = sc.when(RecordMemberDiscount(order_id="o1", tier="silver", discount_rate=Decimal("0.9"))).accepted().events
    assert isinstance(out[-2], GiftRuleSkipped) and "at the final price" in out[-2].reason
    assert isinstance(out[-1], OrderConfirmed)
    sc.when(PayOrder(order_id="o1", amount=9_000, payment_ref="p")).accepted()
    shipped = sc.when(ShipOrder(order_id="o1", tracking="t")).accepted().events[0]
    assert shipped.skus == [MASK]  # type: ignore[attr-defined]  # the skipped gift's hold is not shipped


# --- R-ORD-5: out of stock → fallback → omitted; the order never fails ----------------------------


def test_an_out_of_stock_gift_is_replaced_by_the_fallback() -> None:
    sc = Scenario(ORDER, at=T0)
    with_rule(sc, rule(fallback_sku=CLOTH, fallback_unit_cost=300))
    place(sc)
    answer(sc, MASK)
    sub = answer(sc, EYE, ok=False)
    assert sub == [
        GiftSubstituted(
            order_id="o1",
            rule_id="r-eye",
            from_sku=EYE,
            to_sku=CLOTH,
            qty=1,
            unit_cost=300,
            reason="gift eye-trial out of stock (only 0 available)",
        )
    ]
    assert isinstance(answer(sc, CLOTH)[-1], OrderConfirmed)
    assert sc.state.orders["o1"].gifts["r-eye"].sku == CLOTH


def test_no_gift_in_stock_at_all_still_confirms_the_order() -> None:
    sc = Scenario(ORDER, at=T0)
    with_rule(sc, rule(fallback_sku=CLOTH, fallback_unit_cost=300))
    place(sc)
    answer(sc, EYE, ok=False)
    out = answer(sc, CLOTH, ok=False)
    assert isinstance(out[0], GiftOmitted)
    assert sc.state.orders["o1"].status == "placed"  # still waiting for the main line only
    assert isinstance(answer(sc, MASK)[-1], OrderConfirmed)


def test_an_order_rejected_for_its_main_line_gives_the_gift_hold_back() -> None:
    sc = Scenario(ORDER, at=T0)
    with_rule(sc, rule())
    place(sc)
    answer(sc, EYE)
    out = answer(sc, MASK, ok=False)
    assert isinstance(out[-1], OrderRejected) and out[-1].release_skus == [EYE]
    assert sc.state.orders["o1"].gifts["r-eye"].status == "released"


def test_a_cancel_releases_the_gift_and_a_late_gift_answer_gives_its_hold_back() -> None:
    sc = Scenario(ORDER, at=T0)
    with_rule(sc, rule())
    place(sc)
    answer(sc, MASK)
    answer(sc, EYE)
    out = sc.when(CancelOrder(order_id="o1", reason="changed my mind")).accepted().events
    assert isinstance(out[0], OrderCancelled) and out[0].release_skus == [MASK, EYE]
    # a surprise gift answered after the order shipped is omitted (inventory releases its hold)
    sc2 = Scenario(ORDER, at=T0)
    with_rule(sc2, rule("r-s", tier="surprise"))
    place(sc2)
    answer(sc2, MASK)
    with_rule(sc2, AnnounceSurpriseWindow(rule_id="r-s", starts_at=T0, ends_at=T0 + 1))
    sc2.when(PayOrder(order_id="o1", amount=MASK_PRICE, payment_ref="p")).accepted()
    assert sc2.when(ShipOrder(order_id="o1", tracking="t")).accepted().events[0].skus == [MASK]  # type: ignore[attr-defined]
    late = answer(sc2, EYE)
    assert isinstance(late[0], GiftOmitted) and late[0].sku == EYE


# --- R-ORD-2a: a main line's refund takes its gifts back ------------------------------------------


def _paid(sc: Scenario[OrderBook], qty: int, shipped: bool) -> None:
    confirmed_with_gift(sc, qty=qty)
    sc.when(PayOrder(order_id="o1", amount=qty * MASK_PRICE, payment_ref="p")).accepted()
    if shipped:
        sc.when(ShipOrder(order_id="o1", tracking="t")).accepted()
        sc.when(ConfirmDelivery(order_id="o1")).accepted()


def test_refunds_take_gifts_back_in_proportion_and_all_of_them_with_the_last_unit() -> None:
    sc = Scenario(ORDER, at=T0)
    with_rule(sc, rule(gift_qty=2))
    _paid(sc, qty=4, shipped=True)
    first = (
        sc.when(RefundOrder(order_id="o1", refund_id="r1", lines=[RefundLine(sku=MASK, qty=1, reason="no_reason")]))
        .accepted()
        .events[0]
    )
    assert isinstance(first, OrderRefunded) and first.gifts == []  # 2 × 1/4 rounds down to 0
    second = (
        sc.when(RefundOrder(order_id="o1", refund_id="r2", lines=[RefundLine(sku=MASK, qty=1, reason="late")]))
        .accepted()
        .events[0]
    )
    assert second.gifts == [RefundedGift(rule_id="r-eye", sku=EYE, qty=1, goods_returned=True, written_off=False, reason="late")]  # type: ignore[attr-defined]
    last = (
        sc.when(RefundOrder(order_id="o1", refund_id="r3", lines=[RefundLine(sku=MASK, qty=2, reason="defect")]))
        .accepted()
        .events[0]
    )
    assert last.gifts == [RefundedGift(rule_id="r-eye", sku=EYE, qty=1, goods_returned=True, written_off=False, reason="defect")]  # type: ignore[attr-defined]
    assert sc.state.orders["o1"].gifts["r-eye"].taken_back == 2


def test_a_consumable_gift_is_written_off_and_an_unshipped_gift_released() -> None:
    sc = Scenario(ORDER, at=T0)
    with_rule(sc, rule(consumable=True))
    _paid(sc, qty=1, shipped=True)
    out = (
        sc.when(RefundOrder(order_id="o1", refund_id="r1", lines=[RefundLine(sku=MASK, qty=1, reason="defect")]))
        .accepted()
        .events[0]
    )
    assert out.gifts == [RefundedGift(rule_id="r-eye", sku=EYE, qty=1, goods_returned=False, written_off=True, reason="defect")]  # type: ignore[attr-defined]
    sc2 = Scenario(ORDER, at=T0)
    with_rule(sc2, rule(consumable=True))
    _paid(sc2, qty=1, shipped=False)
    out2 = (
        sc2.when(RefundOrder(order_id="o1", refund_id="r1", lines=[RefundLine(sku=MASK, qty=1, reason="no_reason")]))
        .accepted()
        .events[0]
    )
    assert out2.gifts == [
        RefundedGift(rule_id="r-eye", sku=EYE, qty=1, goods_returned=False, written_off=False, reason="no_reason")
    ]  # type: ignore[attr-defined]


# --- rules and R-ORD-6 ----------------------------------------------------------------------------


def test_bad_rules_are_refused_with_the_reason_and_change_nothing() -> None:
    sc = Scenario(ORDER, at=T0)
    for cmd, why in [
        (rule(tier="vip"), "tier must be one of"),
        (rule(gift_sku=MASK), "another sku"),
        (rule(fallback_sku=EYE), "fallback gift must differ"),
        (rule(gift_qty=0), "gift_qty"),
        (rule(channels=["tv"]), "channels"),
        (GrantInteractionGift(rule_id="nope", member_id="m1"), "unknown gift rule"),
    ]:
        sc.when(cmd).refused(why)  # one refusal, folded, and the state as before
        assert isinstance(sc.events[0], GiftRuleCommandRejected), (cmd, sc.events)
    sc.when(rule()).accepted()
    out = sc.decide(GrantInteractionGift(rule_id="r-eye", member_id="m1"))
    assert isinstance(out[0], GiftRuleCommandRejected) and "base rule" in out[0].reason


def _perf(roi: str, given: int = 20) -> GiftPerformance:
    return GiftPerformance(
        gifts_given=given,
        gifts_taken_back=0,
        recipients=given,
        acceptance="1",
        conversion="0",
        rebuy="0",
        ltv_uplift=0,
        gift_cost=1000,
        roi=roi,
    )


def test_a_review_is_suggested_once_below_1_2_and_again_only_after_healthy() -> None:
    sc = Scenario(ORDER, at=T0)
    sc.when(rule()).accepted()
    assert (
        sc.when(ReviewGiftRule(rule_id="r-eye", performance=_perf("1.19", given=9))).accepted().events == []
    )  # too few gifts to judge
    first = sc.when(ReviewGiftRule(rule_id="r-eye", performance=_perf("1.19"))).accepted().events
    assert [type(e) for e in first] == [GiftRuleReviewSuggested]
    assert sc.when(ReviewGiftRule(rule_id="r-eye", performance=_perf("0.5"))).accepted().events == []  # same episode
    assert sc.when(ReviewGiftRule(rule_id="r-eye", performance=_perf("1.4"))).accepted().events == []  # not healthy yet
    assert [type(e) for e in sc.when(ReviewGiftRule(rule_id="r-eye", performance=_perf("1.5"))).accepted().events] == [
        GiftRuleRecovered
    ]
    assert [type(e) for e in sc.when(ReviewGiftRule(rule_id="r-eye", performance=_perf("1.0"))).accepted().events] == [
        GiftRuleReviewSuggested
    ]


# --- properties -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    price=st.integers(0, 20_000),
    main_cost=st.integers(0, 20_000),
    qty=st.integers(1, 5),
    gift_cost=st.integers(0, 3_000),
    fallback_cost=st.integers(0, 3_000),
    gift_qty=st.integers(1, 3),
    rate=st.sampled_from(["1.0", "0.9", "0.8", "0.7"]),
    stock=st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_gift_cost_never_exceeds_the_cap_and_a_gift_never_fails_an_order(
    price: int, main_cost: int, qty: int, gift_cost: int, fallback_cost: int, gift_qty: int, rate: str, stock: list[bool]
) -> None:
    """R-ORD-4 + R-ORD-5: whatever the prices, costs, discount and gift stock, a confirmed order
    holds only gifts within 15 % of its final margin, and it is confirmed whenever its main line is."""
    sc = Scenario(service(OrderConfig(member_discounts=True)), at=T0)
    main_ok, gift_ok, fallback_ok = stock
    costs = dict(gift_cost=gift_cost, fallback_unit_cost=fallback_cost, main_unit_cost=main_cost)
    cmd = rule(gift_qty=gift_qty, fallback_sku=CLOTH, **costs)
    with_rule(sc, cmd)
    sc.when(
        PlaceOrder(order_id="o1", member_id="m1", channel="live", lines=[OrderLine(sku=MASK, qty=qty, unit_price=price)])
    ).accepted()
    sc.when(RecordMemberDiscount(order_id="o1", tier="t", discount_rate=Decimal(rate))).accepted()
    order = sc.state.orders["o1"]
    answer(sc, MASK, main_ok)
    for sku, ok in ((EYE, gift_ok), (CLOTH, fallback_ok)):
        if any(g.status == "pending" and g.sku == sku for g in order.gifts.values()):
            answer(sc, sku, ok)
    assert order.status == ("confirmed" if main_ok else "rejected")
    for g in order.gifts.values():
        assert g.status in ("reserved", "omitted", "skipped", "released")
    if order.status == "confirmed":
        final = order.lines[0]
        kept = [g for g in order.gifts.values() if g.status == "reserved"]
        assert all(g.qty * g.unit_cost * 100 <= 15 * final.qty * (final.unit_price - main_cost) for g in kept)
