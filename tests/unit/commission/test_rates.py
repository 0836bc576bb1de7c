"""Given/when/then on dynamic rates (R-COM-5) and the policies that feed them and the rest.

A rule acts only past its threshold, keeps the rate within its floor and ceiling, and every change of
a sku's rate is one `SkuRateChanged` event, effective for orders paid after it.
"""

from __future__ import annotations

from decimal import Decimal

from flexchain.testing import Scenario
from flexchain.ticks import ClockTicked
from services.commission import policy
from services.commission.messages import (
    NETWORK,
    ApplyStockSignal,
    AwardReferralBonus,
    BeneficiaryPayout,
    ChargeClawback,
    CheckCommissionTimers,
    CheckNetworkTimers,
    ClawbackLine,
    CommissionAccrued,
    CommissionBecamePayable,
    CommissionClawedBack,
    CreditCommission,
    CustomerFirstSeen,
    DistributorRecord,
    DistributorRegistered,
    LevelClawback,
    NetworkChange,
    NewMemberRecorded,
    PaidLine,
    PayoutLine,
    RateRule,
    RateRuleRemoved,
    RateRuleTriggered,
    RecordMemberPurchase,
    RecordOrderCompleted,
    RecordOrderPaid,
    RecordOrderRefund,
    RefundAmount,
    RemoveRateRule,
    ReplicateNetwork,
    SetRateRule,
    SetSkuRate,
    SkuRateChanged,
)
from services.commission.plan import DAY_MS
from services.inventory.messages import LowStockAlertCleared, LowStockAlertRaised, StockReceived
from services.order.messages import (
    OrderCancelled,
    OrderCompleted,
    OrderLine,
    OrderPaid,
    OrderRefunded,
    OrderShipped,
    RefundedLine,
)
from tests.unit.commission.builders import COMMISSION, T0

D = Decimal
CLEARANCE = RateRule(
    rule_id="clearance", signal="overstock", skus=[], delta=D("-0.07"), threshold=500, floor=D("0.05"), ceiling=D("0.20")
)  # the seeds: 15 % → 8 %
SCARCE = RateRule(
    rule_id="scarce", signal="low_stock", skus=["mask"], delta=D("-0.05"), threshold=10, floor=D("0.12"), ceiling=D("0.20")
)


def signal(sku: str, name: str, value: int) -> ApplyStockSignal:
    return ApplyStockSignal(network_id=NETWORK, sku=sku, signal=name, value=value, source="test")


def test_a_rule_acts_only_past_its_threshold_and_every_change_is_an_event() -> None:
    sc = Scenario(COMMISSION, at=T0).given(SetRateRule(network_id=NETWORK, rule=CLEARANCE))
    sc.when(signal("mask", "overstock", 499)).then()
    events = sc.when(signal("mask", "overstock", 800), T0 + 5).events
    assert events == [
        RateRuleTriggered(network_id=NETWORK, rule_id="clearance", sku="mask", active=True, signal="overstock", value=800),
        SkuRateChanged(
            network_id=NETWORK,
            seq=1,
            sku="mask",
            rate=D("0.08"),
            previous_rate=None,
            manual_rate=None,
            effective_from=T0 + 5,
            reason="overstock = 800 (test): rule clearance on",
            rule_id="clearance",
        ),
    ]
    assert sc.when(signal("mask", "overstock", 900)).events == [], "once per crossing"
    assert sc.state.network.sku_rate_at("mask", T0 + 4) is None and sc.state.network.sku_rate_at("mask", T0 + 5) == D("0.08")
    [off, back] = sc.when(signal("mask", "overstock", 0), T0 + 9).events
    assert off == RateRuleTriggered(
        network_id=NETWORK, rule_id="clearance", sku="mask", active=False, signal="overstock", value=0
    )
    assert isinstance(back, SkuRateChanged) and back.rate is None and back.previous_rate == D("0.08")


def test_a_rule_keeps_the_rate_within_its_floor_and_ceiling_and_starts_from_a_hand_set_rate() -> None:
    sc = Scenario(COMMISSION, at=T0).given(
        SetSkuRate(network_id=NETWORK, sku="mask", rate=D("0.14")), SetRateRule(network_id=NETWORK, rule=SCARCE)
    )
    events = sc.when(signal("mask", "low_stock", 30)).events
    assert isinstance(events[-1], SkuRateChanged) and events[-1].rate == D("0.12")  # 0.14 − 0.05 floored at 0.12
    assert sc.when(signal("serum", "low_stock", 30)).events == [], "the rule names its skus"


