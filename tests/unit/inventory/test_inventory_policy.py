"""Inventory's saga policies for gifts (R-ORD-3, R-ORD-5, R-ORD-2a → R-INV-2), presale (R-INV-7) and
the clock (R-X-1), and what the decider does with the commands they route: a gift's hold is released
only by its own rule, a written-off gift is recorded without stock coming back."""

from __future__ import annotations

import pytest

from flexchain.messages import Message
from flexchain.testing import Scenario
from flexchain.ticks import ClockTicked
from services.inventory import policy
from services.inventory.messages import (
    Allocation,
    CheckStockTimers,
    CommitReservation,
    GiftWrittenOff,
    InventoryCommandRejected,
    LinkPresaleCampaign,
    RecordGiftWriteOff,
    RecordPresaleClose,
    ReleaseReservation,
    ReservationReleased,
    ReserveStock,
    ReturnStock,
    StockReserved,
)
from services.inventory.state import Inventory
from services.order.messages import (
    GiftAttached,
    GiftLine,
    GiftOmitted,
    GiftRuleSkipped,
    GiftSubstituted,
    OrderLine,
    OrderPlaced,
    OrderRefunded,
    RefundedGift,
    RefundedLine,
)
from services.presale.messages import CampaignClosed, CampaignCreated
from tests.unit.inventory.builders import NORTH, T0, of_type, receive, register, world

OID = "ord-1"
MASK, EYE, TRIAL = "mask-01", "eye-01", "eye-trial"


def gift(rule: str = "r-1", sku: str = EYE, qty: int = 1, consumable: bool = False) -> GiftLine:
    return GiftLine(rule_id=rule, sku=sku, qty=qty, unit_cost=300, main_sku=MASK, tier="base", consumable=consumable)


def placed(*gifts: GiftLine, campaign: str | None = None) -> OrderPlaced:
    return OrderPlaced(
        order_id=OID,
        member_id="m-1",
        channel="live",
        lines=[OrderLine(sku=MASK, qty=2, unit_price=1990)],
        distributor_id=None,
        campaign_id=campaign,
        total=3980,
        placed_at=T0,
        gifts=list(gifts),
    )


def refunded(*gifts: RefundedGift, lines: list[RefundedLine] | None = None) -> OrderRefunded:
    lines = [RefundedLine(sku=MASK, qty=2, reason="no_reason", amount=3980, goods_returned=True)] if lines is None else lines
    return OrderRefunded(
        order_id=OID,
        refund_id="rf-1",
        lines=lines,
        amount=3980,
        fully_refunded=True,
        member_id="m-1",
        distributor_id=None,
        campaign_id=None,
        gifts=list(gifts),
    )


# --- the policy: order events with gifts ----------------------------------------------------------------


def test_an_order_placed_reserves_its_lines_then_each_gift_marked_with_its_rule() -> None:
    event = placed(gift("r-1", EYE, 1), gift("r-2", TRIAL, 3))
    assert policy.react(event) == [
        ReserveStock(sku=MASK, order_id=OID, qty=2),
        ReserveStock(sku=EYE, order_id=OID, qty=1, gift_rule_id="r-1"),
        ReserveStock(sku=TRIAL, order_id=OID, qty=3, gift_rule_id="r-2"),
    ]


def test_a_campaign_order_reserves_nothing_not_even_a_gift() -> None:
    assert policy.react(placed(gift(), campaign="camp-1")) == []


def test_a_gift_attached_after_placement_is_reserved() -> None:
    assert policy.react(GiftAttached(order_id=OID, gift=gift("r-3", TRIAL, 2))) == [
        ReserveStock(sku=TRIAL, order_id=OID, qty=2, gift_rule_id="r-3")
    ]


def test_r_ord_5_a_substituted_gift_reserves_the_fallback() -> None:
    event = GiftSubstituted(
        order_id=OID, rule_id="r-1", from_sku=EYE, to_sku=TRIAL, qty=2, unit_cost=150, reason="gift eye-01 out of stock"
    )
    assert policy.react(event) == [ReserveStock(sku=TRIAL, order_id=OID, qty=2, gift_rule_id="r-1")]


def test_an_omitted_or_skipped_gift_releases_its_own_hold() -> None:
    assert policy.react(GiftOmitted(order_id=OID, rule_id="r-1", sku=EYE, reason="out of stock; no fallback gift")) == [
        ReleaseReservation(sku=EYE, order_id=OID, reason="gift omitted: out of stock; no fallback gift", gift_rule_id="r-1")
    ]
    assert policy.react(
        GiftRuleSkipped(order_id=OID, rule_id="r-2", gift_sku=TRIAL, reason="over the cap at the final price")
    ) == [
        ReleaseReservation(
            sku=TRIAL, order_id=OID, reason="gift rule skipped: over the cap at the final price", gift_rule_id="r-2"
        )
    ]


