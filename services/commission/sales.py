"""The seller side (pure): a paid order's commission split up the chain, clawed back on refunds,
payable when the return window closes — then handed to each beneficiary's account, due T+7;
monthly targets; new members.

Decided in the partition of the order's level-1 distributor (the seller), from its replica of the
network: one `CommissionAccrued` per paid order lists every line, level, beneficiary, rate and amount
— the whole chain behind the commission (R-COM-6) in one record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from flexchain.messages import Message
from services.commission.messages import (
    AccruedLine,
    BeneficiaryPayout,
    ClawbackLine,
    CommissionAccrued,
    CommissionBecamePayable,
    CommissionClawedBack,
    CommissionRecomputed,
    CustomerFirstSeen,
    DistributorRecord,
    LevelAdjustment,
    LevelClawback,
    LevelShare,
    MonthlyTargetClosed,
    NetworkChange,
    NewMemberRecorded,
    OrderCommissionParked,
    PaidLine,
    PayoutLine,
    RecordMemberPurchase,
    RecordOrderCompleted,
    RecordOrderPaid,
    RecordOrderRefund,
)
from services.commission.model import CommissionState, Line, Network, OrderCommission, Share, Totals, refuse, upline_chain
from services.commission.plan import MAX_LEVELS, ZERO, commission, month_of, premium, tier_of


def merge_lines(lines: list[PaidLine]) -> list[PaidLine]:
    """One line per sku (a sku paid on two lines is one line for commission and refunds)."""
    merged: dict[str, PaidLine] = {}
    for line in lines:
        prev = merged.get(line.sku)
        merged[line.sku] = (
            line if prev is None else PaidLine(sku=line.sku, qty=prev.qty + line.qty, amount=prev.amount + line.amount)
        )
    return list(merged.values())


def qualified(rec: DistributorRecord, at: int) -> bool:
    return rec.qualified_until is None or at < rec.qualified_until


def line_shares(
    net: Network, records: Mapping[str, DistributorRecord], chain: list[str], sku: str, amount: int, paid_at: int
) -> list[LevelShare]:
    """One share per level of `chain`: level 1's rate is the sku's own when it has one, else the
    plan's; each beneficiary's grade adds its premium (R-COM-2); all as in force at `paid_at` (R-COM-5);
    an expired qualification earns nothing (R-COM-6)."""
    plan = net.plan_at(paid_at).plan
    sku_rate = net.sku_rate_at(sku, paid_at)
    shares: list[LevelShare] = []
    for level, who in enumerate(chain, start=1):
        rec = records[who]
        base = sku_rate if level == 1 and sku_rate is not None else plan.level_rates[level - 1]
        rate, note = base + premium(plan, rec.grade, level), ""
        if not qualified(rec, paid_at):
            rate, note = ZERO, f"qualification expired at {rec.qualified_until}"
        shares.append(
            LevelShare(level=level, distributor_id=who, grade=rec.grade, rate=rate, amount=commission(rate, amount), note=note)
        )
    return shares


def accrue(
    state: CommissionState,
    records: Mapping[str, DistributorRecord],
    seller: str,
    order_id: str,
    member_id: str,
    paid_at: int,
    lines: list[PaidLine],
) -> CommissionAccrued:
    """Per line, one share per level up the chain: the `levels` of the plan in force at `paid_at`,
    never more than 3 (R-COM-1)."""
    net = state.network
    chain = upline_chain(records, seller, min(net.plan_at(paid_at).plan.levels, MAX_LEVELS))
    out = [
        AccruedLine(
            sku=line.sku,
            qty=line.qty,
            paid_amount=line.amount,
            shares=line_shares(net, records, chain, line.sku, line.amount, paid_at),
        )
        for line in lines
    ]
    total = sum(s.amount for line in out for s in line.shares)
    return CommissionAccrued(
        distributor_id=seller,
        order_id=order_id,
        member_id=member_id,
        paid_at=paid_at,
        network_seq=net.seq,
        lines=out,
        total=total,
    )


def accrued_with_customer(state: CommissionState, acc: CommissionAccrued) -> list[Message]:
    """The accrual, and the member's first purchase through this partition's sellers, if it is one."""
    if acc.member_id in state.customers:
        return [acc]
    return [
        acc,
        CustomerFirstSeen(distributor_id=acc.distributor_id, member_id=acc.member_id, order_id=acc.order_id, paid_at=acc.paid_at),
    ]


def recompute(state: CommissionState, net: Network, change: NetworkChange, effective_from: int, now: int) -> list[Message]:
    """A plan or sku-rate change (`net` = the network with it) for orders paid from `effective_from`:
    each order of this partition paid since then, split without it and affected by it, gets the
    shares it should have had (R-COM-5: a change applies to every order paid after it, however late
    the change reaches the partition). Chains are kept as recorded; levels added follow the tree."""
    sku = change.sku_rate.sku if change.sku_rate is not None else None
    out: list[Message] = []
    for order in state.orders.values():
        if order.paid_at < effective_from or order.network_seq >= net.seq:
            continue
        if sku is not None and all(line.sku != sku for line in order.lines):
            continue
        fixed = resplit(state, net, order, now)
        if fixed is not None:
            out.append(fixed)
    return out


def resplit(state: CommissionState, net: Network, order: OrderCommission, now: int) -> CommissionRecomputed | None:
    """The order split again with `net` (its plan and sku rates as in force when it was paid), or
    None if nothing changes: the shares and, per share, what its net commission changes by."""
    levels = min(net.plan_at(order.paid_at).plan.levels, MAX_LEVELS)
    old_chain = [s.distributor_id for s in order.lines[0].shares] if order.lines else []
    records = net.distributors
    chain = old_chain[:levels]
    if len(chain) < levels and chain:
        chain += upline_chain(records, chain[-1], levels - len(chain) + 1)[1:]
    if any(who not in records for who in chain):
        return None
    lines = [
        AccruedLine(
            sku=line.sku,
            qty=line.qty,
            paid_amount=line.paid,
            shares=line_shares(net, records, chain, line.sku, line.paid, order.paid_at),
        )
        for line in order.lines
    ]
    adjustments: list[LevelAdjustment] = []
    for line, new in zip(order.lines, lines, strict=True):
        old_net = {s.level: s for s in line.shares}
        new_levels = {s.level: s for s in new.shares}
        for level in sorted({*old_net, *new_levels}):
            before = old_net[level].net if level in old_net else 0
            share = new_levels.get(level)
            after = commission(share.rate, line.paid - line.refunded) if share is not None else 0
            if after != before:
                who = share.distributor_id if share is not None else old_net[level].distributor_id
                adjustments.append(
                    LevelAdjustment(
                        sku=line.sku,
                        level=level,
                        distributor_id=who,
                        delta=after - before,
                        after_release=order.status == "payable",
                    )
                )
    unchanged = all(
        [(s.level, s.distributor_id, s.rate, s.accrued) for s in line.shares]
        == [(s.level, s.distributor_id, s.rate, s.amount) for s in new.shares]
        for line, new in zip(order.lines, lines, strict=True)
    )
    if unchanged:
        return None
    total = sum(a.delta for a in adjustments)
    return CommissionRecomputed(
        distributor_id=order.seller_id,
        order_id=order.order_id,
        network_seq=net.seq,
        lines=lines,
        adjustments=adjustments,
        total_delta=total,
        recomputed_at=now,
        due_at=order.due_at,
    )


def record_paid(state: CommissionState, cmd: RecordOrderPaid, now: int) -> list[Message]:
    if cmd.order_id in state.orders or cmd.order_id in state.parked:
        return refuse(cmd, f"the commission of order {cmd.order_id} is already recorded")
    if any(line.qty <= 0 or line.amount < 0 for line in cmd.lines):
        return refuse(cmd, "paid lines need a positive qty and an amount >= 0 cents")
    lines = merge_lines(cmd.lines)
    if cmd.distributor_id not in state.network.distributors:  # not registered, or not replicated here yet
        reason = f"distributor {cmd.distributor_id} is not known (yet): the commission waits for the registration"
        return [
            OrderCommissionParked(
                distributor_id=cmd.distributor_id,
                order_id=cmd.order_id,
                member_id=cmd.member_id,
                paid_at=cmd.paid_at,
                lines=lines,
                completed_at=None,
                reason=reason,
            )
        ]
    acc = accrue(state, state.network.distributors, cmd.distributor_id, cmd.order_id, cmd.member_id, cmd.paid_at, lines)
    return accrued_with_customer(state, acc)


def _refunds(order: OrderCommission, cmd: RecordOrderRefund) -> dict[str, int]:
    """Amount refunded now per sku, capped at what is left of the line."""
    asked: dict[str, int] = {}
    for r in cmd.lines:
        asked[r.sku] = asked.get(r.sku, 0) + max(0, r.amount)
    out: dict[str, int] = {}
    for line in order.lines:
        left = line.paid - line.refunded
        amount = left if cmd.everything else min(left, asked.get(line.sku, 0))
        if amount > 0:
            out[line.sku] = amount
    return out


def record_refund(state: CommissionState, cmd: RecordOrderRefund, now: int) -> list[Message]:
    """Claw back in proportion at every level (R-COM-3): each share keeps round(rate × new net)."""
    order = state.orders.get(cmd.order_id)
    if order is None:
        parked = state.parked.get(cmd.order_id)
        if parked is None:
            return refuse(cmd, f"no commission recorded for order {cmd.order_id}")
        asked = {r.sku: r.amount for r in cmd.lines}
        lines = [
            PaidLine(sku=p.sku, qty=p.qty, amount=0 if cmd.everything else max(0, p.amount - asked.get(p.sku, 0)))
            for p in parked.lines
        ]
        return [dataclasses.replace(parked, lines=lines)]
    if cmd.refund_id in order.refunds:
        return refuse(cmd, f"refund {cmd.refund_id} was already clawed back")
    refunds = _refunds(order, cmd)
    if not refunds:
        return refuse(cmd, f"nothing left to claw back on order {cmd.order_id} for this refund")
    out: list[ClawbackLine] = []
    total = 0
    for line in order.lines:
        refunded = refunds.get(line.sku, 0)
        if not refunded:
            continue
        net_amount = line.paid - line.refunded - refunded
        levels = []
        for s in line.shares:
            back = s.net - commission(s.rate, net_amount)
            total += back
            levels.append(LevelClawback(level=s.level, distributor_id=s.distributor_id, amount=back, after_release=s.in_account))
        out.append(ClawbackLine(sku=line.sku, refunded_amount=refunded, net_amount=net_amount, levels=levels))
    return [
        CommissionClawedBack(
            distributor_id=cmd.distributor_id,
            order_id=cmd.order_id,
            refund_id=cmd.refund_id,
            lines=out,
            total=total,
            due_at=order.due_at,
        )
    ]


def record_completed(state: CommissionState, cmd: RecordOrderCompleted, now: int) -> list[Message]:
    order = state.orders.get(cmd.order_id)
    if order is None:
        parked = state.parked.get(cmd.order_id)
        if parked is None:
            return refuse(cmd, f"no commission recorded for order {cmd.order_id}")
        return [dataclasses.replace(parked, completed_at=cmd.completed_at)]
    if order.status != "pending":
        return refuse(cmd, f"the commission of order {order.order_id} is already {order.status}")
    shares = [(line.sku, s.level, s.distributor_id, s.net) for line in order.lines for s in line.shares]
    return [payable(state, order.seller_id, order.order_id, cmd.completed_at, shares)]


def payable(state: CommissionState, seller: str, order_id: str, at: int, shares: list[tuple[str, int, str, int]]) -> Message:
    """The return window closed: each share goes to its beneficiary's account, due T+7 (R-COM-3)."""
    due = at + state.network.plan.payout_delay_ms
    lines: dict[str, list[PayoutLine]] = {}
    for sku, level, who, amount in shares:
        if amount:
            lines.setdefault(who, []).append(PayoutLine(kind="commission", ref=order_id, sku=sku, level=level, amount=amount))
    payouts = [BeneficiaryPayout(distributor_id=who, lines=ls, total=sum(x.amount for x in ls)) for who, ls in lines.items()]
    return CommissionBecamePayable(
        distributor_id=seller, order_id=order_id, payable_at=at, due_at=due, total=sum(p.total for p in payouts), payouts=payouts
    )


