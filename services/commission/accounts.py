"""The beneficiary side (pure): a distributor's account — payable commission (each line due T+7),
clawbacks of it (negative lines), bonuses — and its payout batches on business time (R-COM-3, R-COM-4).

A batch runs at every cutoff (multiples of `batch_interval_ms`, default each day 00:00 UTC). It takes
every line due by the cutoff (a clawback is due with the commission it takes back); when their sum
is positive it is paid as one `PayoutBatchSettled` listing the lines, else nothing is paid and the
lines wait — a negative balance is carried into the next batch, never dropped. A line is in exactly
one batch: the event removes it from the account in the same transaction that records the payout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flexchain.messages import Message
from services.commission.messages import (
    AwardReferralBonus,
    ChargeClawback,
    ClawbackCharged,
    CommissionCredited,
    CreditCommission,
    DistributorRecord,
    MonthlyTargetClosed,
    PayoutBatchSettled,
    PayoutCutoffPassed,
    PayoutLine,
    ReferralBonusAwarded,
    ReferralBonusParked,
)
from services.commission.model import CommissionState, Entry, refuse
from services.commission.plan import batch_id, cutoff_of
from services.commission.sales import qualified


def credit(state: CommissionState, cmd: CreditCommission, now: int) -> list[Message]:
    if not cmd.lines:
        return []
    total = sum(line.amount for line in cmd.lines)
    return [
        CommissionCredited(
            distributor_id=cmd.distributor_id,
            seller_id=cmd.seller_id,
            lines=list(cmd.lines),
            total=total,
            available_at=cmd.available_at,
        )
    ]


def charge(state: CommissionState, cmd: ChargeClawback, now: int) -> list[Message]:
    if not cmd.lines:
        return []
    total = sum(line.amount for line in cmd.lines)
    return [
        ClawbackCharged(
            distributor_id=cmd.distributor_id,
            seller_id=cmd.seller_id,
            order_id=cmd.order_id,
            refund_id=cmd.refund_id,
            lines=list(cmd.lines),
            total=total,
            available_at=cmd.available_at,
        )
    ]


def award_referral(state: CommissionState, cmd: AwardReferralBonus, now: int) -> list[Message]:
    rec = state.network.distributors.get(cmd.distributor_id)
    if rec is None:  # registration not replicated here yet: keep it
        return [
            ReferralBonusParked(
                distributor_id=cmd.distributor_id, member_id=cmd.member_id, order_id=cmd.order_id, paid_at=cmd.paid_at
            )
        ]
    return _award(state, rec, cmd.member_id, cmd.order_id, cmd.paid_at, now, cmd)


def _award(
    state: CommissionState, rec: DistributorRecord, member: str, order_id: str, paid_at: int, now: int, cmd: Message
) -> list[Message]:
    if not qualified(rec, paid_at):
        return refuse(cmd, f"no referral bonus: {rec.distributor_id}'s qualification had expired (R-COM-6)", rec.distributor_id)
    amount = state.network.plan_at(paid_at).plan.referral_bonus
    if amount <= 0:
        return refuse(cmd, "the referral bonus is switched off (0)", rec.distributor_id)
    return [
        ReferralBonusAwarded(
            distributor_id=rec.distributor_id, member_id=member, order_id=order_id, amount=amount, awarded_at=now
        )
    ]


def unpark_bonuses(state: CommissionState, rec: DistributorRecord, now: int, cmd: Message) -> list[Message]:
    out: list[Message] = []
    for p in state.parked_bonuses.get(rec.distributor_id, []):
        out += _award(state, rec, p.member_id, p.order_id, p.paid_at, now, cmd)
    return out


def _included(entry: Entry, cutoff: int) -> bool:
    return entry.available_at <= cutoff


def pay_batches(state: CommissionState, time: int) -> list[Message]:
    """The batch of the latest cutoff, for every account not yet paid in it (R-COM-3), and, the first
    time this partition passes that cutoff, the mark that its part of the batch is settled."""
    cutoff = cutoff_of(time, state.network.plan.batch_interval_ms)
    bid = batch_id(cutoff)
    out: list[Message] = []
    if cutoff > state.settled_cutoff:
        out.append(PayoutCutoffPassed(batch_id=bid, cutoff=cutoff, passed_at=time))
    for who, acc in sorted(state.accounts.items()):
        if not acc.entries or acc.last_cutoff >= cutoff:
            continue
        lines = [e.line for e in acc.entries if _included(e, cutoff)]
        gross = sum(x.amount for x in lines if x.amount > 0)
        deductions = sum(x.amount for x in lines if x.amount < 0)
        if gross > 0 and gross + deductions > 0:
            out.append(
                PayoutBatchSettled(
                    distributor_id=who,
                    batch_id=bid,
                    cutoff=cutoff,
                    lines=lines,
                    gross=gross,
                    deductions=deductions,
                    net=gross + deductions,
                    paid_at=time,
                )
            )
    return out


DECIDERS: dict[type, Callable[[CommissionState, Any, int], list[Message]]] = {
    CreditCommission: credit,
    ChargeClawback: charge,
    AwardReferralBonus: award_referral,
}


def _bonus(state: CommissionState, who: str, line: PayoutLine, at: int) -> None:
    state.account(who).entries.append(Entry(line, at))
    t = state.totals_of(who)
    t.accrued += line.amount
    t.bonuses += line.amount
    t.payable += line.amount


def _credited(state: CommissionState, e: CommissionCredited) -> None:
    state.account(e.distributor_id).entries.extend(Entry(line, e.available_at) for line in e.lines)


def _charged(state: CommissionState, e: ClawbackCharged) -> None:
    state.account(e.distributor_id).entries.extend(Entry(line, e.available_at) for line in e.lines)


def _referral(state: CommissionState, e: ReferralBonusAwarded) -> None:
    _bonus(
        state,
        e.distributor_id,
        PayoutLine(kind="referral_bonus", ref=e.member_id, sku="", level=0, amount=e.amount),
        e.awarded_at,
    )
    parked = state.parked_bonuses.get(e.distributor_id)
    if parked is not None:
        rest = [p for p in parked if p.member_id != e.member_id]
        if rest:
            state.parked_bonuses[e.distributor_id] = rest
        else:
            del state.parked_bonuses[e.distributor_id]


def _referral_parked(state: CommissionState, e: ReferralBonusParked) -> None:
    state.parked_bonuses.setdefault(e.distributor_id, []).append(e)


def _monthly(state: CommissionState, e: MonthlyTargetClosed) -> None:
    if e.bonus > 0:
        _bonus(
            state, e.distributor_id, PayoutLine(kind="monthly_bonus", ref=e.month, sku="", level=0, amount=e.bonus), e.closed_at
        )


def batch_progress(states: Iterable[CommissionState], cutoff: int) -> tuple[int, int]:
    """(partitions that have settled their part of the batch of `cutoff`, partitions): each
    beneficiary's partition settles on its own tick, so the batch is complete when both are equal."""
    passed = [state.settled_cutoff >= cutoff for state in states]
    return sum(passed), len(passed)


