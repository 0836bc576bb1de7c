"""Presale's pure core: `decide(book, command, now) -> [events]` for the campaigns of one partition.

Campaign life cycle (R-PRE-1): draft → scheduled → open (launched) → succeeded | failed; a campaign
closed before its launch is cancelled. Intent deposits before the launch (R-PRE-2); pledges priced by
the phase in force at the order's business time (R-PRE-3) and capped at 80 % of capacity (R-PRE-4);
payments split into escrow buckets (R-PRE-5); milestone releases after success (R-PRE-6); the close
(R-PRE-7); shared price rises (R-PRE-8); risk signals and supplier lateness (R-PRE-9). Every refused
command is one `PresaleCommandRejected` (or `PledgeRejected` for an order) that changes nothing;
money is conserved at every event (R-PRE-10, see `state`). Derived events are decided here only.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flexchain.messages import Message
from services.presale.messages import (
    AnswerPriceRise,
    AskSupplier,
    BuyerNoticeRequired,
    CampaignClosed,
    CampaignCreated,
    CampaignLaunched,
    CampaignScheduled,
    CheckCampaignTimers,
    CloseCampaign,
    CollectDeposit,
    CreateCampaign,
    DepositCollected,
    DepositRefunded,
    FinalBatchConfirmed,
    FirstBatchPlanned,
    GroupCompleted,
    GroupDissolved,
    GroupJoined,
    IntakeClosed,
    LaunchCampaign,
    LaunchThresholdReached,
    PhaseChanged,
    PlanMilestone,
    PledgeAccepted,
    PledgeRejected,
    PriceRiseOfferExpired,
    RecordMilestone,
    RecordOrderRefund,
    RecordPayment,
    RecordPledge,
    RecordPriceRise,
    RecordSupplierAnswer,
    ReleasePledge,
    ScheduleCampaign,
    SupplierPenaltyIncurred,
)
from services.presale.money import (
    drop_pledge,
    held_split,
    is_refusal,
    iso,
    plan_milestone,
    record_milestone,
    record_payment,
    record_refund,
    refuse,
    release_pledge,
)
from services.presale.risk import signal_events
from services.presale.rules import (
    DAY_MS,
    DEFAULT_MILESTONES,
    ENDED,
    GROUP,
    SPLITS,
    UPCOMING,
    PresaleConfig,
    capacity_cap,
    first_batch,
    launch_threshold,
    phase_at,
    unit_price,
)
from services.presale.state import (
    CANCELLED,
    CLOSED,
    DRAFT,
    FAILED,
    OPEN,
    P_OPEN,
    P_VOID,
    SCHEDULED,
    SUCCEEDED,
    Campaign,
    PresaleBook,
    count,
    evolve,
    new_state,
)
from services.presale.supply import answer_price_rise, ask_supplier, record_price_rise, supplier_answered

__all__ = ["PresaleBook", "decide", "evolve", "is_refusal", "new_state"]

Handler = Callable[[PresaleConfig, Campaign, Any, int], list[Message]]


# --- decide --------------------------------------------------------------------------------------


def decide(book: PresaleBook, cmd: Message, now: int) -> list[Message]:
    cfg = book.config
    if isinstance(cmd, CheckCampaignTimers):
        return _check_timers(book, cmd, now)
    if isinstance(cmd, CreateCampaign):
        return _create(book, cmd, now)
    found = book.campaigns.get(cmd.key)
    if found is None:
        if isinstance(cmd, RecordPledge):
            return [
                PledgeRejected(campaign_id=cmd.campaign_id, order_id=cmd.order_id, reason=f"unknown campaign {cmd.campaign_id}")
            ]
        return refuse(cmd, f"unknown campaign {cmd.key}")
    handler = _CAMPAIGN_DECIDERS.get(type(cmd))
    if handler is None:
        return refuse(cmd, f"{type(cmd).__name__} is not a presale command")
    return _with_signals(cfg, found, handler(cfg, found, cmd, now), now)


def _with_signals(cfg: PresaleConfig, c: Campaign, events: list[Message], now: int, always: bool = False) -> list[Message]:
    """Append the risk signals that the campaign's figures after `events` raise or clear (R-PRE-9)."""
    if not always and (not events or all(is_refusal(e) for e in events)):
        return events
    after = c.tally.copy()
    for e in events:
        count(after, e)
    return events + signal_events(c, after, now, cfg)


