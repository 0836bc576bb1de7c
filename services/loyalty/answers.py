"""What loyalty's read routes answer (`services/loyalty/api.py`), as models with a real example each.

Times are ms since the epoch (UTC); a business day is shown as its ISO date and the instant it begins
(midnight in the merchant's time zone, `FLEXCHAIN_LOYALTY_TZ_OFFSET_HOURS`). Money is cents; points
and growth value are whole numbers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from flexchain.answers import Answer, ReplaySummary

Stage = Literal["prospect", "new", "growing", "mature", "declining", "churned"]
Segment = Literal["champions", "loyal", "promising", "at_risk", "hibernating", "prospect"]


# --- GET /usage-cycles ---------------------------------------------------------------------------


class UsageCycles(Answer):
    """The consumables' usage cycles (R-LOY-4), sku → days one unit lasts (0: not a consumable)."""

    EXAMPLE = {"configured": {"mask-86d57a": 30}, "applied": {"mask-86d57a": 30}}

    configured: dict[str, int] = Field(description="as configured (`UsageCycleConfigured`), sku → days")
    applied: dict[str, int] = Field(description="as applied by the partitions (`UsageCycleApplied`), sku → days")


# --- GET /members/{member_id} --------------------------------------------------------------------


class BusinessDay(Answer):
    """A business day: its date and the instant it begins."""

    EXAMPLE = {"date": "2026-11-18", "at": 1794931200000}

    date: str = Field(description="ISO 8601 date of the business day (the merchant's time zone)")
    at: int = Field(description="the instant the business day begins (ms UTC)")


class NextTier(Answer):
    """The tier above the member's, and the growth value still missing to reach it (R-LOY-1)."""

    EXAMPLE = {"name": "silver", "threshold": 1000, "missing": 517}

    name: str
    threshold: int = Field(description="the growth value the tier starts at")
    missing: int = Field(description="threshold minus the member's growth value")


class MemberTier(Answer):
    """The member's tier, which follows the growth value up and down (R-LOY-1)."""

    EXAMPLE = {"name": "regular", "discount_rate": "1.0", "growth": 483, "next": NextTier.EXAMPLE}

    name: str = Field(description="regular, silver, gold or diamond")
    discount_rate: str = Field(description="the tier's price factor, a decimal as a string (1.0: no discount)")
    growth: int = Field(description="growth value: 1 per whole CNY of net spend plus interaction points (R-LOY-1)")
    next: NextTier | None = Field(description="the next tier up; null at the top tier")


class Rfm(Answer):
    """The member's RFM segment and quintile scores (R-LOY-6); the scores are null before a first purchase."""

    EXAMPLE = {"segment": "loyal", "recency": 3, "frequency": 3, "monetary": 3}

    segment: Segment
    recency: int | None = Field(description="quintile score 1–5; null for a prospect")
    frequency: int | None = Field(description="quintile score 1–5; null for a prospect")
    monetary: int | None = Field(description="quintile score 1–5; null for a prospect")


class Purchases(Answer):
    """The member's paid orders, net of refunds."""

    EXAMPLE = {
        "orders": 3,
        "purchase_days": 1,
        "net_spend": 48300,
        "first": BusinessDay.EXAMPLE,
        "last": BusinessDay.EXAMPLE,
    }

    orders: int = Field(description="paid orders")
    purchase_days: int = Field(description="business days with a purchase (two orders on one day count once)")
    net_spend: int = Field(description="cents paid, net of refunds")
    first: BusinessDay | None = Field(description="the business day of the first purchase; null before one")
    last: BusinessDay | None = Field(description="the business day of the last purchase; null before one")


class ExpiringPoints(Answer):
    """An earning batch of points and the business day it expires (R-LOY-2)."""

    EXAMPLE = {"date": "2027-11-26", "at": 1827158400000, "points": 118}

    date: str = Field(description="ISO 8601 date of the business day the batch expires")
    at: int = Field(description="the instant the batch expires (ms UTC)")
    points: int


class MemberPoints(Answer):
    """The member's points (R-LOY-2)."""

    EXAMPLE = {"available": 118, "pending": 483, "held": 118, "expiring": [ExpiringPoints.EXAMPLE]}

    available: int = Field(description="points that can be spent today: batches not yet expired")
    pending: int = Field(description="points of paid orders whose return window is still open")
    held: int = Field(
        description="points in earning batches: the available ones plus expired batches not yet booked off by the next tick"
    )
    expiring: list[ExpiringPoints] = Field(description="the batches not expired yet, soonest first")


