"""What presale's read routes answer, as models (see `flexchain.answers`): the campaign list, a
campaign's view, its pledges and its money ledger (built by `views.py`).

Amounts are integer cents (fen); times are business time, ms since the epoch (UTC)."""

from __future__ import annotations

from pydantic import Field

from flexchain.answers import Answer, ReplaySummary

STATUS = "draft, scheduled, open, succeeded, failed (pledged < MOQ, R-PRE-7) or cancelled (never launched)"
PHASE = "R-PRE-3: upcoming, early_bird, regular, group or ended"


class CampaignRow(Answer):
    """One campaign of the list, in campaign id order."""

    EXAMPLE = {"campaign_id": "notebook-86d57a", "status": "open", "phase": "group"}

    campaign_id: str
    status: str = Field(description=STATUS)
    phase: str = Field(description=f"{PHASE}; of an open campaign, the phase in force now")


class Schedule(Answer):
    """When the campaign runs (R-PRE-1); null until it is scheduled."""

    EXAMPLE = {"starts_at": 1795000000000, "ends_at": 1795864000000, "delivery_at": None}

    starts_at: int | None
    ends_at: int | None
    delivery_at: int | None = Field(description="the promised delivery: the final batch is confirmed a week before (R-PRE-7)")


class DepositFigures(Answer):
    """The intent deposits collected before the campaign (R-PRE-2)."""

    EXAMPLE = {"count": 0, "held": 0, "launch_signal": False}

    count: int = Field(description="deposits collected (refunded ones included)")
    held: int = Field(description="cents still held in the deposits bucket")
    launch_signal: bool = Field(description="R-PRE-2: depositors reached 1.5 % of the fan base")


class PledgeFigures(Answer):
    """The campaign's pledges, counted."""

    EXAMPLE = {"open": 1, "accepted_units": 2, "paid_orders": 1}

    open: int = Field(description="pledges still open (not released nor voided)")
    accepted_units: int = Field(description="units ever accepted, before any was given back")
    paid_orders: int


class Group(Answer):
    """A three-person group of the last 48 h (R-PRE-3)."""

    EXAMPLE = {"orders": ["g1", "g2"], "completed": False, "dissolved": False}

    orders: list[str] = Field(description="the order ids of its members, in joining order")
    completed: bool = Field(description="three members joined: they pay the group price")
    dissolved: bool = Field(description="incomplete at the end: its orders were refunded")


class Buckets(Answer):
    """Cents per escrow bucket (R-PRE-5); deposits (R-PRE-2) are held apart, never split."""

    EXAMPLE = {"production": 1920, "risk": 1200, "marketing": 960, "operations": 720, "deposits": 0}

    production: int = Field(description="the production reserve, released only against milestones (R-PRE-6)")
    risk: int = Field(description="the risk buffer (the reserve of the simple split)")
    marketing: int = Field(description="platform & marketing (always 0 with the simple split)")
    operations: int
    deposits: int


class Money(Answer):
    """The campaign's money, conserved (R-PRE-10)."""

    EXAMPLE = {"received": 4800, "held": 4800, "released": 0, "refunded": 0, "uncovered_refunds": 0, "balanced": True}

    received: int = Field(description="payments and deposits received")
    held: int = Field(description="the sum of the buckets, deposits included")
    released: int = Field(description="released to the creator against milestones (R-PRE-6)")
    refunded: int = Field(description="taken out of the buckets for refunds")
    uncovered_refunds: int = Field(description="refunded to buyers beyond what the buckets held (not in `refunded`)")
    balanced: bool = Field(description="R-PRE-10: received == held + released + refunded")


class Milestone(Answer):
    """A production milestone that releases a share of the production reserve (R-PRE-6, R-PRE-9)."""

    EXAMPLE = {"share": "0.30", "due_at": None, "reached_at": None, "buyer_notice": False, "supplier_penalty": False}

    share: str = Field(description="R-PRE-6: the share of the production reserve it releases, a decimal as a string")
    due_at: int | None = Field(description="when the supplier is due to reach it, once planned")
    reached_at: int | None
    buyer_notice: bool = Field(description="R-PRE-9: late by more than 5 days, buyers must be told")
    supplier_penalty: bool = Field(description="R-PRE-9: late by more than 14 days, the supplier owes a penalty")


class Release(Answer):
    """Money released from the production reserve against a milestone (R-PRE-6)."""

    EXAMPLE = {"at": 1767312000003, "milestone": "materials_bought", "amount": 1200}

    at: int
    milestone: str
    amount: int


