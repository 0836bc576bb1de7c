"""Loyalty's pure core: members, their tier (R-LOY-1), a points ledger (R-LOY-2), life-cycle stages
and churn warnings (R-LOY-3), replenishment reminders (R-LOY-4), streak gifts and referrals
(R-LOY-5) and RFM segments (R-LOY-6), for the members of one partition.

`decide(state, command, now)` returns events; `evolve(state, event)` (state.py) folds one. Derived events
(stage changes, churn warnings, reminders, gifts, segment changes) are decided only in `decide`,
so a rebuild from the log emits nothing. A refused command is a `LoyaltyCommandRejected` with the
reason; it changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flexchain.messages import Message
from services.loyalty.lifecycle import advance, rfm_pass
from services.loyalty.members import Loyalty, Member, batch_day, batch_points
from services.loyalty.messages import (
    ACTIONS,
    STAGES,
    ApplyUsageCycle,
    BatchPoints,
    BehaviourRecorded,
    CheckMemberTimers,
    CompletePurchase,
    ConfigureUsageCycle,
    JoinMember,
    LoyaltyCommandRejected,
    MemberDiscountQuoted,
    MemberJoined,
    MembersEvaluated,
    PointsEarned,
    PointsRedeemed,
    PointsReleased,
    PointsReversed,
    PurchaseCompleted,
    PurchaseRecorded,
    PurchaseReversed,
    QuoteMemberDiscount,
    RecordBehaviour,
    RecordPurchase,
    RedeemPoints,
    ReferralCompleted,
    ReversePurchase,
    RewardReferrer,
    RunOut,
    StageChanged,
    StreakGiftEarned,
    TierChanged,
    UsageCycleApplied,
    UsageCycleConfigured,
)
from services.loyalty.rules import (
    LoyaltyConfig,
    add_months,
    add_streak_month,
    day_of,
    day_start,
    iso,
    month_name,
    month_of,
    order_points,
    refunded_share,
    stage_on,
)
from services.loyalty.state import evolve, new_state

__all__ = ["CANCELLED", "MAX_CYCLE_DAYS", "decide", "evolve", "new_state"]

CANCELLED = "cancelled"  # the refund id of a cancellation after payment
MAX_CYCLE_DAYS = 3650


# --- decide ------------------------------------------------------------------------------------


def _refuse(cmd: Message, subject: str, reason: str) -> list[Message]:
    return [LoyaltyCommandRejected(subject=subject, command=type(cmd).__name__, reason=reason)]


def decide(st: Loyalty, cmd: Message, now: int) -> list[Message]:
    handler = DECIDERS.get(type(cmd))
    if handler is None:
        return _refuse(cmd, cmd.key, f"{type(cmd).__name__} is not a loyalty command")
    return handler(st, cmd, now)


def _member(st: Loyalty, cmd: Any, member_id: str) -> Member | list[Message]:
    m = st.member(member_id)
    if m is None:
        return _refuse(cmd, member_id, f"unknown member {member_id}")
    return m


def _tier_change(st: Loyalty, m: Member, at: int) -> list[Message]:
    """R-LOY-1: re-evaluated on every change of growth value; a tier can go down."""
    idx = st.config.tier_index(m.growth)
    if idx == m.tier:
        return []
    tier = st.config.tiers[idx]
    previous, m.tier = st.config.tiers[m.tier].name, idx
    return [
        TierChanged(
            member_id=m.member_id,
            previous=previous,
            tier=tier.name,
            growth=m.growth,
            discount_rate=tier.discount_rate,
            changed_at=at,
        )
    ]


def _expires_at(cfg: LoyaltyConfig, day: int) -> int:
    """A batch credited on `day` expires at the start of the same day 12 months later (R-LOY-2)."""
    return day_start(add_months(day, cfg.points_expiry_months), cfg)


def _take(batches: list[int], points: int, day: int, cfg: LoyaltyConfig) -> list[BatchPoints]:
    """Points from the batches still valid on `day`, soonest-expiring first (R-LOY-2)."""
    taken: list[BatchPoints] = []
    need = points
    for b in batches:
        if need == 0:
            break
        if batch_day(b) <= day:
            continue  # expired, the tick has not removed it yet
        n = min(need, batch_points(b))
        taken.append(BatchPoints(expires_at=day_start(batch_day(b), cfg), points=n))
        need -= n
    return taken


def _join(st: Loyalty, cmd: JoinMember, now: int) -> list[Message]:
    if not cmd.member_id:
        return _refuse(cmd, cmd.member_id, "a member id is required")
    if cmd.member_id in st.rows:
        return _refuse(cmd, cmd.member_id, f"member {cmd.member_id} has already joined")
    if cmd.referrer_id == cmd.member_id:
        return _refuse(cmd, cmd.member_id, "a member cannot refer themselves")
    return [MemberJoined(member_id=cmd.member_id, referrer_id=cmd.referrer_id or None, joined_at=now, via="api")]


def _quote(st: Loyalty, cmd: QuoteMemberDiscount, now: int) -> list[Message]:
    """R-LOY-1: the tier in force when the order is placed; a non-member pays the regular price."""
    row = st.rows.get(cmd.member_id)
    tier = st.config.tiers[st.tier[row] if row is not None else 0]
    return [
        MemberDiscountQuoted(member_id=cmd.member_id, order_id=cmd.order_id, tier=tier.name, discount_rate=tier.discount_rate)
    ]


def _purchase(st: Loyalty, cmd: RecordPurchase, now: int) -> list[Message]:
    cfg = st.config
    if cmd.amount < 0:
        return _refuse(cmd, cmd.member_id, "a paid amount cannot be negative")
    if cmd.order_id in st.open_orders:
        return _refuse(cmd, cmd.member_id, f"order {cmd.order_id} is already recorded")
    day = day_of(cmd.paid_at, cfg)
    out: list[Message] = []
    m = st.member(cmd.member_id)
    if m is None:  # a customer becomes a member with a first paid order
        out.append(MemberJoined(member_id=cmd.member_id, referrer_id=None, joined_at=cmd.paid_at, via="order"))
        m = Member.joining(cmd.member_id, day)
    out += advance(cfg, m, day)  # what was due before this purchase happens first
    points = order_points(cfg, cmd.amount)  # R-LOY-2: whole CNY, cents dropped
    run_outs: list[RunOut] = []
    for line in sorted(cmd.lines, key=lambda x: x.sku):
        cycle = st.cycles.get(line.sku, 0)
        if cycle > 0 and line.qty > 0:  # R-LOY-4: a supply not yet run out is added to
            start = max(day, m.reminders[line.sku][0]) if line.sku in m.reminders else day
            run_outs.append(RunOut(sku=line.sku, run_out_at=day_start(start + line.qty * cycle, cfg)))
    out.append(
        PurchaseRecorded(
            member_id=cmd.member_id,
            order_id=cmd.order_id,
            amount=cmd.amount,
            points=points,
            paid_at=cmd.paid_at,
            lines=list(cmd.lines),
            run_outs=run_outs,
        )
    )
    if points:
        out.append(
            PointsEarned(
                member_id=cmd.member_id,
                points=points,
                reason="order",
                source=f"OrderPaid:{cmd.order_id}",
                pending=True,
                expires_at=None,
            )
        )
    m.count_purchase(day, cmd.amount)
    stage = stage_on(cfg, m.last_day, m.joined, m.first_day, m.last_day, m.orders, m.purchase_days)
    if stage != m.stage:
        out.append(StageChanged(member_id=m.member_id, previous=STAGES[m.stage], stage=STAGES[stage], changed_at=cmd.paid_at))
    return out + _tier_change(st, m, cmd.paid_at)


def _complete(st: Loyalty, cmd: CompletePurchase, now: int) -> list[Message]:
    cfg = st.config
    m = _member(st, cmd, cmd.member_id)
    if isinstance(m, list):
        return m
    order = st.open_orders.get(cmd.order_id)
    if order is None or order.member_row != m.row:
        return _refuse(cmd, cmd.member_id, f"order {cmd.order_id} has no pending points (unknown, completed or refunded)")
    day = day_of(cmd.completed_at, cfg)
    out: list[Message] = [PurchaseCompleted(member_id=cmd.member_id, order_id=cmd.order_id, completed_at=cmd.completed_at)]
    release = order.points - order.reversed_points()
    if release > 0:  # R-LOY-2: pending until the return window closes
        source = f"OrderCompleted:{cmd.order_id}"
        out.append(
            PointsReleased(
                member_id=cmd.member_id, order_id=cmd.order_id, points=release, source=source, expires_at=_expires_at(cfg, day)
            )
        )
    _, months = add_streak_month(m.streak, month_of(order.paid_day), cfg.streak_months)
    if months:  # R-LOY-5: completed purchases in consecutive months
        out.append(
            StreakGiftEarned(
                member_id=cmd.member_id,
                months=[month_name(x) for x in months],
                gift_sku=cfg.streak_gift_sku,
                order_id=cmd.order_id,
            )
        )
    if m.referrer is not None:  # R-LOY-5: the referred member's first completed purchase
        pts = cfg.referral_points
        out.append(
            PointsEarned(
                member_id=cmd.member_id,
                points=pts,
                reason="referral",
                source=f"referral:{cmd.member_id}",
                pending=False,
                expires_at=_expires_at(cfg, day),
            )
        )
        out.append(ReferralCompleted(member_id=cmd.member_id, referrer_id=m.referrer, order_id=cmd.order_id, points=pts))
    return out


def _reverse(st: Loyalty, cmd: ReversePurchase, now: int) -> list[Message]:
    """R-LOY-2, R-X-3: a refund takes back the order's points in proportion, never below zero."""
    if cmd.amount == 0 and cmd.order_id not in st.open_orders:
        return []  # nothing paid and nothing pending: an order cancelled before payment (or never a member's)
    cfg = st.config
    m = _member(st, cmd, cmd.member_id)
    if isinstance(m, list):
        return m
    if cmd.amount < 0:
        return _refuse(cmd, cmd.member_id, "a refunded amount cannot be negative")
    if cmd.paid_total < 0 or cmd.refunded_before < 0:
        return _refuse(cmd, cmd.member_id, "an order's paid and refunded amounts cannot be negative")
    source = f"OrderCancelled:{cmd.order_id}" if cmd.refund_id == CANCELLED else f"OrderRefunded:{cmd.order_id}/{cmd.refund_id}"
    out: list[Message] = [
        PurchaseReversed(
            member_id=cmd.member_id,
            order_id=cmd.order_id,
            refund_id=cmd.refund_id,
            amount=cmd.amount,
            fully_refunded=cmd.fully_refunded,
        )
    ]
    order = st.open_orders.get(cmd.order_id)
    taken: list[BatchPoints] = []
    if order is not None and order.member_row == m.row:  # still pending: the exact refunded share
        after = order._replace(refunded=order.refunded + cmd.amount)
        target = order.points if cmd.fully_refunded else after.reversed_points()
        from_pending = points = target - order.reversed_points()
    else:  # completed (its points are in the member's batches)
        from_pending, points = 0, _completed_share(cfg, cmd)
        taken = _take(m.batches, points, day_of(now, cfg), cfg)
    got = from_pending + sum(t.points for t in taken)
    if points > 0:
        out.append(
            PointsReversed(
                member_id=cmd.member_id,
                order_id=cmd.order_id,
                refund_id=cmd.refund_id,
                points=got,
                from_pending=from_pending,
                shortfall=points - got,
                source=source,
                taken=taken,
            )
        )
    m.spend = max(0, m.spend - cmd.amount)
    return out + _tier_change(st, m, now)


