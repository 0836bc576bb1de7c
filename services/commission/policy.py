"""Commission's policies (pure): other services' events, clock ticks and commission's own events
become commission commands, re-keyed by the aggregate that must act.

* order events (key: order id) → the seller's partition (key: the order's distributor):
  OrderPaid → RecordOrderPaid; OrderRefunded / OrderCancelled after payment → RecordOrderRefund;
  OrderCompleted → RecordOrderCompleted. An OrderPaid without a distributor → RecordMemberPurchase
  (key: member), so that member is not "new" later.
* clock ticks → CheckCommissionTimers on every partition, CheckNetworkTimers on the network.
* inventory events → stock signals for the dynamic-rate rules (`STOCK_SIGNALS`, R-COM-5).
* commission's own events (a process manager): a network change → ReplicateNetwork to every
  partition; a member's first purchase through a partition's sellers → RecordMemberPurchase
  (key: member); payable commission → CreditCommission per beneficiary (due T+7); a clawback of
  commission already credited → ChargeClawback per beneficiary; a new member → AwardReferralBonus.
"""

from __future__ import annotations

from collections.abc import Callable

from flexchain.messages import Message
from flexchain.ticks import ClockTicked
from services.commission.messages import (
    NETWORK,
    ApplyStockSignal,
    AwardReferralBonus,
    ChargeClawback,
    CheckCommissionTimers,
    CheckNetworkTimers,
    CommissionBecamePayable,
    CommissionClawedBack,
    CommissionPlanChanged,
    CommissionRecomputed,
    CreditCommission,
    CustomerFirstSeen,
    DistributorGradeChanged,
    DistributorLinked,
    DistributorRegistered,
    NewMemberRecorded,
    PaidLine,
    PayoutLine,
    QualificationRenewed,
    RecordMemberPurchase,
    RecordOrderCompleted,
    RecordOrderPaid,
    RecordOrderRefund,
    RefundAmount,
    ReplicateNetwork,
    SkuRateChanged,
)
from services.commission.tree import change_of
from services.inventory.messages import LowStockAlertCleared, LowStockAlertRaised
from services.order.messages import OrderCancelled, OrderCompleted, OrderPaid, OrderRefunded

# Where "a new member brought by a distributor" comes from (R-COM-4): "order" = a member's first paid
# order names the distributor (until the loyalty service publishes referrals); "off" = no bonus.
# When loyalty exists, map its referral event in `react_loyalty` and set this to "loyalty".
REFERRAL_SOURCE = "order"


# --- stock signals (R-COM-5) -------------------------------------------------------------------
# inventory event type → the signals it carries for a sku: (sku, signal, value). A rule acts while a
# sku's value of its signal is >= its threshold; value 0 ends it. To react to a new inventory event
# (e.g. SlowMovingStockDetected, R-INV-6), add one entry here; nothing else changes.


def _low_stock(e: Message) -> list[tuple[str, str, int]]:
    if isinstance(e, LowStockAlertRaised):
        return [(e.sku, "low_stock", max(1, e.threshold - e.available))]  # units below the threshold
    if isinstance(e, LowStockAlertCleared):
        return [(e.sku, "low_stock", 0)]
    return []


STOCK_SIGNALS: dict[str, Callable[[Message], list[tuple[str, str, int]]]] = {
    "LowStockAlertRaised": _low_stock,
    "LowStockAlertCleared": _low_stock,
}


def react_inventory(event: Message) -> list[Message]:
    signals = STOCK_SIGNALS.get(type(event).__name__)
    if signals is None:
        return []
    return [
        ApplyStockSignal(network_id=NETWORK, sku=sku, signal=signal, value=value, source=type(event).__name__)
        for sku, signal, value in signals(event)
    ]


# --- order events ------------------------------------------------------------------------------


