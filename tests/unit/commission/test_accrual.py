"""Given/when/then on accrual, clawback and settlement: R-COM-1 (depth), R-COM-2 (rates by level,
product and grade), R-COM-3 (pending → payable → T+7 batches, clawback in proportion before and after
payout), R-COM-5 (a rate change applies to orders paid after it) and R-COM-6 (the chain behind it).

The seller-side rules are decided on one partition; the flows that cross partitions (release to the
beneficiaries, clawback after release, bonuses) run through the in-memory harness with the real
policies routing the service's own events, on three partitions.
"""

from __future__ import annotations

from decimal import Decimal

from flexchain.messages import Message
from flexchain.testing import Harness, Scenario
from flexchain.ticks import ClockTicked
from services.commission.messages import (
    NETWORK,
    AccruedLine,
    BeneficiaryPayout,
    CommissionAccrued,
    CommissionBecamePayable,
    CommissionClawedBack,
    CustomerFirstSeen,
    LevelClawback,
    LevelShare,
    OrderCommissionParked,
    PaidLine,
    PayoutBatchSettled,
    PayoutCutoffPassed,
    PayoutLine,
    RecordOrderCompleted,
    RecordOrderPaid,
    RecordOrderRefund,
    RefundAmount,
    RenewQualification,
    ReplicateNetwork,
    SetCommissionLevels,
    SetGradePremiums,
    SetSkuRate,
)
from services.commission.plan import DAY_MS, batch_id, commission
from services.commission.state import CommissionState
from services.commission.tree import change_of
from services.order.messages import OrderCancelled, OrderCompleted, OrderLine, OrderPaid, OrderRefunded, RefundedLine
from tests.unit.commission.builders import COMMISSION, T0, reg, totals

D = Decimal
R15, R5, R2 = D("0.15"), D("0.05"), D("0.02")


def network(levels: int = 2) -> Scenario[CommissionState]:
    """a ← b ← c ← (c sells); levels as configured."""
    plan: list[Message] = [SetCommissionLevels(network_id=NETWORK, levels=levels)] if levels != 2 else []
    return Scenario(COMMISSION, at=T0).given(*plan, reg("a"), reg("b", "a"), reg("c", "b"))


def paid(order: str = "o1", seller: str = "c", *lines: PaidLine, at: int = T0 + 1) -> RecordOrderPaid:
    return RecordOrderPaid(
        distributor_id=seller,
        order_id=order,
        member_id="m1",
        paid_at=at,
        lines=list(lines) or [PaidLine(sku="mask", qty=2, amount=10_000)],
    )


def accrual(events: list[Message]) -> CommissionAccrued:
    [e] = [x for x in events if isinstance(x, CommissionAccrued)]
    return e


def shares(e: Message) -> list[tuple[int, str, Decimal, int]]:
    assert isinstance(e, CommissionAccrued), e
    return [(s.level, s.distributor_id, s.rate, s.amount) for line in e.lines for s in line.shares]


# --- R-COM-1 / R-COM-2: the split ------------------------------------------------------------------


def test_two_levels_by_default_fifteen_and_five_percent() -> None:
    sc = network()
    [e, first] = sc.when(paid()).events
    assert e == CommissionAccrued(
        distributor_id="c",
        order_id="o1",
        member_id="m1",
        paid_at=T0 + 1,
        network_seq=3,  # computed with the network as of change 3 (c's registration)
        lines=[
            AccruedLine(
                sku="mask",
                qty=2,
                paid_amount=10_000,
                shares=[
                    LevelShare(level=1, distributor_id="c", grade="standard", rate=R15, amount=1500, note=""),
                    LevelShare(level=2, distributor_id="b", grade="standard", rate=R5, amount=500, note=""),
                ],
            )
        ],
        total=2000,
    )
    assert first == CustomerFirstSeen(
        distributor_id="c", member_id="m1", order_id="o1", paid_at=T0 + 1
    )  # the member's partition is asked: a new member?
    [_] = sc.when(paid("o2")).events  # m1 bought here before: not new, nothing to ask


