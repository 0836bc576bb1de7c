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
CLEARANCE = RateRule("clearance", "overstock", [], D("-0.07"), 500, D("0.05"), D("0.20"))  # the seeds: 15 % → 8 %
SCARCE = RateRule("scarce", "low_stock", ["mask"], D("-0.05"), 10, D("0.12"), D("0.20"))


def signal(sku: str, name: str, value: int) -> ApplyStockSignal:
    return ApplyStockSignal(NETWORK, sku, name, value, "test")


def test_a_rule_acts_only_past_its_threshold_and_every_change_is_an_event() -> None:
    sc = Scenario(COMMISSION, at=T0).given(SetRateRule(NETWORK, CLEARANCE))
    sc.when(signal("mask", "overstock", 499)).then()
    events = sc.when(signal("mask", "overstock", 800), T0 + 5).events
    assert events == [
        RateRuleTriggered(NETWORK, "clearance", "mask", True, "overstock", 800),
        SkuRateChanged(
            NETWORK, 1, "mask", D("0.08"), None, None, T0 + 5, "overstock = 800 (test): rule clearance on", "clearance"
        ),
    ]
    assert sc.when(signal("mask", "overstock", 900)).events == [], "once per crossing"
    assert sc.state.network.sku_rate_at("mask", T0 + 4) is None and sc.state.network.sku_rate_at("mask", T0 + 5) == D("0.08")
    [off, back] = sc.when(signal("mask", "overstock", 0), T0 + 9).events
    assert off == RateRuleTriggered(NETWORK, "clearance", "mask", False, "overstock", 0)
    assert isinstance(back, SkuRateChanged) and back.rate is None and back.previous_rate == D("0.08")


def test_a_rule_keeps_the_rate_within_its_floor_and_ceiling_and_starts_from_a_hand_set_rate() -> None:
    sc = Scenario(COMMISSION, at=T0).given(SetSkuRate(NETWORK, "mask", D("0.14")), SetRateRule(NETWORK, SCARCE))
    events = sc.when(signal("mask", "low_stock", 30)).events
    assert isinstance(events[-1], SkuRateChanged) and events[-1].rate == D("0.12")  # 0.14 − 0.05 floored at 0.12
    assert sc.when(signal("serum", "low_stock", 30)).events == [], "the rule names its skus"


def test_removing_an_active_rule_restores_the_rate_and_an_active_rule_cannot_be_changed() -> None:
    sc = Scenario(COMMISSION, at=T0).given(SetRateRule(NETWORK, CLEARANCE), signal("mask", "overstock", 600))
    assert "is active on mask; remove it first" in sc.when(SetRateRule(NETWORK, CLEARANCE)).refused()
    events = sc.when(RemoveRateRule(NETWORK, "clearance")).events
    assert [type(e) for e in events] == [RateRuleTriggered, SkuRateChanged, RateRuleRemoved]
    assert sc.state.network.current_sku_rate("mask") is None and sc.state.authority.active == {}
    assert "unknown rule" in sc.when(RemoveRateRule(NETWORK, "clearance")).refused()


def test_rule_and_rate_validation() -> None:
    sc = Scenario(COMMISSION, at=T0).given()
    below = RateRule("r", "overstock", [], D("-0.07"), 0, D("0"), D("0.2"))
    assert "only past it" in sc.when(SetRateRule(NETWORK, below)).refused()
    assert "floor <= ceiling" in sc.when(SetRateRule(NETWORK, RateRule("r", "x", [], D("0.01"), 1, D("0.3"), D("0.2")))).refused()
    assert "non-zero" in sc.when(SetRateRule(NETWORK, RateRule("r", "x", [], D("0"), 1, D("0"), D("0.2")))).refused()
    assert "within 0–0.50" in sc.when(SetSkuRate(NETWORK, "mask", D("0.6"))).refused()
    assert "already has that rate" in sc.when(SetSkuRate(NETWORK, "mask", None)).refused()


# --- policies --------------------------------------------------------------------------------------


