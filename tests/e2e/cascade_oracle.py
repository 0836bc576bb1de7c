"""An independent calculation of every balance of the five services after a scripted scenario (R-X-3).

Plain Python, re-derived from DOMAIN.md and the services' READMEs (the defaults and rounding rules
below are written out here on purpose: nothing is imported from `services.*`, so a wrong rule in a
service cannot hide behind the same wrong rule in its own oracle).

The scenario is a list of actions (`Tick`, `Receive`, `Place`, `Pay`, `Ship`, `Deliver`, `Refund`,
`Cancel`, `Milestone`, `Redeem`, and `Kill`, which changes nothing) on business time; `Oracle.apply`
plays one and says what must follow; the `snapshot()` after any action is what every service must
show over HTTP once it has caught up, in the shape `tests/e2e/test_refund_cascade.py` reads it.
`expected_effects()` lists what each refund must cause in each service's log, exactly once.

Gift rules (R-ORD-3..5, R-ORD-2a) plug in as base `GiftRule`s: the gift is attached when it costs at
most 15 % of the main line's gross margin (checked on the list price at placement and again on the
discounted price at confirmation, where a gift over the cap gives its hold back), reserved with the
order (omitted when out of stock: no fallback in these rules), committed when shipped, and taken back
in proportion with its main line (returned with the main line's grade, or released before shipping).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

# --- the merchant's defaults, as documented (DOMAIN.md, services/*/README.md) -----------------------
PAYMENT_HOLD = 30 * MINUTE  # R-ORD-2
RETURN_WINDOW = 7 * DAY  # R-ORD-2: the no-reason window after delivery
RESELLABLE = ("no_reason", "late")  # R-INV-2: grade A back to stock; defect / damaged → clearance (B)
# R-LOY-1: (name, growth threshold, price factor); growth = 1 per whole CNY of net spend
TIERS = (
    ("regular", 0, Decimal("1.0")),
    ("silver", 1_000, Decimal("0.9")),
    ("gold", 5_000, Decimal("0.8")),
    ("diamond", 20_000, Decimal("0.7")),
)
POINTS_PER_CNY = 1  # R-LOY-2: `amount // 100` points per order
LEVEL_RATES = (Decimal("0.15"), Decimal("0.05"), Decimal("0.02"))  # R-COM-2, commission README
GRADE_PREMIUMS = {  # added to the beneficiary's rate at each level (commission README)
    "standard": (Decimal(0), Decimal(0), Decimal(0)),
    "silver": (Decimal("0.01"), Decimal(0), Decimal(0)),
    "gold": (Decimal("0.02"), Decimal("0.01"), Decimal(0)),
}
PAYOUT_DELAY = 7 * DAY  # R-COM-3: T+7 after the return window closed
BATCH_INTERVAL = DAY  # a payout batch at every 00:00 UTC
REFERRAL_BONUS = 5_000  # R-COM-4: 50 CNY per new member, due at once
EARLY_BIRD = 72 * HOUR  # R-PRE-3
GROUP_PHASE = 48 * HOUR
PHASE_FACTORS = {"early_bird": Decimal("1.2"), "regular": Decimal("1.8"), "group": Decimal("1.8")}  # group price needs a group
CAPACITY_RATIO = Decimal("0.8")  # R-PRE-4
BUCKETS = ("production", "risk", "marketing", "operations", "deposits")
SPLIT = {"risk": Decimal("0.25"), "marketing": Decimal("0.20"), "operations": Decimal("0.15")}  # R-PRE-5; production: the rest
REFUND_FALLBACK = ("risk", "operations", "marketing", "production")  # presale README: a short bucket's refund
MILESTONES = {
    "materials_bought": Decimal("0.30"),
    "sample_approved": Decimal("0.20"),
    "production_finished": Decimal("0.30"),
    "shipped": Decimal("0.20"),
}
FIRST_BATCH = Decimal("0.7")  # R-PRE-7
GIFT_COST_CAP = Decimal("0.15")  # R-ORD-4: of the main line's gross margin


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def batch_id(cutoff: int) -> str:
    return datetime.fromtimestamp(cutoff / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


# --- the scenario --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GiftRule:
    """A base gift rule (R-ORD-3): `gift_qty` units of `gift_sku` with every order of `main_sku` placed
    through one of `channels`, if they cost at most 15 % of the main line's gross margin (R-ORD-4)."""

    rule_id: str
    main_sku: str
    main_unit_cost: int
    gift_sku: str
    gift_unit_cost: int
    gift_qty: int = 1
    channels: tuple[str, ...] = ("live", "short_video")

    def fits(self, main_qty: int, unit_price: int) -> bool:
        """R-ORD-4: gift qty × gift unit cost ≤ 15 % × qty × (unit price − main unit cost)."""
        return self.gift_qty * self.gift_unit_cost <= GIFT_COST_CAP * main_qty * (unit_price - self.main_unit_cost)


@dataclass(frozen=True)
class Distributor:
    distributor_id: str
    upline_id: str | None
    grade: str = "standard"


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    sku: str
    unit_cost: int
    moq: int
    max_capacity: int
    starts_at: int
    ends_at: int
    fan_base: int = 1_000
    deposits: tuple[tuple[str, str, int], ...] = ()  # (deposit id, member, cents), before the launch


