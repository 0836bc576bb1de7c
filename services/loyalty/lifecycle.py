"""Time-driven rules, decided (never folded): what happens to a member as business days pass
(batch expiry R-LOY-2, replenishment reminders R-LOY-4, stage changes and the churn warning
R-LOY-3), and the daily RFM pass over a partition (R-LOY-6).

`advance` brings one member forward to a business day, emitting each change with the day it took
effect. The clock tick calls it for the members the agenda says are due; a purchase calls it for
its member first, so a member's changes do not depend on when the ticks arrive (R-X-1).
"""

from __future__ import annotations

from bisect import bisect_right

from flexchain.messages import Message
from services.loyalty.members import NO_DAY, Loyalty, Member, batch_day, batch_points
from services.loyalty.messages import (
    STAGES,
    BatchPoints,
    ChurnWarningRaised,
    PointsExpired,
    ReplenishmentReminderRaised,
    RfmSegmentChanged,
    StageChanged,
)
from services.loyalty.rules import (
    DECLINING,
    LoyaltyConfig,
    cuts,
    day_start,
    iso,
    next_stage_day,
    quintile_scores,
    rfm_scores,
    segment,
    stage_on,
    usual_interval,
)


def advance(cfg: LoyaltyConfig, m: Member, through: int) -> list[Message]:
    """The member's timers due on or before business day `through`; `m` is updated to match."""
    out: list[Message] = []
    expired = [b for b in m.batches if batch_day(b) <= through]
    if expired:
        m.batches = [b for b in m.batches if batch_day(b) > through]
        out.append(
            PointsExpired(
                member_id=m.member_id,
                points=sum(batch_points(b) for b in expired),
                source=f"expiry:{iso(through)}",
                batches=[BatchPoints(expires_at=day_start(batch_day(b), cfg), points=batch_points(b)) for b in expired],
            )
        )
    for sku in sorted(m.reminders):
        run_out, order_id = m.reminders[sku]
        remind = run_out - cfg.reminder_lead_days
        if remind <= through:  # R-LOY-4: 7 days before the estimated run-out
            out.append(
                ReplenishmentReminderRaised(
                    member_id=m.member_id,
                    sku=sku,
                    order_id=order_id,
                    run_out_at=day_start(run_out, cfg),
                    remind_at=day_start(remind, cfg),
                )
            )
            del m.reminders[sku]
    while True:  # R-LOY-3: each stage the member passes through, in order
        day = next_stage_day(cfg, m.stage, m.joined, m.first_day, m.last_day, m.orders, m.purchase_days)
        if day is None or day > through:
            break
        stage = stage_on(cfg, day, m.joined, m.first_day, m.last_day, m.orders, m.purchase_days)
        out.append(
            StageChanged(member_id=m.member_id, previous=STAGES[m.stage], stage=STAGES[stage], changed_at=day_start(day, cfg))
        )
        if stage == DECLINING:  # once per entry into declining, with the evidence
            interval = usual_interval(cfg, m.first_day, m.last_day, m.purchase_days)
            out.append(
                ChurnWarningRaised(
                    member_id=m.member_id,
                    last_purchase_at=day_start(m.last_day, cfg),
                    usual_interval_days=interval,
                    gap_days=day - m.last_day,
                    purchases=m.orders,
                    raised_at=day_start(day, cfg),
                )
            )
        m.stage = stage
    return out


def due_of(st: Loyalty, row: int) -> int:
    """The first business day on which `advance` has something to do for the member (NO_DAY:
    none): its next stage change, its soonest batch expiry or its soonest reminder."""
    packed = st.batches[row]
    first_batch = batch_day(memoryview(packed).cast("q")[0]) if packed else None
    reminders = st.reminders.get(row)
    return _due(
        st.config,
        st.stage[row],
        st.joined[row],
        st.first_day[row],
        st.last_day[row],
        st.orders[row],
        st.purchase_days[row],
        first_batch,
        reminders,
    )


def _due(
    cfg: LoyaltyConfig,
    stage: int,
    joined: int,
    first: int,
    last: int,
    orders: int,
    purchase_days: int,
    first_batch: int | None,
    reminders: dict[str, tuple[int, str]] | None,
) -> int:
    stage_day = next_stage_day(cfg, stage, joined, first, last, orders, purchase_days)
    days = [] if stage_day is None else [stage_day]
    if first_batch is not None:
        days.append(first_batch)
    if reminders:
        days.append(min(run_out for run_out, _ in reminders.values()) - cfg.reminder_lead_days)
    return min(days) if days else NO_DAY


def rfm_pass(st: Loyalty) -> tuple[list[Message], int, list[list[int]]]:
    """R-LOY-6: score every purchasing member of the partition against the partition's quintiles.

    Returns the segment changes, the size of the base and the cuts (recency, frequency, monetary).
    The quintiles come from the partition's histograms; a member's score is then the number of
    cuts its values reach, so the pass is one walk over four columns with three bisections a row."""
    r_cuts = cuts(quintile_scores(st.hist_recency))
    f_cuts = cuts(quintile_scores(st.hist_frequency))
    m_cuts = cuts(quintile_scores(st.hist_monetary))  # bucket floors: spend ≥ cut ⟺ its bucket ≥ cut
    out: list[Message] = []
    base = 0
    ids = st.ids
    columns = zip(st.first_day, st.last_day, st.orders, st.spend, st.rfm, strict=True)
    for row, (first, last, orders, spend, code) in enumerate(columns):
        if first == NO_DAY:
            continue
        base += 1
        new = bisect_right(r_cuts, last) * 25 + bisect_right(f_cuts, orders) * 5 + bisect_right(m_cuts, spend)
        if new != code:
            r, f, m = rfm_scores(new)
            out.append(
                RfmSegmentChanged(
                    member_id=ids[row], recency=r, frequency=f, monetary=m, segment=segment(new), previous_segment=segment(code)
                )
            )
    return out, base, [r_cuts, f_cuts, m_cuts]
