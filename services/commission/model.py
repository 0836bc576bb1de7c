"""What one partition of the commission service holds (pure data, folded by `evolve`).

* `network` — the referral tree, the plan history and the sku-rate history. Every partition keeps a
  full copy (a replica, from `NetworkReplicated`); the partition of the network aggregate holds the
  authoritative one and, in `authority`, what only it decides on (rate rules, qualification warnings).
* `orders` — the commission of the orders sold by this partition's distributors (the seller side):
  per line and level, who gets what, what was clawed back, whether it is in the accounts yet.
* `accounts` — this partition's distributors as beneficiaries: lines credited but not yet paid
  (a clawback of commission already there is a negative line) and their payout batches.
* `totals` — per distributor: accrued, clawed back, pending, payable, paid. Each partition counts
  the events it holds, so a distributor's figures are the sum over partitions, and
  accrued − clawed = pending + payable + paid holds in each partition and in the sum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from flexchain.messages import Message
from services.commission.messages import (
    CommissionCommandRejected,
    CommissionPlan,
    DistributorRecord,
    NetworkChange,
    OrderCommissionParked,
    PayoutBatchSettled,
    PayoutLine,
    PlanVersion,
    RateRule,
    ReferralBonusParked,
    SkuRateVersion,
)
from services.commission.plan import DEFAULT_PLAN


def refuse(cmd: Message, reason: str, aggregate: str | None = None) -> list[Message]:
    return [
        CommissionCommandRejected(
            aggregate_id=aggregate if aggregate is not None else cmd.key, command=type(cmd).__name__, reason=reason
        )
    ]


@dataclass(slots=True)
class Network:
    """The referral tree and the plan, as this partition knows them (up to change `seq`)."""

    seq: int = 0
    distributors: dict[str, DistributorRecord] = field(default_factory=dict)
    children: dict[str, set[str]] = field(default_factory=dict)
    plans: list[PlanVersion] = field(default_factory=lambda: [PlanVersion(effective_from=0, seq=0, plan=DEFAULT_PLAN)])
    sku_rates: dict[str, list[SkuRateVersion]] = field(default_factory=dict)

    @property
    def current(self) -> PlanVersion:
        return self.plans[-1]  # kept in seq order

    @property
    def plan(self) -> CommissionPlan:
        """The plan as last changed (settlement, bonuses, tree limits)."""
        return self.plans[-1].plan

    def plan_at(self, time: int) -> PlanVersion:
        """The plan in force for an order paid at `time` (R-COM-5: a change applies to orders paid after)."""
        best = self.plans[0]
        for v in self.plans[1:]:
            if v.effective_from <= time and (v.effective_from, v.seq) > (best.effective_from, best.seq):
                best = v
        return best

    def sku_rate_at(self, sku: str, time: int) -> Decimal | None:
        best = None
        for v in self.sku_rates.get(sku, ()):
            if v.effective_from <= time and (best is None or (v.effective_from, v.seq) > (best.effective_from, best.seq)):
                best = v
        return best.rate if best is not None else None

    def current_sku_rate(self, sku: str) -> Decimal | None:
        versions = self.sku_rates.get(sku)
        return max(versions, key=lambda v: v.seq).rate if versions else None

    def with_change(self, seq: int, change: NetworkChange) -> Network:
        """A copy that has `change` too (for deciding with it before it is folded); this one is untouched."""
        other = Network(self.seq, self.distributors, self.children, list(self.plans), dict(self.sku_rates))
        if change.distributor is not None:
            other.distributors = dict(self.distributors)
            other.children = {k: set(v) for k, v in self.children.items()}
        if change.sku_rate is not None:
            other.sku_rates[change.sku_rate.sku] = list(self.sku_rates.get(change.sku_rate.sku, []))
        other.apply(seq, change)
        return other

    def apply(self, seq: int, change: NetworkChange) -> None:
        self.seq = max(self.seq, seq)
        d = change.distributor
        if d is not None:
            old = self.distributors.get(d.distributor_id)
            if old is not None and old.upline_id is not None:
                self.children.get(old.upline_id, set()).discard(d.distributor_id)
            if d.upline_id is not None:
                self.children.setdefault(d.upline_id, set()).add(d.distributor_id)
            self.distributors[d.distributor_id] = d
        if change.plan is not None:
            self.plans.append(change.plan)
        if change.sku_rate is not None:
            self.sku_rates.setdefault(change.sku_rate.sku, []).append(change.sku_rate)


def upline_chain(records: Mapping[str, DistributorRecord], distributor_id: str, limit: int | None = None) -> list[str]:
    """`distributor_id` and its uplines, nearest first (at most `limit` of them). The tree is acyclic
    (a cycle is refused); the walk stops at a repeat anyway, so a corrupt replica cannot hang it."""
    chain: list[str] = []
    seen: set[str] = set()
    current: str | None = distributor_id
    while current is not None and current not in seen and (limit is None or len(chain) < limit):
        chain.append(current)
        seen.add(current)
        rec = records.get(current)
        current = rec.upline_id if rec is not None else None
    return chain


def depth(records: Mapping[str, DistributorRecord], distributor_id: str) -> int:
    """Distributors in the chain from `distributor_id` up to its root (a root has depth 1)."""
    return len(upline_chain(records, distributor_id))


def height(network: Network, distributor_id: str) -> int:
    """Levels of the subtree under `distributor_id`, itself included (a leaf has height 1). Level by
    level, not recursive: the tree may be any depth (R-COM-1)."""
    levels, frontier, seen = 0, {distributor_id}, {distributor_id}
    while frontier:
        levels += 1
        frontier = {k for d in frontier for k in network.children.get(d, ()) if k not in seen}
        seen |= frontier
    return levels


@dataclass(slots=True)
class Authority:
    """What the partition of the network aggregate alone decides on."""

    rules: dict[str, RateRule] = field(default_factory=dict)
    active: dict[str, list[str]] = field(default_factory=dict)  # sku → active rule ids, in activation order
    manual: dict[str, Decimal] = field(default_factory=dict)  # sku → hand-set level-1 rate
    warned: dict[str, int] = field(default_factory=dict)  # distributor → the expiry warned about
    expired: dict[str, int] = field(default_factory=dict)  # distributor → the expiry recorded


@dataclass(slots=True)
class Share:
    level: int
    distributor_id: str
    grade: str
    rate: Decimal
    accrued: int
    note: str
    clawed: int = 0
    in_account: bool = False  # payable: handed to the beneficiary's account

    @property
    def net(self) -> int:
        return self.accrued - self.clawed


@dataclass(slots=True)
class Line:
    sku: str
    qty: int
    paid: int
    shares: list[Share]
    refunded: int = 0


@dataclass(slots=True)
class OrderCommission:
    """The commission of one paid order: pending, then payable (in the accounts, due at `due_at`) (R-COM-3)."""

    order_id: str
    seller_id: str
    member_id: str
    paid_at: int
    network_seq: int
    lines: list[Line]
    status: str = "pending"
    payable_at: int | None = None
    due_at: int | None = None
    refunds: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Entry:
    line: PayoutLine
    available_at: int


@dataclass(slots=True)
class Account:
    """A beneficiary's lines not yet paid, and the batches that paid them."""

    entries: list[Entry] = field(default_factory=list)
    last_cutoff: int = -1
    batches: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Totals:
    """accrued (commission + bonuses) − clawed = pending + payable + paid, in cents."""

    accrued: int = 0
    bonuses: int = 0
    clawed: int = 0
    pending: int = 0
    payable: int = 0
    paid: int = 0


