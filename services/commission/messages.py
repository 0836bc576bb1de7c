"""Commission's commands (on `commission.commands`) and events (on `commission.events`).

Four kinds of aggregate, each its own key:

* the referral **network** (`network_id`, one per merchant, default "main"): the distributor tree, the
  commission plan and the sku rates. One aggregate, so every tree change is decided in one place and
  a cycle or an over-deep chain can never slip in between two concurrent links (R-COM-1);
* a **distributor** (`distributor_id`): as seller (level 1), the commission of the orders they sold,
  split over the chain; as beneficiary, their account (credits, clawbacks after release, bonuses,
  payout batches);
* a **member** (`member_id`): whether they already bought, for the referral bonus (R-COM-4);
* the **partition** (no key): broadcast commands (clock ticks, network replication) and the replica
  of the network that every partition keeps (`NetworkReplicated`).

Money is integer cents (fen), rates are `Decimal`, times are ms since the epoch UTC (business time).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from flexchain.messages import Message

NETWORK = "main"  # the merchant's referral network (one per merchant)


class CommissionMessage(Message):
    SERVICE: ClassVar[str] = "commission"


class NetworkMessage(CommissionMessage):
    KEY: ClassVar[str] = "network_id"


class DistributorMessage(CommissionMessage):
    KEY: ClassVar[str] = "distributor_id"


class MemberMessage(CommissionMessage):
    KEY: ClassVar[str] = "member_id"


class PartitionMessage(CommissionMessage):
    KEY: ClassVar[str] = ""  # broadcast to every partition / kept by each partition


# --- records carried inside messages -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DistributorRecord:
    """A distributor as the network knows it; `qualified_until` None = no expiry (R-COM-6)."""

    distributor_id: str
    name: str
    upline_id: str | None
    grade: str
    qualified_until: int | None
    registered_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BonusTier:
    """Monthly target: net sales of the month >= `threshold` cents earn `bonus` cents (R-COM-4)."""

    threshold: int
    bonus: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CommissionPlan:
    """The merchant's commission plan (R-COM-1..4, R-COM-6).

    `level_rates[k-1]` is the rate of level k (level 1 = the distributor who sold); a sku's own rate,
    when it has one, replaces the level-1 rate. `grade_premiums[grade][k-1]` is added to level k's rate
    for a beneficiary of that grade. `levels` is how far commission flows up; `max_chain_depth` caps how
    deep the tree may grow by recruitment — a separate setting, 0 (no cap) by default (R-COM-1)."""

    levels: int
    max_chain_depth: int
    level_rates: list[Decimal]
    grade_premiums: dict[str, list[Decimal]]
    default_sponsor: str | None
    payout_delay_ms: int
    batch_interval_ms: int
    bonus_tiers: list[BonusTier]
    referral_bonus: int
    qualification_warning_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanVersion:
    """A plan in force for orders paid from `effective_from` (R-COM-5: applies to orders paid after)."""

    effective_from: int
    seq: int
    plan: CommissionPlan


@dataclass(frozen=True, slots=True, kw_only=True)
class SkuRateVersion:
    """A sku's level-1 rate from `effective_from`; None = the plan's level-1 rate."""

    sku: str
    rate: Decimal | None
    effective_from: int
    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkChange:
    """One replicated change of the network: exactly one field is set."""

    distributor: DistributorRecord | None
    plan: PlanVersion | None
    sku_rate: SkuRateVersion | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RateRule:
    """A dynamic-rate rule (R-COM-5): while `signal` for a sku is >= `threshold`, the sku's level-1
    rate moves by `delta`, kept within [`floor`, `ceiling`]. `skus` empty = every sku."""

    rule_id: str
    signal: str
    skus: list[str]
    delta: Decimal
    threshold: int
    floor: Decimal
    ceiling: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class PaidLine:
    """What was paid for one sku of an order (cents)."""

    sku: str
    qty: int
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundAmount:
    """What a refund gave back for one sku (cents)."""

    sku: str
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LevelShare:
    """One level's commission on one line: who, at which rate, how much (R-COM-6 chain)."""

    level: int
    distributor_id: str
    grade: str
    rate: Decimal
    amount: int
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AccruedLine:
    sku: str
    qty: int
    paid_amount: int
    shares: list[LevelShare]


@dataclass(frozen=True, slots=True, kw_only=True)
class LevelClawback:
    """Commission taken back at one level; `after_release` = the share was already in the
    beneficiary's account (payable), so it is charged there (a negative line, R-COM-3)."""

    level: int
    distributor_id: str
    amount: int
    after_release: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ClawbackLine:
    sku: str
    refunded_amount: int
    net_amount: int
    levels: list[LevelClawback]


