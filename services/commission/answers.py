"""What commission's read routes answer, as models (documented in the OpenAPI document, each with a
real example from the demo; FastAPI checks every answer against its model before sending it).

Money is integer cents (fen), rates are decimal strings (e.g. "0.15"), times are ms since the epoch,
UTC (business time)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from flexchain.answers import Answer, ReplaySummary


def _examples(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """A root model (not an `Answer`) shows its `EXAMPLE` as an `Answer` does."""
    schema["examples"] = [getattr(cls, "EXAMPLE")]  # noqa: B009


# --- distributors (R-COM-1, R-COM-5a, R-COM-6) ---------------------------------------------------

_LIN: dict[str, Any] = {
    "distributor_id": "lin-86d57a",
    "name": "",
    "upline_id": "ming-86d57a",
    "grade": "standard",
    "qualified_until": None,
    "registered_at": 1795000000000,
}


class DistributorRecord(Answer):
    """A distributor as the network knows it (R-COM-1, R-COM-6)."""

    EXAMPLE = _LIN

    distributor_id: str
    name: str = Field(description='"" when none was given')
    upline_id: str | None = Field(description="who recruited them (R-COM-1); null for a root of the tree")
    grade: str = Field(description="the grade whose premiums are added to their rate at each level (R-COM-2)")
    qualified_until: int | None = Field(description="when their qualification ends (R-COM-6); null: no expiry")
    registered_at: int


class DistributorListed(DistributorRecord):
    """A distributor in `GET /distributors`, with its depth in the tree."""

    EXAMPLE = {**_LIN, "depth": 2}

    depth: int = Field(description="distributors in the chain from this one up to its root (a root has depth 1, R-COM-1)")


class Balances(Answer):
    """A distributor's figures summed over every partition (cents), with
    earned − clawed_back = pending + payable + paid (R-COM-3, R-COM-4)."""

    EXAMPLE = {"commission": 1770, "bonuses": 5000, "earned": 6770, "clawed_back": 1770, "pending": 0, "payable": 0, "paid": 5000}

    commission: int = Field(description="commission accrued on orders (R-COM-2)")
    bonuses: int = Field(description="referral and monthly target bonuses (R-COM-4)")
    earned: int = Field(description="commission + bonuses")
    clawed_back: int = Field(description="taken back by refunds (R-COM-3, R-X-3)")
    pending: int = Field(description="accrued, still in the return window (R-COM-3)")
    payable: int = Field(description="payable, not paid yet; negative when clawbacks exceed it (R-COM-3)")
    paid: int = Field(description="paid in payout batches")


class PayoutLine(Answer):
    """One line of an account or a payout."""

    EXAMPLE = {"kind": "commission", "ref": "A-86d57a", "sku": "mask-86d57a", "level": 1, "amount": 1770}

    kind: str = Field(description="commission | clawback | adjustment | referral_bonus | monthly_bonus")
    ref: str = Field(description="the order id (a bonus: the member id, or the month)")
    sku: str = Field(description='"" for a bonus')
    level: int = Field(description="the beneficiary's level in the order's chain (1 = the seller); 0 for a bonus")
    amount: int = Field(description="signed cents: a clawback is negative (R-COM-3)")


class Account(Answer):
    """A distributor's account as beneficiary: the lines credited but not paid yet, and its payout batches."""

    EXAMPLE = {
        "unpaid_lines": [
            PayoutLine.EXAMPLE,
            {"kind": "clawback", "ref": "A-86d57a", "sku": "mask-86d57a", "level": 1, "amount": -1770},
        ],
        "balance": 0,
        "batches": ["2026-11-26T00:00Z"],
    }

    unpaid_lines: list[PayoutLine]
    balance: int = Field(description="the sum of the unpaid lines (cents)")
    batches: list[str] = Field(description="ids of the payout batches that paid this distributor")