def test_three_levels_when_configured_and_never_past_the_configured_depth() -> None:
    sc = network(levels=3)
    e = accrual(sc.when(paid()).events)
    assert shares(e) == [(1, "c", R15, 1500), (2, "b", R5, 500), (3, "a", R2, 200)]
    # back to 2 levels: a is still c's third level in the tree but earns nothing any more
    sc.when(SetCommissionLevels(network_id=NETWORK, levels=2), T0 + 2)
    e = accrual(sc.when(paid("o2", at=T0 + 3)).events)
    assert shares(e) == [(1, "c", R15, 1500), (2, "b", R5, 500)]


def test_a_deep_sellers_commission_reaches_exactly_the_configured_levels_nearest_them() -> None:
    """R-COM-1: the tree grows past the commission levels; a sale five levels deep pays the seller and
    the two uplines nearest them (3 levels configured), never the two above."""
    sc = network(levels=3)
    sc.when(reg("d", "c"))
    sc.when(reg("e", "d"))
    e = accrual(sc.when(paid(seller="e")).events)
    assert shares(e) == [(1, "e", R15, 1500), (2, "d", R5, 500), (3, "c", R2, 200)]
    assert e.total == 2200


def test_the_level_one_rate_follows_the_product_and_each_level_the_beneficiarys_grade() -> None:
    sc = Scenario(COMMISSION, at=T0).given(
        reg("a", grade="gold"), reg("b", "a", grade="silver"), SetSkuRate(network_id=NETWORK, sku="serum", rate=D("0.18"))
    )
    sc.when(SetGradePremiums(network_id=NETWORK, grade="silver", premiums=[D("0.01"), D("0.01")]))
    e = accrual(
        sc.when(paid("o1", "b", PaidLine(sku="serum", qty=1, amount=10_000), PaidLine(sku="mask", qty=1, amount=10_000))).events
    )
    # serum: sku rate 18 % + silver 1 % at level 1; gold adds 1 % at level 2. mask: plan 15 % + 1 %
    assert shares(e) == [(1, "b", D("0.19"), 1900), (2, "a", D("0.06"), 600), (1, "b", D("0.16"), 1600), (2, "a", D("0.06"), 600)]


def test_a_rate_change_applies_to_orders_paid_after_it() -> None:
    sc = network()
    sc.when(SetSkuRate(network_id=NETWORK, sku="mask", rate=D("0.08")), T0 + 100)
    before = accrual(sc.when(paid("o1", at=T0 + 99), T0 + 200).events)  # paid before the change, processed after
    after = accrual(sc.when(paid("o2", at=T0 + 100), T0 + 200).events)
    assert shares(before)[0] == (1, "c", R15, 1500)
    assert shares(after)[0] == (1, "c", D("0.08"), 800)


def test_an_expired_qualification_earns_nothing_and_says_why() -> None:
    sc = Scenario(COMMISSION, at=T0).given(reg("a", qualified_until=T0 + 10), reg("b", "a"))
    e = accrual(sc.when(paid("o1", "b", at=T0 + 10), T0 + 11).events)
    assert isinstance(e, CommissionAccrued)
    assert [(s.level, s.amount, s.note) for s in e.lines[0].shares] == [
        (1, 1500, ""),
        (2, 0, f"qualification expired at {T0 + 10}"),
    ]
    sc.when(RenewQualification(network_id=NETWORK, distributor_id="a", qualified_until=T0 + 100 * DAY_MS), T0 + 12)
    e = accrual(sc.when(paid("o2", "b", at=T0 + 13), T0 + 13).events)
    assert shares(e)[1] == (2, "a", R5, 500)


def test_amounts_round_half_up_to_the_cent_per_line_and_level() -> None:
    sc = network()
    e = accrual(
        sc.when(
            paid(
                "o1",
                "c",
                PaidLine(sku="a", qty=1, amount=10),
                PaidLine(sku="b", qty=1, amount=3),
                PaidLine(sku="c", qty=1, amount=1),
            )
        ).events
    )
    # 15 % of 10 = 1.5 → 2; 5 % of 10 = 0.5 → 1; 15 % of 3 = 0.45 → 0; 5 % of 3 = 0.15 → 0
    assert [s[3] for s in shares(e)] == [2, 1, 0, 0, 0, 0]


