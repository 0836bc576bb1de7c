"""Presale's commands (on `presale.commands`) and events (on `presale.events`), keyed by campaign id.

Money in cents (fen), rates as `Decimal`, times in ms since the epoch (business time). The order
service consumes `PledgeAccepted` / `PledgeRejected` (the phase price of a campaign order, or why it
was refused) and `PresaleRefundIssued` (refund this order; `refund_id` is `presale-<campaign>-<order>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from flexchain.messages import Message


class PresaleMessage(Message):
    KEY: ClassVar[str] = "campaign_id"
    SERVICE: ClassVar[str] = "presale"


def presale_refund_id(campaign_id: str, order_id: str) -> str:
    """The id of the refund presale asks the order service to make (its echo is recognised by it)."""
    return f"presale-{campaign_id}-{order_id}"


# --- commands: the merchant (HTTP) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateCampaign(PresaleMessage):
    """A campaign for a product (R-PRE-1); `split` is "standard" (40/25/20/15) or "simple" (50/30/20)."""

    campaign_id: str
    product: str
    unit_cost: int
    fan_base: int
    moq: int
    max_capacity: int
    split: str = "standard"
    milestone_shares: dict[str, Decimal] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleCampaign(PresaleMessage):
    """When the campaign runs (business time, ms); `delivery_at` dates the final batch (R-PRE-7)."""

    campaign_id: str
    starts_at: int
    ends_at: int
    delivery_at: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectDeposit(PresaleMessage):
    """An intent deposit before the launch (R-PRE-2), held in escrow apart from the buckets."""

    campaign_id: str
    deposit_id: str
    member_id: str
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LaunchCampaign(PresaleMessage):
    """Open the campaign; refused below the 1.5 % deposit signal unless `force` (R-PRE-2)."""

    campaign_id: str
    force: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseCampaign(PresaleMessage):
    """Close now (R-PRE-7): below MOQ it fails and everything is refunded, else it succeeds."""

    campaign_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanMilestone(PresaleMessage):
    """The supplier's committed date for a milestone (R-PRE-9 lateness is measured against it)."""

    campaign_id: str
    milestone: str
    due_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordMilestone(PresaleMessage):
    """A milestone reached, with evidence: releases its share of the production reserve (R-PRE-6).

    `amount` (optional) asks for less than the share allows; more than held or allowed is refused."""

    campaign_id: str
    milestone: str
    evidence: str
    amount: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordPriceRise(PresaleMessage):
    """The material cost per unit rose to `new_unit_cost` (R-PRE-8)."""

    campaign_id: str
    rise_id: str
    new_unit_cost: int
    evidence: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerPriceRise(PresaleMessage):
    """A buyer accepts the shared rise or leaves with a full refund (R-PRE-8)."""

    campaign_id: str
    rise_id: str
    order_id: str
    accept: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AskSupplier(PresaleMessage):
    """A question put to the supplier; its answer time is watched (R-PRE-9, yellow > 24 h)."""

    campaign_id: str
    question_id: str
    topic: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordSupplierAnswer(PresaleMessage):
    """The supplier answered a question."""

    campaign_id: str
    question_id: str


# --- commands: routed from order.events and clock.ticks ---------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordPledge(PresaleMessage):
    """A campaign order was placed (routed from OrderPlaced): price it by phase, or refuse it."""

    campaign_id: str
    order_id: str
    member_id: str
    units: int
    group_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordPayment(PresaleMessage):
    """A campaign order was paid (routed from OrderPaid): the money goes into escrow (R-PRE-5)."""

    campaign_id: str
    order_id: str
    amount: int
    payment_ref: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleasePledge(PresaleMessage):
    """A campaign order was cancelled (routed from OrderCancelled): units back, `refund_amount` out of escrow."""

    campaign_id: str
    order_id: str
    refund_amount: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordOrderRefund(PresaleMessage):
    """A campaign order was (partly) refunded by the order service (routed from OrderRefunded)."""

    campaign_id: str
    order_id: str
    refund_id: str
    amount: int
    units: int
    fully_refunded: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckCampaignTimers(PresaleMessage):
    """Business time reached `time` on this partition: phases, the schedule end, batches, offers,
    supplier lateness, time-based risk signals. Sent to every partition (empty key) per clock tick."""

    KEY: ClassVar[str] = ""
    time: int


