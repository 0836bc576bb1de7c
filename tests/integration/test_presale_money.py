"""Presale money on the real broker, with the service killed (-9) at the worst moments. The order
service is stood in for by hand-made OrderPlaced / OrderPaid / OrderRefunded events published on
`<prefix>order.events` (its contract), and business time by `clock.ticks`.

* A failed campaign refunds every cent it received — each paid order exactly what it paid, each
  deposit once — also when the service is killed right after the closing tick and again while the
  order service's echoes of those refunds stream back (the echoes move no money) (R-PRE-7).
* Killed three times while payments stream in, every payment is escrowed exactly once and money is
  conserved after every event of the log (R-PRE-5, R-PRE-10).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from flexchain.clock import ClockPublisher
from flexchain.messages import Enveloped, Message
from flexchain.settings import Settings
from services.order.messages import OrderCancelled, OrderLine, OrderPaid, OrderPlaced, OrderRefunded, RefundedLine
from services.presale.domain import evolve, new_state
from services.presale.rules import DAY_MS, HOUR_MS, split
from services.presale.state import PresaleBook
from tests.support import Suite, envelope_for, events, eventually, get, post, publish, run

pytestmark = pytest.mark.broker

T0 = 1_790_000_000_000
START = T0 + DAY_MS
EARLY_END = START + 72 * HOUR_MS
END = START + 10 * DAY_MS
COST = 2_000  # early 2400, regular 3600


# --- helpers (also used by test_presale_api) ---------------------------------------------------------


def tick(suite: Suite, at: int, *urls: str) -> None:
    """Business time moves to `at`; with `urls`, returns once each of those services stamps its
    commands with it (FLEXCHAIN_CLOCK=log: the last tick its API read, which `/clock` tells)."""

    async def go() -> None:
        async with ClockPublisher(Settings(kafka_bootstrap_servers=suite.bootstrap, flexchain_topic_prefix=suite.prefix)) as c:
            await c.tick(at)

    run(go())
    for url in urls:
        eventually(lambda url=url: get(f"{url}/clock")["business_time"] >= at, what=f"{url} sees the tick {at}")


def placed(oid: str, cid: str, units: int, at: int, member: str = "m") -> OrderPlaced:
    return OrderPlaced(
        order_id=oid,
        member_id=member,
        channel="live",
        lines=[OrderLine(sku="notebook", qty=units, unit_price=0)],
        distributor_id=None,
        campaign_id=cid,
        total=0,
        placed_at=at,
    )


def paid(oid: str, cid: str, amount: int, at: int) -> OrderPaid:
    return OrderPaid(
        order_id=oid,
        amount=amount,
        payment_ref=f"pay-{oid}",
        paid_at=at,
        member_id="m",
        distributor_id=None,
        campaign_id=cid,
        lines=[OrderLine(sku="notebook", qty=1, unit_price=amount)],
    )


def order_events(suite: Suite, items: list[tuple[Message, int]]) -> None:
    """Publish hand-made order events, each with its business time."""
    run(publish(suite.bootstrap, suite.topic("order.events"), [(m, envelope_for(m, at=at)) for m, at in items]))


def presale_events(suite: Suite, kind: str | None = None) -> list[Enveloped]:
    evs = events(suite.bootstrap, suite.topic("presale.events"))
    return [e for e in evs if kind is None or e.envelope.event_type == kind]


def fold_checked(evs: list[Enveloped]) -> PresaleBook:
    """Fold the log; R-PRE-10 must hold for every campaign after every single event."""
    book = new_state()
    for i, e in enumerate(evs):
        evolve(book, e.message)
        c = book.campaigns.get(e.message.key)
        assert c is None or c.balanced(), f"R-PRE-10 broken at event {i} {e.envelope.event_type}"
        assert c is None or min(c.buckets.values()) >= 0
    return book


def campaign(url: str, cid: str, moq: int, capacity: int, split_: str = "standard", deposits: int = 0) -> None:
    body = {"campaign_id": cid, "product": "glow notebook", "unit_cost": COST, "fan_base": 1000, "moq": moq}
    assert post(f"{url}/campaigns", {**body, "max_capacity": capacity, "split": split_}).status_code == 200
    for i in range(deposits):
        r = post(
            f"{url}/campaigns/{cid}/deposits", {"deposit_id": f"{cid}-d{i}", "member_id": f"dm{i}", "amount": 2000 + 500 * i}
        )
        assert r.status_code == 200, r.text
    assert post(f"{url}/campaigns/{cid}/schedule", {"starts_at": START, "ends_at": END}).status_code == 200
    r = post(f"{url}/campaigns/{cid}/launch", {"force": True})
    assert r.status_code == 200, r.text


def accepted_prices(suite: Suite, n: int) -> dict[str, Any]:
    def all_answered() -> dict[str, Any]:
        got = {e.message.order_id: e.message for e in presale_events(suite, "PledgeAccepted")}
        return got if len(got) >= n else {}

    return eventually(all_answered, timeout=60, what=f"{n} pledges accepted")  # type: ignore[no-any-return]


# --- R-PRE-7: a failed campaign, killed during its refunds ----------------------------------------------


def test_a_failed_campaign_refunds_every_cent_exactly_once_across_kill_9(
    kafka_bootstrap: str, prefix: str, data_dir: Path
) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SNAPSHOT_EVERY="25")
    rng = random.Random(3)
    try:
        pre = suite.start("presale")
        tick(suite, T0)
        campaign(pre.url, "big", moq=5_000, capacity=8_000, deposits=3)
        tick(suite, START)
        units = {f"o{i:03d}": rng.randint(1, 5) for i in range(120)}
        order_events(suite, [(placed(o, "big", u, START + i), START + i) for i, (o, u) in enumerate(units.items())])
        prices = accepted_prices(suite, len(units))
        amounts = {o: prices[o].unit_price * u for o, u in units.items()}
        assert {p.unit_price for p in prices.values()} == {2_400}, "early bird"
        order_events(suite, [(paid(o, "big", a, START + HOUR_MS), START + HOUR_MS) for o, a in amounts.items()])
        eventually(lambda: len(presale_events(suite, "PaymentEscrowed")) == len(units), timeout=60, what="all escrowed")
        deposits = 2000 + 2500 + 3000
        received = sum(amounts.values()) + deposits

        # the closing tick, then kill -9 while the close (one transaction of ~370 events) is decided
        tick(suite, END)
        time.sleep(rng.uniform(0.05, 0.3))
        pre.kill9()
        pre = suite.start("presale")
        eventually(lambda: presale_events(suite, "CampaignClosed"), timeout=60, what="campaign closed")
        tick(suite, END)  # the same tick again, and a later one: nothing more to refund
        tick(suite, END + HOUR_MS)

        # the order service answers every PresaleRefundIssued with OrderRefunded under the same id (the echo);
        # kill -9 half way through the echoes
        issued = [e.message for e in presale_events(suite, "PresaleRefundIssued")]
        echoes: list[tuple[Message, int]] = []
        for r in issued:
            line = RefundedLine(
                sku="notebook", qty=units[r.order_id], reason="campaign_failed", amount=r.amount, goods_returned=False
            )
            echoes.append(
                (
                    OrderRefunded(
                        order_id=r.order_id,
                        refund_id=r.refund_id,
                        lines=[line],
                        amount=r.amount,
                        fully_refunded=True,
                        member_id="m",
                        distributor_id=None,
                        campaign_id="big",
                    ),
                    END + HOUR_MS,
                )
            )
        order_events(suite, echoes[:60])
        pre.kill9()
        order_events(suite, echoes[60:])
        pre = suite.start("presale")
        # a cancellation echo of an already refunded order, and a second close: both move nothing
        order_events(
            suite,
            [
                (
                    OrderCancelled(
                        order_id="o000",
                        reason="campaign failed",
                        release_skus=[],
                        refund_amount=0,
                        member_id="m",
                        distributor_id=None,
                        campaign_id="big",
                    ),
                    END + 2 * HOUR_MS,
                )
            ],
        )
        again = post(f"{pre.url}/campaigns/big/close", {"reason": "again"})
        assert again.status_code == 409 and "already closed (failed)" in again.json()["detail"]["reason"]

        def settled() -> dict[str, Any]:
            c = get(f"{pre.url}/campaigns/big")
            return c if c["money"]["refunded"] == received else {}

        c = eventually(settled, timeout=60, what="every cent refunded")
        assert c["status"] == "failed" and c["money"] == {
            "received": received,
            "held": 0,
            "released": 0,
            "refunded": received,
            "uncovered_refunds": 0,
            "balanced": True,
        }
        evs = presale_events(suite)
        kinds = Counter(e.envelope.event_type for e in evs)
        assert kinds["CampaignClosed"] == 1 and kinds["DepositRefunded"] == 3
        assert sorted(r.order_id for r in issued) == sorted(units), "one PresaleRefundIssued per order"
        assert all(r.refund_id == f"presale-big-{r.order_id}" and r.amount == amounts[r.order_id] for r in issued)
        back: dict[str, list[int]] = defaultdict(list)
        for e in evs:
            if e.envelope.event_type == "EscrowRefunded":
                back[e.message.order_id].append(sum(e.message.taken.values()))
        assert dict(back) == {o: [a] for o, a in amounts.items()}, "each order refunded exactly once, exactly what it paid"
        assert Counter(e.envelope.event_id for e in evs).most_common(1)[0][1] == 1
        book = fold_checked(evs)
        assert book.campaigns["big"].refunded == received
        ledger = get(f"{pre.url}/campaigns/big/ledger")
        assert ledger["balanced"] and ledger["total_lines"] == 2 * len(units) + 6
    finally:
        suite.stop_all()


# --- R-PRE-5, R-PRE-10: kill -9 while payments stream in ----------------------------------------------


def test_kill_9_during_payments_escrows_each_payment_once_and_conserves_money(
    kafka_bootstrap: str, prefix: str, data_dir: Path
) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SNAPSHOT_EVERY="40")
    rng = random.Random(11)
    schemes = {"ca": "standard", "cb": "simple", "cc": "standard"}
    try:
        pre = suite.start("presale")
        tick(suite, T0)
        for cid, scheme in schemes.items():
            campaign(pre.url, cid, moq=10, capacity=10_000, split_=scheme)
        tick(suite, START)
        orders = {f"p{i:03d}": (rng.choice(list(schemes)), rng.randint(1, 4)) for i in range(300)}
        order_events(suite, [(placed(o, cid, u, START + 1), START + 1) for o, (cid, u) in orders.items()])
        prices = accepted_prices(suite, len(orders))
        amounts = {o: prices[o].unit_price * u + rng.randint(0, 99) for o, (_, u) in orders.items()}  # odd cents too

        kills = 0
        current = {"pre": pre}

        def killer() -> None:
            nonlocal kills
            while kills < 3:
                time.sleep(1.0)
                current["pre"].kill9()
                kills += 1
                current["pre"] = suite.start("presale", wait=False)
                current["pre"].wait_ready()

        t = threading.Thread(target=killer)
        t.start()
        items = [(paid(o, orders[o][0], a, START + HOUR_MS), START + HOUR_MS) for o, a in amounts.items()]
        for i in range(0, len(items), 15):
            order_events(suite, items[i : i + 15])
            time.sleep(0.2)
        t.join(timeout=120)
        assert kills == 3
        url = current["pre"].url

        def all_escrowed() -> list[Enveloped]:
            evs = presale_events(suite)
            return evs if sum(1 for e in evs if e.envelope.event_type == "PaymentEscrowed") >= len(orders) else []

        evs = eventually(all_escrowed, timeout=90, interval=1.0, what="every payment escrowed")
        escrowed = [e.message for e in evs if e.envelope.event_type == "PaymentEscrowed"]
        assert Counter(m.order_id for m in escrowed) == Counter(dict.fromkeys(orders, 1)), "each payment exactly once"
        for m in escrowed:
            assert m.amount == amounts[m.order_id] and m.buckets == split(m.amount, schemes[m.campaign_id])
        book = fold_checked(evs)
        for cid in schemes:
            want = sum(a for o, a in amounts.items() if orders[o][0] == cid)
            c = book.campaigns[cid]
            assert c.received == want == c.held
            view = eventually(lambda cid=cid, want=want: get(f"{url}/campaigns/{cid}")["money"]["received"] == want)
            assert view
            ledger = get(f"{url}/campaigns/{cid}/ledger")
            assert ledger["balanced"] and ledger["totals"]["received"] == want
        metrics = eventually(lambda: "flexchain_presale_campaign_escrow_cents" in (t := _metrics(url)) and t)
        assert 'flexchain_presale_campaign_escrow_cents{bucket="production",campaign="cb"}' in metrics
    finally:
        suite.stop_all()


def _metrics(url: str) -> str:
    import httpx

    return httpx.get(url + "/metrics", timeout=10).text
