"""Presale's money decisions (pure): payments into escrow and refunds out of it (R-PRE-5, R-PRE-10),
presale dropping a pledge (R-PRE-7, R-PRE-8), milestone releases (R-PRE-6); and the refusal helpers
the deciders share."""

from __future__ import annotations

import time as _time
from decimal import Decimal

from flexchain.messages import Message
from services.presale.messages import (
    EscrowRefunded,
    FundsReleased,
    MilestonePlanned,
    MilestoneReached,
    PaymentEscrowed,
    PlanMilestone,
    PledgeRejected,
    PledgeReleased,
    PresaleCommandRejected,
    PresaleRefundIssued,
    RecordMilestone,
    RecordOrderRefund,
    RecordPayment,
    ReleasePledge,
    presale_refund_id,
)
from services.presale.rules import DAY_MS, PRODUCTION, SPLIT_BUCKETS, PresaleConfig, release_allowance, split, take_refund
from services.presale.state import CANCELLED, FAILED, P_OPEN, SUCCEEDED, Campaign, Pledge


def iso(ms: int) -> str:
    return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(ms // 1000))


def is_refusal(e: Message) -> bool:
    return isinstance(e, (PresaleCommandRejected, PledgeRejected))


def refuse(cmd: Message, reason: str) -> list[Message]:
    return [PresaleCommandRejected(campaign_id=cmd.key, command=type(cmd).__name__, reason=reason)]


# --- R-PRE-5, R-PRE-10: payments and refunds --------------------------------------------------------


def held_split(c: Campaign) -> dict[str, int]:
    return {b: c.buckets[b] for b in SPLIT_BUCKETS}


def escrow_refund(
    c: Campaign, p: Pledge, held: dict[str, int], amount: int, refund_id: str, reason: str, by: str, units: int, now: int
) -> EscrowRefunded:
    """Take a refund out of the buckets (updating the local `held` so a batch of refunds stays exact)."""
    taken, uncovered = take_refund(held, amount, c.split)
    for b, cents in taken.items():
        held[b] -= cents
    return EscrowRefunded(
        campaign_id=c.campaign_id,
        order_id=p.order_id,
        refund_id=refund_id,
        requested=amount,
        taken=taken,
        uncovered=uncovered,
        reason=reason,
        initiated_by=by,
        units=units,
        at=now,
    )


def drop_pledge(c: Campaign, p: Pledge, held: dict[str, int], now: int, reason: str) -> list[Message]:
    """Presale gives up a pledge: refund what it paid (the order service refunds the order with the
    same refund id, or cancels it when unpaid) and release its units."""
    rid = presale_refund_id(c.campaign_id, p.order_id)
    amount = max(0, p.net)
    out: list[Message] = [
        PresaleRefundIssued(campaign_id=c.campaign_id, order_id=p.order_id, refund_id=rid, amount=amount, reason=reason)
    ]
    if amount > 0:
        out.append(escrow_refund(c, p, held, amount, rid, reason, "presale", p.units, now))
    if p.units > 0:
        out.append(PledgeReleased(campaign_id=c.campaign_id, order_id=p.order_id, units=p.units, units_left=0, reason=reason))
    return out


def record_payment(cfg: PresaleConfig, c: Campaign, cmd: RecordPayment, now: int) -> list[Message]:
    if cmd.amount <= 0:
        return refuse(cmd, f"amount must be positive cents, got {cmd.amount}")
    p = c.pledges.get(cmd.order_id)
    if p is None:
        return refuse(cmd, f"no accepted pledge for order {cmd.order_id} in campaign {c.campaign_id} ({c.status})")
    if p.paid > 0:
        return refuse(cmd, f"order {cmd.order_id} is already paid")
    parts = split(cmd.amount, c.split)  # R-PRE-5
    out: list[Message] = [
        PaymentEscrowed(
            campaign_id=c.campaign_id,
            order_id=cmd.order_id,
            amount=cmd.amount,
            payment_ref=cmd.payment_ref,
            buckets=parts,
            at=now,
        )
    ]
    if p.status != P_OPEN:  # paid after presale dropped the pledge (failed campaign, …): straight back
        held = {b: c.buckets[b] + parts[b] for b in SPLIT_BUCKETS}
        reason = f"paid after the pledge was dropped (campaign {c.status})"
        rid = presale_refund_id(c.campaign_id, p.order_id)
        out.append(
            PresaleRefundIssued(campaign_id=c.campaign_id, order_id=p.order_id, refund_id=rid, amount=cmd.amount, reason=reason)
        )
        out.append(escrow_refund(c, p, held, cmd.amount, rid, reason, "presale", 0, now))
    return out


def buyer_refund(c: Campaign, p: Pledge, refund_id: str, asked: int, units: int, reason: str, now: int) -> list[Message]:
    out: list[Message] = []
    amount = min(asked, max(0, p.net))
    units = min(units, p.units)
    if amount > 0:
        out.append(escrow_refund(c, p, held_split(c), amount, refund_id, reason, "buyer", units, now))
    if units > 0:
        out.append(
            PledgeReleased(campaign_id=c.campaign_id, order_id=p.order_id, units=units, units_left=p.units - units, reason=reason)
        )
    return out


def release_pledge(cfg: PresaleConfig, c: Campaign, cmd: ReleasePledge, now: int) -> list[Message]:
    p = c.pledges.get(cmd.order_id)
    if p is None:
        return refuse(cmd, f"no pledge for order {cmd.order_id} in campaign {c.campaign_id}")
    if cmd.refund_amount < 0:
        return refuse(cmd, f"refund_amount must be >= 0 cents, got {cmd.refund_amount}")
    return buyer_refund(c, p, f"cancel-{cmd.order_id}", cmd.refund_amount, p.units, f"order cancelled: {cmd.reason}", now)


def record_refund(cfg: PresaleConfig, c: Campaign, cmd: RecordOrderRefund, now: int) -> list[Message]:
    if cmd.refund_id.startswith(presale_refund_id(c.campaign_id, "")):
        return []  # the order service's echo of a refund presale issued: the money already moved
    p = c.pledges.get(cmd.order_id)
    if p is None:
        return refuse(cmd, f"no pledge for order {cmd.order_id} in campaign {c.campaign_id}")
    if cmd.amount < 0 or cmd.units < 0:
        return refuse(cmd, "a refund's amount and units must be >= 0")
    units = p.units if cmd.fully_refunded else cmd.units
    return buyer_refund(c, p, cmd.refund_id, cmd.amount, units, f"order refunded ({cmd.refund_id})", now)


# --- R-PRE-6: milestones ------------------------------------------------------------------------


def plan_milestone(cfg: PresaleConfig, c: Campaign, cmd: PlanMilestone, now: int) -> list[Message]:
    if cmd.milestone not in c.milestone_shares:
        return refuse(cmd, f"unknown milestone {cmd.milestone}; this campaign has {', '.join(c.milestone_shares)}")
    if c.status in (FAILED, CANCELLED):
        return refuse(cmd, f"campaign is {c.status}")
    if cmd.milestone in c.tally.milestones_done:
        return refuse(cmd, f"milestone {cmd.milestone} was already reached")
    if cmd.due_at <= 0:
        return refuse(cmd, "due_at must be a business time (ms)")
    return [MilestonePlanned(campaign_id=c.campaign_id, milestone=cmd.milestone, due_at=cmd.due_at)]


def record_milestone(cfg: PresaleConfig, c: Campaign, cmd: RecordMilestone, now: int) -> list[Message]:
    if cmd.milestone not in c.milestone_shares:
        return refuse(cmd, f"unknown milestone {cmd.milestone}; this campaign has {', '.join(c.milestone_shares)}")
    if not cmd.evidence.strip():
        return refuse(cmd, "a milestone needs evidence (a document, a photo, a tracking number)")
    if c.status != SUCCEEDED:
        return refuse(cmd, f"campaign is {c.status}: the production reserve is released only after it succeeded")
    if cmd.milestone in c.tally.milestones_done:
        return refuse(cmd, f"milestone {cmd.milestone} was already reached")
    if cmd.amount is not None and cmd.amount <= 0:
        return refuse(cmd, f"amount must be positive cents, got {cmd.amount}")
    done = [*c.tally.milestones_done, cmd.milestone]
    share = sum((c.milestone_shares[m] for m in done), Decimal(0))
    held = c.buckets[PRODUCTION]
    allowed = release_allowance(share, c.production_funded, c.released, held)
    if cmd.amount is not None and cmd.amount > held:
        return refuse(cmd, f"cannot release {cmd.amount}: the production reserve holds {held}")
    if cmd.amount is not None and cmd.amount > allowed:
        return refuse(cmd, f"cannot release {cmd.amount}: the milestones reached allow {allowed}")
    amount = allowed if cmd.amount is None else cmd.amount
    due = c.tally.milestone_due.get(cmd.milestone)
    late = max(0, (now - due) // DAY_MS) if due is not None else 0
    out: list[Message] = [
        MilestoneReached(
            campaign_id=c.campaign_id, milestone=cmd.milestone, evidence=cmd.evidence, at=now, due_at=due, days_late=late
        )
    ]
    if amount > 0:
        out.append(
            FundsReleased(
                campaign_id=c.campaign_id,
                milestone=cmd.milestone,
                amount=amount,
                evidence=cmd.evidence,
                production_left=held - amount,
                at=now,
            )
        )
    return out
