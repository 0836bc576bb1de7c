"""Loyalty's sugar on top of flexchain.testing: business time on UTC+8 days, members joined, purchases
bought and completed, ticks, the ledger summed per member, and the checks of the partition's internal
bookkeeping that every test can call."""

from __future__ import annotations

from collections import Counter

from flexchain.messages import Message
from flexchain.testing import Scenario
from services.loyalty.app import service
from services.loyalty.lifecycle import due_of
from services.loyalty.messages import (
    LEDGER,
    CheckMemberTimers,
    CompletePurchase,
    JoinMember,
    PointsEarned,
    PointsExpired,
    PointsRedeemed,
    PointsReleased,
    PointsReversed,
    PurchasedLine,
    RecordPurchase,
)
from services.loyalty.rules import DAY_MS, HOUR_MS, LoyaltyConfig, day_of, money_bucket, quintile_scores, rfm_code
from services.loyalty.state import NO_DAY, Loyalty, batch_points

T0 = 1_767_196_800_000  # 2026-01-01 00:00 in UTC+8: the start of business day D0
D0 = day_of(T0, LoyaltyConfig())
LOYALTY = service()


def at(day: int, hour: int = 10) -> int:
    """Business time: `hour` o'clock (UTC+8) on day `day` after 2026-01-01."""
    return T0 + day * DAY_MS + hour * HOUR_MS


def tick(sc: Scenario[Loyalty], day: int, hour: int = 0) -> list[Message]:
    return sc.when(CheckMemberTimers(time=at(day, hour) + 1), at(day, hour) + 1).events


def of(events: list[Message], cls: type[Message]) -> list[Message]:
    return [e for e in events if isinstance(e, cls)]


def joined(*members: str, config: LoyaltyConfig | None = None, day: int = 0) -> Scenario[Loyalty]:
    """A partition of the service (under `config`) where these members joined on `day`."""
    sc = Scenario(service(config) if config else LOYALTY, at=at(day, 9))
    return sc.given(*(JoinMember(member_id=m) for m in members))


def buy(sc: Scenario[Loyalty], member: str, order: str, cents: int, day: int, *lines: tuple[str, int]) -> list[Message]:
    items = [PurchasedLine(sku=sku, qty=qty) for sku, qty in lines]
    return sc.when(RecordPurchase(member_id=member, order_id=order, amount=cents, paid_at=at(day), lines=items), at(day)).events


def bought_and_completed(sc: Scenario[Loyalty], member: str, order: str, cents: int, day: int, completed: int) -> list[Message]:
    return (
        buy(sc, member, order, cents, day)
        + sc.when(CompletePurchase(member_id=member, order_id=order, completed_at=at(completed)), at(completed)).events
    )


def totals(events: list[Message]) -> dict[str, Counter[str]]:
    """Per member, the ledger summed by movement."""
    out: dict[str, Counter[str]] = {}
    for e in events:
        if not isinstance(e, LEDGER):
            continue
        c = out.setdefault(e.key, Counter())
        if isinstance(e, PointsEarned):
            c["earned"] += e.points
            c["pending" if e.pending else "available"] += e.points
        elif isinstance(e, PointsReleased):
            c["pending"] -= e.points
            c["available"] += e.points
        elif isinstance(e, PointsRedeemed):
            c["redeemed"] += e.points
            c["available"] -= e.points
        elif isinstance(e, PointsExpired):
            c["expired"] += e.points
            c["available"] -= e.points
        elif isinstance(e, PointsReversed):
            c["reversed"] += e.points
            c["pending"] -= e.from_pending
            c["available"] -= e.points - e.from_pending
            c["shortfall"] += e.shortfall
    return out


def check_bookkeeping(st: Loyalty) -> None:
    """The partition's derived structures agree with its members (what evolve must keep true)."""
    hist_r: Counter[int] = Counter()
    hist_f: Counter[int] = Counter()
    hist_m: Counter[int] = Counter()
    for row, member_id in enumerate(st.ids):
        assert st.rows[member_id] == row
        m = st.member_at(row)
        due = due_of(st, row)  # no event left the member's timers stale
        assert st.due[row] == due, (member_id, st.due[row], due)
        if due != NO_DAY:  # a timer is never lost: its agenda day still lists the member
            assert row in st.agenda.get(due, []), (member_id, due)
        assert m.pending >= 0 and m.spend >= 0
        assert all(batch_points(b) > 0 for b in m.batches)
        assert m.batches == sorted(m.batches)
        open_pending = sum(o.points - o.reversed_points() for o in st.open_orders.values() if o.member_row == row)
        assert m.pending == open_pending, (member_id, m.pending, open_pending)
        if m.first_day != NO_DAY:
            hist_r[m.last_day] += 1
            hist_f[m.orders] += 1
            hist_m[money_bucket(m.spend)] += 1
    assert (st.hist_recency, st.hist_frequency, st.hist_monetary) == (dict(hist_r), dict(hist_f), dict(hist_m))
    if not st.rfm_dirty and st.evaluated_day != NO_DAY:  # scores are those of the partition's quintiles
        by_r, by_f, by_m = (quintile_scores(h) for h in (st.hist_recency, st.hist_frequency, st.hist_monetary))
        for row in range(len(st.ids)):
            if st.first_day[row] != NO_DAY:
                want = rfm_code(by_r[st.last_day[row]], by_f[st.orders[row]], by_m[money_bucket(st.spend[row])])
                assert st.rfm[row] == want, (st.ids[row], st.rfm[row], want)
