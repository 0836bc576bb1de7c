"""Inventory's planning arithmetic (pure): R-INV-4 safety stock, R-INV-5 suggestions, R-INV-6
sell-through, R-INV-7 standing stock after a presale.

Business days are whole UTC days (`business time // DAY_MS`). A window of *W* days is the *W*
complete business days before today: today's sales count from tomorrow on, so a figure cannot
change during a day and a day's review (the first tick of the day) sees it once.

Rounding, one rule everywhere: a fraction of a unit is a unit to keep — every quantity is rounded
**up** (ceil), computed exactly with `Fraction` from the `Decimal` inputs. Rates that are reported
(velocity, sell-through) are `Decimal`s quantized to 4 places, half-up; decisions compare the exact
fractions, never the rounded figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

DAY_MS = 86_400_000
DEFAULT_VELOCITY_WINDOW_DAYS = 28  # R-INV-4: trailing window of the daily sales velocity
DEFAULT_SLOW_MOVER_WINDOW_DAYS = 30  # R-INV-6: sell-through window
DEFAULT_SELL_THROUGH_FLOOR = Decimal("0.20")  # R-INV-6: below it a sku is a slow mover
DEFAULT_COVER_FACTOR = Decimal("1")  # R-INV-4
GIFT_TIER_COVER_DAYS = {1: 30, 3: 7}  # R-INV-4: core gifts keep 30 days of cover, generic ones 7
GIFT_TIERS = (1, 2, 3)  # 2: seasonal, follows a forecast
PRESALE_CARRY_OVER = Decimal("0.3")  # R-INV-7: share of presold units the regular catalogue keeps
VISITOR_MONTHS = 2  # R-INV-7: months of visitor demand the regular catalogue keeps
MAX_WINDOW_DAYS = 365
MAX_LEAD_TIME_DAYS = 365
_PLACES = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class StockPolicy:
    """A sku's planning figures (R-INV-4, R-INV-6, R-INV-7), every default filled in."""

    lead_time_days: int = 0
    cover_factor: Decimal = DEFAULT_COVER_FACTOR
    gift_tier: int | None = None
    forecast_daily_units: Decimal | None = None
    monthly_visitors: int = 0
    conversion_rate: Decimal = Decimal("0")
    velocity_window_days: int = DEFAULT_VELOCITY_WINDOW_DAYS
    slow_mover_window_days: int = DEFAULT_SLOW_MOVER_WINDOW_DAYS
    sell_through_floor: Decimal = DEFAULT_SELL_THROUGH_FLOOR


DEFAULT_POLICY = StockPolicy()


def day_of(ms: int) -> int:
    """The business day (days since the epoch, UTC) of a business time in ms."""
    return ms // DAY_MS


def kept_days(policy: StockPolicy | None) -> int:
    """How many days of per-day sales a sku keeps: its longest window."""
    p = policy or DEFAULT_POLICY
    return max(p.velocity_window_days, p.slow_mover_window_days)


def add_shipment(buckets: dict[int, int], day: int, qty: int, keep: int) -> None:
    """Count `qty` shipped units on `day` (in place). Days older than `keep` days before the newest
    are dropped when a new day opens: O(window) once a day, O(1) for every other shipment."""
    if day in buckets:
        buckets[day] += qty
        return
    buckets[day] = qty
    cutoff = max(buckets) - keep
    for old in [d for d in buckets if d < cutoff]:
        del buckets[old]


def shipped_in(buckets: dict[int, int], today: int, window: int) -> int:
    """Units shipped in the `window` complete business days before `today`."""
    start = today - window
    return sum(q for d, q in buckets.items() if start <= d < today)


def observed_days(today: int, window: int, registered_day: int | None) -> int:
    """Complete days of the window the sku has been in the catalogue (its registration day counts)."""
    first = today - window if registered_day is None else max(today - window, registered_day)
    return max(0, today - first)