@dataclass(frozen=True, slots=True, kw_only=True)
class LevelAdjustment:
    """A share's net commission changed by `delta` when a rate change reached the order late;
    `after_release`: settled through the beneficiary's account (credit or charge)."""

    sku: str
    level: int
    distributor_id: str
    delta: int
    after_release: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PayoutLine:
    """One line of an account: `kind` commission | clawback | adjustment | referral_bonus | monthly_bonus; `ref` the
    order id (or member id, month); `amount` signed cents (a clawback is negative)."""

    kind: str
    ref: str
    sku: str
    level: int
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BeneficiaryPayout:
    distributor_id: str
    lines: list[PayoutLine]
    total: int


# --- network commands (key: network_id) -------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterDistributor(NetworkMessage):
    """A distributor joins, recruited by `upline_id`; none → the default sponsor (R-COM-1, R-COM-5a)."""

    network_id: str
    distributor_id: str
    name: str = ""
    upline_id: str | None = None
    grade: str = "standard"
    qualified_until: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkDistributor(NetworkMessage):
    """Put a distributor (and their downline) under another upline (R-COM-1)."""

    network_id: str
    distributor_id: str
    upline_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SetDistributorGrade(NetworkMessage):
    network_id: str
    distributor_id: str
    grade: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewQualification(NetworkMessage):
    """The distributor's qualification now runs until `qualified_until` (R-COM-6)."""

    network_id: str
    distributor_id: str
    qualified_until: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SetCommissionLevels(NetworkMessage):
    """Commission flows up `levels` levels (1..3, R-COM-1). `max_chain_depth`, when given, also caps how
    deep the tree may grow by recruitment (0: no cap); None leaves the cap as it is."""

    network_id: str
    levels: int
    max_chain_depth: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetLevelRates(NetworkMessage):
    """Rates of levels 1, 2, 3 (R-COM-2: level 1 within 15–20 %, each deeper level smaller)."""

    network_id: str
    rates: list[Decimal]


@dataclass(frozen=True, slots=True, kw_only=True)
class SetGradePremiums(NetworkMessage):
    """What a grade adds to the rate at each level (R-COM-2: rates differ by grade)."""

    network_id: str
    grade: str
    premiums: list[Decimal]


@dataclass(frozen=True, slots=True, kw_only=True)
class SetDefaultSponsor(NetworkMessage):
    """Who a distributor joining without an upline is placed under (None: nobody) (R-COM-5a)."""

    network_id: str
    distributor_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetSettlement(NetworkMessage):
    """Payable commission is released `payout_delay_ms` after it became payable (T+7) and paid in
    batches every `batch_interval_ms` (R-COM-3)."""

    network_id: str
    payout_delay_ms: int
    batch_interval_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SetBonuses(NetworkMessage):
    """Monthly target tiers and the referral bonus per new member, cents (R-COM-4)."""

    network_id: str
    tiers: list[BonusTier]
    referral_bonus: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SetSkuRate(NetworkMessage):
    """A sku's own level-1 rate (None: back to the plan's) (R-COM-2: rates differ by product)."""

    network_id: str
    sku: str
    rate: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetRateRule(NetworkMessage):
    """Add or replace a dynamic-rate rule (R-COM-5)."""

    network_id: str
    rule: RateRule


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveRateRule(NetworkMessage):
    network_id: str
    rule_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyStockSignal(NetworkMessage):
    """Stock state of a sku (from inventory events or by hand): `signal` now measures `value`."""

    network_id: str
    sku: str
    signal: str
    value: int
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckNetworkTimers(NetworkMessage):
    """Business time reached `time`: qualification warnings and expiries (R-COM-6)."""

    network_id: str
    time: int


# --- seller commands (key: the level-1 distributor) -------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordOrderPaid(DistributorMessage):
    """An order sold by `distributor_id` was paid (from OrderPaid): split its commission (R-COM-3)."""

    distributor_id: str
    order_id: str
    member_id: str
    paid_at: int
    lines: list[PaidLine]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordOrderRefund(DistributorMessage):
    """Money went back for an order (OrderRefunded; OrderCancelled after payment = `everything`)."""

    distributor_id: str
    order_id: str
    refund_id: str
    lines: list[RefundAmount]
    everything: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordOrderCompleted(DistributorMessage):
    """The order's return window closed (OrderCompleted): its commission becomes payable."""

    distributor_id: str
    order_id: str
    completed_at: int


# --- account commands (key: the beneficiary) ------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditCommission(DistributorMessage):
    """Payable commission of a seller's order, into the beneficiary's account, due from `available_at`."""

    distributor_id: str
    seller_id: str
    available_at: int
    lines: list[PayoutLine]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargeClawback(DistributorMessage):
    """Commission already in the account, taken back after a refund: a negative line, due with the
    commission it takes back (so it nets in the same batch, or in the next one if that was paid)."""

    distributor_id: str
    seller_id: str
    order_id: str
    refund_id: str
    available_at: int
    lines: list[PayoutLine]