@dataclass(slots=True)
class CommissionState:
    network: Network = field(default_factory=Network)
    authority: Authority = field(default_factory=Authority)
    orders: dict[str, OrderCommission] = field(default_factory=dict)
    parked: dict[str, OrderCommissionParked] = field(default_factory=dict)
    parked_bonuses: dict[str, list[ReferralBonusParked]] = field(default_factory=dict)
    sales: dict[str, dict[str, int]] = field(default_factory=dict)  # seller → open month → net sales
    closed: dict[str, str] = field(default_factory=dict)  # seller → last closed month
    growth: dict[str, int] = field(default_factory=dict)  # seller → net sales of closed months (cents)
    accounts: dict[str, Account] = field(default_factory=dict)
    members: dict[str, str] = field(default_factory=dict)  # member → first paid order (the member's partition)
    customers: set[str] = field(default_factory=set)  # members who bought through this partition's sellers
    totals: dict[str, Totals] = field(default_factory=dict)
    batches: dict[str, list[PayoutBatchSettled]] = field(default_factory=dict)
    settled_cutoff: int = -1  # the latest payout cutoff this partition has passed (its part of that batch settled)

    def totals_of(self, distributor_id: str) -> Totals:
        t = self.totals.get(distributor_id)
        if t is None:
            t = self.totals[distributor_id] = Totals()
        return t

    def account(self, distributor_id: str) -> Account:
        a = self.accounts.get(distributor_id)
        if a is None:
            a = self.accounts[distributor_id] = Account()
        return a
