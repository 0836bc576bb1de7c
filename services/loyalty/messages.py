"""Loyalty's commands (on `loyalty.commands`) and events (on `loyalty.events`), keyed by member id.

Times are ms since the epoch, UTC; a *day* in a field name is the start (ms) of a business day
(midnight in the merchant's time zone). Money is cents; points and growth value are whole numbers.
Two events are about a partition, not a member (KEY ""): `MembersEvaluated`, written once per
business day by the clock tick, and the tick command itself. Usage cycles are keyed by sku.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from flexchain.messages import Message

ACTIONS = ("checkin", "share", "review")  # behaviour points, at most once per business day each (R-LOY-2)
TIERS = ("regular", "silver", "gold", "diamond")  # R-LOY-1
STAGES = ("prospect", "new", "growing", "mature", "declining", "churned")  # R-LOY-3 (+ prospect: no purchase yet)
SEGMENTS = ("champions", "loyal", "promising", "at_risk", "hibernating", "prospect")  # R-LOY-6


class LoyaltyMessage(Message):
    KEY: ClassVar[str] = "member_id"
    SERVICE: ClassVar[str] = "loyalty"


@dataclass(frozen=True, slots=True, kw_only=True)
class PurchasedLine:
    """Units of a sku in a paid order (for replenishment reminders)."""

    sku: str
    qty: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOut:
    """When a member's supply of a consumable is estimated to run out (R-LOY-4)."""

    sku: str
    run_out_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchPoints:
    """Points of the earning batch that expires at `expires_at` (R-LOY-2)."""

    expires_at: int
    points: int


# --- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinMember(LoyaltyMessage):
    """A customer joins, optionally referred by an existing member (R-LOY-5)."""

    member_id: str
    referrer_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QuoteMemberDiscount(LoyaltyMessage):
    """The order service asks for the member's tier discount (routed from OrderPlaced, R-LOY-1)."""

    member_id: str
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordPurchase(LoyaltyMessage):
    """A paid order (routed from OrderPaid): spend, growth, pending points, life cycle."""

    member_id: str
    order_id: str
    amount: int
    paid_at: int
    lines: list[PurchasedLine]


@dataclass(frozen=True, slots=True, kw_only=True)
class CompletePurchase(LoyaltyMessage):
    """The order's return window closed (routed from OrderCompleted): its points become available."""

    member_id: str
    order_id: str
    completed_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReversePurchase(LoyaltyMessage):
    """Money went back (routed from OrderRefunded, or OrderCancelled after payment, R-X-3).

    `paid_total` and `refunded_before` are the order's paid cents and the cents refunded before this
    refund (from OrderRefunded): with them a refund after completion takes back an exact share of
    the order's points without loyalty keeping the order. 0: not known (a cancellation, which
    always finds the order pending, or a record written before they were added)."""

    member_id: str
    order_id: str
    refund_id: str
    amount: int
    fully_refunded: bool
    paid_total: int = 0
    refunded_before: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordBehaviour(LoyaltyMessage):
    """A check-in, share or review (R-LOY-2); `reference` names what was shared or reviewed."""

    member_id: str
    action: str
    reference: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RedeemPoints(LoyaltyMessage):
    """Spend available points on a reward (goods or a coupon), soonest-expiring first (R-LOY-2)."""

    member_id: str
    redemption_id: str
    points: int
    reward: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RewardReferrer(LoyaltyMessage):
    """The member's referral completed a first purchase (routed from ReferralCompleted, R-LOY-5)."""

    member_id: str
    referred_id: str
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigureUsageCycle(LoyaltyMessage):
    """One unit of `sku` lasts `cycle_days` days (0: not a consumable) (R-LOY-4)."""

    KEY: ClassVar[str] = "sku"
    sku: str
    cycle_days: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyUsageCycle(LoyaltyMessage):
    """A configured usage cycle, sent to every partition (routed from UsageCycleConfigured)."""

    KEY: ClassVar[str] = ""
    sku: str
    cycle_days: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckMemberTimers(LoyaltyMessage):
    """Business time reached `time` on this partition: stages, expiry, reminders, RFM (R-X-1).

    Sent to every partition (its key is empty) by the loyalty router for each clock tick."""

    KEY: ClassVar[str] = ""
    time: int


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberJoined(LoyaltyMessage):
    """A member joined, through the API or with a first paid order (`via`: api | order)."""

    member_id: str
    referrer_id: str | None
    joined_at: int
    via: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberDiscountQuoted(LoyaltyMessage):
    """The member's tier and its price factor when the order was placed (1.0 for a non-member)."""

    member_id: str
    order_id: str
    tier: str
    discount_rate: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class PurchaseRecorded(LoyaltyMessage):
    """A paid order: `points` pending until it completes; consumables' estimated run-outs."""

    member_id: str
    order_id: str
    amount: int
    points: int
    paid_at: int
    lines: list[PurchasedLine]
    run_outs: list[RunOut]