def react_order(event: Message) -> list[Message]:
    if isinstance(event, OrderPaid):
        if event.distributor_id:  # the member check follows the accrual, when the member is new there
            lines = [PaidLine(sku=line.sku, qty=line.qty, amount=line.qty * line.unit_price) for line in event.lines]
            return [
                RecordOrderPaid(
                    distributor_id=event.distributor_id,
                    order_id=event.order_id,
                    member_id=event.member_id,
                    paid_at=event.paid_at,
                    lines=lines,
                )
            ]
        if REFERRAL_SOURCE == "order" and event.member_id:  # bought without a distributor: not a new member for anyone later
            return [
                RecordMemberPurchase(
                    member_id=event.member_id, order_id=event.order_id, distributor_id=None, paid_at=event.paid_at
                )
            ]
        return []
    if isinstance(event, OrderRefunded) and event.distributor_id:
        refunds = [RefundAmount(sku=line.sku, amount=line.amount) for line in event.lines]
        return [
            RecordOrderRefund(
                distributor_id=event.distributor_id,
                order_id=event.order_id,
                refund_id=event.refund_id,
                lines=refunds,
                everything=False,
            )
        ]
    if isinstance(event, OrderCancelled) and event.distributor_id and event.refund_amount > 0:
        return [
            RecordOrderRefund(
                distributor_id=event.distributor_id,
                order_id=event.order_id,
                refund_id=f"cancel-{event.order_id}",
                lines=[],
                everything=True,
            )
        ]
    if isinstance(event, OrderCompleted) and event.distributor_id:
        return [
            RecordOrderCompleted(distributor_id=event.distributor_id, order_id=event.order_id, completed_at=event.completed_at)
        ]
    return []


def react_clock(event: Message) -> list[Message]:
    if isinstance(event, ClockTicked):
        # empty key: one per partition; the network's timers go to its own partition
        return [CheckCommissionTimers(time=event.time), CheckNetworkTimers(network_id=NETWORK, time=event.time)]
    return []


# --- commission's own events (process manager) ---------------------------------------------------


# the own events the process manager reacts to (the rest of commission.events needs no routing)
ROUTED_OWN_EVENTS: tuple[type[Message], ...] = (
    DistributorRegistered,
    DistributorLinked,
    DistributorGradeChanged,
    QualificationRenewed,
    CommissionPlanChanged,
    SkuRateChanged,
    CustomerFirstSeen,
    CommissionBecamePayable,
    CommissionClawedBack,
    CommissionRecomputed,
    NewMemberRecorded,
)


def react_own(event: Message) -> list[Message]:
    found = change_of(event)
    if found is not None:
        seq, change = found
        return [ReplicateNetwork(seq=seq, change=change)]
    if isinstance(event, CustomerFirstSeen):
        if REFERRAL_SOURCE == "order":
            return [
                RecordMemberPurchase(
                    member_id=event.member_id, order_id=event.order_id, distributor_id=event.distributor_id, paid_at=event.paid_at
                )
            ]
        return []
    if isinstance(event, CommissionBecamePayable):
        return [
            CreditCommission(
                distributor_id=p.distributor_id, seller_id=event.distributor_id, available_at=event.due_at, lines=list(p.lines)
            )
            for p in event.payouts
            if p.lines
        ]
    if isinstance(event, CommissionClawedBack) and event.due_at is not None:
        charges: dict[str, list[PayoutLine]] = {}
        for line in event.lines:
            for lc in line.levels:
                if lc.after_release and lc.amount:
                    charges.setdefault(lc.distributor_id, []).append(
                        PayoutLine(kind="clawback", ref=event.order_id, sku=line.sku, level=lc.level, amount=-lc.amount)
                    )
        return [
            ChargeClawback(
                distributor_id=who,
                seller_id=event.distributor_id,
                order_id=event.order_id,
                refund_id=event.refund_id,
                available_at=event.due_at,
                lines=lines,
            )
            for who, lines in charges.items()
        ]
    if isinstance(event, CommissionRecomputed):
        return _settle_adjustments(event)
    if isinstance(event, NewMemberRecorded) and event.distributor_id:
        return [
            AwardReferralBonus(
                distributor_id=event.distributor_id, member_id=event.member_id, order_id=event.order_id, paid_at=event.paid_at
            )
        ]
    return []


def _settle_adjustments(event: CommissionRecomputed) -> list[Message]:
    """Recomputed shares already in the accounts: the difference is credited or charged."""
    if event.due_at is None:
        return []
    credits: dict[str, list[PayoutLine]] = {}
    charges: dict[str, list[PayoutLine]] = {}
    for a in event.adjustments:
        if a.after_release and a.delta:
            line = PayoutLine(kind="adjustment", ref=event.order_id, sku=a.sku, level=a.level, amount=a.delta)
            (credits if a.delta > 0 else charges).setdefault(a.distributor_id, []).append(line)
    out: list[Message] = [
        CreditCommission(distributor_id=who, seller_id=event.distributor_id, available_at=event.due_at, lines=ls)
        for who, ls in credits.items()
    ]
    ref = f"recompute-{event.network_seq}"
    out += [
        ChargeClawback(
            distributor_id=who,
            seller_id=event.distributor_id,
            order_id=event.order_id,
            refund_id=ref,
            available_at=event.due_at,
            lines=ls,
        )
        for who, ls in charges.items()
    ]
    return out