class Refund(Answer):
    """Money that left escrow for a refund."""

    EXAMPLE = {"at": 1767312000002, "kind": "refund (buyer) cancel-o3", "reference": "o3", "amount": 2400}

    at: int
    kind: str = Field(description='"refund (<buyer|presale>) <refund id>" for an order\'s refund, or "deposit refund" (R-PRE-2)')
    reference: str = Field(description="the order id, or the deposit id of a deposit refund")
    amount: int = Field(description="cents taken out of the buckets")


class PriceRise(Answer):
    """A material price rise (R-PRE-8): ≥ 30 % is shared half creator, half buyers."""

    EXAMPLE = {
        "old_unit_cost": 2000,
        "new_unit_cost": 3000,
        "shared": True,
        "answer_by": 1767571200002,
        "open_offers": {"o1": 1500},
        "accepted": {"o2": 500},
        "declined": [],
        "expired": [],
    }

    old_unit_cost: int
    new_unit_cost: int
    shared: bool = Field(description="R-PRE-8: a rise of 30 % or more, whose buyers' half is offered to each buyer")
    answer_by: int | None = Field(description="when the offers expire (null if not shared)")
    open_offers: dict[str, int] = Field(description="per order id: the extra cents offered, not answered yet")
    accepted: dict[str, int] = Field(description="per order id: the extra cents the buyer accepted to pay")
    declined: list[str] = Field(description="the orders that left, refunded in full")
    expired: list[str] = Field(description="the orders that did not answer in time (they keep the old price)")


class RiskSignalEntry(Answer):
    """A risk signal raised or cleared (R-PRE-9)."""

    EXAMPLE = {
        "at": 1795691260000,
        "what": "raised",
        "signal_id": "red:pledge-rate",
        "level": "red",
        "detail": "1 pledges < 0.8% of the fan base 1000",
    }

    at: int
    what: str = Field(description="raised or cleared")
    signal_id: str = Field(description="<level>:<rule>[:<cause>], e.g. red:milestone-late:shipped")
    level: str = Field(description="red, yellow or green")
    detail: str


class RiskSignals(Answer):
    """The campaign's risk signals (R-PRE-9)."""

    EXAMPLE = {"active": {"red:pledge-rate": "red"}, "history": [RiskSignalEntry.EXAMPLE]}

    active: dict[str, str] = Field(description="the signals raised and not cleared: signal id → level")
    history: list[RiskSignalEntry] = Field(description="every signal raised or cleared, in log order")


class Campaign(Answer):
    """A campaign: its terms, phase and price now, deposits, pledges, groups, escrow buckets and money
    (R-PRE-10), milestones and releases, refunds, price rises and risk signals."""

    EXAMPLE = {
        "campaign_id": "notebook-86d57a",
        "product": "glow notebook",
        "status": "open",
        "phase": "group",
        "unit_price_now": 3600,
        "group_price": 3000,
        "unit_cost": 2000,
        "fan_base": 1000,
        "moq": 1,
        "max_capacity": 100,
        "split": "standard",
        "schedule": Schedule.EXAMPLE,
        "intake_closed": None,
        "deposits": DepositFigures.EXAMPLE,
        "pledged_units": 2,
        "pledges": PledgeFigures.EXAMPLE,
        "groups": {},
        "buckets": Buckets.EXAMPLE,
        "money": Money.EXAMPLE,
        "first_batch_units": None,
        "final_batch_units": None,
        "milestones": {
            "materials_bought": Milestone.EXAMPLE,
            "sample_approved": {
                "share": "0.20",
                "due_at": None,
                "reached_at": None,
                "buyer_notice": False,
                "supplier_penalty": False,
            },
            "production_finished": {
                "share": "0.30",
                "due_at": None,
                "reached_at": None,
                "buyer_notice": False,
                "supplier_penalty": False,
            },
            "shipped": {"share": "0.20", "due_at": None, "reached_at": None, "buyer_notice": False, "supplier_penalty": False},
        },
        "releases": [],
        "refunds": [],
        "price_rises": {},
        "risk_signals": RiskSignals.EXAMPLE,
    }

    campaign_id: str
    product: str
    status: str = Field(description=STATUS)
    phase: str = Field(description=f"{PHASE}; of an open campaign, the phase in force at the time asked")
    unit_price_now: int | None = Field(
        description="R-PRE-3: cents per unit in the phase in force (null unless the campaign is open and not ended)"
    )
    group_price: int = Field(description="R-PRE-3: cents per unit in a complete group of the last 48 h (cost × 1.5)")
    unit_cost: int = Field(description="cents per unit, as raised by the last price rise (R-PRE-8)")
    fan_base: int
    moq: int = Field(description="minimum order quantity: fewer pledged units at the close and it fails (R-PRE-7)")
    max_capacity: int = Field(description="R-PRE-4: intake closes at 80 % of it")
    split: str = Field(description="R-PRE-5: standard (40/25/20/15) or simple (50/30/20)")
    schedule: Schedule
    intake_closed: str | None = Field(description="why intake closed (R-PRE-4, or the close's reason); null while open")
    deposits: DepositFigures
    pledged_units: int = Field(description="units pledged now (given-back units deducted)")
    pledges: PledgeFigures
    groups: dict[str, Group] = Field(description="per group id")
    buckets: Buckets
    money: Money
    first_batch_units: int | None = Field(description="R-PRE-7: 70 % of the pledged units, once the campaign succeeded")
    final_batch_units: int | None = Field(description="R-PRE-7: confirmed one week before delivery")
    milestones: dict[str, Milestone] = Field(description="per milestone name (R-PRE-6)")
    releases: list[Release] = Field(description="in log order")
    refunds: list[Refund] = Field(description="in log order")
    price_rises: dict[str, PriceRise] = Field(description="per price-rise id (R-PRE-8)")
    risk_signals: RiskSignals
    as_of: ReplaySummary | None = None


