"""The state of one loyalty partition: every member of the partition, compactly.

Members are rows of a struct of arrays (one `array` per field, a row per member) rather than one
object each: a million members fit in about 250 MB and a day's clock tick reads only the rows that
are due (`agenda`: business day → rows) plus one pass over three columns for the RFM scores. What
few members have — point batches, reminders, a pending referral, open orders — lives in sparse
maps keyed by row. Only `evolve` (state.py) writes here; `decide` reads a member through
:meth:`Loyalty.member`, a plain copy it may change freely.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import NamedTuple

from services.loyalty.rules import PROSPECT, LoyaltyConfig, money_bucket, refunded_share

NO_DAY = -1
_POINTS_BITS = 40
_POINTS_MASK = (1 << _POINTS_BITS) - 1


def batch(expires_day: int, points: int) -> int:
    """An earning batch as one int: sorting them sorts by expiry (R-LOY-2)."""
    return expires_day << _POINTS_BITS | points


def batch_day(packed: int) -> int:
    return packed >> _POINTS_BITS


def batch_points(packed: int) -> int:
    return packed & _POINTS_MASK


class OpenOrder(NamedTuple):
    """A paid order whose return window is still open: its points are pending."""

    member_row: int
    paid: int  # cents
    refunded: int  # cents, so far
    points: int  # earned by the order (pending)
    paid_day: int

    def reversed_points(self) -> int:
        """Points taken back so far: the refunded share of the order's points, rounded down."""
        return refunded_share(self.points, self.refunded, self.paid)


@dataclass(slots=True)
class Member:
    """One member's columns as plain values: what `decide` reads and may change on its own copy."""

    row: int
    member_id: str
    joined: int
    tier: int
    stage: int
    first_day: int
    last_day: int
    orders: int
    purchase_days: int
    spend: int
    interactions: int
    pending: int
    acts: int
    streak: int
    rfm: int
    batches: list[int]
    reminders: dict[str, tuple[int, str]]
    referrer: str | None

    @classmethod
    def joining(cls, member_id: str, day: int) -> Member:
        """A member not in the state yet (it joins with this command)."""
        return cls(-1, member_id, day, 0, PROSPECT, NO_DAY, NO_DAY, 0, 0, 0, 0, 0, 0, 0, -1, [], {}, None)

    def count_purchase(self, day: int, amount: int) -> None:
        """A purchase on business day `day` in the member's figures (decide and evolve both use it)."""
        if self.last_day != day:
            self.purchase_days += 1  # two orders on one day are one purchase day
        self.first_day = day if self.first_day == NO_DAY else min(self.first_day, day)
        self.last_day = max(self.last_day, day)
        self.orders += 1
        self.spend += amount

    @property
    def growth(self) -> int:
        """Growth value (R-LOY-1): 1 per whole CNY of net spend, plus interaction points."""
        return self.spend // 100 + self.interactions

    def available(self, day: int) -> int:
        """Points that can be spent on `day`: batches that have not reached their expiry."""
        return sum(batch_points(b) for b in self.batches if batch_day(b) > day)


def _ints() -> array[int]:
    return array("i")


def _longs() -> array[int]:
    return array("q")


def _bytes() -> array[int]:
    return array("b")