def test_an_order_of_an_unknown_seller_waits_for_the_registration_with_its_refunds_and_completion() -> None:
    sc = network()
    [e] = sc.when(paid("o1", "z")).events
    assert isinstance(e, OrderCommissionParked) and "not known (yet)" in e.reason
    sc.when(
        RecordOrderRefund(
            distributor_id="z", order_id="o1", refund_id="r1", lines=[RefundAmount(sku="mask", amount=4_000)], everything=False
        )
    )
    sc.when(RecordOrderCompleted(distributor_id="z", order_id="o1", completed_at=T0 + 9 * DAY_MS))
    registered = Scenario(COMMISSION, at=T0).given(reg("a"), reg("b", "a"), reg("z", "b")).state.network.distributors["z"]
    events = sc.when(ReplicateNetwork(seq=sc.state.network.seq + 1, change=change_of_record(registered)), T0 + 10 * DAY_MS).events
    accrued, payable = events[1], events[-1]
    assert shares(accrued) == [(1, "z", R15, 900), (2, "b", R5, 300)]  # on the 6 000 still paid
    z_line, b_line = (
        PayoutLine(kind="commission", ref="o1", sku="mask", level=1, amount=900),
        PayoutLine(kind="commission", ref="o1", sku="mask", level=2, amount=300),
    )
    payouts = [
        BeneficiaryPayout(distributor_id="z", lines=[z_line], total=900),
        BeneficiaryPayout(distributor_id="b", lines=[b_line], total=300),
    ]
    assert payable == CommissionBecamePayable(
        distributor_id="z", order_id="o1", payable_at=T0 + 9 * DAY_MS, due_at=T0 + 16 * DAY_MS, total=1200, payouts=payouts
    )
    assert sc.state.parked == {}


def change_of_record(record: object) -> object:
    from services.commission.messages import DistributorRegistered

    found = change_of(DistributorRegistered(network_id=NETWORK, seq=0, distributor=record, sponsored=False))  # type: ignore[arg-type]
    assert found is not None
    return found[1]


# --- R-COM-3: clawback ------------------------------------------------------------------------------


def test_a_partial_refund_claws_back_in_proportion_at_every_level() -> None:
    sc = network(levels=3)
    sc.when(paid("o1", "c", PaidLine(sku="mask", qty=3, amount=3333)))  # 15 % → 500 (499.95), 5 % → 167, 2 % → 67
    [e] = sc.when(
        RecordOrderRefund(
            distributor_id="c", order_id="o1", refund_id="r1", lines=[RefundAmount(sku="mask", amount=1111)], everything=False
        )
    ).events
    # what stays is round(rate × 2222): 333, 111, 44 → clawed 167, 56, 23
    assert e == CommissionClawedBack(
        distributor_id="c",
        order_id="o1",
        refund_id="r1",
        lines=[
            _claw(
                "mask",
                1111,
                2222,
                [
                    LevelClawback(level=1, distributor_id="c", amount=167, after_release=False),
                    LevelClawback(level=2, distributor_id="b", amount=56, after_release=False),
                    LevelClawback(level=3, distributor_id="a", amount=23, after_release=False),
                ],
            )
        ],
        total=246,
        due_at=None,  # not in the accounts yet
    )
    [e] = sc.when(
        RecordOrderRefund(
            distributor_id="c", order_id="o1", refund_id="r2", lines=[RefundAmount(sku="mask", amount=2222)], everything=False
        )
    ).events
    assert isinstance(e, CommissionClawedBack) and [lc.amount for lc in e.lines[0].levels] == [333, 111, 44]
    assert all(s.net == 0 for s in sc.state.orders["o1"].lines[0].shares), "a full refund takes back every cent"
    assert (
        "was already clawed back"
        in sc.when(
            RecordOrderRefund(
                distributor_id="c", order_id="o1", refund_id="r2", lines=[RefundAmount(sku="mask", amount=1)], everything=False
            )
        ).refused()
    )
    assert (
        "nothing left"
        in sc.when(
            RecordOrderRefund(
                distributor_id="c", order_id="o1", refund_id="r3", lines=[RefundAmount(sku="mask", amount=1)], everything=False
            )
        ).refused()
    )


