"""Presale's state and its fold: `evolve(book, event)` applies one event of `presale.events` through
its evolver in `EVOLVERS` (one per event type) and returns the book.

A partition's state is a `PresaleBook`: the campaigns whose id hashes to it. A campaign's running
figures that the risk signals read live in a small `Tally`, updated by `count` from each event alone
— so `decide` can project the figures after the events it is about to emit on a copy of the tally
without copying the campaign (R-PRE-9 signals are decided on the state *after* the command).

Money conservation (R-PRE-10) holds for every campaign after every event:
``received == sum(buckets) + released + refunded`` (deposits are a bucket of their own).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flexchain.messages import Message
from services.presale.messages import (
    BuyerNoticeRequired,
    CampaignClosed,
    CampaignCreated,
    CampaignLaunched,
    CampaignScheduled,
    DepositCollected,
    DepositRefunded,
    EscrowRefunded,
    FinalBatchConfirmed,
    FirstBatchPlanned,
    FundsReleased,
    GroupCompleted,
    GroupDissolved,
    GroupJoined,
    IntakeClosed,
    LaunchThresholdReached,
    MilestonePlanned,
    MilestoneReached,
    PaymentEscrowed,
    PhaseChanged,
    PledgeAccepted,
    PledgeRejected,
    PledgeReleased,
    PresaleCommandRejected,
    PresaleRefundIssued,
    PriceRiseAccepted,
    PriceRiseDeclined,
    PriceRiseOffered,
    PriceRiseOfferExpired,
    PriceRiseRecorded,
    RiskSignalCleared,
    RiskSignalRaised,
    SupplierAnswered,
    SupplierPenaltyIncurred,
    SupplierQuestionAsked,
)
from services.presale.rules import BUCKETS, DAY_MS, DEPOSITS, PRODUCTION, UPCOMING, PresaleConfig

# one money movement: (business time, kind, reference, amount, signed change per bucket in BUCKETS order)
LedgerLine = tuple[int, str, str, int, tuple[int, ...]]

# campaign status
DRAFT, SCHEDULED, OPEN, SUCCEEDED, FAILED, CANCELLED = "draft", "scheduled", "open", "succeeded", "failed", "cancelled"
CLOSED = (SUCCEEDED, FAILED, CANCELLED)
# pledge status: open; released (every unit given back by the buyer); void (presale dropped and refunded it)
P_OPEN, P_RELEASED, P_VOID = "open", "released", "void"


@dataclass(slots=True)
class Tally:
    """The running figures of one campaign that the risk signals read (R-PRE-9)."""

    status: str
    unit_cost: int
    open_pledges: int = 0
    pledged_units: int = 0
    accepted_units: int = 0
    paid_orders: int = 0
    paid_total: int = 0
    held: int = 0  # the four split buckets (deposits apart)
    released: int = 0
    refund_day: int = -1  # business day (ms // day) of the last buyer refund, and its units
    refund_day_units: int = 0
    milestone_due: dict[str, int] = field(default_factory=dict)
    milestones_done: dict[str, int] = field(default_factory=dict)
    on_time: int = 0
    questions_open: dict[str, int] = field(default_factory=dict)
    last_answer_ms: int | None = None

    def copy(self) -> Tally:
        """A copy for `decide` to project onto (by hand: `dataclasses.replace` is slow on the hot path)."""
        return Tally(
            self.status,
            self.unit_cost,
            self.open_pledges,
            self.pledged_units,
            self.accepted_units,
            self.paid_orders,
            self.paid_total,
            self.held,
            self.released,
            self.refund_day,
            self.refund_day_units,
            dict(self.milestone_due),
            dict(self.milestones_done),
            self.on_time,
            dict(self.questions_open),
            self.last_answer_ms,
        )


def count(t: Tally, e: Message) -> None:
    """Update the tally from one event (used by `evolve`, and by `decide` on a copy)."""
    if isinstance(e, PledgeAccepted):
        t.open_pledges += 1
        t.pledged_units += e.units
        t.accepted_units += e.units
    elif isinstance(e, PledgeReleased):
        t.pledged_units -= e.units
        if e.units_left == 0:
            t.open_pledges -= 1
    elif isinstance(e, PaymentEscrowed):
        t.paid_orders += 1
        t.paid_total += e.amount
        t.held += e.amount
    elif isinstance(e, EscrowRefunded):
        t.held -= sum(e.taken.values())
        if e.initiated_by == "buyer":
            day = e.at // DAY_MS
            t.refund_day_units = (t.refund_day_units if day == t.refund_day else 0) + e.units
            t.refund_day = day
    elif isinstance(e, FundsReleased):
        t.held -= e.amount
        t.released += e.amount
    elif isinstance(e, MilestonePlanned):
        t.milestone_due[e.milestone] = e.due_at
    elif isinstance(e, MilestoneReached):
        t.milestones_done[e.milestone] = e.at
        if e.due_at is not None and e.at <= e.due_at:
            t.on_time += 1
    elif isinstance(e, SupplierQuestionAsked):
        t.questions_open[e.question_id] = e.asked_at
    elif isinstance(e, SupplierAnswered):
        t.questions_open.pop(e.question_id, None)
        t.last_answer_ms = e.answered_at - e.asked_at
    elif isinstance(e, CampaignScheduled):
        t.status = SCHEDULED
    elif isinstance(e, CampaignLaunched):
        t.status = OPEN
    elif isinstance(e, CampaignClosed):
        t.status = e.outcome
    elif isinstance(e, PriceRiseRecorded):
        t.unit_cost = e.new_unit_cost


@dataclass(slots=True)
class Pledge:
    order_id: str
    member_id: str
    units: int  # still pledged
    unit_price: int
    phase: str
    group_id: str | None = None
    status: str = P_OPEN
    paid: int = 0
    refunded: int = 0  # what the buyer got back
    offer: str | None = None  # an open price-rise offer (rise id)
    extra_owed: int = 0  # accepted price-rise shares

    @property
    def net(self) -> int:
        """What this order still has in escrow terms: paid minus refunded."""
        return self.paid - self.refunded


@dataclass(slots=True)
class Group:
    order_ids: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    completed: bool = False
    dissolved: bool = False


@dataclass(slots=True)
class Deposit:
    member_id: str
    amount: int
    refunded: bool = False


@dataclass(slots=True)
class PriceRise:
    old_unit_cost: int
    new_unit_cost: int
    shared: bool
    answer_by: int | None
    offers: dict[str, int] = field(default_factory=dict)  # open offers: order → extra cents
    accepted: dict[str, int] = field(default_factory=dict)
    declined: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Campaign:
    campaign_id: str
    product: str
    fan_base: int
    moq: int
    max_capacity: int
    split: str
    milestone_shares: dict[str, Decimal]
    created_at: int
    tally: Tally
    starts_at: int | None = None
    ends_at: int | None = None
    delivery_at: int | None = None
    launched_at: int | None = None
    phase: str = UPCOMING
    intake_closed: str | None = None  # why intake closed, once it has
    closed_at: int | None = None
    deposits: dict[str, Deposit] = field(default_factory=dict)
    depositors: dict[str, str] = field(default_factory=dict)  # member → deposit id
    launch_signal: bool = False
    pledges: dict[str, Pledge] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    buckets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    received: int = 0
    refunded: int = 0
    uncovered: int = 0
    production_funded: int = 0  # credited to production minus refunds taken from it (R-PRE-6 base)
    rises: dict[str, PriceRise] = field(default_factory=dict)
    notices: set[str] = field(default_factory=set)
    penalties: set[str] = field(default_factory=set)
    signals: dict[str, str] = field(default_factory=dict)  # active signal id → level
    first_batch_units: int | None = None
    confirm_by: int | None = None
    final_batch_units: int | None = None
    ledger: list[LedgerLine] = field(default_factory=list)  # every money movement, in log order
    signal_log: list[tuple[int, str, str, str, str]] = field(default_factory=list)  # at, raised|cleared, id, level, detail

    @property
    def status(self) -> str:
        return self.tally.status

    @property
    def unit_cost(self) -> int:
        return self.tally.unit_cost

    @property
    def released(self) -> int:
        return self.tally.released

    @property
    def held(self) -> int:
        return sum(self.buckets.values())

    def balanced(self) -> bool:
        """R-PRE-10: received = held in buckets + released + refunded, to the cent."""
        return self.received == self.held + self.released + self.refunded


@dataclass
class PresaleBook:
    """The campaigns of one partition."""

    config: PresaleConfig = field(default_factory=PresaleConfig)
    campaigns: dict[str, Campaign] = field(default_factory=dict)


def new_state(config: PresaleConfig | None = None) -> PresaleBook:
    return PresaleBook(config or PresaleConfig())


# --- evolve --------------------------------------------------------------------------------------


Evolver = Callable[[PresaleBook, Any], None]


def evolve(book: PresaleBook, e: Message) -> PresaleBook:
    """Fold one event through its evolver (`EVOLVERS`); returns the book, changed in place."""
    evolver = EVOLVERS.get(type(e))
    if evolver is not None:
        evolver(book, e)
    return book


def _campaign_created(book: PresaleBook, e: CampaignCreated) -> None:
    book.campaigns[e.campaign_id] = Campaign(
        e.campaign_id,
        e.product,
        e.fan_base,
        e.moq,
        e.max_capacity,
        e.split,
        dict(e.milestone_shares),
        e.created_at,
        Tally(status=DRAFT, unit_cost=e.unit_cost),
    )


def _of_campaign(apply: Callable[[Campaign, Any], None]) -> Evolver:
    """An evolver of the event's campaign: its tally (`count`), then `apply`; nothing for a campaign
    this partition does not hold (refusals and rejected pledges of unknown campaigns)."""

    def evolver(book: PresaleBook, e: Message) -> None:
        c = book.campaigns.get(e.key)
        if c is None:
            return
        count(c.tally, e)
        apply(c, e)

    return evolver


def _tallied(c: Campaign, e: Message) -> None:
    """MilestonePlanned, MilestoneReached, SupplierQuestionAsked, SupplierAnswered: the tally holds
    them; PledgeRejected, PresaleCommandRejected: refusals change nothing."""


def _payment_escrowed(c: Campaign, e: PaymentEscrowed) -> None:
    c.received += e.amount
    for b, cents in e.buckets.items():
        c.buckets[b] += cents
    c.production_funded += e.buckets.get(PRODUCTION, 0)
    c.pledges[e.order_id].paid += e.amount
    c.ledger.append((e.at, "payment", e.order_id, e.amount, tuple(e.buckets.get(b, 0) for b in BUCKETS)))


def _pledge_accepted(c: Campaign, e: PledgeAccepted) -> None:
    c.pledges[e.order_id] = Pledge(e.order_id, e.member_id, e.units, e.unit_price, e.phase)


def _campaign_scheduled(c: Campaign, e: CampaignScheduled) -> None:
    c.starts_at, c.ends_at, c.delivery_at = e.starts_at, e.ends_at, e.delivery_at


def _deposit_collected(c: Campaign, e: DepositCollected) -> None:
    c.deposits[e.deposit_id] = Deposit(e.member_id, e.amount)
    c.depositors[e.member_id] = e.deposit_id
    c.buckets[DEPOSITS] += e.amount
    c.received += e.amount
    c.ledger.append((e.at, "deposit", e.deposit_id, e.amount, _only(DEPOSITS, e.amount)))


def _launch_threshold_reached(c: Campaign, e: LaunchThresholdReached) -> None:
    c.launch_signal = True


def _campaign_launched(c: Campaign, e: CampaignLaunched) -> None:
    c.launched_at = e.launched_at
    c.phase = e.phase


def _phase_changed(c: Campaign, e: PhaseChanged) -> None:
    c.phase = e.phase


def _group_joined(c: Campaign, e: GroupJoined) -> None:
    g = c.groups.setdefault(e.group_id, Group())
    g.order_ids.append(e.order_id)
    g.members.append(e.member_id)
    c.pledges[e.order_id].group_id = e.group_id


def _group_completed(c: Campaign, e: GroupCompleted) -> None:
    c.groups[e.group_id].completed = True


def _group_dissolved(c: Campaign, e: GroupDissolved) -> None:
    c.groups[e.group_id].dissolved = True


def _intake_closed(c: Campaign, e: IntakeClosed) -> None:
    c.intake_closed = e.reason


def _escrow_refunded(c: Campaign, e: EscrowRefunded) -> None:
    for b, cents in e.taken.items():
        c.buckets[b] -= cents
    c.refunded += sum(e.taken.values())
    c.uncovered += e.uncovered
    c.production_funded -= e.taken.get(PRODUCTION, 0)
    c.pledges[e.order_id].refunded += e.requested
    kind = f"refund ({e.initiated_by}) {e.refund_id}"
    c.ledger.append((e.at, kind, e.order_id, sum(e.taken.values()), tuple(-e.taken.get(b, 0) for b in BUCKETS)))


def _presale_refund_issued(c: Campaign, e: PresaleRefundIssued) -> None:
    p = c.pledges[e.order_id]
    p.status = P_VOID
    _withdraw_offer(c, p)


def _pledge_released(c: Campaign, e: PledgeReleased) -> None:
    p = c.pledges[e.order_id]
    p.units -= e.units
    if p.units == 0 and p.status == P_OPEN:
        p.status = P_RELEASED
        _withdraw_offer(c, p)
    if p.group_id is not None and p.units == 0:
        g = c.groups[p.group_id]
        if not g.completed and p.order_id in g.order_ids:  # an incomplete group loses the member
            i = g.order_ids.index(p.order_id)
            del g.order_ids[i]
            del g.members[i]


def _deposit_refunded(c: Campaign, e: DepositRefunded) -> None:
    c.deposits[e.deposit_id].refunded = True
    c.buckets[DEPOSITS] -= e.amount
    c.refunded += e.amount
    c.ledger.append((e.at, "deposit refund", e.deposit_id, e.amount, _only(DEPOSITS, -e.amount)))


def _campaign_closed(c: Campaign, e: CampaignClosed) -> None:
    c.closed_at = e.closed_at
    c.phase = "ended"
    if c.intake_closed is None:
        c.intake_closed = e.reason


def _first_batch_planned(c: Campaign, e: FirstBatchPlanned) -> None:
    c.first_batch_units = e.first_batch_units
    c.confirm_by = e.confirm_by


def _final_batch_confirmed(c: Campaign, e: FinalBatchConfirmed) -> None:
    c.final_batch_units = e.final_batch_units


def _funds_released(c: Campaign, e: FundsReleased) -> None:
    c.buckets[PRODUCTION] -= e.amount
    c.ledger.append((e.at, "release", e.milestone, e.amount, _only(PRODUCTION, -e.amount)))


def _price_rise_recorded(c: Campaign, e: PriceRiseRecorded) -> None:
    c.rises[e.rise_id] = PriceRise(e.old_unit_cost, e.new_unit_cost, e.shared, e.answer_by)


def _price_rise_offered(c: Campaign, e: PriceRiseOffered) -> None:
    c.rises[e.rise_id].offers[e.order_id] = e.extra_amount
    c.pledges[e.order_id].offer = e.rise_id


def _price_rise_accepted(c: Campaign, e: PriceRiseAccepted) -> None:
    rise = c.rises[e.rise_id]
    rise.offers.pop(e.order_id, None)
    rise.accepted[e.order_id] = e.extra_amount
    c.pledges[e.order_id].offer = None
    c.pledges[e.order_id].extra_owed += e.extra_amount


def _price_rise_declined(c: Campaign, e: PriceRiseDeclined) -> None:
    rise = c.rises[e.rise_id]
    rise.offers.pop(e.order_id, None)
    rise.declined.append(e.order_id)
    c.pledges[e.order_id].offer = None


def _price_rise_offer_expired(c: Campaign, e: PriceRiseOfferExpired) -> None:
    rise = c.rises[e.rise_id]
    rise.offers.pop(e.order_id, None)
    rise.expired.append(e.order_id)
    c.pledges[e.order_id].offer = None


def _buyer_notice_required(c: Campaign, e: BuyerNoticeRequired) -> None:
    c.notices.add(e.milestone)


def _supplier_penalty_due(c: Campaign, e: SupplierPenaltyIncurred) -> None:
    c.penalties.add(e.milestone)


def _risk_signal_raised(c: Campaign, e: RiskSignalRaised) -> None:
    c.signals[e.signal_id] = e.level
    c.signal_log.append((e.at, "raised", e.signal_id, e.level, e.detail))


def _risk_signal_cleared(c: Campaign, e: RiskSignalCleared) -> None:
    c.signals.pop(e.signal_id, None)
    c.signal_log.append((e.at, "cleared", e.signal_id, e.level, e.detail))

    # MilestonePlanned, MilestoneReached, SupplierQuestionAsked, SupplierAnswered: the tally holds them;
    # PledgeRejected, PresaleCommandRejected: refusals change nothing


def _only(bucket: str, cents: int) -> tuple[int, ...]:
    return tuple(cents if b == bucket else 0 for b in BUCKETS)


def _withdraw_offer(c: Campaign, p: Pledge) -> None:
    """A dropped or released pledge no longer has a price-rise offer to answer."""
    if p.offer is not None:
        c.rises[p.offer].offers.pop(p.order_id, None)
        p.offer = None


EVOLVERS: dict[type[Message], Evolver] = {
    CampaignCreated: _campaign_created,
    PaymentEscrowed: _of_campaign(_payment_escrowed),
    PledgeAccepted: _of_campaign(_pledge_accepted),
    CampaignScheduled: _of_campaign(_campaign_scheduled),
    DepositCollected: _of_campaign(_deposit_collected),
    LaunchThresholdReached: _of_campaign(_launch_threshold_reached),
    CampaignLaunched: _of_campaign(_campaign_launched),
    PhaseChanged: _of_campaign(_phase_changed),
    GroupJoined: _of_campaign(_group_joined),
    GroupCompleted: _of_campaign(_group_completed),
    GroupDissolved: _of_campaign(_group_dissolved),
    IntakeClosed: _of_campaign(_intake_closed),
    EscrowRefunded: _of_campaign(_escrow_refunded),
    PresaleRefundIssued: _of_campaign(_presale_refund_issued),
    PledgeReleased: _of_campaign(_pledge_released),
    DepositRefunded: _of_campaign(_deposit_refunded),
    CampaignClosed: _of_campaign(_campaign_closed),
    FirstBatchPlanned: _of_campaign(_first_batch_planned),
    FinalBatchConfirmed: _of_campaign(_final_batch_confirmed),
    FundsReleased: _of_campaign(_funds_released),
    PriceRiseRecorded: _of_campaign(_price_rise_recorded),
    PriceRiseOffered: _of_campaign(_price_rise_offered),
    PriceRiseAccepted: _of_campaign(_price_rise_accepted),
    PriceRiseDeclined: _of_campaign(_price_rise_declined),
    PriceRiseOfferExpired: _of_campaign(_price_rise_offer_expired),
    BuyerNoticeRequired: _of_campaign(_buyer_notice_required),
    SupplierPenaltyIncurred: _of_campaign(_supplier_penalty_due),
    RiskSignalRaised: _of_campaign(_risk_signal_raised),
    RiskSignalCleared: _of_campaign(_risk_signal_cleared),
    MilestonePlanned: _of_campaign(_tallied),
    MilestoneReached: _of_campaign(_tallied),
    SupplierQuestionAsked: _of_campaign(_tallied),
    SupplierAnswered: _of_campaign(_tallied),
    PledgeRejected: _of_campaign(_tallied),
    PresaleCommandRejected: _of_campaign(_tallied),
}