def _completed_share(cfg: LoyaltyConfig, cmd: ReversePurchase) -> int:
    """Points a refund of a completed order takes back, from the order's figures on the refund:
    the same cumulative share as while pending — the order's points × refunded ÷ paid, rounded down
    on the cumulative amount (all of them on a full refund) — less what earlier refunds took, so the
    refunds of an order never take back more or less than it earned, however they fall around its
    completion. A record without the figures (`paid_total` 0, written before they were added):
    1 point per whole CNY refunded, each refund on its own."""
    if cmd.paid_total <= 0:
        return order_points(cfg, cmd.amount)
    points = order_points(cfg, cmd.paid_total)  # what the order earned (`_purchase`)
    so_far = refunded_share(points, cmd.refunded_before, cmd.paid_total)
    target = points if cmd.fully_refunded else refunded_share(points, cmd.refunded_before + cmd.amount, cmd.paid_total)
    return max(0, target - so_far)


def _behaviour(st: Loyalty, cmd: RecordBehaviour, now: int) -> list[Message]:
    cfg = st.config
    m = _member(st, cmd, cmd.member_id)
    if isinstance(m, list):
        return m
    if cmd.action not in ACTIONS:
        return _refuse(cmd, cmd.member_id, f"action must be one of {', '.join(ACTIONS)}")
    day = day_of(now, cfg)
    bit = 1 << ACTIONS.index(cmd.action)
    if m.acts >> 3 == day and m.acts & bit:  # R-LOY-2: at most once per business day each
        return _refuse(cmd, cmd.member_id, f"{cmd.action} already recorded on {iso(day)}: at most once per day")
    points, growth = cfg.behaviour_points[cmd.action], cfg.behaviour_growth[cmd.action]
    source = f"{cmd.action}:{iso(day)}"
    out: list[Message] = [
        BehaviourRecorded(member_id=cmd.member_id, action=cmd.action, reference=cmd.reference, growth=growth, recorded_at=now),
        PointsEarned(
            member_id=cmd.member_id,
            points=points,
            reason=cmd.action,
            source=source,
            pending=False,
            expires_at=_expires_at(cfg, day),
        ),
    ]
    m.interactions += growth
    return out + _tier_change(st, m, now)