def _claw(sku: str, refunded: int, net: int, levels: list[LevelClawback]) -> object:
    from services.commission.messages import ClawbackLine

    return ClawbackLine(sku=sku, refunded_amount=refunded, net_amount=net, levels=levels)


def test_a_cancellation_after_payment_takes_everything_back() -> None:
    sc = network()
    sc.when(paid("o1", "c", PaidLine(sku="mask", qty=1, amount=999), PaidLine(sku="cream", qty=1, amount=2001)))
    [e] = sc.when(RecordOrderRefund(distributor_id="c", order_id="o1", refund_id="cancel-o1", lines=[], everything=True)).events
    assert isinstance(e, CommissionClawedBack) and e.total == commission(R15, 999) + commission(R5, 999) + commission(
        R15, 2001
    ) + commission(R5, 2001)
    assert sum(s.net for line in sc.state.orders["o1"].lines for s in line.shares) == 0


# --- R-COM-3: payable, T+7 batches, negative balances (three partitions, routed) -------------------


def tick(h: Harness, at: int) -> None:
    h.publish(ClockTicked(clock_id="main", time=at), at)
    h.run()


def flow(levels: int = 3) -> Harness:
    h = Harness(COMMISSION, 3)
    for cmd in (
        SetCommissionLevels(network_id=NETWORK, levels=levels, max_chain_depth=3),
        reg("a"),
        reg("b", "a"),
        reg("c", "b"),
    ):
        h.send(cmd, T0)
    h.run()
    return h


def order_paid(oid: str, amount: int, member: str = "m1", seller: str | None = "c", at: int = T0 + 1) -> OrderPaid:
    return OrderPaid(
        order_id=oid,
        amount=amount,
        payment_ref="pay",
        paid_at=at,
        member_id=member,
        distributor_id=seller,
        campaign_id=None,
        lines=[OrderLine(sku="mask", qty=1, unit_price=amount)],
    )


def batches(h: Harness) -> list[PayoutBatchSettled]:
    return [e for e in h.events() if isinstance(e, PayoutBatchSettled)]


def test_commission_is_pending_then_payable_then_paid_t_plus_7_in_a_batch() -> None:
    h = flow()
    h.publish(order_paid("o0", 10_000, seller=None), T0)  # m1 bought before: not a new member below
    h.publish(order_paid("o1", 10_000), T0 + 1)
    h.run()
    assert (totals(h, "c").pending, totals(h, "b").pending, totals(h, "a").pending) == (1500, 500, 200)
    completed = T0 + 9 * DAY_MS + 5
    h.publish(
        OrderCompleted(order_id="o1", completed_at=completed, member_id="m1", distributor_id="c", campaign_id=None), completed
    )
    h.run()
    assert (totals(h, "b").pending, totals(h, "b").payable) == (0, 500)
    [entry] = h.state_of("b").accounts["b"].entries  # in b's account, due T+7
    assert (entry.line, entry.available_at) == (
        PayoutLine(kind="commission", ref="o1", sku="mask", level=2, amount=500),
        completed + 7 * DAY_MS,
    )
    tick(h, completed + 7 * DAY_MS)  # the batch of that day's cutoff (00:00) is before it was due
    assert batches(h) == []
    next_cutoff = (completed + 7 * DAY_MS) // DAY_MS * DAY_MS + DAY_MS
    tick(h, next_cutoff - 1)
    assert batches(h) == []
    tick(h, next_cutoff)
    paid_b = [p for p in batches(h) if p.distributor_id == "b"]
    assert paid_b == [
        PayoutBatchSettled(
            distributor_id="b",
            batch_id="2026-01-18T00:00Z",
            cutoff=next_cutoff,
            lines=[PayoutLine(kind="commission", ref="o1", sku="mask", level=2, amount=500)],
            gross=500,
            deductions=0,
            net=500,
            paid_at=next_cutoff,
        )
    ]
    assert {p.distributor_id: p.net for p in batches(h)} == {"a": 200, "b": 500, "c": 1500}
    tick(h, next_cutoff + DAY_MS)
    assert len(batches(h)) == 3, "a line is paid once"
    assert (totals(h, "b").payable, totals(h, "b").paid) == (0, 500)