@dataclass(frozen=True, slots=True, kw_only=True)
class PurchaseCompleted(LoyaltyMessage):
    """The order's return window closed; its points and its month count as final."""

    member_id: str
    order_id: str
    completed_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PurchaseReversed(LoyaltyMessage):
    """`amount` cents of the order went back: spend and growth value go down (R-X-3)."""

    member_id: str
    order_id: str
    refund_id: str
    amount: int
    fully_refunded: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BehaviourRecorded(LoyaltyMessage):
    """A check-in, share or review on a business day; `growth`: the growth value it adds."""

    member_id: str
    action: str
    reference: str
    growth: int
    recorded_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PointsEarned(LoyaltyMessage):
    """Ledger: points earned. Order points are `pending` (no expiry yet); others expire at `expires_at`."""

    member_id: str
    points: int
    reason: str
    source: str
    pending: bool
    expires_at: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PointsReleased(LoyaltyMessage):
    """Ledger: an order's pending points became available (its return window closed)."""

    member_id: str
    order_id: str
    points: int
    source: str
    expires_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PointsRedeemed(LoyaltyMessage):
    """Ledger: points spent on a reward, taken from the soonest-expiring batches first."""

    member_id: str
    redemption_id: str
    points: int
    reward: str
    source: str
    taken: list[BatchPoints]


@dataclass(frozen=True, slots=True, kw_only=True)
class PointsExpired(LoyaltyMessage):
    """Ledger: earning batches reached their expiry."""

    member_id: str
    points: int
    source: str
    batches: list[BatchPoints]


@dataclass(frozen=True, slots=True, kw_only=True)
class PointsReversed(LoyaltyMessage):
    """Ledger: points of a refunded order taken back; `shortfall` could not be (never below zero)."""

    member_id: str
    order_id: str
    refund_id: str
    points: int
    from_pending: int
    shortfall: int
    source: str
    taken: list[BatchPoints]


@dataclass(frozen=True, slots=True, kw_only=True)
class TierChanged(LoyaltyMessage):
    """The member's growth value crossed a tier threshold, up or down (R-LOY-1)."""

    member_id: str
    previous: str
    tier: str
    growth: int
    discount_rate: Decimal
    changed_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StageChanged(LoyaltyMessage):
    """The member's life-cycle stage changed; `changed_at` is the business day it took effect (R-LOY-3)."""

    member_id: str
    previous: str
    stage: str
    changed_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChurnWarningRaised(LoyaltyMessage):
    """The member entered *declining*: the gap since the last purchase exceeds 1.5 × the usual interval."""

    member_id: str
    last_purchase_at: int
    usual_interval_days: int
    gap_days: int
    purchases: int
    raised_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplenishmentReminderRaised(LoyaltyMessage):
    """The member's consumable runs out in 7 days, as estimated from the last purchase (R-LOY-4)."""

    member_id: str
    sku: str
    order_id: str
    run_out_at: int
    remind_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StreakGiftEarned(LoyaltyMessage):
    """Completed purchases in consecutive months earned a gift (R-LOY-5); `months` as YYYY-MM."""

    member_id: str
    months: list[str]
    gift_sku: str
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferralCompleted(LoyaltyMessage):
    """The referred member's first purchase completed: both sides are rewarded (R-LOY-5)."""

    member_id: str
    referrer_id: str
    order_id: str
    points: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RfmSegmentChanged(LoyaltyMessage):
    """The member's RFM quintile scores (1–5) or segment changed (R-LOY-6)."""

    member_id: str
    recency: int
    frequency: int
    monetary: int
    segment: str
    previous_segment: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageCycleConfigured(LoyaltyMessage):
    """A sku's usage cycle was set (0: not a consumable)."""

    KEY: ClassVar[str] = "sku"
    sku: str
    cycle_days: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageCycleApplied(LoyaltyMessage):
    """This partition uses the sku's usage cycle from now on."""

    KEY: ClassVar[str] = "sku"
    sku: str
    cycle_days: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MembersEvaluated(LoyaltyMessage):
    """A partition evaluated its members through business day `day` (a clock tick at `time`).

    `due`: members whose timers were due. When the RFM scores were recomputed (`rfm_recomputed`,
    once a business day after purchases or refunds): `rfm_members` in the base and the cuts, the
    lowest value that scores 2, 3, 4 and 5 (recency: a day; frequency: orders; monetary: cents;
    2**62 when no member reaches the score)."""

    KEY: ClassVar[str] = ""
    day: int
    time: int
    due: int
    rfm_recomputed: bool
    rfm_members: int
    recency_cuts: list[int]
    frequency_cuts: list[int]
    monetary_cuts: list[int]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoyaltyCommandRejected(LoyaltyMessage):
    """A command was refused with a reason; nothing changed. `subject`: the member id or sku."""

    KEY: ClassVar[str] = "subject"
    subject: str
    command: str
    reason: str


COMMANDS: tuple[type[Message], ...] = (
    JoinMember,
    QuoteMemberDiscount,
    RecordPurchase,
    CompletePurchase,
    ReversePurchase,
    RecordBehaviour,
    RedeemPoints,
    RewardReferrer,
    ConfigureUsageCycle,
    ApplyUsageCycle,
    CheckMemberTimers,
)
EVENTS: tuple[type[Message], ...] = (
    MemberJoined,
    MemberDiscountQuoted,
    PurchaseRecorded,
    PurchaseCompleted,
    PurchaseReversed,
    BehaviourRecorded,
    PointsEarned,
    PointsReleased,
    PointsRedeemed,
    PointsExpired,
    PointsReversed,
    TierChanged,
    StageChanged,
    ChurnWarningRaised,
    ReplenishmentReminderRaised,
    StreakGiftEarned,
    ReferralCompleted,
    RfmSegmentChanged,
    UsageCycleConfigured,
    UsageCycleApplied,
    MembersEvaluated,
    LoyaltyCommandRejected,
)
LEDGER: tuple[type[Message], ...] = (PointsEarned, PointsReleased, PointsRedeemed, PointsExpired, PointsReversed)
MESSAGES: list[type[Message]] = [*COMMANDS, *EVENTS]