def test_low_stock_alerts_become_signals_and_other_inventory_events_do_not() -> None:
    assert policy.react_inventory(LowStockAlertRaised("mask", 35, 50, 1)) == [
        ApplyStockSignal(NETWORK, "mask", "low_stock", 15, "LowStockAlertRaised")
    ]
    assert policy.react_inventory(LowStockAlertCleared("mask", 80, 50, 1)) == [
        ApplyStockSignal(NETWORK, "mask", "low_stock", 0, "LowStockAlertCleared")
    ]
    assert policy.react_inventory(StockReceived("mask", "w1", 5, "")) == []


def test_order_events_go_to_the_sellers_partition_and_the_members() -> None:
    paid = OrderPaid("o1", 2500, "p", T0, "m1", "d1", None, [OrderLine("mask", 2, 1000), OrderLine("eye", 1, 500)])
    assert policy.react_order(paid) == [
        RecordOrderPaid("d1", "o1", "m1", T0, [PaidLine("mask", 2, 2000), PaidLine("eye", 1, 500)])
    ]
    no_seller = OrderPaid("o2", 100, "p", T0, "m1", None, None, [OrderLine("mask", 1, 100)])
    assert policy.react_order(no_seller) == [RecordMemberPurchase("m1", "o2", None, T0)]
    refunded = OrderRefunded("o1", "r1", [RefundedLine("mask", 1, "defect", 1000, True)], 1000, False, "m1", "d1", None)
    assert policy.react_order(refunded) == [RecordOrderRefund("d1", "o1", "r1", [RefundAmount("mask", 1000)], False)]
    assert policy.react_order(OrderCancelled("o1", "x", [], 2500, "m1", "d1", None)) == [
        RecordOrderRefund("d1", "o1", "cancel-o1", [], True)
    ]
    assert policy.react_order(OrderCancelled("o3", "unpaid", [], 0, "m1", "d1", None)) == []
    assert policy.react_order(OrderCompleted("o1", T0 + 9, "m1", "d1", None)) == [RecordOrderCompleted("d1", "o1", T0 + 9)]
    assert policy.react_order(OrderShipped("o1", "t", ["mask"])) == []


def test_a_tick_checks_every_partition_and_the_network() -> None:
    assert policy.react_clock(ClockTicked("main", T0)) == [CheckCommissionTimers(T0), CheckNetworkTimers(NETWORK, T0)]


def test_own_events_become_replication_credits_charges_and_bonuses() -> None:
    rec = DistributorRecord("b", "", "a", "standard", None, T0)
    assert policy.react_own(DistributorRegistered(NETWORK, 7, rec, False)) == [
        ReplicateNetwork(7, NetworkChange(rec, None, None))
    ]
    line = PayoutLine("commission", "o1", "mask", 2, 500)
    due = T0 + 7 * DAY_MS
    payable = CommissionBecamePayable(
        "c", "o1", T0, due, 500, [BeneficiaryPayout("b", [line], 500), BeneficiaryPayout("x", [], 0)]
    )
    assert policy.react_own(payable) == [CreditCommission("b", "c", due, [line])]
    levels = [LevelClawback(1, "c", 100, True), LevelClawback(2, "b", 30, True), LevelClawback(3, "a", 0, True)]
    clawed = CommissionClawedBack("c", "o1", "r1", [ClawbackLine("mask", 1000, 0, levels)], 130, due)
    assert policy.react_own(clawed) == [
        ChargeClawback("c", "c", "o1", "r1", due, [PayoutLine("clawback", "o1", "mask", 1, -100)]),
        ChargeClawback("b", "c", "o1", "r1", due, [PayoutLine("clawback", "o1", "mask", 2, -30)]),
    ]
    levels = [LevelClawback(1, "c", 100, False)]
    before = CommissionClawedBack("c", "o1", "r1", [ClawbackLine("mask", 1000, 0, levels)], 100, None)
    assert policy.react_own(before) == [], "while pending, the seller's partition takes it back itself"
    assert policy.react_own(NewMemberRecorded("m1", "o1", "c", T0)) == [AwardReferralBonus("c", "m1", "o1", T0)]
    seen = CustomerFirstSeen("c", "m1", "o1", T0)
    assert policy.react_own(seen) == [RecordMemberPurchase("m1", "o1", "c", T0)], "new to this partition: ask"
    assert policy.react_own(CommissionAccrued("c", "o2", "m1", T0, 3, [], 0)) == []
    assert policy.react_own(NewMemberRecorded("m1", "o1", None, T0)) == []