def _redeem(st: Loyalty, cmd: RedeemPoints, now: int) -> list[Message]:
    m = _member(st, cmd, cmd.member_id)
    if isinstance(m, list):
        return m
    if cmd.points <= 0:
        return _refuse(cmd, cmd.member_id, "points to redeem must be a positive whole number")
    day = day_of(now, st.config)
    available = m.available(day)
    if cmd.points > available:  # R-LOY-2: against available points only
        return _refuse(cmd, cmd.member_id, f"cannot redeem {cmd.points} points: {available} available")
    taken = _take(m.batches, cmd.points, day, st.config)
    source = f"redemption:{cmd.redemption_id}"
    return [
        PointsRedeemed(
            member_id=cmd.member_id,
            redemption_id=cmd.redemption_id,
            points=cmd.points,
            reward=cmd.reward,
            source=source,
            taken=taken,
        )
    ]


def _reward_referrer(st: Loyalty, cmd: RewardReferrer, now: int) -> list[Message]:
    if cmd.member_id not in st.rows:
        return _refuse(cmd, cmd.member_id, f"unknown referrer {cmd.member_id}")
    cfg = st.config
    expires = _expires_at(cfg, day_of(now, cfg))
    return [
        PointsEarned(
            member_id=cmd.member_id,
            points=cfg.referral_points,
            reason="referral",
            source=f"referral:{cmd.referred_id}",
            pending=False,
            expires_at=expires,
        )
    ]