# --- R-PRE-1, R-PRE-2: campaigns, schedule, deposits, launch ---------------------------------------


def _check_timers(book: PresaleBook, cmd: CheckCampaignTimers, now: int) -> list[Message]:
    cfg = book.config
    out: list[Message] = []
    for _, c in sorted(book.campaigns.items()):
        out += _with_signals(cfg, c, _timers(cfg, c, cmd.time), cmd.time, always=True)
    return out


def _create(book: PresaleBook, cmd: CreateCampaign, now: int) -> list[Message]:
    cfg = book.config
    if cmd.campaign_id in book.campaigns:
        return refuse(cmd, f"campaign {cmd.campaign_id} already exists")
    if not cmd.product.strip():
        return refuse(cmd, "a campaign needs a product")
    for name, value in (("unit_cost", cmd.unit_cost), ("fan_base", cmd.fan_base), ("moq", cmd.moq)):
        if value <= 0:
            return refuse(cmd, f"{name} must be positive, got {value}")
    cap = capacity_cap(cmd.max_capacity, cfg)
    if cmd.max_capacity <= 0 or cmd.moq > cap:
        return refuse(cmd, f"MOQ {cmd.moq} must fit under the intake cap {cap} (80 % of capacity {cmd.max_capacity})")
    if cmd.split not in SPLITS:
        return refuse(cmd, f"split must be one of {', '.join(SPLITS)}")
    shares = dict(DEFAULT_MILESTONES if cmd.milestone_shares is None else cmd.milestone_shares)
    if not shares or any(not m.strip() or s <= 0 for m, s in shares.items()):
        return refuse(cmd, "each milestone needs a name and a positive share")
    if sum(shares.values()) != Decimal(1):
        return refuse(cmd, f"milestone shares must add up to 1, got {sum(shares.values())}")
    return [
        CampaignCreated(
            campaign_id=cmd.campaign_id,
            product=cmd.product,
            unit_cost=cmd.unit_cost,
            fan_base=cmd.fan_base,
            moq=cmd.moq,
            max_capacity=cmd.max_capacity,
            split=cmd.split,
            milestone_shares=shares,
            created_at=now,
        )
    ]


def _schedule(cfg: PresaleConfig, c: Campaign, cmd: ScheduleCampaign, now: int) -> list[Message]:
    if c.status not in (DRAFT, SCHEDULED):
        return refuse(cmd, f"campaign is {c.status}: the schedule can no longer change")
    if cmd.ends_at - cmd.starts_at < cfg.shortest_campaign_ms:
        hours = cfg.shortest_campaign_ms // 3_600_000
        return refuse(cmd, f"a campaign runs at least {hours} h (72 h early bird + 48 h group phase)")
    if cmd.ends_at <= now:
        return refuse(cmd, f"the schedule ends in the past ({iso(cmd.ends_at)})")
    if cmd.delivery_at is not None and cmd.delivery_at <= cmd.ends_at:
        return refuse(cmd, "delivery must come after the campaign ends")
    return [
        CampaignScheduled(
            campaign_id=c.campaign_id,
            starts_at=cmd.starts_at,
            ends_at=cmd.ends_at,
            delivery_at=cmd.delivery_at,
            early_bird_ends=cmd.starts_at + cfg.early_bird_ms,
            group_starts=cmd.ends_at - cfg.group_ms,
        )
    ]


