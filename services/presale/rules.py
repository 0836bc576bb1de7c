"""Presale's pure arithmetic: phases and prices (R-PRE-3), escrow splits and refunds (R-PRE-5,
R-PRE-10), milestone releases (R-PRE-6), the first batch (R-PRE-7), the price-rise share (R-PRE-8).

Money is integer cents; rates are `Decimal`; times are ms since the epoch (business time). Every
rounding rule of the service lives here, named:

* a price = unit cost × phase factor, rounded half up to the cent;
* a split gives each non-production bucket ⌊amount × share⌋ and the remainder to production;
* a milestone may release up to ⌊cumulative share × production funded⌋ − already released;
* the first batch is ⌈70 % × pledged units⌉;
* a buyer's share of a price rise is (new cost − old cost) × units / 2, rounded half up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

# phases (R-PRE-3); "upcoming" before the start, "ended" from the end on
UPCOMING, EARLY_BIRD, REGULAR, GROUP, ENDED = "upcoming", "early_bird", "regular", "group", "ended"

# escrow buckets (R-PRE-5); deposits (R-PRE-2) are held apart, never split
PRODUCTION, RISK, MARKETING, OPERATIONS, DEPOSITS = "production", "risk", "marketing", "operations", "deposits"
SPLIT_BUCKETS = (PRODUCTION, RISK, MARKETING, OPERATIONS)
BUCKETS = (*SPLIT_BUCKETS, DEPOSITS)

# R-PRE-5: the remainder of every division goes to production, so production's share is implied
SPLITS: dict[str, dict[str, Decimal]] = {
    "standard": {RISK: Decimal("0.25"), MARKETING: Decimal("0.20"), OPERATIONS: Decimal("0.15")},  # production 40 %
    "simple": {RISK: Decimal("0.30"), OPERATIONS: Decimal("0.20")},  # production 50 %, reserve 30 %, operations 20 %
}
# a refund short in its own bucket is taken from these, in this order (the risk buffer first)
REFUND_FALLBACK = (RISK, OPERATIONS, MARKETING, PRODUCTION)

DEFAULT_MILESTONES: dict[str, Decimal] = {  # R-PRE-6: share of the production reserve each one releases
    "materials_bought": Decimal("0.30"),
    "sample_approved": Decimal("0.20"),
    "production_finished": Decimal("0.30"),
    "shipped": Decimal("0.20"),
}


@dataclass(frozen=True)
class PresaleConfig:
    """The merchant-configurable defaults of DOMAIN.md § Presale (the tests pin these)."""

    early_bird_ms: int = 72 * HOUR_MS  # R-PRE-3
    group_ms: int = 48 * HOUR_MS
    early_bird_factor: Decimal = Decimal("1.2")
    regular_factor: Decimal = Decimal("1.8")
    group_factor: Decimal = Decimal("1.5")
    group_size: int = 3
    capacity_ratio: Decimal = Decimal("0.8")  # R-PRE-4
    deposit_min: int = 2_000  # R-PRE-2: 20–30 CNY
    deposit_max: int = 3_000
    launch_ratio: Decimal = Decimal("0.015")  # depositors ≥ 1.5 % of the fan base
    first_batch_ratio: Decimal = Decimal("0.7")  # R-PRE-7
    final_batch_lead_ms: int = 7 * DAY_MS  # the rest is confirmed one week before delivery
    price_rise_threshold: Decimal = Decimal("0.30")  # R-PRE-8
    buyer_share: Decimal = Decimal("0.5")
    answer_window_ms: int = 72 * HOUR_MS  # how long a buyer has to accept or leave
    red_pledge_rate: Decimal = Decimal("0.008")  # R-PRE-9
    red_milestone_late_ms: int = 7 * DAY_MS
    red_refund_day_rate: Decimal = Decimal("0.02")
    yellow_order_value_factor: Decimal = Decimal("1.5")
    yellow_answer_ms: int = 24 * HOUR_MS
    green_coverage: Decimal = Decimal("1.5")
    green_on_time: Decimal = Decimal("0.95")
    notice_late_ms: int = 5 * DAY_MS
    penalty_late_ms: int = 14 * DAY_MS
    min_duration_ms: int = field(default=0)  # 0 = early bird + group window (the phases never overlap)

    @property
    def shortest_campaign_ms(self) -> int:
        return self.min_duration_ms or self.early_bird_ms + self.group_ms


# --- R-PRE-3 phases and prices -----------------------------------------------------------------


def phase_at(starts_at: int, ends_at: int, t: int, cfg: PresaleConfig) -> str:
    """The phase in force at business time `t`: early bird [start, start+72 h), group [end−48 h, end)."""
    if t < starts_at:
        return UPCOMING
    if t >= ends_at:
        return ENDED
    if t < starts_at + cfg.early_bird_ms:
        return EARLY_BIRD
    if t >= ends_at - cfg.group_ms:
        return GROUP
    return REGULAR


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def unit_price(unit_cost: int, phase: str, in_group: bool, cfg: PresaleConfig) -> int:
    """Cents per unit: cost × 1.2 early, × 1.8 regular, × 1.5 for a group in the last 48 h; half up."""
    if phase == EARLY_BIRD:
        factor = cfg.early_bird_factor
    elif phase == GROUP and in_group:
        factor = cfg.group_factor
    else:
        factor = cfg.regular_factor
    return half_up(Decimal(unit_cost) * factor)


def capacity_cap(max_capacity: int, cfg: PresaleConfig) -> int:
    """R-PRE-4: the most units intake accepts, ⌊80 % × capacity⌋."""
    return int((Decimal(max_capacity) * cfg.capacity_ratio).to_integral_value(rounding=ROUND_FLOOR))


def launch_threshold(fan_base: int, cfg: PresaleConfig) -> int:
    """R-PRE-2: depositors needed, ⌈1.5 % × fan base⌉ (at least one)."""
    return max(1, int((Decimal(fan_base) * cfg.launch_ratio).to_integral_value(rounding=ROUND_CEILING)))


# --- R-PRE-5 escrow ----------------------------------------------------------------------------


_SPLIT_RATIOS: dict[str, list[tuple[str, int, int]]] = {
    scheme: [(b, *share.as_integer_ratio()) for b, share in shares.items()] for scheme, shares in SPLITS.items()
}


def split(amount: int, scheme: str) -> dict[str, int]:
    """An amount over the four buckets, exact to the cent: each share rounded down, the rest to production."""
    parts = {PRODUCTION: 0, RISK: 0, MARKETING: 0, OPERATIONS: 0}
    for bucket, num, den in _SPLIT_RATIOS[scheme]:
        parts[bucket] = amount * num // den  # ⌊amount × share⌋, exact in integers (amount ≥ 0)
    parts[PRODUCTION] = amount - parts[RISK] - parts[MARKETING] - parts[OPERATIONS]
    return parts


def take_refund(held: Mapping[str, int], amount: int, scheme: str) -> tuple[dict[str, int], int]:
    """What a refund of `amount` takes from each bucket, and the part no bucket covers.

    First the refund's own split (what the payment put in), each capped at what the bucket holds;
    a shortfall (production released to milestones, rounding of earlier partial refunds) comes from
    the risk buffer, then operations, marketing, production. Never more than a bucket holds."""
    want = split(amount, scheme)
    taken = {b: min(want[b], max(0, held.get(b, 0))) for b in SPLIT_BUCKETS}
    short = amount - sum(taken.values())
    for b in REFUND_FALLBACK:
        if short <= 0:
            break
        extra = min(short, held.get(b, 0) - taken[b])
        if extra > 0:
            taken[b] += extra
            short -= extra
    return taken, short


# --- R-PRE-6 milestones, R-PRE-7 batches, R-PRE-8 price rise ------------------------------------


def release_allowance(shares_done: Decimal, production_funded: int, released: int, held: int) -> int:
    """What the milestones reached so far may release in all, minus what was released, within what is held."""
    target = int((Decimal(production_funded) * shares_done).to_integral_value(rounding=ROUND_FLOOR))
    return max(0, min(held, target - released))


def first_batch(pledged_units: int, cfg: PresaleConfig) -> int:
    return int((Decimal(pledged_units) * cfg.first_batch_ratio).to_integral_value(rounding=ROUND_CEILING))


def rise_rate(old_cost: int, new_cost: int) -> Decimal:
    return (Decimal(new_cost - old_cost) / Decimal(old_cost)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def buyer_extra(old_cost: int, new_cost: int, units: int, cfg: PresaleConfig) -> int:
    """A buyer's half of a shared rise for `units` units, in cents, half up."""
    return half_up(Decimal(new_cost - old_cost) * units * cfg.buyer_share)