def unpark_orders(state: CommissionState, records: Mapping[str, DistributorRecord], seller: str) -> list[Message]:
    """The seller's registration reached this partition: accrue the orders that waited for it."""
    out: list[Message] = []
    waiting = sorted((p.paid_at, p.order_id) for p in state.parked.values() if p.distributor_id == seller)
    for _, order_id in waiting:
        p = state.parked[order_id]
        acc = accrue(state, records, seller, order_id, p.member_id, p.paid_at, p.lines)
        out += accrued_with_customer(state, acc)
        if p.completed_at is not None:
            shares = [(line.sku, s.level, s.distributor_id, s.amount) for line in acc.lines for s in line.shares]
            out.append(payable(state, seller, order_id, p.completed_at, shares))
    return out


# --- on clock ticks ----------------------------------------------------------------------------


def close_months(state: CommissionState, time: int) -> list[Message]:
    """Each seller's past months: the tier reached and its bonus; no tier, no penalty (R-COM-4)."""
    now_month = month_of(time)
    plan = state.network.plan
    out: list[Message] = []
    for seller, months in sorted(state.sales.items()):
        growth = state.growth.get(seller, 0)
        for month, net_sales in sorted(months.items()):
            if month >= now_month:
                continue
            tier, bonus = tier_of(plan, net_sales)
            rec, note = state.network.distributors.get(seller), ""
            if bonus and (rec is None or not qualified(rec, time)):
                bonus, note = 0, "no bonus: qualification expired (R-COM-6)"
            growth += net_sales
            out.append(
                MonthlyTargetClosed(
                    distributor_id=seller,
                    month=month,
                    net_sales=net_sales,
                    tier=tier,
                    bonus=bonus,
                    growth_value=max(0, growth) // 100,
                    closed_at=time,
                    note=note,
                )
            )
    return out