def _deposit(cfg: PresaleConfig, c: Campaign, cmd: CollectDeposit, now: int) -> list[Message]:
    if c.status not in (DRAFT, SCHEDULED):
        return refuse(cmd, f"campaign is {c.status}: intent deposits are collected before the launch")
    if cmd.amount <= 0:
        return refuse(cmd, f"amount must be positive cents, got {cmd.amount}")
    if not cfg.deposit_min <= cmd.amount <= cfg.deposit_max:
        return refuse(cmd, f"an intent deposit is {cfg.deposit_min}–{cfg.deposit_max} cents, got {cmd.amount}")
    if cmd.deposit_id in c.deposits:
        return refuse(cmd, f"deposit {cmd.deposit_id} was already collected")
    if cmd.member_id in c.depositors:
        return refuse(cmd, f"member {cmd.member_id} already left deposit {c.depositors[cmd.member_id]}")
    depositors = len(c.depositors) + 1
    out: list[Message] = [
        DepositCollected(
            campaign_id=c.campaign_id,
            deposit_id=cmd.deposit_id,
            member_id=cmd.member_id,
            amount=cmd.amount,
            depositors=depositors,
            at=now,
        )
    ]
    needed = launch_threshold(c.fan_base, cfg)
    if not c.launch_signal and depositors >= needed:  # R-PRE-2, once
        out.append(LaunchThresholdReached(campaign_id=c.campaign_id, depositors=depositors, needed=needed, fan_base=c.fan_base))
    return out


def _launch(cfg: PresaleConfig, c: Campaign, cmd: LaunchCampaign, now: int) -> list[Message]:
    if c.status == DRAFT:
        return refuse(cmd, "schedule the campaign before launching it")
    if c.status != SCHEDULED:
        return refuse(cmd, f"campaign is {c.status}: it can be launched once")
    assert c.starts_at is not None and c.ends_at is not None
    if now >= c.ends_at:
        return refuse(cmd, f"the schedule already ended ({iso(c.ends_at)})")
    if not c.launch_signal and not cmd.force:
        needed = launch_threshold(c.fan_base, cfg)
        return refuse(
            cmd,
            f"demand not validated: {len(c.depositors)} depositors, {needed} needed (1.5 % of fan base {c.fan_base}); "
            "launch with force to override",
        )
    phase = phase_at(c.starts_at, c.ends_at, now, cfg)
    return [
        CampaignLaunched(
            campaign_id=c.campaign_id, launched_at=now, depositors=len(c.depositors), validated=c.launch_signal, phase=phase
        )
    ]


# --- R-PRE-3, R-PRE-4: pledges ------------------------------------------------------------------


def _pledge(cfg: PresaleConfig, c: Campaign, cmd: RecordPledge, now: int) -> list[Message]:
    def reject(reason: str) -> list[Message]:
        return [PledgeRejected(campaign_id=c.campaign_id, order_id=cmd.order_id, reason=reason)]

    if cmd.order_id in c.pledges:
        return refuse(cmd, f"order {cmd.order_id} is already pledged")
    if cmd.units <= 0:
        return reject(f"units must be positive, got {cmd.units}")
    if c.status in (DRAFT, SCHEDULED):
        return reject(f"campaign {c.campaign_id} is not launched")
    if c.status in CLOSED:
        return reject(f"campaign {c.campaign_id} is closed ({c.status})")
    assert c.starts_at is not None and c.ends_at is not None
    phase = phase_at(c.starts_at, c.ends_at, now, cfg)
    if phase == UPCOMING:
        return reject(f"campaign {c.campaign_id} opens at {iso(c.starts_at)}")
    if phase == ENDED:
        return reject(f"campaign {c.campaign_id} ended at {iso(c.ends_at)}")
    if c.intake_closed is not None:
        return reject(f"intake closed: {c.intake_closed}")
    cap = capacity_cap(c.max_capacity, cfg)
    left = cap - c.tally.pledged_units
    if cmd.units > left:  # R-PRE-4
        return reject(
            f"beyond the capacity cap: {cmd.units} units asked, {left} left of {cap} (80 % of capacity {c.max_capacity})"
        )
    gid = cmd.group_id if phase == GROUP else None  # a group id outside the last 48 h is ignored
    group = c.groups.get(gid) if gid is not None else None
    if group is not None:
        if group.dissolved or group.completed or len(group.order_ids) >= cfg.group_size:
            return reject(f"group {gid} is full")
        if cmd.member_id in group.members:
            return reject(f"member {cmd.member_id} is already in group {gid}")
    price = unit_price(c.unit_cost, phase, gid is not None, cfg)
    out: list[Message] = [
        PledgeAccepted(
            campaign_id=c.campaign_id,
            order_id=cmd.order_id,
            member_id=cmd.member_id,
            units=cmd.units,
            unit_price=price,
            phase=phase,
        )
    ]
    if gid is not None:
        orders = [*(group.order_ids if group is not None else []), cmd.order_id]
        out.append(
            GroupJoined(
                campaign_id=c.campaign_id, group_id=gid, order_id=cmd.order_id, member_id=cmd.member_id, members=len(orders)
            )
        )
        if len(orders) == cfg.group_size:
            out.append(GroupCompleted(campaign_id=c.campaign_id, group_id=gid, order_ids=orders))
    pledged = c.tally.pledged_units + cmd.units
    if pledged >= cap:  # R-PRE-4: intake closes when the cap is reached
        out.append(
            IntakeClosed(
                campaign_id=c.campaign_id, reason=f"capacity cap reached: {pledged} of {cap} units", pledged_units=pledged, at=now
            )
        )
    return out