class PointsTotals(Answer):
    """The member's ledger summed by movement (R-LOY-2): earned = held + pending + redeemed + expired +
    reversed (`points.held`: equal to `points.available` once expired batches are booked off)."""

    EXAMPLE = {"earned": 601, "released": 118, "redeemed": 0, "expired": 0, "reversed": 118, "shortfall": 0}

    earned: int
    released: int = Field(description="pending order points that became available (part of `earned`, not added to it)")
    redeemed: int
    expired: int
    reversed: int = Field(description="points taken back by refunds")
    shortfall: int = Field(description="points refunds could not take back (points never go below zero)")


class Reminder(Answer):
    """A consumable whose estimated run-out is coming (R-LOY-4)."""

    EXAMPLE = {"sku": "mask-86d57a", "run_out": {"date": "2026-12-18", "at": 1797523200000}, "order_id": "A-86d57a"}

    sku: str
    run_out: BusinessDay = Field(description="the business day the member's supply is estimated to run out")
    order_id: str = Field(description="the purchase the estimate is made from")


class MemberAnswer(Answer):
    """A member: tier, life-cycle stage, RFM segment, purchases, points and reminders; with `?as_of=`,
    the same as of that business time (R-X-4), with `as_of` telling what was folded."""

    EXAMPLE = {
        "member_id": "m-86d57a",
        "joined": {"date": "2026-11-18", "at": 1794931200000},
        "referral_pending_from": None,
        "tier": {
            "name": "regular",
            "discount_rate": "1.0",
            "growth": 483,
            "next": {"name": "silver", "threshold": 1000, "missing": 517},
        },
        "stage": "new",
        "rfm": {"segment": "loyal", "recency": 3, "frequency": 3, "monetary": 3},
        "purchases": {
            "orders": 3,
            "purchase_days": 1,
            "net_spend": 48300,
            "first": {"date": "2026-11-18", "at": 1794931200000},
            "last": {"date": "2026-11-18", "at": 1794931200000},
        },
        "points": {"available": 0, "pending": 483, "held": 0, "expiring": []},
        "totals": {"earned": 601, "released": 118, "redeemed": 0, "expired": 0, "reversed": 118, "shortfall": 0},
        "reminders": [],
    }

    member_id: str
    joined: BusinessDay
    referral_pending_from: str | None = Field(
        description="the referrer, until the referral is rewarded on the first completed purchase (R-LOY-5); then null"
    )
    tier: MemberTier
    stage: Stage = Field(description="life-cycle stage (R-LOY-3); prospect: no purchase yet")
    rfm: Rfm
    purchases: Purchases
    points: MemberPoints
    totals: PointsTotals
    reminders: list[Reminder] = Field(description="replenishment reminders, by sku (R-LOY-4)")
    as_of: ReplaySummary | None = None


# --- GET /members/{member_id}/ledger -------------------------------------------------------------


class BatchPoints(Answer):
    """Points of the earning batch that expires at `expires_at` (R-LOY-2)."""

    EXAMPLE = {"expires_at": 1827158400000, "points": 118}

    expires_at: int = Field(description="the instant the batch expires (ms UTC)")
    points: int


BusinessTime = Annotated[int, Field(description="the business time of the movement (ms UTC)")]
CausationId = Annotated[str | None, Field(description="the id of the message that caused the movement")]
Source = Annotated[str, Field(description="the cause of the movement, e.g. `OrderPaid:<order id>`, `expiry:<date>`")]


class PointsEarnedEntry(Answer):
    """Points earned: order points stay pending (no expiry yet) until the return window closes; others
    expire at `expires_at` (R-LOY-2)."""

    EXAMPLE = {
        "type": "PointsEarned",
        "business_time": 1795000000000,
        "event_id": "ddcdafe2-1393-5263-87e6-3e7e0b41b3b5",
        "causation_id": "cfdcabc1-adbc-5edc-b2f9-787b55745e0e",
        "points": 118,
        "reason": "order",
        "source": "OrderPaid:A-86d57a",
        "pending": True,
        "expires_at": None,
    }

    type: Literal["PointsEarned"]
    business_time: BusinessTime
    event_id: str
    causation_id: CausationId
    points: int
    reason: str = Field(description="why: an order, a behaviour (checkin, share, review), a referral…")
    source: Source
    pending: bool
    expires_at: int | None = Field(description="the instant the batch expires (ms UTC); null while pending")


class PointsReleasedEntry(Answer):
    """An order's pending points became available: its return window closed (R-LOY-2)."""

    EXAMPLE = {
        "type": "PointsReleased",
        "business_time": 1795691260000,
        "event_id": "57b5a6ec-cbbc-589d-b635-11f91d38206b",
        "causation_id": "f154606c-0768-5e14-a22a-72335ae4ba2b",
        "order_id": "A-86d57a",
        "points": 118,
        "source": "OrderCompleted:A-86d57a",
        "expires_at": 1827158400000,
    }

    type: Literal["PointsReleased"]
    business_time: BusinessTime
    event_id: str
    causation_id: CausationId
    order_id: str
    points: int
    source: Source
    expires_at: int = Field(description="the instant the batch expires (ms UTC)")