class Distributor(DistributorRecord):
    """A distributor: record, upline chain, balances and account (R-COM-6); with `?as_of=`, as they
    stood at that business time (R-X-4)."""

    EXAMPLE = {
        **_LIN,
        "chain": ["lin-86d57a", "ming-86d57a"],
        "downline_size": 0,
        "balances": Balances.EXAMPLE,
        "account": Account.EXAMPLE,
        "open_months": {"2026-11": 0},
        "growth_value": 0,
        "qualification_warned_for": None,
        "qualification_expired": None,
    }

    chain: list[str] = Field(description="this distributor and its uplines, nearest first (R-COM-1)")
    downline_size: int = Field(description="distributors below, at every depth")
    balances: Balances
    account: Account
    open_months: dict[str, int] = Field(description="month (YYYY-MM) → net sales so far, cents (the monthly target, R-COM-4)")
    growth_value: int = Field(description="net sales of the closed months, 1 per CNY (not cents, R-COM-4)")
    qualification_warned_for: int | None = Field(description="the expiry a warning was raised for, 30 days before (R-COM-6)")
    qualification_expired: int | None = Field(description="the expiry recorded when the qualification ended (R-COM-6)")
    as_of: ReplaySummary | None = None


class DownlineNode(Answer):
    """A distributor below another one, with its own downline."""

    EXAMPLE = {
        "distributor_id": "lin-86d57a",
        "level": 1,
        "grade": "standard",
        "downline": [],
    }

    distributor_id: str
    level: int = Field(description="levels below the distributor asked about (1: recruited by them)")
    grade: str
    downline: list[DownlineNode]


class Downline(Answer):
    """The tree below a distributor (R-COM-1)."""

    EXAMPLE = {"distributor_id": "ming-86d57a", "size": 1, "downline": [DownlineNode.EXAMPLE]}

    distributor_id: str
    size: int = Field(description="distributors below, at every depth")
    downline: list[DownlineNode]


class Payout(Answer):
    """One distributor's part of a payout batch (R-COM-3)."""

    EXAMPLE = {
        "distributor_id": "lin-86d57a",
        "batch_id": "2026-11-26T00:00Z",
        "cutoff": 1795651200000,
        "lines": [{"kind": "referral_bonus", "ref": "m-86d57a", "sku": "", "level": 0, "amount": 5000}],
        "gross": 5000,
        "deductions": 0,
        "net": 5000,
        "paid_at": 1795691260000,
    }

    distributor_id: str
    batch_id: str
    cutoff: int = Field(description="the batch's cutoff: the lines due by then are paid")
    lines: list[PayoutLine]
    gross: int = Field(description="the positive lines (cents)")
    deductions: int = Field(description="clawbacks carried, negative (cents, R-COM-3)")
    net: int = Field(description="what was paid: gross + deductions (cents)")
    paid_at: int


# --- the plan, rates and rules (R-COM-1..5) ------------------------------------------------------


class BonusTier(Answer):
    """Monthly target (R-COM-4): net sales of the month >= `threshold` cents earn `bonus` cents."""

    EXAMPLE = {"threshold": 1000000, "bonus": 20000}

    threshold: int
    bonus: int


class CommissionPlan(Answer):
    """The merchant's commission plan (R-COM-1..4, R-COM-6)."""

    EXAMPLE = {
        "levels": 2,
        "max_chain_depth": 0,
        "level_rates": ["0.15", "0.05", "0.02"],
        "grade_premiums": {"standard": ["0", "0", "0"], "silver": ["0.01", "0", "0"], "gold": ["0.02", "0.01", "0"]},
        "default_sponsor": None,
        "payout_delay_ms": 604800000,
        "batch_interval_ms": 86400000,
        "bonus_tiers": [{"threshold": 1000000, "bonus": 20000}, {"threshold": 3000000, "bonus": 80000}],
        "referral_bonus": 5000,
        "qualification_warning_ms": 2592000000,
    }

    levels: int = Field(description="levels commission flows up, the seller being level 1: 2 or 3 (R-COM-1)")
    max_chain_depth: int = Field(description="cap on how deep the tree may grow by recruitment; 0: none (R-COM-1)")
    level_rates: list[str] = Field(description="rate of level k at [k-1] (R-COM-2); a sku's own rate replaces level 1's")
    grade_premiums: dict[str, list[str]] = Field(description="grade → premium added to level k's rate at [k-1] (R-COM-2)")
    default_sponsor: str | None = Field(description="the upline of a distributor who joins without one (R-COM-5a)")
    payout_delay_ms: int = Field(description="T+N: from payable to due (R-COM-3)")
    batch_interval_ms: int = Field(description="between payout batch cutoffs (R-COM-3)")
    bonus_tiers: list[BonusTier] = Field(description="the monthly target tiers (R-COM-4)")
    referral_bonus: int = Field(description="cents per new member a distributor brings (R-COM-4)")
    qualification_warning_ms: int = Field(description="how long before a qualification ends it is warned about (R-COM-6)")