@pytest.mark.parametrize(("reason", "grade"), [("no_reason", "A"), ("late", "A"), ("defect", "B"), ("damaged", "B")])
def test_r_ord_2a_a_returned_gift_is_graded_like_the_goods(reason: str, grade: str) -> None:
    event = refunded(RefundedGift(rule_id="r-1", sku=EYE, qty=1, goods_returned=True, written_off=False, reason=reason))
    assert policy.react(event)[1:] == [ReturnStock(sku=EYE, order_id=OID, qty=1, grade=grade)]


def test_r_ord_2a_a_gift_not_shipped_yet_has_its_hold_released() -> None:
    event = refunded(
        RefundedGift(rule_id="r-1", sku=EYE, qty=1, goods_returned=False, written_off=False, reason="no_reason"),
        lines=[RefundedLine(sku=MASK, qty=1, reason="no_reason", amount=1990, goods_returned=False)],
    )
    assert policy.react(event) == [
        ReleaseReservation(sku=MASK, order_id=OID, reason="order refunded", qty=1),
        ReleaseReservation(sku=EYE, order_id=OID, reason="gift taken back with its main line", qty=1, gift_rule_id="r-1"),
    ]


def test_r_ord_2a_a_consumable_gift_that_shipped_is_written_off_nothing_comes_back() -> None:
    event = refunded(RefundedGift(rule_id="r-1", sku=TRIAL, qty=2, goods_returned=False, written_off=True, reason="defect"))
    assert policy.react(event) == [
        ReturnStock(sku=MASK, order_id=OID, qty=2, grade="A"),
        RecordGiftWriteOff(sku=TRIAL, order_id=OID, rule_id="r-1", qty=2, reason="defect"),
    ]


def test_r_x_3_a_refund_without_gifts_routes_as_before() -> None:
    assert policy.react(refunded()) == [ReturnStock(sku=MASK, order_id=OID, qty=2, grade="A")]


def test_the_router_decodes_only_the_order_events_the_policy_reacts_to() -> None:
    assert {t.__name__ for t in policy.ORDER_EVENTS} == {
        "OrderPlaced",
        "OrderRejected",
        "OrderCancelled",
        "OrderShipped",
        "OrderRefunded",
        "GiftAttached",
        "GiftSubstituted",
        "GiftOmitted",
        "GiftRuleSkipped",
    }


# --- the policy: presale and the clock ------------------------------------------------------------------


def test_r_inv_7_a_campaign_links_its_product_sku_and_a_successful_close_goes_to_every_partition() -> None:
    created = CampaignCreated(
        campaign_id="camp-1",
        product="tote",
        unit_cost=2000,
        fan_base=100_000,
        moq=50,
        max_capacity=1000,
        split="standard",
        milestone_shares={},
        created_at=T0,
    )
    assert policy.react_presale(created) == [LinkPresaleCampaign(sku="tote", campaign_id="camp-1")]
    closed = CampaignClosed(
        campaign_id="camp-1", outcome="succeeded", pledged_units=500, moq=50, reason="ended", closed_at=T0 + 1
    )
    routed = policy.react_presale(closed)
    assert routed == [RecordPresaleClose(campaign_id="camp-1", outcome="succeeded", pledged_units=500, closed_at=T0 + 1)]
    assert routed[0].key == "", "no key: broadcast to every partition"
    assert (
        policy.react_presale(
            CampaignClosed(campaign_id="camp-1", outcome="failed", pledged_units=10, moq=50, reason="below MOQ", closed_at=T0)
        )
        == []
    )


def test_r_x_1_a_clock_tick_reaches_every_partition() -> None:
    routed = policy.react_clock(ClockTicked(clock_id="main", time=T0))
    assert routed == [CheckStockTimers(time=T0)] and routed[0].key == ""
    assert policy.react(ClockTicked(clock_id="main", time=T0)) == [], "the order policy does not route ticks"


# --- the decider: gift holds --------------------------------------------------------------------------


def routed(w: Scenario[Inventory], event: Message) -> list[Message]:
    out: list[Message] = []
    for cmd in policy.react(event):
        out += w.when(cmd).events
    return out


def stocked() -> Scenario[Inventory]:
    w = world()
    for sku in (MASK, EYE, TRIAL):
        register(w, sku, floor=0)
        receive(w, sku, 100)
    return w