class PointsRedeemedEntry(Answer):
    """Points spent on a reward, taken from the soonest-expiring batches first (R-LOY-2)."""

    EXAMPLE = {
        "type": "PointsRedeemed",
        "business_time": 1795777660000,
        "event_id": "0b6f1f7e-8f3c-5a53-9a4f-2f0d5c1e7a11",
        "causation_id": "6e2b8c4d-1f0a-5b7e-8c9d-3a4b5c6d7e8f",
        "redemption_id": "rd-77",
        "points": 100,
        "reward": "5 CNY coupon",
        "source": "redemption:rd-77",
        "taken": [{"expires_at": 1827158400000, "points": 100}],
    }

    type: Literal["PointsRedeemed"]
    business_time: BusinessTime
    event_id: str
    causation_id: CausationId
    redemption_id: str
    points: int
    reward: str
    source: Source
    taken: list[BatchPoints] = Field(description="the batches the points were taken from")


class PointsExpiredEntry(Answer):
    """Earning batches reached their expiry (R-LOY-2)."""

    EXAMPLE = {
        "type": "PointsExpired",
        "business_time": 1827158460000,
        "event_id": "4d3c2b1a-0f9e-5d8c-b7a6-958473625140",
        "causation_id": "a1b2c3d4-e5f6-5a7b-8c9d-0e1f2a3b4c5d",
        "points": 18,
        "source": "expiry:2027-11-26",
        "batches": [{"expires_at": 1827158400000, "points": 18}],
    }

    type: Literal["PointsExpired"]
    business_time: BusinessTime
    event_id: str
    causation_id: CausationId
    points: int
    source: Source
    batches: list[BatchPoints] = Field(description="the batches that expired")


class PointsReversedEntry(Answer):
    """Points of a refunded order taken back (R-LOY-2, R-X-3); `shortfall` could not be (never below zero)."""

    EXAMPLE = {
        "type": "PointsReversed",
        "business_time": 1795691260000,
        "event_id": "3c69214d-b3c0-54a3-a90b-12bccc21fb42",
        "causation_id": "2bafc56a-4656-5864-ab98-17211a301b47",
        "order_id": "A-86d57a",
        "refund_id": "r-5c331dbc7aad",
        "points": 118,
        "from_pending": 0,
        "shortfall": 0,
        "source": "OrderRefunded:A-86d57a/r-5c331dbc7aad",
        "taken": [{"expires_at": 1827158400000, "points": 118}],
    }

    type: Literal["PointsReversed"]
    business_time: BusinessTime
    event_id: str
    causation_id: CausationId
    order_id: str
    refund_id: str
    points: int
    from_pending: int = Field(description="of `points`, those taken from the order's pending points")
    shortfall: int = Field(description="points that could not be taken back (points never go below zero)")
    source: Source
    taken: list[BatchPoints] = Field(description="the batches the available points were taken from")


LedgerEntry = Annotated[
    PointsEarnedEntry | PointsReleasedEntry | PointsRedeemedEntry | PointsExpiredEntry | PointsReversedEntry,
    Field(discriminator="type"),
]


class Ledger(Answer):
    """A page of the member's points ledger (R-LOY-2): every movement with its reason and source event,
    oldest first."""

    EXAMPLE = {
        "member_id": "m-86d57a",
        "total": 5,
        "offset": 0,
        "entries": [PointsEarnedEntry.EXAMPLE, PointsReversedEntry.EXAMPLE],
    }

    member_id: str
    total: int = Field(description="movements in the member's ledger, all pages")
    offset: int
    entries: list[LedgerEntry] = Field(description="the page: at most `limit` movements from `offset`; `type` names the movement")


# --- GET /members?stage=&segment= ----------------------------------------------------------------


class MemberPage(Answer):
    """A page of the members in a life-cycle stage (R-LOY-3) and/or an RFM segment (R-LOY-6), in the order
    they entered it. At least one of `stage` and `segment` must be asked (422 otherwise)."""

    EXAMPLE = {"stage": "new", "segment": None, "total": 1, "offset": 0, "members": ["m-86d57a"]}

    stage: Stage | None = Field(description="the stage asked for; null if not asked")
    segment: Segment | None = Field(description="the segment asked for; null if not asked")
    total: int = Field(description="members matching, all pages")
    offset: int
    members: list[str] = Field(description="member ids of the page")