class PlanVersion(Answer):
    """A plan in force for orders paid from `effective_from` (R-COM-5: a change applies to orders paid after)."""

    EXAMPLE = {"effective_from": 0, "seq": 0, "plan": CommissionPlan.EXAMPLE}

    effective_from: int
    seq: int = Field(description="the network change that set it")
    plan: CommissionPlan


class Plan(Answer):
    """The plan in force now and every version of it, oldest first."""

    EXAMPLE = {"current": PlanVersion.EXAMPLE, "history": [PlanVersion.EXAMPLE]}

    current: PlanVersion
    history: list[PlanVersion]


class SkuRateVersion(Answer):
    """A sku's level-1 rate from `effective_from` (R-COM-5)."""

    EXAMPLE = {"sku": "serum", "rate": "0.10", "effective_from": 1791936000000, "seq": 9}

    sku: str
    rate: str | None = Field(description="null: the plan's level-1 rate")
    effective_from: int
    seq: int = Field(description="the network change that set it")


class SkuRate(Answer):
    """A sku's own level-1 rate, set by hand or by the rate rules (R-COM-2, R-COM-5)."""

    EXAMPLE = {"rate": "0.10", "manual_rate": None, "active_rules": ["scarce"], "history": [SkuRateVersion.EXAMPLE]}

    rate: str | None = Field(description="the rate now; null: the plan's level-1 rate")
    manual_rate: str | None = Field(description="the rate set by hand (`PUT /rates/skus/{sku}`), before the rules move it")
    active_rules: list[str] = Field(description="ids of the rules active for the sku, in activation order (R-COM-5)")
    history: list[SkuRateVersion]


class RateRule(Answer):
    """A dynamic-rate rule (R-COM-5): while `signal` for a sku is >= `threshold`, its level-1 rate
    moves by `delta`, kept within [`floor`, `ceiling`]."""

    EXAMPLE = {
        "rule_id": "scarce",
        "signal": "low_stock",
        "skus": ["serum"],
        "delta": "-0.05",
        "threshold": 10,
        "floor": "0.08",
        "ceiling": "0.20",
    }

    rule_id: str
    signal: str = Field(description="e.g. low_stock (units short, from inventory's alerts) or one sent by hand")
    skus: list[str] = Field(description="empty: every sku")
    delta: str
    threshold: int
    floor: str
    ceiling: str


class RateRules(Answer):
    """The dynamic-rate rules and, per sku, the ids of those active (R-COM-5)."""

    EXAMPLE = {"rules": [RateRule.EXAMPLE], "active": {"serum": ["scarce"]}}

    rules: list[RateRule]
    active: dict[str, list[str]] = Field(description="sku → ids of the rules active for it, in activation order")


# --- the chain of an order, payout batches (R-COM-3, R-COM-6) ------------------------------------


class LevelShare(Answer):
    """One level's commission on one line: who, at which rate, how much (R-COM-6)."""

    EXAMPLE = {
        "level": 1,
        "distributor_id": "lin-86d57a",
        "grade": "standard",
        "rate": "0.15",
        "accrued": 1770,
        "clawed_back": 1770,
        "net": 0,
        "in_account": True,
        "note": "",
    }

    level: int = Field(description="1 = the seller")
    distributor_id: str
    grade: str
    rate: str = Field(description="the rate applied, grade premium included (R-COM-2); 0 for an expired qualification")
    accrued: int
    clawed_back: int = Field(description="taken back by refunds, in proportion (R-COM-3)")
    net: int = Field(description="accrued − clawed_back")
    in_account: bool = Field(description="payable: handed to the beneficiary's account (R-COM-3)")
    note: str = Field(description='e.g. "qualification expired at …" (rate 0, R-COM-6); "" otherwise')


class OrderLineCommission(Answer):
    """One line of an order and its commission per level."""

    EXAMPLE = {
        "sku": "mask-86d57a",
        "qty": 2,
        "paid": 11800,
        "refunded": 11800,
        "net_paid": 0,
        "levels": [LevelShare.EXAMPLE],
    }

    sku: str
    qty: int
    paid: int
    refunded: int
    net_paid: int = Field(description="paid − refunded: what the commission is computed on")
    levels: list[LevelShare]