def test_removing_an_active_rule_restores_the_rate_and_an_active_rule_cannot_be_changed() -> None:
    sc = Scenario(COMMISSION, at=T0).given(SetRateRule(network_id=NETWORK, rule=CLEARANCE), signal("mask", "overstock", 600))
    assert "is active on mask; remove it first" in sc.when(SetRateRule(network_id=NETWORK, rule=CLEARANCE)).refused()
    events = sc.when(RemoveRateRule(network_id=NETWORK, rule_id="clearance")).events
    assert [type(e) for e in events] == [RateRuleTriggered, SkuRateChanged, RateRuleRemoved]
    assert sc.state.network.current_sku_rate("mask") is None and sc.state.authority.active == {}
    assert "unknown rule" in sc.when(RemoveRateRule(network_id=NETWORK, rule_id="clearance")).refused()


def test_rule_and_rate_validation() -> None:
    sc = Scenario(COMMISSION, at=T0).given()
    below = RateRule(rule_id="r", signal="overstock", skus=[], delta=D("-0.07"), threshold=0, floor=D("0"), ceiling=D("0.2"))
    assert "only past it" in sc.when(SetRateRule(network_id=NETWORK, rule=below)).refused()
    assert (
        "floor <= ceiling"
        in sc.when(
            SetRateRule(
                network_id=NETWORK,
                rule=RateRule(rule_id="r", signal="x", skus=[], delta=D("0.01"), threshold=1, floor=D("0.3"), ceiling=D("0.2")),
            )
        ).refused()
    )
    assert (
        "non-zero"
        in sc.when(
            SetRateRule(
                network_id=NETWORK,
                rule=RateRule(rule_id="r", signal="x", skus=[], delta=D("0"), threshold=1, floor=D("0"), ceiling=D("0.2")),
            )
        ).refused()
    )
    assert "within 0–0.50" in sc.when(SetSkuRate(network_id=NETWORK, sku="mask", rate=D("0.6"))).refused()
    assert "already has that rate" in sc.when(SetSkuRate(network_id=NETWORK, sku="mask", rate=None)).refused()


# --- policies --------------------------------------------------------------------------------------


def test_low_stock_alerts_become_signals_and_other_inventory_events_do_not() -> None:
    assert policy.react_inventory(LowStockAlertRaised(sku="mask", available=35, threshold=50, crossing=1)) == [
        ApplyStockSignal(network_id=NETWORK, sku="mask", signal="low_stock", value=15, source="LowStockAlertRaised")
    ]
    assert policy.react_inventory(LowStockAlertCleared(sku="mask", available=80, threshold=50, crossing=1)) == [
        ApplyStockSignal(network_id=NETWORK, sku="mask", signal="low_stock", value=0, source="LowStockAlertCleared")
    ]
    assert policy.react_inventory(StockReceived(sku="mask", warehouse="w1", qty=5, reference="")) == []


def test_order_events_go_to_the_sellers_partition_and_the_members() -> None:
    paid = OrderPaid(
        order_id="o1",
        amount=2500,
        payment_ref="p",
        paid_at=T0,
        member_id="m1",
        distributor_id="d1",
        campaign_id=None,
        lines=[OrderLine(sku="mask", qty=2, unit_price=1000), OrderLine(sku="eye", qty=1, unit_price=500)],
    )
    assert policy.react_order(paid) == [
        RecordOrderPaid(
            distributor_id="d1",
            order_id="o1",
            member_id="m1",
            paid_at=T0,
            lines=[PaidLine(sku="mask", qty=2, amount=2000), PaidLine(sku="eye", qty=1, amount=500)],
        )
    ]
    no_seller = OrderPaid(
        order_id="o2",
        amount=100,
        payment_ref="p",
        paid_at=T0,
        member_id="m1",
        distributor_id=None,
        campaign_id=None,
        lines=[OrderLine(sku="mask", qty=1, unit_price=100)],
    )
    assert policy.react_order(no_seller) == [RecordMemberPurchase(member_id="m1", order_id="o2", distributor_id=None, paid_at=T0)]
    refunded = OrderRefunded(
        order_id="o1",
        refund_id="r1",
        lines=[RefundedLine(sku="mask", qty=1, reason="defect", amount=1000, goods_returned=True)],
        amount=1000,
        fully_refunded=False,
        member_id="m1",
        distributor_id="d1",
        campaign_id=None,
    )
    assert policy.react_order(refunded) == [
        RecordOrderRefund(
            distributor_id="d1", order_id="o1", refund_id="r1", lines=[RefundAmount(sku="mask", amount=1000)], everything=False
        )
    ]
    assert policy.react_order(
        OrderCancelled(
            order_id="o1", reason="x", release_skus=[], refund_amount=2500, member_id="m1", distributor_id="d1", campaign_id=None
        )
    ) == [RecordOrderRefund(distributor_id="d1", order_id="o1", refund_id="cancel-o1", lines=[], everything=True)]
    assert (
        policy.react_order(
            OrderCancelled(
                order_id="o3",
                reason="unpaid",
                release_skus=[],
                refund_amount=0,
                member_id="m1",
                distributor_id="d1",
                campaign_id=None,
            )
        )
        == []
    )
    assert policy.react_order(
        OrderCompleted(order_id="o1", completed_at=T0 + 9, member_id="m1", distributor_id="d1", campaign_id=None)
    ) == [RecordOrderCompleted(distributor_id="d1", order_id="o1", completed_at=T0 + 9)]
    assert policy.react_order(OrderShipped(order_id="o1", tracking="t", skus=["mask"])) == []