@dataclass(frozen=True)
class Setup:
    skus: dict[str, int]  # sku → catalogue price (cents)
    gift_skus: tuple[str, ...]
    distributors: tuple[Distributor, ...]
    levels: int
    campaign: Campaign
    gift_rules: tuple[GiftRule, ...] = ()


@dataclass(frozen=True)
class Tick:
    at: int


@dataclass(frozen=True)
class Receive:
    sku: str
    warehouse: str
    qty: int


@dataclass(frozen=True)
class Place:
    order_id: str
    member_id: str
    channel: str
    lines: tuple[tuple[str, int, int], ...]  # (sku, qty, unit price asked)
    distributor_id: str | None = None
    campaign_id: str | None = None


@dataclass(frozen=True)
class Pay:
    order_id: str


@dataclass(frozen=True)
class Ship:
    order_id: str


@dataclass(frozen=True)
class Deliver:
    order_id: str


@dataclass(frozen=True)
class Refund:
    order_id: str
    refund_id: str
    lines: tuple[tuple[str, int, str], ...]  # (sku, qty, reason)


@dataclass(frozen=True)
class Cancel:
    order_id: str
    reason: str = "buyer changed their mind"


@dataclass(frozen=True)
class Milestone:
    campaign_id: str
    milestone: str


@dataclass(frozen=True)
class Redeem:
    """A member spends available points (R-LOY-2), so a later refund may find them gone (a shortfall)."""

    member_id: str
    redemption_id: str
    points: int


@dataclass(frozen=True)
class Kill:
    """Where the driver kills -9 a service (changes nothing the oracle computes)."""


Action = Tick | Receive | Place | Pay | Ship | Deliver | Refund | Cancel | Milestone | Redeem | Kill


# --- inventory (R-INV-1, R-INV-2) ----------------------------------------------------------------


@dataclass
class Stock:
    """Per sku and warehouse: on hand, reserved, clearance; the reservations per order."""

    warehouses: dict[str, dict[str, int]] = field(default_factory=dict)  # in order of first receipt
    reservations: dict[str, dict[str, int]] = field(default_factory=dict)
    received: Counter[str] = field(default_factory=Counter)
    shipped: Counter[str] = field(default_factory=Counter)
    returned_a: Counter[str] = field(default_factory=Counter)
    returned_b: Counter[str] = field(default_factory=Counter)
    shipped_from: dict[str, dict[str, int]] = field(default_factory=dict)  # order → warehouse → units out

    def available(self, wh: str | None = None) -> int:
        whs = [wh] if wh is not None else list(self.warehouses)
        return sum(self.warehouses[w]["on_hand"] - self.warehouses[w]["reserved"] for w in whs)

    def receive(self, wh: str, qty: int) -> None:
        self.warehouses.setdefault(wh, {"on_hand": 0, "reserved": 0, "clearance": 0})["on_hand"] += qty
        self.received[wh] += qty

    def reserve(self, order_id: str, qty: int) -> bool:
        """All or nothing (available never below zero); the fullest warehouses first (ties by name)."""
        if qty > self.available():
            return False
        left, held = qty, self.reservations.setdefault(order_id, {})
        for wh in sorted(self.warehouses, key=lambda w: (-self.available(w), w)):
            take = min(left, self.available(wh))
            if take > 0:
                self.warehouses[wh]["reserved"] += take
                held[wh] = held.get(wh, 0) + take
                left -= take
        return True

    def release(self, order_id: str, qty: int | None = None) -> int:
        """Give back `qty` (or all) of what the order holds, warehouses by name; what was released."""
        held = self.reservations.get(order_id, {})
        want = sum(held.values()) if qty is None else min(qty, sum(held.values()))
        done = want
        for wh in sorted(held):
            take = min(held[wh], want)
            held[wh] -= take
            self.warehouses[wh]["reserved"] -= take
            want -= take
        for wh in [w for w, q in held.items() if q == 0]:
            del held[wh]
        if not held:
            self.reservations.pop(order_id, None)
        return done

    def commit(self, order_id: str) -> None:
        out = self.shipped_from.setdefault(order_id, {})
        for wh, q in self.reservations.pop(order_id, {}).items():
            self.warehouses[wh]["reserved"] -= q
            self.warehouses[wh]["on_hand"] -= q
            self.shipped[wh] += q
            out[wh] = out.get(wh, 0) + q

    def return_goods(self, order_id: str, qty: int, grade: str) -> list[tuple[str, int]]:
        """R-INV-2: returns go back to the warehouses the order's units shipped from, the most-shipped
        first (ties by name); what is left (nothing shipped from here: presale goods) to the sku's
        first warehouse, else `returns`. The pieces, one StockReturned each."""
        pieces: list[tuple[str, int]] = []
        out = self.shipped_from.get(order_id, {})
        left = qty
        for wh, q in sorted(out.items(), key=lambda kv: (-kv[1], kv[0])):
            take = min(left, q)
            if take > 0:
                pieces.append((wh, take))
                out[wh] -= take
                left -= take
        if left:
            pieces.append((next(iter(self.warehouses), "returns"), left))
        for wh, q in pieces:
            w = self.warehouses.setdefault(wh, {"on_hand": 0, "reserved": 0, "clearance": 0})
            if grade == "A":
                w["on_hand"] += q
                self.returned_a[wh] += q
            else:
                w["clearance"] += q
                self.returned_b[wh] += q
        return pieces

    def view(self) -> dict[str, Any]:
        return {
            "warehouses": {
                wh: {
                    "on_hand": w["on_hand"],
                    "reserved": w["reserved"],
                    "available": w["on_hand"] - w["reserved"],
                    "clearance": w["clearance"],
                    "received": self.received[wh],
                    "shipped": self.shipped[wh],
                    "returned_a": self.returned_a[wh],
                    "returned_b": self.returned_b[wh],
                }
                for wh, w in sorted(self.warehouses.items())
            },
            "reservations": {o: dict(sorted(h.items())) for o, h in sorted(self.reservations.items())},
        }