@dataclass(frozen=True, slots=True, kw_only=True)
class AwardReferralBonus(DistributorMessage):
    """`member_id` is a new member brought by `distributor_id` (R-COM-4)."""

    distributor_id: str
    member_id: str
    order_id: str
    paid_at: int


# --- member commands ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordMemberPurchase(MemberMessage):
    """A member paid an order (from OrderPaid): is this their first one?"""

    member_id: str
    order_id: str
    distributor_id: str | None
    paid_at: int


# --- broadcast commands ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckCommissionTimers(PartitionMessage):
    """Business time reached `time` on this partition: release due commission (T+7), close months,
    pay batches (R-COM-3, R-COM-4). Sent to every partition for each clock tick."""

    time: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicateNetwork(PartitionMessage):
    """A network change (`seq`), copied to every partition so each can split its orders locally."""

    seq: int
    change: NetworkChange


# --- network events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DistributorRegistered(NetworkMessage):
    """A distributor joined; `sponsored` when the default sponsor became their upline (R-COM-5a)."""

    network_id: str
    seq: int
    distributor: DistributorRecord
    sponsored: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DistributorLinked(NetworkMessage):
    network_id: str
    seq: int
    distributor: DistributorRecord
    previous_upline_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DistributorGradeChanged(NetworkMessage):
    network_id: str
    seq: int
    distributor: DistributorRecord
    previous_grade: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QualificationRenewed(NetworkMessage):
    network_id: str
    seq: int
    distributor: DistributorRecord
    previous_until: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class QualificationExpiryWarned(NetworkMessage):
    """A qualification ends within the warning period (default 30 days) (R-COM-6)."""

    network_id: str
    distributor_id: str
    qualified_until: int
    days_left: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QualificationExpired(NetworkMessage):
    """A qualification ended: no commission or bonus accrues to the distributor until renewed."""

    network_id: str
    distributor_id: str
    qualified_until: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CommissionPlanChanged(NetworkMessage):
    """The plan changed (`change` says what); it applies to orders paid from `effective_from`."""

    network_id: str
    seq: int
    change: str
    plan: CommissionPlan
    effective_from: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SkuRateChanged(NetworkMessage):
    """A sku's level-1 rate changed (by hand or by a rule, R-COM-5); `rate` None = the plan's rate;
    `manual_rate` the hand-set base the rules start from; applies to orders paid from `effective_from`."""

    network_id: str
    seq: int
    sku: str
    rate: Decimal | None
    previous_rate: Decimal | None
    manual_rate: Decimal | None
    effective_from: int
    reason: str
    rule_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RateRuleSet(NetworkMessage):
    network_id: str
    rule: RateRule


@dataclass(frozen=True, slots=True, kw_only=True)
class RateRuleRemoved(NetworkMessage):
    network_id: str
    rule_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RateRuleTriggered(NetworkMessage):
    """A rule became active (signal crossed its threshold) or inactive for a sku (R-COM-5)."""

    network_id: str
    rule_id: str
    sku: str
    active: bool
    signal: str
    value: int


# --- seller events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CommissionAccrued(DistributorMessage):
    """The commission of a paid order, split per line and level up the chain (R-COM-1..3, R-COM-6):
    pending until the return window closes. Keyed by the level-1 distributor (the seller);
    `network_seq`: the network change the split was computed with."""

    distributor_id: str
    order_id: str
    member_id: str
    paid_at: int
    network_seq: int
    lines: list[AccruedLine]
    total: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerFirstSeen(DistributorMessage):
    """A member bought through this partition's sellers for the first time: the member's partition
    is asked whether they are a new member (R-COM-4). Seen here before = not new: nothing to ask."""

    distributor_id: str
    member_id: str
    order_id: str
    paid_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CommissionRecomputed(DistributorMessage):
    """A rate change in force when the order was paid reached its partition after the order was split
    (R-COM-5: a change applies to every order paid after it): the shares as they should be (`lines`,
    accrued on the paid amounts) and what changed per share (`adjustments`)."""

    distributor_id: str
    order_id: str
    network_seq: int
    lines: list[AccruedLine]
    adjustments: list[LevelAdjustment]
    total_delta: int
    recomputed_at: int
    due_at: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCommissionParked(DistributorMessage):
    """A paid order whose seller this partition does not know yet: kept (with its later refunds and
    completion) until the distributor's registration reaches the partition."""

    distributor_id: str
    order_id: str
    member_id: str
    paid_at: int
    lines: list[PaidLine]
    completed_at: int | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CommissionClawedBack(DistributorMessage):
    """A refund took back commission at every level in proportion (R-COM-3, R-X-3); `due_at`: when the
    order's commission is (or was) due, if it is already in the beneficiaries' accounts."""

    distributor_id: str
    order_id: str
    refund_id: str
    lines: list[ClawbackLine]
    total: int
    due_at: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommissionBecamePayable(DistributorMessage):
    """The return window closed: the order's commission is payable and goes to each beneficiary's
    account (`payouts`), to be paid in the first batch from `due_at` (T+7, R-COM-3)."""

    distributor_id: str
    order_id: str
    payable_at: int
    due_at: int
    total: int
    payouts: list[BeneficiaryPayout]


