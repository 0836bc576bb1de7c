"""Property tests of the commission service over random histories, run on three partitions with the
real policies routing every event, in random (Kafka-legal) interleavings:

(a) to the cent, what every level keeps on every line equals the configured rate of that level
    (by product, grade and the rate in force when the order was paid) applied to the line's net paid
    amount, rounded half up — summed per level over the whole history too (R-COM-2, R-COM-3, R-COM-5);
(b) per distributor, accrued − clawed back = pending + payable + paid, in every partition and summed;
    paid = the sum of their payout batches (R-COM-3);
(c) no commission past the configured depth, each level paid to the right upline (R-COM-1);
(d) every commission line handed to an account is either paid in exactly one batch or still in the
    account — never twice, never lost (R-COM-3);
(e) the tree never holds a cycle or a chain deeper than the maximum, and every partition's replica
    of it ends equal to the network's (R-COM-1);
(f) folding each partition's log again gives its live state (rebuild);
(g) one referral bonus per new member, to a distributor who sold to them (R-COM-4).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from flexchain.testing import Harness
from flexchain.ticks import ClockTicked
from services.commission.messages import (
    NETWORK,
    CommissionAccrued,
    CommissionBecamePayable,
    CommissionClawedBack,
    CommissionRecomputed,
    LinkDistributor,
    PayoutBatchSettled,
    ReferralBonusAwarded,
    RegisterDistributor,
    SetCommissionLevels,
    SetSettlement,
    SetSkuRate,
)
from services.commission.plan import DAY_MS
from services.commission.state import upline_chain
from services.order.messages import OrderCancelled, OrderCompleted, OrderLine, OrderPaid, OrderRefunded, RefundedLine
from tests.unit.commission.builders import COMMISSION, totals

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)
T0 = 1_769_299_200_000  # 2026-01-25T00:00Z: histories cross a month end
D = Decimal
TREE = {"a": None, "b": "a", "c": "b", "x": None, "y": "x"}  # a ← b ← c, x ← y
GRADES = {"b": "gold"}
SELLERS = ("a", "b", "c", "y")
SKUS = ("s1", "s2", "s3")
LEVEL_RATES = (D("0.15"), D("0.05"), D("0.02"))
PREMIUMS = {"gold": (D("0.02"), D("0.01"), D("0"))}


def expected(rate: Decimal, net: int) -> int:
    return int((rate * net).quantize(D(1), rounding=ROUND_HALF_UP))


@dataclass
class Paid:
    seller: str
    paid_at: int
    lines: dict[str, int]  # sku → paid amount
    member: str = ""
    refunded: dict[str, int] = field(default_factory=dict)
    completed: bool = False
    cancelled: bool = False


line_st = st.tuples(st.sampled_from(SKUS), st.integers(1, 3), st.integers(1, 9_999))
op_st = st.one_of(
    st.tuples(
        st.just("pay"), st.sampled_from(SELLERS), st.lists(line_st, min_size=1, max_size=3), st.sampled_from(("m1", "m2", "m3"))
    ),
    st.tuples(st.just("refund"), st.integers(0, 30), st.sampled_from(SKUS), st.integers(1, 100)),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("complete"), st.integers(0, 30)),
    st.tuples(st.just("tick"), st.integers(1, 5)),
    st.tuples(st.just("rate"), st.sampled_from(SKUS), st.sampled_from((None, "0.08", "0.18", "0.3"))),
)
# long enough histories for orders to be released, paid, then refunded (hypothesis favours short lists)
history_st = st.integers(5, 80).flatmap(lambda n: st.lists(op_st, min_size=n, max_size=n))


class World:
    """The history as the test sees it: its own bookkeeping to compute the expected commission."""

    def __init__(self, levels: int, rnd: random.Random) -> None:
        self.levels = levels
        self.rnd = rnd
        self.h = Harness(COMMISSION, 3)
        self.now = T0
        self.orders: dict[str, Paid] = {}
        self.sku_rates: dict[str, list[tuple[int, Decimal | None]]] = {}
        setup = [
            SetCommissionLevels(network_id=NETWORK, levels=levels, max_chain_depth=3),
            SetSettlement(network_id=NETWORK, payout_delay_ms=2 * DAY_MS, batch_interval_ms=DAY_MS),
        ]
        setup += [
            RegisterDistributor(network_id=NETWORK, distributor_id=d, upline_id=u, grade=GRADES.get(d, "standard"))
            for d, u in TREE.items()
        ]
        for cmd in setup:
            self.h.send(cmd, T0)
        self.h.run()

    def some_steps(self) -> None:
        for _ in range(self.rnd.randint(0, 12)):
            options = self.h.steps()
            if not options:
                return
            self.h.step(*self.rnd.choice(options))

    def order(self, i: int) -> tuple[str, Paid] | None:
        if not self.orders:
            return None
        oid = sorted(self.orders)[i % len(self.orders)]
        return oid, self.orders[oid]

    def apply(self, op: tuple) -> None:  # type: ignore[type-arg]
        self.now += 60_000
        kind = op[0]
        if kind == "pay":
            _, seller, raw, member = op
            lines: dict[str, tuple[int, int]] = {}
            for sku, qty, price in raw:
                if sku not in lines:
                    lines[sku] = (qty, price)
            oid = f"o{len(self.orders)}"
            ev = OrderPaid(
                order_id=oid,
                amount=0,
                payment_ref="p",
                paid_at=self.now,
                member_id=member,
                distributor_id=seller,
                campaign_id=None,
                lines=[OrderLine(sku=s, qty=q, unit_price=p) for s, (q, p) in lines.items()],
            )
            self.orders[oid] = Paid(seller, self.now, {s: q * p for s, (q, p) in lines.items()}, member=member)
            self.h.publish(ev, self.now)
        elif kind in ("refund", "cancel", "complete"):
            found = self.order(op[1])
            if found is None:
                return
            oid, o = found
            if o.cancelled or (kind == "cancel" and o.completed):
                return
            if kind == "complete":
                if not o.completed:
                    o.completed = True
                    self.h.publish(
                        OrderCompleted(
                            order_id=oid, completed_at=self.now, member_id="m", distributor_id=o.seller, campaign_id=None
                        ),
                        self.now,
                    )
                return
            if kind == "cancel":
                left = {s: a - o.refunded.get(s, 0) for s, a in o.lines.items()}
                o.refunded = dict(o.lines)
                o.cancelled = True
                self.h.publish(
                    OrderCancelled(
                        order_id=oid,
                        reason="x",
                        release_skus=[],
                        refund_amount=sum(left.values()),
                        member_id="m",
                        distributor_id=o.seller,
                        campaign_id=None,
                    ),
                    self.now,
                )
                return
            _, _, sku, pct = op
            if sku not in o.lines:
                return
            amount = min(o.lines[sku] - o.refunded.get(sku, 0), max(1, o.lines[sku] * pct // 100))
            if amount <= 0:
                return
            o.refunded[sku] = o.refunded.get(sku, 0) + amount
            rl = RefundedLine(sku=sku, qty=1, reason="defect", amount=amount, goods_returned=True)
            self.h.publish(
                OrderRefunded(
                    order_id=oid,
                    refund_id=f"r{self.now}",
                    lines=[rl],
                    amount=amount,
                    fully_refunded=False,
                    member_id="m",
                    distributor_id=o.seller,
                    campaign_id=None,
                ),
                self.now,
            )
        elif kind == "tick":
            self.now += op[1] * DAY_MS // 2
            self.h.publish(ClockTicked(clock_id="main", time=self.now), self.now)
        elif kind == "rate":
            rate = D(op[2]) if op[2] is not None else None
            current = self.sku_rates.get(op[1], [(0, None)])[-1][1]
            if rate != current:  # the same rate again is refused: it changes nothing
                self.sku_rates.setdefault(op[1], [(0, None)]).append((self.now, rate))
            self.h.send(SetSkuRate(network_id=NETWORK, sku=op[1], rate=rate), self.now)
        self.some_steps()

    def rate(self, sku: str, level: int, who: str, paid_at: int) -> Decimal:
        base = LEVEL_RATES[level - 1]
        if level == 1:
            for at, r in self.sku_rates.get(sku, []):
                if at <= paid_at:
                    base = r if r is not None else LEVEL_RATES[0]
        return base + PREMIUMS.get(GRADES.get(who, "standard"), (D(0),) * 3)[level - 1]

    def chain(self, seller: str) -> list[str]:
        out, who = [], seller
        while who is not None and len(out) < self.levels:
            out.append(who)
            who = TREE[who]  # type: ignore[assignment]
        return out

    def settle(self) -> None:
        self.h.run()
        for oid, o in sorted(self.orders.items()):
            if not o.completed and not o.cancelled:
                o.completed = True
                self.h.publish(
                    OrderCompleted(order_id=oid, completed_at=self.now, member_id="m", distributor_id=o.seller, campaign_id=None),
                    self.now,
                )
        self.h.run()
        for days in (3, 4):  # due T+2: the batch of the next cutoff pays it
            self.h.publish(ClockTicked(clock_id="main", time=self.now + days * DAY_MS), self.now + days * DAY_MS)
            self.h.run()


@PROPERTY_SETTINGS
@given(st.sampled_from((2, 3)), history_st, st.randoms(use_true_random=False))
def test_commission_is_exact_to_the_cent_and_every_cent_is_accounted_for(levels: int, ops: list, rnd: random.Random) -> None:  # type: ignore[type-arg]
    w = World(levels, rnd)
    for op in ops:
        w.apply(op)
    w.settle()
    h = w.h

    # (a) per line and level, and per level in total, from the state and from the events
    want_by_level: Counter[int] = Counter()
    got_by_level: Counter[int] = Counter()
    for oid, o in w.orders.items():
        commission = next(p.state.orders[oid] for p in h.parts if oid in p.state.orders)
        chain = w.chain(o.seller)
        for line in commission.lines:
            net = o.lines[line.sku] - o.refunded.get(line.sku, 0)
            assert line.paid - line.refunded == net
            # (c) exactly the configured depth, each level to the right upline
            assert [s.distributor_id for s in line.shares] == chain
            for s in line.shares:
                want = expected(w.rate(line.sku, s.level, s.distributor_id, o.paid_at), net)
                assert s.net == want, (oid, line.sku, s.level)
                want_by_level[s.level] += want
                got_by_level[s.level] += s.net
    assert got_by_level == want_by_level
    from_events: Counter[int] = Counter()
    for e in h.events():
        if isinstance(e, CommissionAccrued):
            for al in e.lines:
                for ls in al.shares:
                    from_events[ls.level] += ls.amount
        elif isinstance(e, CommissionClawedBack):
            for cl in e.lines:
                for lc in cl.levels:
                    from_events[lc.level] -= lc.amount
        elif isinstance(e, CommissionRecomputed):  # a rate change that reached the partition late
            for a in e.adjustments:
                from_events[a.level] += a.delta
    assert +from_events == +want_by_level
    assert max(from_events, default=0) <= levels

    # (b) the balance identity, per partition and summed; paid = the batches
    batches = [e for e in h.events() if isinstance(e, PayoutBatchSettled)]
    for who in TREE:
        for p in h.parts:
            t = p.state.totals.get(who)
            if t is not None:
                assert t.accrued - t.clawed == t.pending + t.payable + t.paid
        t = totals(h, who)
        assert t.accrued - t.clawed == t.pending + t.payable + t.paid
        assert t.paid == sum(b.net for b in batches if b.distributor_id == who)
        assert t.pending == 0  # every order completed or cancelled by now
        unpaid = sum(e.line.amount for p in h.parts for a in [p.state.accounts.get(who)] if a for e in a.entries)
        assert t.payable == unpaid, "after the last batch, payable is what the account still holds"
        assert unpaid <= 0 or not any(
            e.line.amount > 0 for p in h.parts for a in [p.state.accounts.get(who)] if a for e in a.entries
        )

    # (d) every line handed to an account paid once, or still in the account
    released = Counter(
        (pay.distributor_id, line.ref, line.sku, line.level)
        for e in h.events()
        if isinstance(e, CommissionBecamePayable)
        for pay in e.payouts
        for line in pay.lines
    )
    settled = Counter(
        (b.distributor_id, line.ref, line.sku, line.level) for b in batches for line in b.lines if line.kind == "commission"
    )
    waiting = Counter(
        (who, e.line.ref, e.line.sku, e.line.level)
        for p in h.parts
        for who, a in p.state.accounts.items()
        for e in a.entries
        if e.line.kind == "commission"
    )
    assert max(settled.values(), default=1) == 1, "no line paid twice"
    assert settled + waiting == released, "none lost"

    # (g) one referral bonus per member (every order here names a distributor), to one who sold to them
    awards = [e for e in h.events() if isinstance(e, ReferralBonusAwarded)]
    buyers = {o.member: {x.seller for x in w.orders.values() if x.member == o.member} for o in w.orders.values()}
    assert sorted(a.member_id for a in awards) == sorted(buyers)
    assert all(a.distributor_id in buyers[a.member_id] and a.amount == 5_000 for a in awards)

    # (f) rebuild
    assert h.rebuilt() == h.live()


# --- (e) the tree ---------------------------------------------------------------------------------

NODES = ("n1", "n2", "n3", "n4", "n5", "n6")
tree_op_st = st.one_of(
    st.tuples(st.just("register"), st.sampled_from(NODES), st.none() | st.sampled_from(NODES)),
    st.tuples(st.just("link"), st.sampled_from(NODES), st.sampled_from(NODES)),
    st.tuples(st.just("depth"), st.integers(1, 4), st.none() | st.integers(0, 4)),
)


@PROPERTY_SETTINGS
@given(st.lists(tree_op_st, max_size=40), st.randoms(use_true_random=False))
def test_the_tree_never_holds_a_cycle_or_an_over_deep_chain_and_replicas_converge(ops: list, rnd: random.Random) -> None:  # type: ignore[type-arg]
    h = Harness(COMMISSION, 3)
    for i, op in enumerate(ops):
        if op[0] == "register":
            h.send(RegisterDistributor(network_id=NETWORK, distributor_id=op[1], upline_id=op[2]), T0 + i)
        elif op[0] == "link":
            h.send(LinkDistributor(network_id=NETWORK, distributor_id=op[1], upline_id=op[2]), T0 + i)
        else:
            h.send(SetCommissionLevels(network_id=NETWORK, levels=op[1], max_chain_depth=op[2]), T0 + i)
        for _ in range(rnd.randint(0, 6)):
            options = h.steps()
            if options:
                h.step(*rnd.choice(options))
        net = h.state_of(NETWORK).network
        for d in net.distributors:
            chain = upline_chain(net.distributors, d)
            assert len(chain) == len(set(chain)), "no cycle"
            cap = net.plan.max_chain_depth
            assert not cap or len(chain) <= cap, "no chain deeper than the recruitment depth cap"
        assert 1 <= net.plan.levels <= 3
    h.run()
    authority = h.state_of(NETWORK).network
    for p in h.parts:
        assert p.state.network.distributors == authority.distributors
        assert _kids(p.state.network.children) == _kids(authority.children)
        assert p.state.network.plan == authority.plan
    assert h.rebuilt() == h.live()


def _kids(children: dict[str, set[str]]) -> dict[str, set[str]]:
    return {k: v for k, v in children.items() if v}
