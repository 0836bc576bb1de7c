"""Presale's supplier-side decisions (pure): shared price rises and the buyers' answers (R-PRE-8),
questions to the supplier and their answers (R-PRE-9: the answer time is a yellow signal)."""

from __future__ import annotations

from decimal import Decimal

from flexchain.messages import Message
from services.presale.messages import (
    AnswerPriceRise,
    AskSupplier,
    PriceRiseAccepted,
    PriceRiseDeclined,
    PriceRiseOffered,
    PriceRiseRecorded,
    RecordPriceRise,
    RecordSupplierAnswer,
    SupplierAnswered,
    SupplierQuestionAsked,
)
from services.presale.money import drop_pledge, held_split, iso, refuse
from services.presale.rules import PresaleConfig, buyer_extra, rise_rate
from services.presale.state import OPEN, P_OPEN, SUCCEEDED, Campaign

# --- R-PRE-8: price rise --------------------------------------------------------------------------


def record_price_rise(cfg: PresaleConfig, c: Campaign, cmd: RecordPriceRise, now: int) -> list[Message]:
    if c.status not in (OPEN, SUCCEEDED):
        return refuse(cmd, f"campaign is {c.status}: a price rise concerns an open or succeeded campaign")
    if cmd.rise_id in c.rises:
        return refuse(cmd, f"price rise {cmd.rise_id} was already recorded")
    if not cmd.evidence.strip():
        return refuse(cmd, "a price rise needs evidence (the supplier's quote)")
    old, new = c.unit_cost, cmd.new_unit_cost
    if new <= old:
        return refuse(cmd, f"not a rise: the new unit cost {new} is not above the current {old}")
    pending = sorted(r for r, rise in c.rises.items() if rise.offers)
    if pending:
        return refuse(cmd, f"price rise {pending[0]} still has open offers")
    shared = Decimal(new - old) >= cfg.price_rise_threshold * old  # R-PRE-8: ≥ 30 % is shared
    answer_by = now + cfg.answer_window_ms if shared else None
    per_unit = Decimal(new - old) * cfg.buyer_share if shared else Decimal(0)
    out: list[Message] = [
        PriceRiseRecorded(
            campaign_id=c.campaign_id,
            rise_id=cmd.rise_id,
            old_unit_cost=old,
            new_unit_cost=new,
            rise_rate=rise_rate(old, new),
            shared=shared,
            buyer_share_per_unit=per_unit,
            evidence=cmd.evidence,
            answer_by=answer_by,
        )
    ]
    if answer_by is not None:
        for oid, p in sorted(c.pledges.items()):
            if p.status == P_OPEN and p.units > 0:
                extra = buyer_extra(old, new, p.units, cfg)
                out.append(
                    PriceRiseOffered(
                        campaign_id=c.campaign_id,
                        rise_id=cmd.rise_id,
                        order_id=oid,
                        member_id=p.member_id,
                        extra_amount=extra,
                        answer_by=answer_by,
                    )
                )
    return out


def answer_price_rise(cfg: PresaleConfig, c: Campaign, cmd: AnswerPriceRise, now: int) -> list[Message]:
    rise = c.rises.get(cmd.rise_id)
    if rise is None:
        return refuse(cmd, f"unknown price rise {cmd.rise_id}")
    if cmd.order_id not in rise.offers:
        return refuse(cmd, f"order {cmd.order_id} has no open offer for price rise {cmd.rise_id}")
    assert rise.answer_by is not None
    if now >= rise.answer_by:
        return refuse(cmd, f"the offer expired at {iso(rise.answer_by)}")
    if cmd.accept:
        return [
            PriceRiseAccepted(
                campaign_id=c.campaign_id, rise_id=cmd.rise_id, order_id=cmd.order_id, extra_amount=rise.offers[cmd.order_id]
            )
        ]
    declined: list[Message] = [PriceRiseDeclined(campaign_id=c.campaign_id, rise_id=cmd.rise_id, order_id=cmd.order_id)]
    return declined + drop_pledge(c, c.pledges[cmd.order_id], held_split(c), now, f"left after price rise {cmd.rise_id}")


# --- R-PRE-9: supplier ------------------------------------------------------------------------------


def ask_supplier(cfg: PresaleConfig, c: Campaign, cmd: AskSupplier, now: int) -> list[Message]:
    if cmd.question_id in c.tally.questions_open:
        return refuse(cmd, f"question {cmd.question_id} is already open")
    if not cmd.topic.strip():
        return refuse(cmd, "a question needs a topic")
    return [SupplierQuestionAsked(campaign_id=c.campaign_id, question_id=cmd.question_id, topic=cmd.topic, asked_at=now)]


def supplier_answered(cfg: PresaleConfig, c: Campaign, cmd: RecordSupplierAnswer, now: int) -> list[Message]:
    asked = c.tally.questions_open.get(cmd.question_id)
    if asked is None:
        return refuse(cmd, f"no open question {cmd.question_id}")
    return [SupplierAnswered(campaign_id=c.campaign_id, question_id=cmd.question_id, asked_at=asked, answered_at=max(now, asked))]
