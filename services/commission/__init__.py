"""Commission service: multi-level distributor commissions with holding, clawback and settlement.

Owns the referral network of the merchant's distributors (the tree, the commission plan, sku rates
and dynamic-rate rules, qualifications), the commission of every order sold through a distributor
(split per line and level up the chain), each distributor's account and its payout batches, and the
monthly and referral bonuses (DOMAIN.md R-COM-1 … R-COM-6).

Consumes `order.events` (OrderPaid → accrual; OrderRefunded / OrderCancelled → clawback;
OrderCompleted → payable), `inventory.events` (low-stock alerts as signals for dynamic rates),
`clock.ticks` (payout batches of what is due T+7, month close, qualification warnings) and its own
`commission.events` (network replication to every partition, credits and charges per beneficiary,
referral bonuses). Produces `commission.events`; see README.md in this folder.
"""

from flexchain.declaration import ServicePackage

# what the kernel discovers (flexchain.catalog): the rest is read from app.py and messages.py
PACKAGE = ServicePackage(
    name="commission",
    http_port=8084,
    package=__name__,
    entities={"distributor": "/distributors/{}"},  # `flexchain as-of commission <kind>/<id>`: its R-X-4 routes
)
