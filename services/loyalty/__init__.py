"""The loyalty service (R-LOY-1 … R-LOY-6): members, tiers and growth value, a points ledger,
life-cycle stages with churn warnings, replenishment reminders, streak gifts, referrals and RFM
segments, for every member of the merchant.

Owns `loyalty.commands` / `loyalty.events` (keyed by member id; usage cycles by sku). Consumes
`order.events` (OrderPlaced → a tier discount quote; OrderPaid, OrderCompleted, OrderRefunded,
OrderCancelled → purchases and points), `clock.ticks` (business time: stages, expiry, reminders,
RFM) and two of its own events that cross partitions (a referral reward, a usage cycle). Produces
`MemberDiscountQuoted` (routed back by the order service), the points ledger
(`PointsEarned`/`Released`/`Redeemed`/`Expired`/`Reversed`), `TierChanged`, `StageChanged`,
`ChurnWarningRaised`, `ReplenishmentReminderRaised`, `StreakGiftEarned`, `ReferralCompleted`,
`RfmSegmentChanged` and `LoyaltyCommandRejected`. See README.md beside this file.
"""

from flexchain.declaration import ServicePackage

# what the kernel discovers (flexchain.catalog): the rest is read from app.py and messages.py
PACKAGE = ServicePackage(
    name="loyalty",
    http_port=8085,
    package=__name__,
    entities={"member": "/members/{}"},  # `flexchain as-of loyalty <kind>/<id>`: its R-X-4 routes
)