# --- events --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignCreated(PresaleMessage):
    """A campaign exists (R-PRE-1); `milestone_shares` sum to 1."""

    campaign_id: str
    product: str
    unit_cost: int
    fan_base: int
    moq: int
    max_capacity: int
    split: str
    milestone_shares: dict[str, Decimal]
    created_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignScheduled(PresaleMessage):
    """The schedule; the early bird ends at `early_bird_ends`, the group phase starts at `group_starts`."""

    campaign_id: str
    starts_at: int
    ends_at: int
    delivery_at: int | None
    early_bird_ends: int
    group_starts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositCollected(PresaleMessage):
    """An intent deposit is held (R-PRE-2); `depositors` counted after it."""

    campaign_id: str
    deposit_id: str
    member_id: str
    amount: int
    depositors: int
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LaunchThresholdReached(PresaleMessage):
    """Depositors reached 1.5 % of the fan base: the campaign is worth launching (R-PRE-2)."""

    campaign_id: str
    depositors: int
    needed: int
    fan_base: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignLaunched(PresaleMessage):
    """Intake is open from `starts_at`; `validated` false when launched with force below the signal."""

    campaign_id: str
    launched_at: int
    depositors: int
    validated: bool
    phase: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseChanged(PresaleMessage):
    """The price phase switched (R-PRE-3); `unit_price` is the solo price of the new phase."""

    campaign_id: str
    phase: str
    unit_price: int
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PledgeAccepted(PresaleMessage):
    """A campaign order is pledged at `unit_price` cents, the phase price in force when it was placed."""

    campaign_id: str
    order_id: str
    member_id: str
    units: int
    unit_price: int
    phase: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PledgeRejected(PresaleMessage):
    """A campaign order is refused (campaign unknown, not open, closed, beyond the capacity cap, …)."""

    campaign_id: str
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupJoined(PresaleMessage):
    """An order joined a three-person group (R-PRE-3); `members` after it."""

    campaign_id: str
    group_id: str
    order_id: str
    member_id: str
    members: int


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupCompleted(PresaleMessage):
    """The group has its three members: its price holds."""

    campaign_id: str
    group_id: str
    order_ids: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupDissolved(PresaleMessage):
    """A group incomplete at the close: its orders are refunded in full and their units released."""

    campaign_id: str
    group_id: str
    order_ids: list[str]
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeClosed(PresaleMessage):
    """No more pledges: capacity cap reached (R-PRE-4), the schedule ended, or the campaign closed."""

    campaign_id: str
    reason: str
    pledged_units: int
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentEscrowed(PresaleMessage):
    """A payment is held in escrow, split into the buckets exactly (R-PRE-5); `buckets` sum to `amount`."""

    campaign_id: str
    order_id: str
    amount: int
    payment_ref: str
    buckets: dict[str, int]
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EscrowRefunded(PresaleMessage):
    """Money left escrow for a refund: `taken` per bucket; `uncovered` is what no bucket held.

    `requested` is what the buyer gets back; `initiated_by` is "buyer" (order cancelled or refunded)
    or "presale" (campaign failed, group incomplete, left after a price rise); `units` the units the
    refund gives back; `at` its business time (a buyer refund counts toward the day's refund rate)."""

    campaign_id: str
    order_id: str
    refund_id: str
    requested: int
    taken: dict[str, int]
    uncovered: int
    reason: str
    initiated_by: str
    units: int
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PresaleRefundIssued(PresaleMessage):
    """Presale refunds this order (R-PRE-7, R-PRE-8): the order service refunds it with `refund_id`.

    `amount` 0: the order was not paid; the order service cancels it."""

    campaign_id: str
    order_id: str
    refund_id: str
    amount: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PledgeReleased(PresaleMessage):
    """Pledged units given back (order cancelled or refunded, group dissolved, buyer left, campaign failed).

    `units_left` the order still pledges after it."""

    campaign_id: str
    order_id: str
    units: int
    units_left: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositRefunded(PresaleMessage):
    """An intent deposit went back to its member (at the close, either way)."""

    campaign_id: str
    deposit_id: str
    member_id: str
    amount: int
    reason: str
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignClosed(PresaleMessage):
    """The close (R-PRE-7): `outcome` succeeded, failed (pledged < MOQ) or cancelled (never launched)."""

    campaign_id: str
    outcome: str
    pledged_units: int
    moq: int
    reason: str
    closed_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FirstBatchPlanned(PresaleMessage):
    """A successful campaign's first production batch: 70 % of pledged units (R-PRE-7)."""

    campaign_id: str
    pledged_units: int
    first_batch_units: int
    remaining_units: int
    confirm_by: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class FinalBatchConfirmed(PresaleMessage):
    """One week before delivery: the rest of the production, from the units pledged now."""

    campaign_id: str
    pledged_units: int
    first_batch_units: int
    final_batch_units: int
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MilestonePlanned(PresaleMessage):
    """The supplier committed to a date for a milestone."""

    campaign_id: str
    milestone: str
    due_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MilestoneReached(PresaleMessage):
    """A milestone with its evidence; `days_late` against its planned date (0 when on time or unplanned)."""

    campaign_id: str
    milestone: str
    evidence: str
    at: int
    due_at: int | None
    days_late: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FundsReleased(PresaleMessage):
    """Production reserve released against a milestone (R-PRE-6); `production_left` after it."""

    campaign_id: str
    milestone: str
    amount: int
    evidence: str
    production_left: int
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceRiseRecorded(PresaleMessage):
    """The material cost rose. `shared` when ≥ 30 %: buyers bear `buyer_share_per_unit`, the creator the rest."""

    campaign_id: str
    rise_id: str
    old_unit_cost: int
    new_unit_cost: int
    rise_rate: Decimal
    shared: bool
    buyer_share_per_unit: Decimal
    evidence: str
    answer_by: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceRiseOffered(PresaleMessage):
    """A buyer is offered to accept `extra_amount` cents more or to leave with a full refund (R-PRE-8)."""

    campaign_id: str
    rise_id: str
    order_id: str
    member_id: str
    extra_amount: int
    answer_by: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceRiseAccepted(PresaleMessage):
    """The buyer stays and owes `extra_amount` (collected outside escrow, see README)."""

    campaign_id: str
    rise_id: str
    order_id: str
    extra_amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceRiseDeclined(PresaleMessage):
    """The buyer leaves: refunded in full, units released."""

    campaign_id: str
    rise_id: str
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceRiseOfferExpired(PresaleMessage):
    """No answer in time: the buyer keeps the pledge at the old price (the creator bears the share)."""

    campaign_id: str
    rise_id: str
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SupplierQuestionAsked(PresaleMessage):
    """A question to the supplier, asked at `asked_at`."""

    campaign_id: str
    question_id: str
    topic: str
    asked_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SupplierAnswered(PresaleMessage):
    """The supplier answered after `answered_at − asked_at` ms."""

    campaign_id: str
    question_id: str
    asked_at: int
    answered_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BuyerNoticeRequired(PresaleMessage):
    """A step is late by more than 5 days: the buyers must be told (R-PRE-9)."""

    campaign_id: str
    milestone: str
    due_at: int
    days_late: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SupplierPenaltyIncurred(PresaleMessage):
    """The supplier is late by more than 14 days and owes a penalty toward refund costs (R-PRE-9)."""

    FORMERLY: ClassVar[tuple[str, ...]] = ("SupplierPenaltyDue",)
    campaign_id: str
    milestone: str
    due_at: int
    days_late: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskSignalRaised(PresaleMessage):
    """A red / yellow / green signal (R-PRE-9) became true; `signal_id` names its cause."""

    campaign_id: str
    signal_id: str
    level: str
    rule: str
    detail: str
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskSignalCleared(PresaleMessage):
    """A signal's condition no longer holds."""

    campaign_id: str
    signal_id: str
    level: str
    rule: str
    detail: str
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PresaleCommandRejected(PresaleMessage):
    """A command was refused with a reason; nothing changed."""

    campaign_id: str
    command: str
    reason: str