def test_every_partition_marks_each_batch_cutoff_once_so_a_reader_knows_when_a_batch_is_whole() -> None:
    h = flow()

    def marks() -> list[tuple[int, str]]:
        return sorted((i, e.batch_id) for i, p in enumerate(h.parts) for e, _ in p.log if isinstance(e, PayoutCutoffPassed))

    day = (T0 // DAY_MS + 3) * DAY_MS
    first, second = batch_id(day), batch_id(day + DAY_MS)
    tick(h, day + 5)  # passes that day's cutoff on every partition, with nothing to pay anywhere
    assert marks() == [(0, first), (1, first), (2, first)]
    assert batches(h) == [] and all(p.state.settled_cutoff == day for p in h.parts)
    tick(h, day + DAY_MS - 1)  # later the same day, and the same tick again: nothing new
    tick(h, day + 5)
    assert len(marks()) == 3
    tick(h, day + DAY_MS)
    assert marks() == [(0, first), (0, second), (1, first), (1, second), (2, first), (2, second)]


def test_a_refund_after_payout_is_a_negative_balance_netted_in_the_next_batch() -> None:
    h = flow()
    for oid in ("o1", "o2"):
        h.publish(order_paid(oid, 10_000), T0 + 1)
    h.publish(OrderCompleted(order_id="o1", completed_at=T0 + 2, member_id="m1", distributor_id="c", campaign_id=None), T0 + 2)
    h.run()
    day8 = T0 + 8 * DAY_MS
    tick(h, day8)  # o1 due at T0 + 7 days + 2 ms: paid in the batch of day 8
    assert totals(h, "b").paid == 500
    refund = OrderRefunded(
        order_id="o1",
        refund_id="r1",
        lines=[RefundedLine(sku="mask", qty=1, reason="defect", amount=10_000, goods_returned=True)],
        amount=10_000,
        fully_refunded=True,
        member_id="m1",
        distributor_id="c",
        campaign_id=None,
    )
    h.publish(refund, day8 + 1)
    h.run()
    t = totals(h, "b")
    assert (t.clawed, t.payable, t.paid) == (500, -500, 500), "after payout: a negative balance"
    assert h.state_of("b").accounts["b"].entries[0].line == PayoutLine(
        kind="clawback", ref="o1", sku="mask", level=2, amount=-500
    )
    tick(h, day8 + 2 * DAY_MS)
    assert [p.net for p in batches(h) if p.distributor_id == "b"] == [500], "nothing to pay while negative"
    # o2 (500 for b) completes: netted against the -500: still nothing paid, nothing lost
    h.publish(
        OrderCompleted(order_id="o2", completed_at=day8 + 2 * DAY_MS, member_id="m1", distributor_id="c", campaign_id=None),
        day8 + 2 * DAY_MS,
    )
    h.run()
    tick(h, day8 + 9 * DAY_MS)
    tick(h, day8 + 10 * DAY_MS)
    assert [p.net for p in batches(h) if p.distributor_id == "b"] == [500]
    assert len(h.state_of("b").accounts["b"].entries) == 2
    t = totals(h, "b")
    assert t.accrued - t.clawed == t.pending + t.payable + t.paid == 500


def test_a_refund_of_payable_commission_before_payout_nets_in_the_same_batch() -> None:
    h = flow()
    h.publish(order_paid("o1", 10_000), T0 + 1)
    h.publish(order_paid("o2", 20_000), T0 + 1)
    for oid in ("o1", "o2"):
        h.publish(OrderCompleted(order_id=oid, completed_at=T0 + 2, member_id="m1", distributor_id="c", campaign_id=None), T0 + 2)
    h.run()  # both in the accounts, due T+7
    refund = OrderRefunded(
        order_id="o2",
        refund_id="r1",
        lines=[RefundedLine(sku="mask", qty=1, reason="defect", amount=20_000, goods_returned=True)],
        amount=20_000,
        fully_refunded=True,
        member_id="m1",
        distributor_id="c",
        campaign_id=None,
    )
    h.publish(refund, T0 + 3 * DAY_MS)  # a defect: refunded after the window closed
    h.run()
    tick(h, T0 + 8 * DAY_MS)
    [b] = [p for p in batches(h) if p.distributor_id == "b"]
    assert (b.gross, b.deductions, b.net) == (1500, -1000, 500)


def test_a_cancellation_before_completion_leaves_nothing_to_pay() -> None:
    h = flow()
    h.publish(order_paid("o1", 10_000), T0 + 1)
    h.publish(
        OrderCancelled(
            order_id="o1",
            reason="changed mind",
            release_skus=["mask"],
            refund_amount=10_000,
            member_id="m1",
            distributor_id="c",
            campaign_id=None,
        ),
        T0 + 2,
    )
    h.run()
    for who in "abc":
        t = totals(h, who)
        assert t.pending == 0 and t.accrued - t.bonuses == t.clawed


# --- R-COM-4: bonuses ---------------------------------------------------------------------------------


def test_a_new_members_first_paid_order_earns_the_distributor_50_cny_once() -> None:
    h = flow()
    h.publish(order_paid("o1", 100, "new-1"), T0 + 1)
    h.publish(order_paid("o2", 100, "new-1"), T0 + 2)  # not new any more
    h.publish(order_paid("o3", 100, "walk-in", seller=None), T0 + 3)  # first order without a distributor
    h.publish(order_paid("o4", 100, "walk-in"), T0 + 4)  # ... so not a new member for c
    h.run()
    assert totals(h, "c").bonuses == 5_000
    entries = h.state_of("c").accounts["c"].entries
    assert [e.line for e in entries] == [PayoutLine(kind="referral_bonus", ref="new-1", sku="", level=0, amount=5_000)]


def test_the_monthly_target_bonus_follows_the_tier_reached_and_never_penalises() -> None:
    h = flow()
    h.send(reg("quiet", "a"), T0)
    h.publish(order_paid("o1", 2_000_000, "m1"), T0 + DAY_MS)  # 20 000 CNY in January
    h.publish(order_paid("o2", 1_500_000, "m2"), T0 + 2 * DAY_MS)
    h.publish(
        OrderRefunded(
            order_id="o2",
            refund_id="r1",
            lines=[RefundedLine(sku="mask", qty=1, reason="defect", amount=600_000, goods_returned=False)],
            amount=600_000,
            fully_refunded=False,
            member_id="m2",
            distributor_id="c",
            campaign_id=None,
        ),
        T0 + 3 * DAY_MS,
    )
    h.publish(order_paid("o3", 100, "m3", seller="quiet"), T0 + 3 * DAY_MS)
    h.run()
    feb = 1_769_904_000_000  # 2026-02-01T00:00Z
    tick(h, feb + 1)
    closed = {e.distributor_id: e for e in h.events() if type(e).__name__ == "MonthlyTargetClosed"}
    c = closed["c"]
    assert (c.month, c.net_sales, c.tier, c.bonus, c.growth_value) == ("2026-01", 2_900_000, 1, 20_000, 29_000)  # type: ignore[attr-defined]
    q = closed["quiet"]
    assert (q.net_sales, q.tier, q.bonus) == (100, 0, 0)  # type: ignore[attr-defined]
    tick(h, feb + 2)
    assert len([e for e in h.events() if type(e).__name__ == "MonthlyTargetClosed"]) == 2, "once per month"
    assert totals(h, "c").bonuses == 5_000 * 2 + 20_000  # two new members + the tier