def test_a_gift_reservation_is_held_for_its_rule() -> None:
    w = stocked()
    events = routed(w, placed(gift("r-1", EYE, 1)))
    assert of_type(events, StockReserved) == [
        StockReserved(sku=MASK, order_id=OID, qty=2, allocations=[Allocation(warehouse=NORTH, qty=2)]),
        StockReserved(sku=EYE, order_id=OID, qty=1, allocations=[Allocation(warehouse=NORTH, qty=1)], gift_rule_id="r-1"),
    ]
    assert w.state.skus[EYE].gift_holds == {OID: "r-1"} and w.state.skus[MASK].gift_holds == {}


def test_a_rule_skipped_because_its_gift_is_a_main_line_leaves_the_main_line_held() -> None:
    w = stocked()
    routed(w, placed())
    assert (
        routed(w, GiftRuleSkipped(order_id=OID, rule_id="r-9", gift_sku=MASK, reason=f"gift {MASK} is already in the order"))
        == []
    )
    assert w.state.skus[MASK].reservations == {OID: {NORTH: 2}}


def test_another_rule_does_not_release_a_gift_it_does_not_own() -> None:
    w = stocked()
    routed(w, placed(gift("r-1", EYE, 1)))
    assert routed(w, GiftOmitted(order_id=OID, rule_id="r-2", sku=EYE, reason="late")) == []
    released = routed(w, GiftOmitted(order_id=OID, rule_id="r-1", sku=EYE, reason="the order is cancelled"))
    assert released == [
        ReservationReleased(
            sku=EYE, order_id=OID, allocations=[Allocation(warehouse=NORTH, qty=1)], reason="gift omitted: the order is cancelled"
        )
    ]
    assert w.state.skus[EYE].reservations == {} and w.state.skus[EYE].gift_holds == {}


def test_a_gift_taken_back_before_shipping_releases_part_of_its_hold() -> None:
    w = stocked()
    routed(w, placed(gift("r-1", TRIAL, 3)))
    routed(
        w,
        refunded(
            RefundedGift(rule_id="r-1", sku=TRIAL, qty=2, goods_returned=False, written_off=False, reason="no_reason"),
            lines=[RefundedLine(sku=MASK, qty=1, reason="no_reason", amount=1990, goods_returned=False)],
        ),
    )
    assert w.state.skus[TRIAL].reservations == {OID: {NORTH: 1}} and w.state.skus[TRIAL].gift_holds == {OID: "r-1"}
    w.when(CommitReservation(sku=TRIAL, order_id=OID))
    assert w.state.skus[TRIAL].gift_holds == {} and w.state.skus[TRIAL].on_hand == 99


def test_a_written_off_gift_is_recorded_and_changes_no_stock() -> None:
    w = stocked()
    before = (w.state.skus[TRIAL].on_hand, w.state.skus[TRIAL].available)
    events = w.when(RecordGiftWriteOff(sku=TRIAL, order_id=OID, rule_id="r-1", qty=2, reason="defect")).events
    assert events == [GiftWrittenOff(sku=TRIAL, order_id=OID, rule_id="r-1", qty=2, reason="defect")]
    assert (w.state.skus[TRIAL].on_hand, w.state.skus[TRIAL].available) == before and w.state.skus[TRIAL].written_off == 2
    assert w.when(RecordGiftWriteOff(sku="ghost", order_id=OID, rule_id="r-1", qty=2, reason="defect")).events == []
    rejected = w.when(RecordGiftWriteOff(sku=TRIAL, order_id=OID, rule_id="r-1", qty=0, reason="defect")).events
    assert isinstance(rejected[0], InventoryCommandRejected) and "qty must be positive" in rejected[0].reason


def test_gifts_through_a_whole_order_keep_the_books() -> None:
    """Placed with two gifts, one substituted, shipped, refunded: every unit is accounted for."""
    w = stocked()
    routed(w, placed(gift("r-1", EYE, 1), gift("r-2", TRIAL, 2, consumable=True)))
    routed(w, GiftOmitted(order_id=OID, rule_id="r-1", sku=EYE, reason="the main line was refunded"))
    for sku in (MASK, TRIAL):
        w.when(CommitReservation(sku=sku, order_id=OID))
    routed(w, refunded(RefundedGift(rule_id="r-2", sku=TRIAL, qty=2, goods_returned=False, written_off=True, reason="no_reason")))
    assert (w.state.skus[MASK].on_hand, w.state.skus[EYE].on_hand, w.state.skus[TRIAL].on_hand) == (100, 100, 98)
    assert w.state.skus[TRIAL].written_off == 2 and w.state.skus[EYE].reserved == 0
    assert w.rebuilt() == w.state