# --- members (referral bonus, R-COM-4) ---------------------------------------------------------


def record_member(state: CommissionState, cmd: RecordMemberPurchase, now: int) -> list[Message]:
    if cmd.member_id in state.members:
        return []  # not new: nothing to record
    return [
        NewMemberRecorded(member_id=cmd.member_id, order_id=cmd.order_id, distributor_id=cmd.distributor_id, paid_at=cmd.paid_at)
    ]


DECIDERS: dict[type, Callable[[CommissionState, Any, int], list[Message]]] = {
    RecordOrderPaid: record_paid,
    RecordOrderRefund: record_refund,
    RecordOrderCompleted: record_completed,
    RecordMemberPurchase: record_member,
}


# --- evolve -----------------------------------------------------------------------------------


def _add_sales(state: CommissionState, seller: str, paid_at: int, amount: int) -> None:
    month = month_of(paid_at)
    if state.closed.get(seller, "") < month:
        months = state.sales.setdefault(seller, {})
        months[month] = months.get(month, 0) + amount
    else:  # the month is closed: it still counts for growth value
        state.growth[seller] = state.growth.get(seller, 0) + amount


def _accrued(state: CommissionState, e: CommissionAccrued) -> None:
    lines = []
    for al in e.lines:
        for ls in al.shares:
            t = state.totals_of(ls.distributor_id)
            t.accrued += ls.amount
            t.pending += ls.amount
        shares = [Share(ls.level, ls.distributor_id, ls.grade, ls.rate, ls.amount, ls.note) for ls in al.shares]
        lines.append(Line(al.sku, al.qty, al.paid_amount, shares))
    state.orders[e.order_id] = OrderCommission(e.order_id, e.distributor_id, e.member_id, e.paid_at, e.network_seq, lines)
    if state.parked:
        state.parked.pop(e.order_id, None)
    _add_sales(state, e.distributor_id, e.paid_at, sum(al.paid_amount for al in e.lines))


