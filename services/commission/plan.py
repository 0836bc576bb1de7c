"""The commission plan's defaults, the rounding rule and calendar helpers (pure).

Rounding (R-COM-2, R-COM-3): a level's commission on a line is `rate × net paid amount of the line`,
rounded half up to the cent. A refund does not round on its own: the commission still owed after it
is recomputed on the line's new net amount, and the clawback is the difference. So for any history
of refunds, what a level keeps on a line is exactly `round_half_up(rate × net)`, a full refund takes
back every cent, and no clawback is ever negative (rounding is monotonic).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from services.commission.messages import BonusTier, CommissionPlan

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

MAX_LEVELS = 3  # R-COM-1: commission never flows more than 3 levels up (a legal risk)
MAX_RECRUITMENT_DEPTH = 1_000_000  # the largest cap on recruitment depth a plan may set (0: none)
BASE_RATE_MIN = Decimal("0.15")  # R-COM-2: the level-1 rate is 15–20 % of the line's paid amount
BASE_RATE_MAX = Decimal("0.20")
MAX_PREMIUM = Decimal("0.05")  # what a grade may add to a level's rate
MAX_SKU_RATE = Decimal("0.50")  # a sku's own rate (by hand or by a rule) stays below this
STANDARD = "standard"
ZERO = Decimal(0)

DEFAULT_PLAN = CommissionPlan(
    levels=2,  # R-COM-1: 2 levels recommended
    max_chain_depth=0,  # R-COM-1: recruitment depth is not capped unless the merchant asks
    level_rates=[Decimal("0.15"), Decimal("0.05"), Decimal("0.02")],
    grade_premiums={
        STANDARD: [ZERO, ZERO, ZERO],
        "silver": [Decimal("0.01"), ZERO, ZERO],
        "gold": [Decimal("0.02"), Decimal("0.01"), ZERO],
    },
    default_sponsor=None,
    payout_delay_ms=7 * DAY_MS,  # T+7
    batch_interval_ms=DAY_MS,  # a batch every business day (00:00 UTC)
    bonus_tiers=[
        BonusTier(threshold=1_000_000, bonus=20_000),
        BonusTier(threshold=3_000_000, bonus=80_000),
        BonusTier(threshold=5_000_000, bonus=150_000),
    ],
    referral_bonus=5_000,  # 50 CNY per new member (R-COM-4)
    qualification_warning_ms=30 * DAY_MS,  # R-COM-6
)


def commission(rate: Decimal, amount: int) -> int:
    """`rate × amount` cents, rounded half up to the cent (amount >= 0)."""
    return int((rate * amount).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def premium(plan: CommissionPlan, grade: str, level: int) -> Decimal:
    premiums = plan.grade_premiums.get(grade, [])
    return premiums[level - 1] if len(premiums) >= level else ZERO


def tier_of(plan: CommissionPlan, net_sales: int) -> tuple[int, int]:
    """(tier number, bonus cents) reached by a month's net sales; (0, 0) below the first tier."""
    reached = [(i + 1, t.bonus) for i, t in enumerate(plan.bonus_tiers) if net_sales >= t.threshold]
    return reached[-1] if reached else (0, 0)


def month_of(ms: int) -> str:
    """The UTC calendar month of a business time, "YYYY-MM"."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m")


def batch_id(cutoff: int) -> str:
    """The id of the payout batch with this cutoff: its UTC time, e.g. "2026-01-15T00:00Z"."""
    return datetime.fromtimestamp(cutoff / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


def cutoff_of(time: int, interval: int) -> int:
    """The latest batch cutoff at or before `time` (batches at multiples of `interval` since the epoch)."""
    return (time // interval) * interval


def validate_plan(plan: CommissionPlan) -> str | None:
    """Why a plan is not acceptable, or None."""
    if not 1 <= plan.levels <= MAX_LEVELS:
        return f"levels must be 1 to {MAX_LEVELS}: commission never flows more than 3 levels up (R-COM-1)"
    if not 0 <= plan.max_chain_depth <= MAX_RECRUITMENT_DEPTH:
        return f"max_chain_depth (a cap on recruitment depth) must be 0 (no cap) to {MAX_RECRUITMENT_DEPTH}"
    rates = plan.level_rates
    if len(rates) != MAX_LEVELS:
        return f"give {MAX_LEVELS} level rates (levels 1, 2, 3)"
    if not BASE_RATE_MIN <= rates[0] <= BASE_RATE_MAX:
        return f"the level-1 rate must be within {BASE_RATE_MIN}–{BASE_RATE_MAX} (R-COM-2), got {rates[0]}"
    for k in range(1, MAX_LEVELS):
        if not ZERO <= rates[k] < rates[k - 1]:
            return f"level {k + 1}'s rate {rates[k]} must be >= 0 and smaller than level {k}'s {rates[k - 1]} (R-COM-2)"
    for grade, premiums in plan.grade_premiums.items():
        if len(premiums) > MAX_LEVELS or any(not ZERO <= p <= MAX_PREMIUM for p in premiums):
            return f"grade {grade}: at most {MAX_LEVELS} premiums, each within 0–{MAX_PREMIUM}"
    if plan.payout_delay_ms < 0 or plan.batch_interval_ms < MINUTE_MS:
        return "payout delay must be >= 0 and the batch interval at least one minute"
    thresholds = [t.threshold for t in plan.bonus_tiers]
    if any(t.threshold <= 0 or t.bonus <= 0 for t in plan.bonus_tiers) or thresholds != sorted(set(thresholds)):
        return "bonus tiers need positive thresholds in increasing order and positive bonuses"
    if plan.referral_bonus < 0:
        return "the referral bonus must be >= 0 cents"
    return None