COMMANDS: tuple[type[Message], ...] = (
    CreateCampaign,
    ScheduleCampaign,
    CollectDeposit,
    LaunchCampaign,
    CloseCampaign,
    PlanMilestone,
    RecordMilestone,
    RecordPriceRise,
    AnswerPriceRise,
    AskSupplier,
    RecordSupplierAnswer,
    RecordPledge,
    RecordPayment,
    ReleasePledge,
    RecordOrderRefund,
    CheckCampaignTimers,
)
EVENTS: tuple[type[Message], ...] = (
    CampaignCreated,
    CampaignScheduled,
    DepositCollected,
    LaunchThresholdReached,
    CampaignLaunched,
    PhaseChanged,
    PledgeAccepted,
    PledgeRejected,
    GroupJoined,
    GroupCompleted,
    GroupDissolved,
    IntakeClosed,
    PaymentEscrowed,
    EscrowRefunded,
    PresaleRefundIssued,
    PledgeReleased,
    DepositRefunded,
    CampaignClosed,
    FirstBatchPlanned,
    FinalBatchConfirmed,
    MilestonePlanned,
    MilestoneReached,
    FundsReleased,
    PriceRiseRecorded,
    PriceRiseOffered,
    PriceRiseAccepted,
    PriceRiseDeclined,
    PriceRiseOfferExpired,
    SupplierQuestionAsked,
    SupplierAnswered,
    BuyerNoticeRequired,
    SupplierPenaltyIncurred,
    RiskSignalRaised,
    RiskSignalCleared,
    PresaleCommandRejected,
)
MESSAGES: list[type[Message]] = [*COMMANDS, *EVENTS]
