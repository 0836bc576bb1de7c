"""Loyalty's rules as pure functions of plain values: business days, tiers, life-cycle stages, RFM
scores and streak months. No state, no I/O; `domain.py` applies them to a partition's members.

A *business day* is a whole number of days since 1970-01-01 in the merchant's time zone (UTC+8 by
default): "once per day", expiry dates and every time-driven rule count whole business days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
_EPOCH = dt.date(1970, 1, 1).toordinal()

PROSPECT, NEW, GROWING, MATURE, DECLINING, CHURNED = range(6)  # index into messages.STAGES
# Without a purchase in between, a member only moves forward along this order (R-LOY-3).
_RANK = {PROSPECT: 0, NEW: 0, GROWING: 1, MATURE: 1, DECLINING: 2, CHURNED: 3}


@dataclass(frozen=True)
class Tier:
    name: str
    threshold: int  # growth value from which the tier applies
    discount_rate: Decimal  # price factor: 0.9 = 10 % off


@dataclass(frozen=True)
class LoyaltyConfig:
    """The merchant's defaults (DOMAIN § Loyalty); every number here can be changed."""

    tz_offset_ms: int = 8 * HOUR_MS  # business days in China Standard Time
    points_per_cny: int = 1  # R-LOY-2: 1 point per whole CNY paid
    points_expiry_months: int = 12  # R-LOY-2: per earning batch
    behaviour_points: dict[str, int] = field(default_factory=lambda: {"checkin": 5, "share": 10, "review": 20})
    behaviour_growth: dict[str, int] = field(default_factory=lambda: {"checkin": 1, "share": 2, "review": 5})
    tiers: tuple[Tier, ...] = (  # R-LOY-1: growth value = 1 per whole CNY of net spend + interactions
        Tier("regular", 0, Decimal("1.0")),
        Tier("silver", 1_000, Decimal("0.9")),
        Tier("gold", 5_000, Decimal("0.8")),
        Tier("diamond", 20_000, Decimal("0.7")),
    )
    new_days: int = 30  # R-LOY-3: new within 30 days of the first purchase
    mature_orders: int = 6  # growing with 2–5 purchases, mature from 6
    default_interval_days: int = 60  # usual interval before a second purchase day: 3 × 60 = 180 days
    min_interval_days: int = 7  # purchases days apart do not make a one-day "usual interval"
    declining_tenths: int = 15  # declining: gap > 1.5 × usual interval
    churned_tenths: int = 30  # churned: gap > 3 × usual interval
    prospect_churn_days: int = 180  # a member with no purchase at all: churned after 180 days
    reminder_lead_days: int = 7  # R-LOY-4
    streak_months: int = 3  # R-LOY-5
    streak_gift_sku: str = "streak-gift"
    referral_points: int = 200  # R-LOY-5: to each side

    def tier_index(self, growth: int) -> int:
        idx = 0
        for i, t in enumerate(self.tiers):
            if growth >= t.threshold:
                idx = i
        return idx


# --- points of an order (R-LOY-2) ---------------------------------------------------------------


def order_points(cfg: LoyaltyConfig, paid: int) -> int:
    """The points an order paid `paid` cents earns: per whole CNY, cents dropped."""
    return paid // 100 * cfg.points_per_cny


def refunded_share(points: int, refunded: int, paid: int) -> int:
    """The points taken back from an order of `points` once `refunded` of its `paid` cents went
    back: the refunded share, rounded down on the cumulative refunded amount, never more than
    `points` (paid 0: all of them, which is none)."""
    return points * min(refunded, paid) // paid if paid > 0 else points


# --- calendar ----------------------------------------------------------------------------------


def day_of(ms: int, cfg: LoyaltyConfig) -> int:
    return (ms + cfg.tz_offset_ms) // DAY_MS


def day_start(day: int, cfg: LoyaltyConfig) -> int:
    """The instant (ms, UTC) a business day begins."""
    return day * DAY_MS - cfg.tz_offset_ms


def iso(day: int) -> str:
    return dt.date.fromordinal(_EPOCH + day).isoformat()


def add_months(day: int, months: int) -> int:
    """The same day of the month `months` later (the 31st becomes the month's last day)."""
    d = dt.date.fromordinal(_EPOCH + day)
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(d.day, last)).toordinal() - _EPOCH


def month_of(day: int) -> int:
    """A month number (year × 12 + month − 1) for streaks."""
    d = dt.date.fromordinal(_EPOCH + day)
    return d.year * 12 + d.month - 1


def month_name(month: int) -> str:
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


# --- life-cycle stages (R-LOY-3) ----------------------------------------------------------------