# --- commission (R-COM-1..4, R-X-3) --------------------------------------------------------------


@dataclass
class Share:
    level: int
    who: str
    rate: Decimal
    accrued: int
    kept: int


@dataclass
class OrderCommission:
    seller: str
    lines: dict[str, dict[str, Any]]  # sku → {"paid", "refunded", "shares": [Share]}
    status: str = "pending"
    due_at: int | None = None
    refunds: list[str] = field(default_factory=list)


@dataclass
class Account:
    entries: list[tuple[dict[str, Any], int]] = field(default_factory=list)  # (payout line, available at)
    last_cutoff: int = -1
    batches: list[str] = field(default_factory=list)


class Commissions:
    def __init__(self, distributors: tuple[Distributor, ...], levels: int) -> None:
        self.tree = {d.distributor_id: d for d in distributors}
        self.levels = levels
        self.orders: dict[str, OrderCommission] = {}
        self.members: set[str] = set()
        self.accounts: dict[str, Account] = {d.distributor_id: Account() for d in distributors}
        self.totals = {
            d.distributor_id: dict.fromkeys(("accrued", "bonuses", "clawed_back", "pending", "payable", "paid"), 0)
            for d in distributors
        }
        self.batches: dict[str, dict[str, dict[str, Any]]] = {}
        self.clawbacks: list[tuple[str, str]] = []  # (order, refund id) clawed back
        self.charges: list[tuple[str, str, str]] = []  # (beneficiary, order, refund id) charged to an account

    def chain(self, seller: str) -> list[str]:
        out, up = [seller], self.tree[seller].upline_id
        while len(out) < self.levels and up is not None:
            out.append(up)
            up = self.tree[up].upline_id
        return out

    def paid(self, order_id: str, member: str, seller: str | None, at: int, lines: list[tuple[str, int]]) -> None:
        """R-COM-2: per line and level, rate × the line's paid amount, half up; R-COM-4: the member's
        very first paid order brings its distributor the referral bonus."""
        if member not in self.members:
            self.members.add(member)
            if seller is not None:
                self._bonus(
                    seller, {"kind": "referral_bonus", "ref": member, "sku": "", "level": 0, "amount": REFERRAL_BONUS}, at
                )
        if seller is None:
            return
        order = OrderCommission(seller, {})
        for sku, amount in lines:
            shares = []
            for level, who in enumerate(self.chain(seller), start=1):
                rate = LEVEL_RATES[level - 1] + GRADE_PREMIUMS[self.tree[who].grade][level - 1]
                cents = half_up(rate * amount)
                shares.append(Share(level, who, rate, cents, cents))
                self.totals[who]["accrued"] += cents
                self.totals[who]["pending"] += cents
            order.lines[sku] = {"paid": amount, "refunded": 0, "shares": shares}
        self.orders[order_id] = order

    def refunded(self, order_id: str, refund_id: str, amounts: dict[str, int] | None) -> None:
        """R-COM-3: what a level keeps on a line is always rate × the line's net paid, half up;
        the clawback is the difference (charged to the account once the commission is payable)."""
        order = self.orders.get(order_id)
        if order is None:
            return
        cuts = {
            sku: (line["paid"] - line["refunded"])
            if amounts is None
            else min(amounts.get(sku, 0), line["paid"] - line["refunded"])
            for sku, line in order.lines.items()
        }
        cuts = {sku: c for sku, c in cuts.items() if c > 0}
        if not cuts:
            return
        order.refunds.append(refund_id)
        self.clawbacks.append((order_id, refund_id))
        charged: set[str] = set()
        for sku, cut in cuts.items():
            line = order.lines[sku]
            line["refunded"] += cut
            for s in line["shares"]:
                keep = half_up(s.rate * (line["paid"] - line["refunded"]))
                back, s.kept = s.kept - keep, keep
                self.totals[s.who]["clawed_back"] += back
                self.totals[s.who]["pending" if order.status == "pending" else "payable"] -= back
                if order.status == "payable" and back:
                    assert order.due_at is not None
                    line_out = {"kind": "clawback", "ref": order_id, "sku": sku, "level": s.level, "amount": -back}
                    self.accounts[s.who].entries.append((line_out, order.due_at))
                    charged.add(s.who)
        self.charges += [(who, order_id, refund_id) for who in sorted(charged)]

    def completed(self, order_id: str, at: int) -> None:
        order = self.orders.get(order_id)
        if order is None:
            return
        order.status, order.due_at = "payable", at + PAYOUT_DELAY
        for sku, line in order.lines.items():
            for s in line["shares"]:
                self.totals[s.who]["pending"] -= s.kept
                self.totals[s.who]["payable"] += s.kept
                if s.kept:
                    out = {"kind": "commission", "ref": order_id, "sku": sku, "level": s.level, "amount": s.kept}
                    self.accounts[s.who].entries.append((out, order.due_at))

    def _bonus(self, who: str, line: dict[str, Any], at: int) -> None:
        self.accounts[who].entries.append((line, at))
        for f in ("accrued", "bonuses", "payable"):
            self.totals[who][f] += line["amount"]

    def tick(self, at: int) -> None:
        """R-COM-3: the batch of the latest cutoff pays every line due by it when their sum is positive."""
        cutoff = at // BATCH_INTERVAL * BATCH_INTERVAL
        for who, acc in sorted(self.accounts.items()):
            if not acc.entries or acc.last_cutoff >= cutoff:
                continue
            due = [line for line, when in acc.entries if when <= cutoff]
            gross = sum(x["amount"] for x in due if x["amount"] > 0)
            deductions = sum(x["amount"] for x in due if x["amount"] < 0)
            if gross > 0 and gross + deductions > 0:
                bid = batch_id(cutoff)
                acc.entries = [(line, when) for line, when in acc.entries if when > cutoff]
                acc.last_cutoff = cutoff
                acc.batches.append(bid)
                self.totals[who]["payable"] -= gross + deductions
                self.totals[who]["paid"] += gross + deductions
                self.batches.setdefault(bid, {})[who] = {
                    "gross": gross,
                    "deductions": deductions,
                    "net": gross + deductions,
                    "lines": _sorted_lines(due),
                }

    def view(self) -> dict[str, Any]:
        return {
            who: {
                "balances": _balances(self.totals[who]),
                "unpaid": _sorted_lines([line for line, _ in self.accounts[who].entries]),
                "batches": list(self.accounts[who].batches),
            }
            for who in sorted(self.totals)
        }

    def order_view(self, order_id: str) -> dict[str, Any]:
        order = self.orders[order_id]
        return {
            "status": order.status,
            "refunds": list(order.refunds),
            "lines": {
                sku: {
                    "paid": line["paid"],
                    "refunded": line["refunded"],
                    "levels": [[s.level, s.who, str(s.rate), s.accrued, s.accrued - s.kept, s.kept] for s in line["shares"]],
                }
                for sku, line in order.lines.items()
            },
        }