def _recomputed_evolve(state: CommissionState, e: CommissionRecomputed) -> None:
    order = state.orders[e.order_id]
    order.network_seq = e.network_seq
    in_account = order.status == "payable"
    for line, new in zip(order.lines, e.lines, strict=True):
        for s in line.shares:  # the old shares out of the totals ...
            t = state.totals_of(s.distributor_id)
            t.accrued -= s.accrued
            t.clawed -= s.clawed
            _bucket(t, order.status, -s.net)
        line.shares = []
        for ls in new.shares:  # ... the new ones in, with what the refunds so far took back
            kept = commission(ls.rate, line.paid - line.refunded)
            share = Share(ls.level, ls.distributor_id, ls.grade, ls.rate, ls.amount, ls.note, ls.amount - kept, in_account)
            line.shares.append(share)
            t = state.totals_of(ls.distributor_id)
            t.accrued += share.accrued
            t.clawed += share.clawed
            _bucket(t, order.status, share.net)


def _bucket(t: Totals, status: str, amount: int) -> None:
    if status == "pending":
        t.pending += amount
    else:
        t.payable += amount  # in the accounts: settled there (credit or charge)


def _parked(state: CommissionState, e: OrderCommissionParked) -> None:
    state.parked[e.order_id] = e


def _clawed_back(state: CommissionState, e: CommissionClawedBack) -> None:
    order = state.orders[e.order_id]
    order.refunds.append(e.refund_id)
    by_sku = {line.sku: line for line in order.lines}
    for cl in e.lines:
        line = by_sku[cl.sku]
        line.refunded += cl.refunded_amount
        for lc in cl.levels:
            line.shares[lc.level - 1].clawed += lc.amount
            t = state.totals_of(lc.distributor_id)
            t.clawed += lc.amount
            if order.status == "pending":
                t.pending -= lc.amount
            else:
                t.payable -= lc.amount  # charged to the account: netted in a batch (R-COM-3)
    _add_sales(state, order.seller_id, order.paid_at, -sum(cl.refunded_amount for cl in e.lines))