def payout_overdue(states: Iterable[CommissionState], now: int, interval: int) -> int:
    """How long (ms of business time) the oldest payout batch due by `now` has waited for every
    partition to settle its part, 0 when every batch due is complete (R-COM-3). Operators are told when
    a batch is not complete by its cutoff + N (deploy/prometheus/alerts.yml holds N). A partition that
    never passed a cutoff counts from the latest one, not from the epoch."""
    latest = cutoff_of(now, interval)
    settled = [state.settled_cutoff for state in states]
    if latest <= 0 or not settled:
        return 0
    behind = min(settled)
    if behind >= latest:
        return 0
    oldest = min(latest, behind + interval) if behind > 0 else latest
    return now - oldest


def _cutoff_passed(state: CommissionState, e: PayoutCutoffPassed) -> None:
    state.settled_cutoff = max(state.settled_cutoff, e.cutoff)


def _settled(state: CommissionState, e: PayoutBatchSettled) -> None:
    acc = state.account(e.distributor_id)
    acc.entries = [x for x in acc.entries if not _included(x, e.cutoff)]
    acc.last_cutoff = e.cutoff
    acc.batches.append(e.batch_id)
    t = state.totals_of(e.distributor_id)
    t.payable -= e.net
    t.paid += e.net
    state.batches.setdefault(e.batch_id, []).append(e)


EVOLVERS: dict[type, Callable[[CommissionState, Any], None]] = {
    CommissionCredited: _credited,
    ClawbackCharged: _charged,
    ReferralBonusAwarded: _referral,
    ReferralBonusParked: _referral_parked,
    MonthlyTargetClosed: _monthly,
    PayoutBatchSettled: _settled,
    PayoutCutoffPassed: _cutoff_passed,
}