# --- R-PRE-7: the close --------------------------------------------------------------------------


def _close(cfg: PresaleConfig, c: Campaign, cmd: CloseCampaign, now: int) -> list[Message]:
    if c.status in CLOSED:
        return refuse(cmd, f"campaign is already closed ({c.status})")
    if not cmd.reason.strip():
        return refuse(cmd, "say why the campaign closes")
    if c.status in (DRAFT, SCHEDULED):
        out: list[Message] = [
            CampaignClosed(
                campaign_id=c.campaign_id, outcome=CANCELLED, pledged_units=0, moq=c.moq, reason=cmd.reason, closed_at=now
            )
        ]
        return out + _refund_deposits(c, "campaign cancelled before its launch", now)
    return _close_events(cfg, c, now, cmd.reason)


def _refund_deposits(c: Campaign, reason: str, now: int) -> list[Message]:
    return [
        DepositRefunded(campaign_id=c.campaign_id, deposit_id=did, member_id=d.member_id, amount=d.amount, reason=reason, at=now)
        for did, d in sorted(c.deposits.items())
        if not d.refunded
    ]


def _close_events(cfg: PresaleConfig, c: Campaign, now: int, reason: str) -> list[Message]:
    """The close: incomplete groups are refunded; pledged < MOQ fails (everything refunded), else the
    first batch is planned. Deposits go back either way: the order paid the full phase price."""
    out: list[Message] = []
    held = held_split(c)
    if c.intake_closed is None:
        out.append(IntakeClosed(campaign_id=c.campaign_id, reason=reason, pledged_units=c.tally.pledged_units, at=now))
    dropped: set[str] = set()
    for gid, g in sorted(c.groups.items()):
        if g.completed or g.dissolved or not g.order_ids:
            continue
        why = f"group {gid} incomplete at the close ({len(g.order_ids)} of {cfg.group_size})"
        out.append(GroupDissolved(campaign_id=c.campaign_id, group_id=gid, order_ids=list(g.order_ids), reason=why))
        for oid in g.order_ids:
            out += drop_pledge(c, c.pledges[oid], held, now, why)
            dropped.add(oid)
    pledged = c.tally.pledged_units - sum(c.pledges[o].units for o in dropped)
    if pledged < c.moq:
        why = f"campaign failed: {pledged} units pledged, MOQ {c.moq}"
        out.append(
            CampaignClosed(
                campaign_id=c.campaign_id, outcome=FAILED, pledged_units=pledged, moq=c.moq, reason=reason, closed_at=now
            )
        )
        for oid, p in sorted(c.pledges.items()):
            if oid not in dropped and p.status != P_VOID and (p.status == P_OPEN or p.net > 0):
                out += drop_pledge(c, p, held, now, why)
        return out + _refund_deposits(c, why, now)
    out.append(
        CampaignClosed(
            campaign_id=c.campaign_id, outcome=SUCCEEDED, pledged_units=pledged, moq=c.moq, reason=reason, closed_at=now
        )
    )
    batch = first_batch(pledged, cfg)
    confirm_by = c.delivery_at - cfg.final_batch_lead_ms if c.delivery_at is not None else None
    out.append(
        FirstBatchPlanned(
            campaign_id=c.campaign_id,
            pledged_units=pledged,
            first_batch_units=batch,
            remaining_units=pledged - batch,
            confirm_by=confirm_by,
        )
    )
    return out + _refund_deposits(c, "campaign succeeded: the intent deposit goes back", now)