def _configure_cycle(st: Loyalty, cmd: ConfigureUsageCycle, now: int) -> list[Message]:
    if not cmd.sku:
        return _refuse(cmd, cmd.sku, "a sku is required")
    if not 0 <= cmd.cycle_days <= MAX_CYCLE_DAYS:
        return _refuse(cmd, cmd.sku, f"cycle_days must be between 0 and {MAX_CYCLE_DAYS}")
    return [UsageCycleConfigured(sku=cmd.sku, cycle_days=cmd.cycle_days)]


def _apply_cycle(st: Loyalty, cmd: ApplyUsageCycle, now: int) -> list[Message]:
    if st.cycles.get(cmd.sku, 0) == cmd.cycle_days:
        return []
    return [UsageCycleApplied(sku=cmd.sku, cycle_days=cmd.cycle_days)]


def _timers(st: Loyalty, cmd: CheckMemberTimers, now: int) -> list[Message]:
    """R-X-1: a clock tick evaluates the members whose timers are due, and once a business day
    after purchases or refunds, the partition's RFM scores."""
    cfg = st.config
    day = day_of(cmd.time, cfg)
    rows = st.due_rows(day)
    rescore = day > st.evaluated_day and st.rfm_dirty
    if not rows and not rescore:
        return []
    out: list[Message] = []
    for row in rows:
        out += advance(cfg, st.member_at(row), day)
    base = 0
    cut: list[list[int]] = [[], [], []]
    if rescore:
        changes, base, cut = rfm_pass(st)
        out += changes
    recency, frequency, monetary = cut
    evaluated = MembersEvaluated(
        day=day_start(day, cfg),
        time=cmd.time,
        due=len(rows),
        rfm_recomputed=rescore,
        rfm_members=base,
        recency_cuts=recency,
        frequency_cuts=frequency,
        monetary_cuts=monetary,
    )
    return [*out, evaluated]


DECIDERS: dict[type, Callable[[Loyalty, Any, int], list[Message]]] = {
    JoinMember: _join,
    QuoteMemberDiscount: _quote,
    RecordPurchase: _purchase,
    CompletePurchase: _complete,
    ReversePurchase: _reverse,
    RecordBehaviour: _behaviour,
    RedeemPoints: _redeem,
    RewardReferrer: _reward_referrer,
    ConfigureUsageCycle: _configure_cycle,
    ApplyUsageCycle: _apply_cycle,
    CheckMemberTimers: _timers,
}
