"""The presale-fund service (DOMAIN.md § Presale, R-PRE-1 … R-PRE-10).

Owns campaigns (aggregate = campaign id): schedule, intent deposits and the launch signal, pledges
priced by phase on business time, the 80 % capacity cap, escrow split into ring-fenced buckets,
milestone releases, the close (fail → refund everything, succeed → first batch), shared price rises,
risk signals and supplier lateness, and the money ledger of every campaign (R-PRE-10 at every event).

Consumes `presale.commands` (the merchant's HTTP commands), `order.events` (OrderPlaced / OrderPaid /
OrderCancelled / OrderRefunded of campaign orders, routed by `policy.react`) and `clock.ticks`.
Produces `presale.events`, keyed by campaign id: the order service reads `PledgeAccepted` /
`PledgeRejected` (the price of a campaign order, or why not) and `PresaleRefundIssued` (refund that
order with that refund id); anyone may read `PaymentEscrowed`, `FundsReleased`, `RiskSignalRaised`, …
"""

from flexchain.declaration import ServicePackage

# what the kernel discovers (flexchain.catalog): the rest is read from app.py and messages.py
PACKAGE = ServicePackage(
    name="presale",
    http_port=8083,
    package=__name__,
    # `flexchain as-of presale <kind>/<id>`: its R-X-4 routes
    entities={"campaign": "/campaigns/{}", "pledges": "/campaigns/{}/pledges"},
)