# --- business time ----------------------------------------------------------------------------------


def _timers(cfg: PresaleConfig, c: Campaign, now: int) -> list[Message]:
    """One clock tick for one campaign: offers expire, phases switch, the schedule end closes it,
    the final batch is confirmed one week before delivery, late suppliers are flagged."""
    out: list[Message] = []
    for rid, rise in sorted(c.rises.items()):
        if rise.answer_by is not None and now >= rise.answer_by:
            out += [PriceRiseOfferExpired(campaign_id=c.campaign_id, rise_id=rid, order_id=oid) for oid in sorted(rise.offers)]
    if c.status == OPEN:
        assert c.starts_at is not None and c.ends_at is not None
        if now >= c.ends_at:
            out += _close_events(cfg, c, now, "the schedule ended")
        else:
            phase = phase_at(c.starts_at, c.ends_at, now, cfg)
            if phase != c.phase:
                out.append(
                    PhaseChanged(
                        campaign_id=c.campaign_id, phase=phase, unit_price=unit_price(c.unit_cost, phase, False, cfg), at=now
                    )
                )
    if c.status == SUCCEEDED and c.confirm_by is not None and c.final_batch_units is None and now >= c.confirm_by:
        batch = c.first_batch_units or 0
        out.append(
            FinalBatchConfirmed(
                campaign_id=c.campaign_id,
                pledged_units=c.tally.pledged_units,
                first_batch_units=batch,
                final_batch_units=max(0, c.tally.pledged_units - batch),
                at=now,
            )
        )
    if c.status in (OPEN, SUCCEEDED):
        for m, due in sorted(c.tally.milestone_due.items()):
            if m in c.tally.milestones_done:
                continue
            late = now - due
            if late > cfg.notice_late_ms and m not in c.notices:
                out.append(BuyerNoticeRequired(campaign_id=c.campaign_id, milestone=m, due_at=due, days_late=late // DAY_MS))
            if late > cfg.penalty_late_ms and m not in c.penalties:
                out.append(SupplierPenaltyIncurred(campaign_id=c.campaign_id, milestone=m, due_at=due, days_late=late // DAY_MS))
    return out


_CAMPAIGN_DECIDERS: dict[type, Handler] = {
    ScheduleCampaign: _schedule,
    CollectDeposit: _deposit,
    LaunchCampaign: _launch,
    CloseCampaign: _close,
    RecordPledge: _pledge,
    RecordPayment: record_payment,
    ReleasePledge: release_pledge,
    RecordOrderRefund: record_refund,
    PlanMilestone: plan_milestone,
    RecordMilestone: record_milestone,
    RecordPriceRise: record_price_rise,
    AnswerPriceRise: answer_price_rise,
    AskSupplier: ask_supplier,
    RecordSupplierAnswer: supplier_answered,
}

# every command and its decider: the timers and creation act on the book, the rest on one campaign
DECIDERS: dict[type, Callable[..., list[Message]]] = {
    CheckCampaignTimers: _check_timers,
    CreateCampaign: _create,
    **_CAMPAIGN_DECIDERS,
}