def usual_interval(cfg: LoyaltyConfig, first: int, last: int, purchase_days: int) -> int:
    """The member's usual days between purchases: the mean gap between purchase days (rounded),
    at least `min_interval_days`; before a second purchase day, the default (60 days)."""
    if purchase_days < 2:
        return cfg.default_interval_days
    gaps = purchase_days - 1
    return max(cfg.min_interval_days, (2 * (last - first) + gaps) // (2 * gaps))


def stage_on(cfg: LoyaltyConfig, day: int, joined: int, first: int, last: int, orders: int, purchase_days: int) -> int:
    """The stage a member is in on `day`, from its purchases (`first` < 0: never purchased)."""
    if first < 0:
        return CHURNED if day - joined > cfg.prospect_churn_days else PROSPECT
    interval = usual_interval(cfg, first, last, purchase_days)
    gap = day - last
    if gap * 10 > cfg.churned_tenths * interval:
        return CHURNED
    if gap * 10 > cfg.declining_tenths * interval:
        return DECLINING
    if day - first <= cfg.new_days:
        return NEW
    return MATURE if orders >= cfg.mature_orders else GROWING


def next_stage_day(
    cfg: LoyaltyConfig, stage: int, joined: int, first: int, last: int, orders: int, purchase_days: int
) -> int | None:
    """The first business day on which the member moves past `stage` if it buys nothing more.

    Stages only move forward in time (new → growing/mature → declining → churned), so this is the
    first of the rule's thresholds where the stage ranks higher; None when there is none."""
    if first < 0:
        candidates = [joined + cfg.prospect_churn_days + 1]
    else:
        interval = usual_interval(cfg, first, last, purchase_days)
        candidates = [
            first + cfg.new_days + 1,
            last + cfg.declining_tenths * interval // 10 + 1,
            last + cfg.churned_tenths * interval // 10 + 1,
        ]
    rank = _RANK[stage]
    for day in sorted(candidates):
        if _RANK[stage_on(cfg, day, joined, first, last, orders, purchase_days)] > rank:
            return day
    return None


# --- RFM (R-LOY-6) ------------------------------------------------------------------------------


def money_bucket(cents: int) -> int:
    """Net spend rounded down to 5 significant bits of whole CNY (steps of ≤ 6 %), in cents:
    a histogram over buckets stays small however many members there are."""
    cny = max(0, cents) // 100
    if cny < 32:
        return cny * 100
    shift = cny.bit_length() - 5
    return (cny >> shift << shift) * 100


def quintile_scores(hist: dict[int, int]) -> dict[int, int]:
    """Score 1–5 per value: the quintile of its mid-rank in the base (ties share a score)."""
    total = sum(hist.values())
    out: dict[int, int] = {}
    below = 0
    for value in sorted(hist):
        n = hist[value]
        # mid-rank percentile (below + n/2) / total, in fifths: 1 + floor(5 · p)
        out[value] = min(5, 1 + (5 * (2 * below + n)) // (2 * total))
        below += n
    return out


UNREACHED = 1 << 62  # the cut of a score no member reaches


def cuts(scores: dict[int, int]) -> list[int]:
    """The lowest value that scores 2, 3, 4 and 5 (`UNREACHED` when no value does): a value's
    score is 1 + the number of cuts it reaches."""
    ordered = sorted(scores.items())
    return [next((v for v, sc in ordered if sc >= s), UNREACHED) for s in (2, 3, 4, 5)]


def rfm_code(r: int, f: int, m: int) -> int:
    return (r - 1) * 25 + (f - 1) * 5 + (m - 1)


def rfm_scores(code: int) -> tuple[int, int, int]:
    return code // 25 + 1, code // 5 % 5 + 1, code % 5 + 1


def segment(code: int) -> str:
    """Named segment of an RFM score (-1: no purchase yet): recency against frequency-and-money."""
    if code < 0:
        return "prospect"
    r, f, m = rfm_scores(code)
    fm = (f + m + 1) // 2
    if r >= 4 and fm >= 4:
        return "champions"
    if r >= 3:
        return "loyal" if fm >= 3 else "promising"
    return "at_risk" if fm >= 3 else "hibernating"


# --- streak months (R-LOY-5) --------------------------------------------------------------------

STREAK_WINDOW = 24  # months remembered before the latest one


def add_streak_month(packed: int, month: int, run: int) -> tuple[int, list[int]]:
    """Record a month with a completed purchase; return the new packed value and the months of a
    streak it completes ([] if none). A month counts towards one gift at most.

    `packed` = latest month << 48 | months-with-purchases << 24 | months-already-rewarded, both
    masks over the 24 months up to the latest (bit 0 = the latest month); 0 = no month yet."""
    latest, have, used = packed >> 48, packed >> 24 & 0xFFFFFF, packed & 0xFFFFFF
    if latest == 0:
        latest, have, used = month, 0, 0
    if month > latest:
        shift = month - latest
        have, used, latest = have << shift & 0xFFFFFF, used << shift & 0xFFFFFF, month
    bit = latest - month
    if bit >= STREAK_WINDOW:
        return packed, []  # too old to matter
    have |= 1 << bit
    gift: list[int] = []
    # the windows of `run` consecutive months that contain this month (bits start … start+run-1),
    # the oldest first (higher bits are older months)
    for start in range(min(bit, STREAK_WINDOW - run), max(0, bit - run + 1) - 1, -1):
        window = ((1 << run) - 1) << start
        if have & window == window and not used & window:
            used |= window
            gift = [latest - b for b in range(start + run - 1, start - 1, -1)]
            break
    return latest << 48 | have << 24 | used, gift