class OrderCommission(Answer):
    """The chain behind an order's commission: order → lines → levels → distributors → amounts (R-COM-6)."""

    EXAMPLE = {
        "order_id": "A-86d57a",
        "seller_id": "lin-86d57a",
        "member_id": "m-86d57a",
        "paid_at": 1795000000000,
        "status": "payable",
        "network_seq": 2,
        "payable_at": 1795691260000,
        "due_at": 1796296060000,
        "refunds": ["r-5c331dbc7aad"],
        "lines": [
            {
                **OrderLineCommission.EXAMPLE,
                "levels": [
                    LevelShare.EXAMPLE,
                    {
                        "level": 2,
                        "distributor_id": "ming-86d57a",
                        "grade": "standard",
                        "rate": "0.05",
                        "accrued": 590,
                        "clawed_back": 590,
                        "net": 0,
                        "in_account": True,
                        "note": "",
                    },
                ],
            }
        ],
        "total": 0,
    }

    order_id: str
    seller_id: str = Field(description="the level-1 distributor")
    member_id: str
    paid_at: int
    status: str = Field(description="pending (in the return window) | payable (R-COM-3)")
    network_seq: int = Field(description="the last network change the split was made with (R-COM-5)")
    payable_at: int | None
    due_at: int | None = Field(description="when the commission is due in the accounts (T+N, R-COM-3)")
    refunds: list[str] = Field(description="ids of the refunds that clawed back")
    lines: list[OrderLineCommission]
    total: int = Field(description="the net commission of the order, every line and level")


class PaidLine(Answer):
    """What was paid for one sku of an order (cents)."""

    EXAMPLE = {"sku": "mask-86d57a", "qty": 2, "amount": 11800}

    sku: str
    qty: int
    amount: int


class ParkedOrder(Answer):
    """A paid order whose seller the partition does not know yet: kept (with its later refunds and
    completion) until the distributor's registration reaches it, then split."""

    EXAMPLE = {
        "distributor_id": "lin-86d57a",
        "order_id": "A-86d57a",
        "member_id": "m-86d57a",
        "paid_at": 1795000000000,
        "lines": [PaidLine.EXAMPLE],
        "completed_at": None,
        "reason": "distributor lin-86d57a is not known (yet): the commission waits for the registration",
        "status": "parked",
    }

    distributor_id: str = Field(description="the seller")
    order_id: str
    member_id: str
    paid_at: int
    lines: list[PaidLine] = Field(description="net of the refunds received meanwhile")
    completed_at: int | None
    reason: str
    status: Literal["parked"]


class OrderCommissionAnswer(RootModel[OrderCommission | ParkedOrder]):
    """An order's commission: its chain once split (`status` pending or payable), or the order as
    parked (`status` "parked") while its seller is not known yet on the seller's partition."""

    EXAMPLE: ClassVar[Any] = OrderCommission.EXAMPLE
    model_config = ConfigDict(json_schema_extra=_examples)


class PayoutBatchListed(Answer):
    """A payout batch in `GET /payout-batches` (R-COM-3)."""

    EXAMPLE = {
        "batch_id": "2026-11-26T00:00Z",
        "distributors": 1,
        "net": 5000,
        "cutoff": 1795651200000,
        "complete": True,
        "partitions_settled": 6,
        "partitions": 6,
    }

    batch_id: str
    distributors: int = Field(description="how many distributors it paid")
    net: int = Field(description="what it paid in all (cents)")
    cutoff: int
    complete: bool = Field(description="every partition has settled its part (README, holding and settlement)")
    partitions_settled: int
    partitions: int


class PayoutBatch(Answer):
    """A payout batch and every distributor's part of it (R-COM-3)."""

    EXAMPLE = {
        "batch_id": "2026-11-26T00:00Z",
        "cutoff": 1795651200000,
        "complete": True,
        "partitions_settled": 6,
        "partitions": 6,
        "net": 5000,
        "lines": 1,
        "payouts": [Payout.EXAMPLE],
    }

    batch_id: str
    cutoff: int
    complete: bool = Field(description="every partition has settled its part (README, holding and settlement)")
    partitions_settled: int
    partitions: int
    net: int = Field(description="what it paid in all (cents)")
    lines: int = Field(description="how many payout lines it holds (a count; each payout lists its own)")
    payouts: list[Payout]