class Pledge(Answer):
    """An order's pledge to the campaign (the pledges answer is keyed by order id)."""

    EXAMPLE = {
        "member_id": "m-86d57a",
        "units": 2,
        "unit_price": 2400,
        "phase": "early_bird",
        "group_id": None,
        "status": "open",
        "paid": 4800,
        "refunded": 0,
        "price_rise_owed": 0,
    }

    member_id: str
    units: int = Field(description="units still pledged")
    unit_price: int = Field(description="cents per unit, the price of the phase it was pledged in (R-PRE-3)")
    phase: str = Field(description="R-PRE-3: the phase it was pledged in")
    group_id: str | None = Field(description="the group it joined in the last 48 h, if any")
    status: str = Field(description="open; released (every unit given back); void (presale dropped and refunded it)")
    paid: int
    refunded: int = Field(description="what the buyer got back")
    price_rise_owed: int = Field(description="R-PRE-8: the extra cents of the price-rise shares the buyer accepted")


class LedgerLine(Answer):
    """One money movement, with the running totals after it (R-PRE-10 checked on every line)."""

    EXAMPLE = {
        "line": 1,
        "at": 1795001860000,
        "kind": "payment",
        "reference": "P-86d57a",
        "amount": 4800,
        "buckets": {"production": 1920, "risk": 1200, "marketing": 960, "operations": 720},
        "received": 4800,
        "held": 4800,
        "released": 0,
        "refunded": 0,
        "balances": {"production": 1920, "risk": 1200, "marketing": 960, "operations": 720, "deposits": 0},
        "balanced": True,
    }

    line: int = Field(description="1-based, in log order")
    at: int
    kind: str = Field(description='payment, deposit, release, "deposit refund" or "refund (<buyer|presale>) <refund id>"')
    reference: str = Field(description="the order id, deposit id or milestone the movement is about")
    amount: int
    buckets: dict[str, int] = Field(description="the signed change per bucket it moved (buckets left unchanged omitted)")
    received: int
    held: int
    released: int
    refunded: int
    balances: Buckets = Field(description="every bucket after the line")
    balanced: bool = Field(description="R-PRE-10: received == held + released + refunded after the line")


class LedgerTotals(Answer):
    """The campaign's money totals now."""

    EXAMPLE = {"received": 4800, "held": 4800, "released": 0, "refunded": 0}

    received: int
    held: int
    released: int
    refunded: int


class Ledger(Answer):
    """A campaign's money line by line (the last `limit` lines), with its totals (R-PRE-10)."""

    EXAMPLE = {
        "campaign_id": "notebook-86d57a",
        "lines": [LedgerLine.EXAMPLE],
        "total_lines": 1,
        "totals": LedgerTotals.EXAMPLE,
        "uncovered_refunds": 0,
        "balanced": True,
    }

    campaign_id: str
    lines: list[LedgerLine] = Field(description="the last `limit` lines, in log order")
    total_lines: int
    totals: LedgerTotals
    uncovered_refunds: int = Field(description="refunded to buyers beyond what the buckets held")
    balanced: bool = Field(description="R-PRE-10 holds now and held after every line")