def _became_payable(state: CommissionState, e: CommissionBecamePayable) -> None:
    order = state.orders[e.order_id]
    order.status, order.payable_at, order.due_at = "payable", e.payable_at, e.due_at
    for line in order.lines:
        for s in line.shares:
            s.in_account = True
            t = state.totals_of(s.distributor_id)
            t.pending -= s.net
            t.payable += s.net


def _month_closed(state: CommissionState, e: MonthlyTargetClosed) -> None:
    months = state.sales.get(e.distributor_id, {})
    months.pop(e.month, None)
    if not months:
        state.sales.pop(e.distributor_id, None)
    state.closed[e.distributor_id] = max(state.closed.get(e.distributor_id, ""), e.month)
    state.growth[e.distributor_id] = state.growth.get(e.distributor_id, 0) + e.net_sales


def _customer(state: CommissionState, e: CustomerFirstSeen) -> None:
    state.customers.add(e.member_id)


def _new_member(state: CommissionState, e: NewMemberRecorded) -> None:
    state.members[e.member_id] = e.order_id


EVOLVERS: dict[type, Callable[[CommissionState, Any], None]] = {
    CommissionAccrued: _accrued,
    CommissionRecomputed: _recomputed_evolve,
    OrderCommissionParked: _parked,
    CommissionClawedBack: _clawed_back,
    CommissionBecamePayable: _became_payable,
    MonthlyTargetClosed: _month_closed,
    NewMemberRecorded: _new_member,
    CustomerFirstSeen: _customer,
}