def velocity(buckets: dict[int, int], today: int, window: int, registered_day: int | None) -> Fraction:
    """R-INV-4: units shipped per business day over the trailing window (a sku younger than the
    window is divided by the days it has been listed; listed today: 0)."""
    days = observed_days(today, window, registered_day)
    return Fraction(shipped_in(buckets, today, window), days) if days else Fraction(0)


def daily_demand(policy: StockPolicy, is_gift: bool, measured: Fraction) -> Fraction:
    """The demand the plans use: the forecast for a tier-2 gift, the measured velocity otherwise."""
    if is_gift and policy.gift_tier == 2 and policy.forecast_daily_units is not None:
        return Fraction(policy.forecast_daily_units)
    return measured


def safety_stock(policy: StockPolicy, is_gift: bool, measured: Fraction) -> tuple[int, Fraction, str]:
    """R-INV-4: (units, daily demand used, basis).

    * any sku: ⌈velocity × lead time days × cover factor⌉ (`velocity`);
    * gift tier 1 / 3: ⌈velocity × 30 / 7 days⌉ — the tier's days of cover replace lead time × cover
      factor (`gift_tier_1`, `gift_tier_3`);
    * gift tier 2: ⌈forecast daily units × lead time days × cover factor⌉ (`gift_tier_2_forecast`)."""
    tier = policy.gift_tier if is_gift else None
    demand = daily_demand(policy, is_gift, measured)
    if tier in GIFT_TIER_COVER_DAYS:
        assert tier is not None
        return math.ceil(demand * GIFT_TIER_COVER_DAYS[tier]), demand, f"gift_tier_{tier}"
    cover = Fraction(policy.lead_time_days) * Fraction(policy.cover_factor)
    basis = "gift_tier_2_forecast" if tier == 2 else "velocity"
    return math.ceil(demand * cover), demand, basis


def replenishment_qty(threshold: int, available: int, demand: Fraction, lead_time_days: int) -> int:
    """R-INV-5: back up to the threshold, plus what sells while the order is on its way:
    threshold − available + ⌈daily demand × lead time days⌉ (at least 1)."""
    return max(1, threshold - available + math.ceil(demand * lead_time_days))


def transfers(available: dict[str, int], threshold: int) -> list[tuple[str, str, int]]:
    """R-INV-5: (from, to, qty) moves of surplus toward the warehouses that are short.

    Each warehouse's share of the threshold is ⌈threshold / number of warehouses⌉. Short warehouses
    (available below their share) are served lowest-available first; each takes from the warehouse
    with the largest surplus (available above its share) first; ties by warehouse name. Nothing
    moves with a single warehouse, or when no warehouse holds more than its share."""
    if len(available) < 2:
        return []
    share = math.ceil(threshold / len(available))
    short = sorted((a, w) for w, a in available.items() if a < share)
    donors = sorted((-(a - share), w) for w, a in available.items() if a > share)
    surplus = {w: -neg for neg, w in donors}
    out: list[tuple[str, str, int]] = []
    for a, to in short:
        need = share - a
        for _, frm in donors:
            if need == 0:
                break
            take = min(need, surplus[frm])
            if take > 0:
                out.append((frm, to, take))
                surplus[frm] -= take
                need -= take
    return out


def sell_through(shipped: int, on_hand: int) -> Fraction:
    """R-INV-6: shipped in the window / (shipped in the window + on hand now)."""
    total = shipped + on_hand
    return Fraction(shipped, total) if total else Fraction(0)


def standing_stock(presold_units: int, monthly_visitors: int, conversion_rate: Decimal) -> int:
    """R-INV-7: ⌈presold × 0.3 + monthly visitors × conversion rate × 2⌉ (500, 5 000, 1 % → 250)."""
    exact = (
        Fraction(presold_units) * Fraction(PRESALE_CARRY_OVER)
        + Fraction(monthly_visitors) * Fraction(conversion_rate) * VISITOR_MONTHS
    )
    return max(0, math.ceil(exact))


def as_decimal(value: Fraction) -> Decimal:
    """A rate for an event or a query: 4 places, half-up."""
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(_PLACES, rounding=ROUND_HALF_UP)