def test_a_tick_checks_every_partition_and_the_network() -> None:
    assert policy.react_clock(ClockTicked(clock_id="main", time=T0)) == [
        CheckCommissionTimers(time=T0),
        CheckNetworkTimers(network_id=NETWORK, time=T0),
    ]


def test_own_events_become_replication_credits_charges_and_bonuses() -> None:
    rec = DistributorRecord(distributor_id="b", name="", upline_id="a", grade="standard", qualified_until=None, registered_at=T0)
    assert policy.react_own(DistributorRegistered(network_id=NETWORK, seq=7, distributor=rec, sponsored=False)) == [
        ReplicateNetwork(seq=7, change=NetworkChange(distributor=rec, plan=None, sku_rate=None))
    ]
    line = PayoutLine(kind="commission", ref="o1", sku="mask", level=2, amount=500)
    due = T0 + 7 * DAY_MS
    payable = CommissionBecamePayable(
        distributor_id="c",
        order_id="o1",
        payable_at=T0,
        due_at=due,
        total=500,
        payouts=[
            BeneficiaryPayout(distributor_id="b", lines=[line], total=500),
            BeneficiaryPayout(distributor_id="x", lines=[], total=0),
        ],
    )
    assert policy.react_own(payable) == [CreditCommission(distributor_id="b", seller_id="c", available_at=due, lines=[line])]
    levels = [
        LevelClawback(level=1, distributor_id="c", amount=100, after_release=True),
        LevelClawback(level=2, distributor_id="b", amount=30, after_release=True),
        LevelClawback(level=3, distributor_id="a", amount=0, after_release=True),
    ]
    clawed = CommissionClawedBack(
        distributor_id="c",
        order_id="o1",
        refund_id="r1",
        lines=[ClawbackLine(sku="mask", refunded_amount=1000, net_amount=0, levels=levels)],
        total=130,
        due_at=due,
    )
    assert policy.react_own(clawed) == [
        ChargeClawback(
            distributor_id="c",
            seller_id="c",
            order_id="o1",
            refund_id="r1",
            available_at=due,
            lines=[PayoutLine(kind="clawback", ref="o1", sku="mask", level=1, amount=-100)],
        ),
        ChargeClawback(
            distributor_id="b",
            seller_id="c",
            order_id="o1",
            refund_id="r1",
            available_at=due,
            lines=[PayoutLine(kind="clawback", ref="o1", sku="mask", level=2, amount=-30)],
        ),
    ]
    levels = [LevelClawback(level=1, distributor_id="c", amount=100, after_release=False)]
    before = CommissionClawedBack(
        distributor_id="c",
        order_id="o1",
        refund_id="r1",
        lines=[ClawbackLine(sku="mask", refunded_amount=1000, net_amount=0, levels=levels)],
        total=100,
        due_at=None,
    )
    assert policy.react_own(before) == [], "while pending, the seller's partition takes it back itself"
    assert policy.react_own(NewMemberRecorded(member_id="m1", order_id="o1", distributor_id="c", paid_at=T0)) == [
        AwardReferralBonus(distributor_id="c", member_id="m1", order_id="o1", paid_at=T0)
    ]
    seen = CustomerFirstSeen(distributor_id="c", member_id="m1", order_id="o1", paid_at=T0)
    assert policy.react_own(seen) == [RecordMemberPurchase(member_id="m1", order_id="o1", distributor_id="c", paid_at=T0)], (
        "new to this partition: ask"
    )
    assert (
        policy.react_own(
            CommissionAccrued(distributor_id="c", order_id="o2", member_id="m1", paid_at=T0, network_seq=3, lines=[], total=0)
        )
        == []
    )
    assert policy.react_own(NewMemberRecorded(member_id="m1", order_id="o1", distributor_id=None, paid_at=T0)) == []
