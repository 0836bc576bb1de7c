"""Loyalty's state and its fold: `new_state`, and `evolve(state, event)` that applies one event to a
partition's state (the columnar `Loyalty` of `members.py`) through its evolver in `EVOLVERS`, one per
event type, and returns the state.

Nothing is decided here — derived events come only from `decide` (domain.py) — so folding the log
again (a rebuild, a new instance, the read model) gives the same state and emits nothing (R-X-2).
After any change to a member's timers the member is re-listed in the agenda under its next day.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flexchain.messages import Message
from services.loyalty.lifecycle import due_of
from services.loyalty.members import NO_DAY, Loyalty, Member, OpenOrder, batch, batch_day, batch_points
from services.loyalty.messages import (
    ACTIONS,
    STAGES,
    TIERS,
    BatchPoints,
    BehaviourRecorded,
    ChurnWarningRaised,
    LoyaltyCommandRejected,
    MemberDiscountQuoted,
    MemberJoined,
    MembersEvaluated,
    PointsEarned,
    PointsExpired,
    PointsRedeemed,
    PointsReleased,
    PointsReversed,
    PurchaseCompleted,
    PurchaseRecorded,
    PurchaseReversed,
    ReferralCompleted,
    ReplenishmentReminderRaised,
    RfmSegmentChanged,
    StageChanged,
    StreakGiftEarned,
    TierChanged,
    UsageCycleApplied,
    UsageCycleConfigured,
)
from services.loyalty.rules import LoyaltyConfig, add_streak_month, day_of, month_of, rfm_code

__all__ = [
    "EVOLVERS",
    "NO_DAY",
    "Loyalty",
    "Member",
    "OpenOrder",
    "batch",
    "batch_day",
    "batch_points",
    "evolve",
    "new_state",
]


def new_state(config: LoyaltyConfig | None = None) -> Loyalty:
    return Loyalty(config or LoyaltyConfig())


def evolve(st: Loyalty, e: Message) -> Loyalty:
    fold = EVOLVERS.get(type(e))
    if fold is not None:
        fold(st, e)
    return st


def _reschedule(st: Loyalty, row: int) -> None:
    st.schedule(row, due_of(st, row))


def _joined(st: Loyalty, e: MemberJoined) -> None:
    if e.member_id not in st.rows:
        row = st.add_member(e.member_id, day_of(e.joined_at, st.config), e.referrer_id)
        _reschedule(st, row)


def _recorded(st: Loyalty, e: PurchaseRecorded) -> None:
    cfg = st.config
    row = st.rows[e.member_id]
    day = day_of(e.paid_at, cfg)
    st.rfm_leave(row)
    m = st.member_at(row)
    m.count_purchase(day, e.amount)
    st.first_day[row], st.last_day[row], st.orders[row] = m.first_day, m.last_day, m.orders
    st.purchase_days[row], st.spend[row] = m.purchase_days, m.spend
    st.rfm_enter(row)
    st.open_orders[e.order_id] = OpenOrder(row, e.amount, 0, e.points, day)
    if e.run_outs:
        reminders = st.reminders.setdefault(row, {})
        for r in e.run_outs:
            reminders[r.sku] = (day_of(r.run_out_at, cfg), e.order_id)
    _reschedule(st, row)


def _add_points(st: Loyalty, row: int, expires_at: int, points: int) -> None:
    day = day_of(expires_at, st.config)
    batches = st.batches_at(row)
    same = next((i for i, b in enumerate(batches) if batch_day(b) == day), None)
    if same is None:
        batches.append(batch(day, points))
    else:  # batches expiring the same day are one batch
        batches[same] = batch(day, batch_points(batches[same]) + points)
    st.set_batches(row, batches)
    _reschedule(st, row)


def _take_points(st: Loyalty, row: int, taken: list[BatchPoints]) -> None:
    left = {batch_day(b): batch_points(b) for b in st.batches_at(row)}
    for t in taken:
        day = day_of(t.expires_at, st.config)
        left[day] = left.get(day, 0) - t.points
    st.set_batches(row, [batch(d, p) for d, p in left.items() if p > 0])
    _reschedule(st, row)


def _earned(st: Loyalty, e: PointsEarned) -> None:
    row = st.rows[e.member_id]
    if e.pending:
        st.pending[row] += e.points
    elif e.expires_at is not None:
        _add_points(st, row, e.expires_at, e.points)


def _released(st: Loyalty, e: PointsReleased) -> None:
    row = st.rows[e.member_id]
    st.pending[row] -= e.points
    _add_points(st, row, e.expires_at, e.points)


def _redeemed(st: Loyalty, e: PointsRedeemed) -> None:
    _take_points(st, st.rows[e.member_id], e.taken)


def _expired(st: Loyalty, e: PointsExpired) -> None:
    _take_points(st, st.rows[e.member_id], e.batches)


def _reversed_points(st: Loyalty, e: PointsReversed) -> None:
    row = st.rows[e.member_id]
    st.pending[row] -= e.from_pending
    _take_points(st, row, e.taken)


def _completed(st: Loyalty, e: PurchaseCompleted) -> None:
    order = st.open_orders.pop(e.order_id, None)
    if order is not None:
        row = order.member_row
        st.streak[row], _ = add_streak_month(st.streak[row], month_of(order.paid_day), st.config.streak_months)


def _purchase_reversed(st: Loyalty, e: PurchaseReversed) -> None:
    row = st.rows[e.member_id]
    st.rfm_leave(row)
    st.spend[row] = max(0, st.spend[row] - e.amount)
    st.rfm_enter(row)
    order = st.open_orders.get(e.order_id)
    if order is not None and order.member_row == row:
        order = order._replace(refunded=order.refunded + e.amount)
        if e.fully_refunded or order.refunded >= order.paid:
            del st.open_orders[e.order_id]  # no completion will come
        else:
            st.open_orders[e.order_id] = order


def _behaved(st: Loyalty, e: BehaviourRecorded) -> None:
    row = st.rows[e.member_id]
    day = day_of(e.recorded_at, st.config)
    acts = st.acts[row]
    mask = acts & 7 if acts >> 3 == day else 0
    st.acts[row] = day << 3 | mask | 1 << ACTIONS.index(e.action)
    st.interactions[row] += e.growth


def _tier_changed(st: Loyalty, e: TierChanged) -> None:
    st.tier[st.rows[e.member_id]] = TIERS.index(e.tier)


def _stage_changed(st: Loyalty, e: StageChanged) -> None:
    row = st.rows[e.member_id]
    st.stage[row] = STAGES.index(e.stage)
    _reschedule(st, row)


def _reminded(st: Loyalty, e: ReplenishmentReminderRaised) -> None:
    row = st.rows[e.member_id]
    reminders = st.reminders.get(row, {})
    if reminders.get(e.sku, (None,))[0] == day_of(e.run_out_at, st.config):
        del reminders[e.sku]
        if not reminders:
            st.reminders.pop(row, None)
    _reschedule(st, row)


def _referred(st: Loyalty, e: ReferralCompleted) -> None:
    st.referrers.pop(st.rows[e.member_id], None)


def _segment(st: Loyalty, e: RfmSegmentChanged) -> None:
    st.rfm[st.rows[e.member_id]] = rfm_code(e.recency, e.frequency, e.monetary)


def _cycle(st: Loyalty, e: UsageCycleApplied) -> None:
    if e.cycle_days > 0:
        st.cycles[e.sku] = e.cycle_days
    else:
        st.cycles.pop(e.sku, None)


def _evaluated(st: Loyalty, e: MembersEvaluated) -> None:
    day = day_of(e.day, st.config)
    st.drop_agenda(day)
    st.evaluated_day = max(st.evaluated_day, day)
    if e.rfm_recomputed:
        st.rfm_dirty = False


def _unchanged(st: Loyalty, e: Message) -> None:
    """A quote, a churn warning, a streak gift, a refusal, and a usage cycle (each partition folds
    it as `UsageCycleApplied`, through the router) leave the partition's state as it was."""


EVOLVERS: dict[type[Message], Callable[[Loyalty, Any], None]] = {
    MemberJoined: _joined,
    PurchaseRecorded: _recorded,
    PurchaseCompleted: _completed,
    PurchaseReversed: _purchase_reversed,
    BehaviourRecorded: _behaved,
    PointsEarned: _earned,
    PointsReleased: _released,
    PointsRedeemed: _redeemed,
    PointsExpired: _expired,
    PointsReversed: _reversed_points,
    TierChanged: _tier_changed,
    StageChanged: _stage_changed,
    ReplenishmentReminderRaised: _reminded,
    ReferralCompleted: _referred,
    RfmSegmentChanged: _segment,
    UsageCycleApplied: _cycle,
    MembersEvaluated: _evaluated,
    MemberDiscountQuoted: _unchanged,
    ChurnWarningRaised: _unchanged,
    StreakGiftEarned: _unchanged,
    UsageCycleConfigured: _unchanged,
    LoyaltyCommandRejected: _unchanged,
}