@dataclass(frozen=True, slots=True, kw_only=True)
class MonthlyTargetClosed(DistributorMessage):
    """A month closed for a seller: net sales, the tier reached and its bonus, the growth value
    (1 per CNY of net sales, cumulative) — a target, never a quota (R-COM-4)."""

    distributor_id: str
    month: str
    net_sales: int
    tier: int
    bonus: int
    growth_value: int
    closed_at: int
    note: str


# --- account events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CommissionCredited(DistributorMessage):
    distributor_id: str
    seller_id: str
    lines: list[PayoutLine]
    total: int
    available_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ClawbackCharged(DistributorMessage):
    """A clawback of commission already in the account: a negative line, netted in the batch where it
    is due or, after payout, in the next one (R-COM-3)."""

    distributor_id: str
    seller_id: str
    order_id: str
    refund_id: str
    lines: list[PayoutLine]
    total: int
    available_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferralBonusAwarded(DistributorMessage):
    """50 CNY (default) for a new member the distributor brought (R-COM-4)."""

    distributor_id: str
    member_id: str
    order_id: str
    amount: int
    awarded_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferralBonusParked(DistributorMessage):
    """A referral for a distributor this partition does not know yet; awarded when it does."""

    distributor_id: str
    member_id: str
    order_id: str
    paid_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PayoutBatchSettled(DistributorMessage):
    """One distributor's part of payout batch `batch_id` (cutoff `cutoff`): its lines, the positive
    `gross`, the `deductions` (clawbacks carried, negative) and the `net` paid (R-COM-3)."""

    distributor_id: str
    batch_id: str
    cutoff: int
    lines: list[PayoutLine]
    gross: int
    deductions: int
    net: int
    paid_at: int


# --- member and partition events --------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NewMemberRecorded(MemberMessage):
    """A member's first paid order; with a distributor, it earns them the referral bonus."""

    member_id: str
    order_id: str
    distributor_id: str | None
    paid_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PayoutCutoffPassed(PartitionMessage):
    """This partition has settled its part of payout batch `batch_id` (cutoff `cutoff`), with or
    without payouts of its own: once every partition has, the batch is complete (R-COM-3)."""

    batch_id: str
    cutoff: int
    passed_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkReplicated(PartitionMessage):
    """This partition's copy of the network took change `seq` (kept per partition, not for subscribers)."""

    seq: int
    change: NetworkChange


@dataclass(frozen=True, slots=True, kw_only=True)
class CommissionCommandRejected(CommissionMessage):
    """A command was refused with a reason; nothing changed."""

    KEY: ClassVar[str] = "aggregate_id"
    aggregate_id: str
    command: str
    reason: str


COMMANDS: tuple[type[Message], ...] = (
    RegisterDistributor,
    LinkDistributor,
    SetDistributorGrade,
    RenewQualification,
    SetCommissionLevels,
    SetLevelRates,
    SetGradePremiums,
    SetDefaultSponsor,
    SetSettlement,
    SetBonuses,
    SetSkuRate,
    SetRateRule,
    RemoveRateRule,
    ApplyStockSignal,
    CheckNetworkTimers,
    RecordOrderPaid,
    RecordOrderRefund,
    RecordOrderCompleted,
    CreditCommission,
    ChargeClawback,
    AwardReferralBonus,
    RecordMemberPurchase,
    CheckCommissionTimers,
    ReplicateNetwork,
)
EVENTS: tuple[type[Message], ...] = (
    DistributorRegistered,
    DistributorLinked,
    DistributorGradeChanged,
    QualificationRenewed,
    QualificationExpiryWarned,
    QualificationExpired,
    CommissionPlanChanged,
    SkuRateChanged,
    RateRuleSet,
    RateRuleRemoved,
    RateRuleTriggered,
    CommissionAccrued,
    CustomerFirstSeen,
    CommissionRecomputed,
    OrderCommissionParked,
    CommissionClawedBack,
    CommissionBecamePayable,
    MonthlyTargetClosed,
    CommissionCredited,
    ClawbackCharged,
    ReferralBonusAwarded,
    ReferralBonusParked,
    PayoutBatchSettled,
    PayoutCutoffPassed,
    NewMemberRecorded,
    NetworkReplicated,
    CommissionCommandRejected,
)
MESSAGES: list[type[Message]] = [*COMMANDS, *EVENTS]