def _sorted_lines(lines: list[dict[str, Any]]) -> list[list[Any]]:
    return sorted([x["kind"], x["ref"], x["sku"], x["level"], x["amount"]] for x in lines)


# --- loyalty (R-LOY-1, R-LOY-2, R-X-3) -----------------------------------------------------------


def tier_of(growth: int) -> str:
    return [name for name, threshold, _ in TIERS if growth >= threshold][-1]


def discount_of(tier: str) -> Decimal:
    return next(rate for name, _, rate in TIERS if name == tier)


class Loyalty:
    def __init__(self) -> None:
        self.members: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}  # every paid order: paid, refunded, its points, pending or not
        self.reversals: list[tuple[str, str, int]] = []  # (order, refund id, points)

    def tier(self, member: str) -> str:
        m = self.members.get(member)
        return tier_of(m["spend"] // 100) if m is not None else "regular"

    def purchase(self, member: str, order_id: str, amount: int) -> None:
        m = self.members.setdefault(
            member,
            {
                "spend": 0,
                "orders": 0,
                "pending": 0,
                "available": 0,
                "earned": 0,
                "released": 0,
                "reversed": 0,
                "shortfall": 0,
                "redeemed": 0,
            },
        )
        points = amount // 100 * POINTS_PER_CNY
        m["orders"] += 1
        m["spend"] += amount
        m["pending"] += points
        m["earned"] += points
        self.orders[order_id] = {"member": member, "paid": amount, "refunded": 0, "points": points, "pending": True}

    @staticmethod
    def _taken_so_far(o: dict[str, Any]) -> int:
        """The refunded share of an order's points, rounded down on the cumulative refunded amount."""
        points: int = o["points"] * min(o["refunded"], o["paid"]) // o["paid"] if o["paid"] else o["points"]
        return points

    def reverse(self, member: str, order_id: str, refund_id: str, amount: int, full: bool) -> None:
        """R-LOY-2: refunds take back the points the order earned — the refunded share of them,
        rounded down on the cumulative refunded amount (all of them once fully refunded), less what
        earlier refunds took — whether the order is pending or completed (the loyalty README: the
        order's paid and already refunded amounts come with each refund). Pending: from the pending
        points; completed: from what is available, the rest a shortfall (never below zero)."""
        m = self.members[member]
        o = self.orders[order_id]
        before = self._taken_so_far(o)
        o["refunded"] += amount
        points = max(0, (o["points"] if full else self._taken_so_far(o)) - before)
        if o["pending"]:
            got = points
            m["pending"] -= got
            if full or o["refunded"] >= o["paid"]:
                o["pending"] = False  # no completion will come
        else:
            got = min(points, m["available"])
            m["available"] -= got
            m["shortfall"] += points - got
        if points > 0:
            m["reversed"] += got
            self.reversals.append((order_id, refund_id, got))
        m["spend"] = max(0, m["spend"] - amount)

    def redeem(self, member: str, points: int) -> None:
        m = self.members[member]
        assert 0 < points <= m["available"], (member, points, m)
        m["available"] -= points
        m["redeemed"] += points

    def completed(self, order_id: str) -> None:
        o = self.orders.get(order_id)
        if o is None or not o["pending"]:
            return
        o["pending"] = False
        m = self.members[o["member"]]
        release = o["points"] - self._taken_so_far(o)
        if release > 0:
            m["pending"] -= release
            m["available"] += release
            m["released"] += release

    def view(self) -> dict[str, Any]:
        return {
            member: {
                "tier": tier_of(m["spend"] // 100),
                "growth": m["spend"] // 100,
                "orders": m["orders"],
                "net_spend": m["spend"],
                "available": m["available"],
                "pending": m["pending"],
                "totals": {
                    "earned": m["earned"],
                    "released": m["released"],
                    "redeemed": m["redeemed"],
                    "expired": 0,
                    "reversed": m["reversed"],
                    "shortfall": m["shortfall"],
                },
            }
            for member, m in sorted(self.members.items())
        }


# --- presale (R-PRE-3..7, R-PRE-10) ----------------------------------------------------------------


def split(amount: int) -> dict[str, int]:
    """R-PRE-5: each non-production bucket ⌊amount × share⌋, production the rest."""
    parts = {b: int(amount * share) for b, share in SPLIT.items()}
    return {"production": amount - sum(parts.values()), **parts}


class Presale:
    def __init__(self, c: Campaign) -> None:
        self.c = c
        self.status = "open"
        self.buckets = dict.fromkeys(BUCKETS, 0)
        self.received = self.released = self.refunded = self.uncovered = self.funded = 0
        self.pledges: dict[str, dict[str, Any]] = {}
        self.first_batch: int | None = None
        self.milestones: list[str] = []
        self.refund_ids: list[str] = []
        for _, _, cents in c.deposits:
            self.buckets["deposits"] += cents
            self.received += cents

    @property
    def pledged(self) -> int:
        return sum(p["units"] for p in self.pledges.values())

    def phase(self, at: int) -> str:
        if at < self.c.starts_at or at >= self.c.ends_at:
            return "closed"
        if at < self.c.starts_at + EARLY_BIRD:
            return "early_bird"
        return "group" if at >= self.c.ends_at - GROUP_PHASE else "regular"

    def pledge(self, order_id: str, member: str, units: int, at: int) -> int | None:
        """R-PRE-3, R-PRE-4: the phase price (cost × factor, half up), or None when refused."""
        phase = self.phase(at)
        cap = int(self.c.max_capacity * CAPACITY_RATIO)
        if self.status != "open" or phase == "closed" or self.pledged + units > cap:
            return None
        price = half_up(self.c.unit_cost * PHASE_FACTORS[phase])
        self.pledges[order_id] = {
            "member": member,
            "units": units,
            "unit_price": price,
            "phase": phase,
            "status": "open",
            "paid": 0,
            "refunded": 0,
        }
        return price

    def pay(self, order_id: str, amount: int) -> None:
        parts = split(amount)
        for b, cents in parts.items():
            self.buckets[b] += cents
        self.received += amount
        self.funded += parts["production"]
        self.pledges[order_id]["paid"] += amount

    def refund(self, order_id: str, refund_id: str, asked: int, units: int, everything: bool) -> None:
        """A buyer refund: the split of the amount from each bucket, capped at what it holds; a shortfall
        from risk, operations, marketing, production; what no bucket holds is `uncovered`."""
        p = self.pledges[order_id]
        amount = min(asked, max(0, p["paid"] - p["refunded"]))
        units = min(p["units"] if everything else units, p["units"])
        if amount > 0:
            want = split(amount)
            taken = {b: min(want[b], max(0, self.buckets[b])) for b in want}
            short = amount - sum(taken.values())
            for b in REFUND_FALLBACK:
                extra = min(short, self.buckets[b] - taken[b])
                if short > 0 and extra > 0:
                    taken[b] += extra
                    short -= extra
            for b, cents in taken.items():
                self.buckets[b] -= cents
            self.refunded += sum(taken.values())
            self.uncovered += short
            self.funded -= taken["production"]
            p["refunded"] += amount
            self.refund_ids.append(refund_id)
        if units > 0:
            p["units"] -= units
            if p["units"] == 0 and p["status"] == "open":
                p["status"] = "released"

    def close(self) -> None:
        """R-PRE-7 (the scenario keeps pledged ≥ MOQ): succeeded, first batch ⌈70 %⌉, deposits back."""
        assert self.pledged >= self.c.moq, "the scenario must keep the campaign above its MOQ"
        self.status = "succeeded"
        self.first_batch = math.ceil(self.pledged * FIRST_BATCH)
        self.refunded += self.buckets["deposits"]
        self.buckets["deposits"] = 0

    def milestone(self, name: str) -> None:
        """R-PRE-6: up to ⌊cumulative share × production funded⌋ − released, within the bucket."""
        self.milestones.append(name)
        share = sum((MILESTONES[m] for m in self.milestones), Decimal(0))
        allowed = max(0, min(self.buckets["production"], int(share * self.funded) - self.released))
        self.buckets["production"] -= allowed
        self.released += allowed

    def view(self) -> dict[str, Any]:
        held = sum(self.buckets.values())
        return {
            "status": self.status,
            "pledged_units": self.pledged,
            "first_batch_units": self.first_batch,
            "buckets": dict(self.buckets),
            "money": {
                "received": self.received,
                "held": held,
                "released": self.released,
                "refunded": self.refunded,
                "uncovered_refunds": self.uncovered,
                "balanced": self.received == held + self.released + self.refunded,
            },
            "pledges": {
                o: {k: p[k] for k in ("units", "unit_price", "phase", "status", "paid", "refunded")}
                for o, p in sorted(self.pledges.items())
            },
        }


# --- orders (R-ORD-2, R-ORD-2a) and the cascade (R-X-3) --------------------------------------------


@dataclass
class Order:
    order_id: str
    member: str
    distributor: str | None
    campaign: str | None
    lines: list[list[Any]]  # [sku, qty, unit price]
    total: int
    status: str = "placed"
    pay_by: int | None = None
    paid: int = 0
    paid_at: int | None = None
    shipped: bool = False
    window_ends: int | None = None
    refunded_amount: int = 0
    refunded_qty: dict[str, int] = field(default_factory=dict)
    refund_ids: list[str] = field(default_factory=list)
    gifts: dict[str, dict[str, Any]] = field(default_factory=dict)  # rule id → the gift's state

    def qty(self, sku: str) -> int:
        return next((q for s, q, _ in self.lines if s == sku), 0)

    def price(self, sku: str) -> int:
        return int(next(p for s, _, p in self.lines if s == sku))

    def left(self, sku: str) -> int:
        return self.qty(sku) - self.refunded_qty.get(sku, 0)


class Oracle:
    """Plays a scenario; `snapshot()` is what every service must show."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.now = 0
        self.stock = {sku: Stock() for sku in [*setup.skus, *setup.gift_skus]}
        self.orders: dict[str, Order] = {}
        self.commission = Commissions(setup.distributors, setup.levels)
        self.loyalty = Loyalty()
        self.presale = Presale(setup.campaign)
        self.refunds: list[tuple[str, str]] = []  # (order, refund id) accepted, in order
        self.returned: Counter[tuple[str, str, int, str]] = Counter()  # (order, sku, qty, grade) StockReturned
        self.released: Counter[tuple[str, str, int]] = Counter()  # (order, sku, qty) released by a refund

    # -- the actions ------------------------------------------------------------------------------

    def apply(self, action: Action) -> str:
        """Play one action; the outcome: "ok", "confirmed", "rejected", or "refused: …"."""
        if isinstance(action, Tick):
            return self._tick(action.at)
        if isinstance(action, Receive):
            self.stock[action.sku].receive(action.warehouse, action.qty)
            return "ok"
        if isinstance(action, Place):
            return self._place(action)
        if isinstance(action, Milestone):
            self.presale.milestone(action.milestone)
            return "ok"
        if isinstance(action, Redeem):
            self.loyalty.redeem(action.member_id, action.points)
            return "ok"
        if isinstance(action, Kill):
            return "ok"
        order = self.orders[action.order_id]
        if isinstance(action, Pay):
            return self._pay(order)
        if isinstance(action, Ship):
            return self._ship(order)
        if isinstance(action, Deliver):
            assert order.status == "shipped", order
            order.status, order.window_ends = "delivered", self.now + RETURN_WINDOW
            return "ok"
        if isinstance(action, Refund):
            return self._refund(order, action)
        if isinstance(action, Cancel):
            return self._cancel(order, action.reason)
        raise TypeError(action)

    def _tick(self, at: int) -> str:
        self.now = at
        for o in self.orders.values():  # R-ORD-2: unpaid past the hold → cancelled, stock released
            if o.status == "confirmed" and o.pay_by is not None and o.pay_by <= at:
                self._cancelled(o, 0)
        for o in self.orders.values():  # the return window closed → completed
            if o.status == "delivered" and o.window_ends is not None and o.window_ends <= at:
                o.status = "completed"
                self.commission.completed(o.order_id, at)
                self.loyalty.completed(o.order_id)
        if self.presale.status == "open" and at >= self.presale.c.ends_at:
            self.presale.close()
        self.commission.tick(at)
        return "ok"

    def _place(self, a: Place) -> str:
        rate = discount_of(self.loyalty.tier(a.member_id))  # R-LOY-1: the tier when the order is placed
        order = Order(
            a.order_id,
            a.member_id,
            a.distributor_id,
            a.campaign_id,
            [list(x) for x in a.lines],
            sum(q * p for _, q, p in a.lines),
        )
        self.orders[a.order_id] = order
        if a.campaign_id is not None:  # R-PRE-3: priced by the campaign; no stock reserved
            base = self.presale.pledge(a.order_id, a.member_id, sum(q for _, q, _ in a.lines), self.now)
            if base is None:
                order.status = "rejected"
                return "rejected"
            prices = {sku: base for sku, _, _ in a.lines}
        else:
            order.gifts = self._gifts_for(a)
            answers = {sku: self.stock[sku].reserve(a.order_id, q) for sku, q, _ in a.lines}
            for g in order.gifts.values():  # R-ORD-5: a gift the warehouse refuses is omitted (no fallback)
                g["status"] = "reserved" if self.stock[g["sku"]].reserve(a.order_id, g["qty"]) else "omitted"
            if not all(answers.values()):  # R-INV-1: rejected; what was reserved is released, gifts too
                for sku in [*(s for s, ok in answers.items() if ok), *self._held_gifts(order)]:
                    self.stock[sku].release(a.order_id)
                self._gifts_released(order)
                order.status = "rejected"
                return "rejected"
            prices = {sku: p for sku, _, p in a.lines}
        order.lines = [[sku, q, half_up(Decimal(prices[sku]) * rate)] for sku, q, _ in a.lines]
        order.total = sum(q * p for _, q, p in order.lines)
        for g in order.gifts.values():  # R-ORD-4 again on the final (discounted) price: the hold goes back
            main = g["rule"].main_sku
            if g["status"] == "reserved" and not g["rule"].fits(order.qty(main), order.price(main)):
                g["status"] = "skipped"
                self.stock[g["sku"]].release(a.order_id)
        order.status, order.pay_by = "confirmed", self.now + PAYMENT_HOLD
        return "confirmed"

    def _gifts_for(self, a: Place) -> dict[str, dict[str, Any]]:
        """R-ORD-3, R-ORD-4: the base gifts an order gets at placement (rules by id), checked on the list
        price; a rule over the cap, or whose gift is already in the order, is skipped (and not shown)."""
        gifts: dict[str, dict[str, Any]] = {}
        taken = {sku for sku, _, _ in a.lines}
        lines = {sku: (q, p) for sku, q, p in a.lines}
        for rule in sorted(self.setup.gift_rules, key=lambda r: r.rule_id):
            if a.channel not in rule.channels or rule.main_sku not in lines or rule.gift_sku in taken:
                continue
            if rule.fits(*lines[rule.main_sku]):
                gifts[rule.rule_id] = {
                    "rule": rule,
                    "sku": rule.gift_sku,
                    "qty": rule.gift_qty,
                    "status": "pending",
                    "taken_back": 0,
                }
                taken.add(rule.gift_sku)
        return gifts

    @staticmethod
    def _held_gifts(o: Order) -> list[str]:
        return [g["sku"] for g in o.gifts.values() if g["status"] == "reserved"]

    @staticmethod
    def _gifts_released(o: Order) -> None:
        """A rejected or cancelled order's held gifts went back with its lines (order README)."""
        for g in o.gifts.values():
            if g["status"] == "reserved":
                g["status"] = "released"

    def _pay(self, o: Order) -> str:
        assert o.status == "confirmed" and o.pay_by is not None and self.now < o.pay_by, o
        o.status, o.paid, o.paid_at = "paid", o.total, self.now
        self.commission.paid(o.order_id, o.member, o.distributor, self.now, [(s, q * p) for s, q, p in o.lines])
        self.loyalty.purchase(o.member, o.order_id, o.paid)
        if o.campaign is not None:
            self.presale.pay(o.order_id, o.paid)
        return "ok"

    def _ship(self, o: Order) -> str:
        assert o.status == "paid", o
        o.status, o.shipped = "shipped", True
        if o.campaign is None:  # presale goods are made after the campaign: nothing reserved
            for sku, _, _ in o.lines:
                if o.left(sku) > 0:
                    self.stock[sku].commit(o.order_id)
            for g in o.gifts.values():  # the gifts go into the parcel, less those taken back
                if g["status"] == "reserved" and g["taken_back"] < g["qty"]:
                    self.stock[g["sku"]].commit(o.order_id)
        return "ok"

    def _refund(self, o: Order, a: Refund) -> str:
        """R-ORD-2a: by line, never more than paid and not refunded; after the window only a defect."""
        if o.status not in ("paid", "shipped", "delivered", "completed"):
            return f"refused: order is {o.status}"
        closed = o.window_ends is not None and self.now >= o.window_ends
        for sku, qty, reason in a.lines:
            if qty > o.left(sku):
                return f"refused: only {o.left(sku)} of {sku} paid and not refunded"
            if closed and reason != "defect":
                return "refused: the 7-day no-reason window closed"
        amounts: dict[str, int] = {}
        for sku, qty, reason in a.lines:
            amounts[sku] = qty * o.price(sku)
            before = o.refunded_qty.get(sku, 0)
            o.refunded_qty[sku] = before + qty
            if o.campaign is None:
                self._restock(o, sku, qty, reason)
                self._take_back_gifts(o, sku, reason)
            elif o.shipped:  # R-X-3: returned presale goods are taken in (nothing was held to release)
                self._restock(o, sku, qty, reason)
        amount = sum(amounts.values())
        o.refunded_amount += amount
        o.refund_ids.append(a.refund_id)
        full = all(o.left(sku) == 0 for sku, _, _ in o.lines)
        if full:
            o.status = "refunded"
        self.refunds.append((o.order_id, a.refund_id))
        if o.distributor is not None:
            self.commission.refunded(o.order_id, a.refund_id, amounts)
        self.loyalty.reverse(o.member, o.order_id, a.refund_id, amount, full)
        if o.campaign is not None:
            self.presale.refund(o.order_id, a.refund_id, amount, sum(q for _, q, _ in a.lines), full)
        return "ok"

    def _restock(self, o: Order, sku: str, qty: int, reason: str) -> None:
        """R-INV-2, R-X-3: shipped goods come back (A resellable, B clearance); else the hold is released."""
        if o.shipped:  # presale goods too: inventory takes them in even if it never stocked the sku
            grade = "A" if reason in RESELLABLE else "B"
            for _, piece in self.stock.setdefault(sku, Stock()).return_goods(o.order_id, qty, grade):
                self.returned[(o.order_id, sku, piece, grade)] += 1
        else:
            released = self.stock[sku].release(o.order_id, qty)
            if released:
                self.released[(o.order_id, sku, released)] += 1

    def _take_back_gifts(self, o: Order, main: str, reason: str) -> None:
        """R-ORD-2a: the gifts of a main line come back with it, in proportion: ⌊gift qty × main units
        refunded so far ÷ main units⌋ in all, so a whole main line takes back every gift unit; returned
        with the main line's grade once shipped, else their hold is released."""
        for g in o.gifts.values():
            if g["rule"].main_sku != main or g["status"] != "reserved":
                continue
            owed = g["qty"] * o.refunded_qty[main] // o.qty(main) - g["taken_back"]
            if owed > 0:
                g["taken_back"] += owed
                self._restock(o, g["sku"], owed, reason)

    def _cancel(self, o: Order, reason: str) -> str:
        if o.status not in ("placed", "confirmed", "paid"):
            return f"refused: order is {o.status}"
        refund = o.paid - o.refunded_amount
        self._cancelled(o, refund)
        return "ok"

    def _cancelled(self, o: Order, refund: int) -> None:
        o.status = "cancelled"
        o.refunded_amount += refund
        if o.campaign is None:
            for sku in [*(s for s, _, _ in o.lines), *self._held_gifts(o)]:
                self.stock[sku].release(o.order_id)
            self._gifts_released(o)
        if refund > 0:
            self.refunds.append((o.order_id, "cancelled"))
            if o.distributor is not None:
                self.commission.refunded(o.order_id, f"cancel-{o.order_id}", None)
            self.loyalty.reverse(o.member, o.order_id, "cancelled", refund, True)
        if o.campaign is not None:
            self.presale.refund(o.order_id, f"cancel-{o.order_id}", refund, 0, True)

    # -- what the services must show ---------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "orders": {
                oid: {
                    "status": o.status,
                    "total": o.total,
                    "paid": o.paid,
                    "refunded_amount": o.refunded_amount,
                    "refunded_qty": dict(sorted(o.refunded_qty.items())),
                    "lines": [list(x) for x in o.lines],
                    "gifts": {
                        rid: {
                            "sku": g["sku"],
                            "qty": g["qty"],
                            "unit_cost": g["rule"].gift_unit_cost,
                            "status": g["status"],
                            "taken_back": g["taken_back"],
                        }
                        for rid, g in sorted(o.gifts.items())
                    },
                }
                for oid, o in sorted(self.orders.items())
            },
            "stock": {sku: s.view() for sku, s in sorted(self.stock.items())},
            "presale": {self.setup.campaign.campaign_id: self.presale.view()},
            "commission": self.commission.view(),
            "loyalty": self.loyalty.view(),
        }

    def final_snapshot(self) -> dict[str, Any]:
        """The snapshot plus the chain behind every commission and every payout batch (R-COM-6)."""
        return {
            **self.snapshot(),
            "commission_orders": {oid: self.commission.order_view(oid) for oid in sorted(self.commission.orders)},
            "payout_batches": {bid: dict(sorted(p.items())) for bid, p in sorted(self.commission.batches.items())},
        }

    def stock_identity(self) -> dict[str, dict[str, int]]:
        """Per sku and warehouse: received − shipped + returned(A), which must equal on hand."""
        return {
            sku: {wh: s.received[wh] - s.shipped[wh] + s.returned_a[wh] for wh in sorted(s.warehouses)}
            for sku, s in sorted(self.stock.items())
        }

    def expected_effects(self) -> dict[str, Any]:
        """What each accepted refund must cause, once: in order, inventory, commission, loyalty, presale."""
        return {
            "order_refunds": sorted(rid for _, rid in self.refunds if rid != "cancelled"),
            "stock_returned": dict(self.returned),
            "stock_released": dict(self.released),
            "clawbacks": sorted(self.commission.clawbacks),
            "charges": sorted(self.commission.charges),
            "points_reversed": sorted(self.loyalty.reversals),
            "escrow_refunds": sorted(self.presale.refund_ids),
        }


def _balances(t: dict[str, int]) -> dict[str, int]:
    """The service's `balances` shape: commission and bonuses apart, `earned` their sum."""
    return {
        "commission": t["accrued"] - t["bonuses"],
        "bonuses": t["bonuses"],
        "earned": t["accrued"],
        **{k: t[k] for k in ("clawed_back", "pending", "payable", "paid")},
    }