@dataclass(slots=True)
class Loyalty:
    """Members of one partition (rows), the timers' agenda, usage cycles and the RFM histograms."""

    config: LoyaltyConfig = field(default_factory=LoyaltyConfig)
    ids: list[str] = field(default_factory=list)
    #: member id → row, derived from `ids` (not in a snapshot): its keys are the strings of `ids`, so a
    #: million members keep one string each, not two (≈ 60 B a member)
    rows: dict[str, int] = field(init=False, default_factory=dict)
    # one entry per row
    joined: array[int] = field(default_factory=_ints)  # business day
    tier: array[int] = field(default_factory=_bytes)
    stage: array[int] = field(default_factory=_bytes)
    first_day: array[int] = field(default_factory=_ints)  # NO_DAY: never
    last_day: array[int] = field(default_factory=_ints)
    orders: array[int] = field(default_factory=_ints)  # paid orders
    purchase_days: array[int] = field(default_factory=_ints)
    spend: array[int] = field(default_factory=_longs)  # net, cents
    interactions: array[int] = field(default_factory=_ints)  # growth
    pending: array[int] = field(default_factory=_longs)  # points
    acts: array[int] = field(default_factory=_ints)  # day << 3 | actions
    streak: array[int] = field(default_factory=_longs)  # rules.add_streak_month
    rfm: array[int] = field(default_factory=_bytes)  # rules.rfm_code, -1
    due: array[int] = field(default_factory=_ints)  # next timer day, NO_DAY
    batches: list[bytes | None] = field(default_factory=list)  # sorted batch() values, packed (`batches_at`)
    # sparse, by row
    reminders: dict[int, dict[str, tuple[int, str]]] = field(default_factory=dict)  # sku → (run-out day, order)
    referrers: dict[int, str] = field(default_factory=dict)  # until the referral is rewarded
    # the partition
    open_orders: dict[str, OpenOrder] = field(default_factory=dict)
    cycles: dict[str, int] = field(default_factory=dict)  # sku → usage cycle, days (R-LOY-4)
    agenda: dict[int, array[int]] = field(default_factory=dict)  # day → rows
    hist_recency: dict[int, int] = field(default_factory=dict)  # last purchase day → members
    hist_frequency: dict[int, int] = field(default_factory=dict)  # paid orders → members
    hist_monetary: dict[int, int] = field(default_factory=dict)  # money_bucket(spend) → members
    rfm_dirty: bool = False  # a purchase or refund since the last RFM pass
    evaluated_day: int = NO_DAY  # the last business day a clock tick evaluated

    def __post_init__(self) -> None:
        self.rows = {member_id: row for row, member_id in enumerate(self.ids)}

    # --- reading -----------------------------------------------------------------------------

    def member(self, member_id: str) -> Member | None:
        row = self.rows.get(member_id)
        return None if row is None else self.member_at(row)

    def member_at(self, row: int) -> Member:
        return Member(
            row,
            self.ids[row],
            self.joined[row],
            self.tier[row],
            self.stage[row],
            self.first_day[row],
            self.last_day[row],
            self.orders[row],
            self.purchase_days[row],
            self.spend[row],
            self.interactions[row],
            self.pending[row],
            self.acts[row],
            self.streak[row],
            self.rfm[row],
            self.batches_at(row),
            dict(self.reminders.get(row, {})),
            self.referrers.get(row),
        )

    # --- writing (evolve only) ---------------------------------------------------------------

    def add_member(self, member_id: str, joined_day: int, referrer: str | None) -> int:
        row = len(self.ids)
        self.rows[member_id] = row
        self.ids.append(member_id)
        for col, value in (
            (self.joined, joined_day),
            (self.tier, 0),
            (self.stage, PROSPECT),
            (self.first_day, NO_DAY),
            (self.last_day, NO_DAY),
            (self.orders, 0),
            (self.purchase_days, 0),
            (self.spend, 0),
            (self.interactions, 0),
            (self.pending, 0),
            (self.acts, 0),
            (self.streak, 0),
            (self.rfm, -1),
            (self.due, NO_DAY),
        ):
            col.append(value)
        self.batches.append(None)
        if referrer:
            self.referrers[row] = referrer
        return row

    def batches_at(self, row: int) -> list[int]:
        """The member's earning batches, soonest-expiring first."""
        packed = self.batches[row]
        return list(memoryview(packed).cast("q")) if packed else []

    def held_points(self) -> int:
        """Points in every member's batches (available, and expired ones the next tick books off),
        for the `points{state="held"}` gauge on every scrape: one pass over the packed bytes, no
        list per member."""
        return sum(b & _POINTS_MASK for packed in self.batches if packed for b in memoryview(packed).cast("q"))

    def set_batches(self, row: int, batches: list[int]) -> None:
        # bytes: 33 bytes of overhead where an array object takes 64 (a million members hold them)
        self.batches[row] = array("q", sorted(batches)).tobytes() if batches else None

    def schedule(self, row: int, day: int) -> None:
        """Set the member's next timer day; the agenda keeps stale entries, skipped when read."""
        if self.due[row] == day:
            return
        self.due[row] = day
        if day != NO_DAY:
            bucket = self.agenda.get(day)
            if bucket is None:
                self.agenda[day] = array("i", [row])
            else:
                bucket.append(row)

    def due_rows(self, through: int) -> list[int]:
        """Rows whose next timer day is on or before `through`, in agenda order, each once."""
        out: list[int] = []
        seen: set[int] = set()
        for day in sorted(d for d in self.agenda if d <= through):
            for row in self.agenda[day]:
                if self.due[row] == day and row not in seen:
                    seen.add(row)
                    out.append(row)
        return out

    def drop_agenda(self, through: int) -> None:
        for day in [d for d in self.agenda if d <= through]:
            del self.agenda[day]

    # --- RFM histograms (R-LOY-6) ------------------------------------------------------------

    def rfm_leave(self, row: int) -> None:
        """Take the member's current R, F and M values out of the histograms (before a change)."""
        if self.first_day[row] == NO_DAY:
            return
        _dec(self.hist_recency, self.last_day[row])
        _dec(self.hist_frequency, self.orders[row])
        _dec(self.hist_monetary, money_bucket(self.spend[row]))

    def rfm_enter(self, row: int) -> None:
        if self.first_day[row] == NO_DAY:
            return
        _inc(self.hist_recency, self.last_day[row])
        _inc(self.hist_frequency, self.orders[row])
        _inc(self.hist_monetary, money_bucket(self.spend[row]))
        self.rfm_dirty = True


def _inc(hist: dict[int, int], key: int) -> None:
    hist[key] = hist.get(key, 0) + 1


def _dec(hist: dict[int, int], key: int) -> None:
    left = hist[key] - 1
    if left:
        hist[key] = left
    else:
        del hist[key]
