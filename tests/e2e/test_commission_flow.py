"""The commission service end to end on the real broker, through its HTTP API and topics, on business
time from `clock.ticks`. Hand-made order and inventory events stand in for those services.

The tree refuses a cycle and an over-deep chain (R-COM-1); an order's commission is split per line
and level and its whole chain is queryable (R-COM-6); a partial refund claws back in proportion, the
rest is paid T+7 in a batch, a refund after payout leaves a negative balance (R-COM-3); commission
never flows past the configured depth (R-COM-1); a stock signal past a rule's threshold changes the
sku's rate for orders paid after it (R-COM-5); a qualification warning comes 30 days ahead (R-COM-6);
the service rebuilt from its log, with or without snapshots, answers the same.

Every answer is read once the service has converged on it, never at first sight: the network (tree,
plan, sku rates) is decided on its own partition and reaches the sellers' partitions one router hop
later, as do the credits, clawback charges and bonuses of a beneficiary's account. An order paid
right after a change may be split on its seller's partition before the change arrives there; it is
then split again (`CommissionRecomputed`, R-COM-5) — the test waits for the split that includes the
change (`network_seq`), and before moving business time, for the lines to be on the accounts. The
test runs twice: as the service is, and with that hop held back 1.5 s (`tests/e2e/slow_own_hop.py`),
so every such interleaving happens each time instead of now and then on a loaded machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from flexchain.clock import ClockPublisher
from flexchain.messages import Message
from flexchain.settings import Settings
from services.commission.app import service
from services.inventory.messages import LowStockAlertRaised
from services.order.messages import OrderCompleted, OrderLine, OrderPaid, OrderRefunded, RefundedLine
from tests.support import Suite, digests, envelope_for, events, eventually, get, http, post, publish, run, settled

pytestmark = pytest.mark.broker

T0 = 1_790_035_200_000  # a day boundary (UTC)
DAY = 86_400_000


def _tick(suite: Suite, at: int, url: str) -> None:
    """Business time moves to `at`; returns once the service stamps its commands with it (R-X-1)."""

    async def go() -> None:
        async with ClockPublisher(Settings(kafka_bootstrap_servers=suite.bootstrap, flexchain_topic_prefix=suite.prefix)) as c:
            await c.tick(at)

    run(go())
    eventually(lambda: get(f"{url}/clock")["business_time"] >= at, what=f"the service sees the tick {at}")


def _send(suite: Suite, topic: str, *items: tuple[Message, int]) -> None:
    run(publish(suite.bootstrap, suite.topic(topic), [(m, envelope_for(m, at=at)) for m, at in items]))


def put(url: str, body: dict[str, Any]) -> httpx.Response:
    return http("PUT", url, json=body, timeout=15)


def _digests(url: str) -> dict[str, str]:
    return {p: d["digest"] for p, d in digests(url).items()}


def _answers(url: str) -> dict[str, Any]:
    return {
        "distributors": {who: get(f"{url}/distributors/{who}") for who in "abc"},
        "orders": {o: get(f"{url}/orders/{o}/commission") for o in ("o1", "o2", "o3")},
        "batches": [get(f"{url}/payout-batches/{b['batch_id']}") for b in get(f"{url}/payout-batches")],
        "plan": get(f"{url}/plan"),
        "rates": get(f"{url}/rates/skus"),
        "rules": get(f"{url}/rate-rules"),
    }


def _batch(url: str, batch_id: str) -> dict[str, Any]:
    r = http("GET", f"{url}/payout-batches/{batch_id}", timeout=10)
    return r.json() if r.status_code == 200 else {}


def until(fetch: Any, ok: Any, what: str) -> Any:
    """Poll `fetch()` until `ok(value)`; the value."""
    return eventually(lambda: v if ok(v := fetch()) else None, what=what)


def _split(url: str, order_id: str, seq: int) -> dict[str, Any]:
    """The commission of an order once its split includes network change `seq` (split with it, or
    split again when it reached the seller's partition after the payment, R-COM-5)."""
    chain: dict[str, Any] = until(
        lambda: get(f"{url}/orders/{order_id}/commission"),
        lambda c: c["status"] != "parked" and c["network_seq"] >= seq,
        f"{order_id} split with network change {seq}",
    )
    return chain


def _account_lines(url: str, who: str) -> list[tuple[str, str]]:
    return [(x["kind"], x["ref"]) for x in get(f"{url}/distributors/{who}")["account"]["unpaid_lines"]]


def _levels(chain: dict[str, Any]) -> list[list[tuple[int, str, str, int]]]:
    return [[(x["level"], x["distributor_id"], x["rate"], x["net"]) for x in line["levels"]] for line in chain["lines"]]


@pytest.mark.parametrize("own_hop", ["prompt", "late"])
def test_commission_on_business_time_through_http(kafka_bootstrap: str, prefix: str, data_dir: Path, own_hop: str) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    module = "tests.e2e.slow_own_hop" if own_hop == "late" else None
    try:
        url = suite.start("commission", module=module).url
        _tick(suite, T0, url)

        # --- the tree (R-COM-1): commission flows 3 levels up, recruitment goes deeper; a cycle is
        # refused with the reason; a cap on recruitment depth is a separate, optional setting
        assert put(f"{url}/plan/levels", {"levels": 3}).status_code == 200
        for who, up in (("a", None), ("b", "a"), ("c", "b"), ("d", "c"), ("e", "d")):
            assert post(f"{url}/distributors", {"distributor_id": who, "upline_id": up}).status_code == 200
        cycle = put(f"{url}/distributors/a/upline", {"upline_id": "e"})
        assert cycle.status_code == 409 and "cycle: a → e → d → c → b → a" in cycle.json()["detail"]["reason"]
        too_low = put(f"{url}/plan/levels", {"levels": 3, "max_chain_depth": 4})
        assert too_low.status_code == 409 and "chains of 5 levels" in too_low.json()["detail"]["reason"]
        assert put(f"{url}/plan/levels", {"levels": 3, "max_chain_depth": 5}).status_code == 200
        deep = post(f"{url}/distributors", {"distributor_id": "f", "upline_id": "e"})
        assert deep.status_code == 409 and "chain too deep: f → e → d → c → b → a" in deep.json()["detail"]["reason"]
        assert get(f"{url}/plan")["current"]["plan"]["max_chain_depth"] == 5
        assert post(f"{url}/distributors", {"distributor_id": "bad id!"}).status_code == 422
        assert put(f"{url}/plan/level-rates", {"rates": [0.15, 0.05, 0.02]}).status_code == 422  # rates are strings
        assert put(f"{url}/plan/levels", {"levels": 4}).status_code == 409
        down = get(f"{url}/distributors/a/downline")
        assert down["size"] == 4 and down["downline"][0]["downline"][0]["distributor_id"] == "c"

        # --- an order paid through c: split per line and level; a partial refund claws back in proportion.
        # c's partition learns of c one hop after the registration: until then the order is parked
        # (a refund meanwhile would be folded into the parked lines); the refund follows the split
        paid = OrderPaid(
            order_id="o1",
            amount=13_333,
            payment_ref="p1",
            paid_at=T0 + 1,
            member_id="m1",
            distributor_id="c",
            campaign_id=None,
            lines=[OrderLine(sku="mask", qty=1, unit_price=10_000), OrderLine(sku="eye", qty=1, unit_price=3_333)],
        )
        refund = OrderRefunded(
            order_id="o1",
            refund_id="r1",
            lines=[RefundedLine(sku="eye", qty=1, reason="no_reason", amount=3_333, goods_returned=True)],
            amount=3_333,
            fully_refunded=False,
            member_id="m1",
            distributor_id="c",
            campaign_id=None,
        )
        _send(suite, "order.events", (paid, T0 + 1))
        until(lambda: get(f"{url}/orders/o1/commission"), lambda c: c["status"] == "pending", "o1 split")
        _send(suite, "order.events", (refund, T0 + 2))
        chain = until(lambda: get(f"{url}/orders/o1/commission"), lambda c: c["refunds"], "o1 clawed back")
        assert _levels(chain) == [
            [(1, "c", "0.15", 1500), (2, "b", "0.05", 500), (3, "a", "0.02", 200)],
            [(1, "c", "0.15", 0), (2, "b", "0.05", 0), (3, "a", "0.02", 0)],  # 500, 167, 67 accrued, all back
        ]
        assert chain["lines"][1]["levels"][1]["accrued"] == 167 and chain["status"] == "pending"

        # --- completed: payable, due T+7; paid in the batch of the first cutoff after that
        _send(
            suite,
            "order.events",
            (
                OrderCompleted(order_id="o1", completed_at=T0 + 9 * DAY, member_id="m1", distributor_id="c", campaign_id=None),
                T0 + 9 * DAY,
            ),
        )
        eventually(lambda: get(f"{url}/orders/o1/commission")["status"] == "payable")
        # the commission reaches each beneficiary's account one hop later, c's referral bonus (m1 was a
        # new member) three hops after the split: a batch pays what is on the accounts at its cutoff
        eventually(lambda: all(("commission", "o1") in _account_lines(url, who) for who in "abc"), what="o1 credited")
        eventually(lambda: ("referral_bonus", "m1") in _account_lines(url, "c"), what="c's referral bonus")
        _tick(suite, T0 + 16 * DAY - 1, url)
        _tick(suite, T0 + 16 * DAY, url)
        # each beneficiary's account settles on its own partition: the batch says when all have
        batch = until(lambda: _batch(url, "2026-10-08T00:00Z"), lambda b: b.get("complete"), "the whole payout batch")
        assert (batch["partitions_settled"], batch["partitions"]) == (6, 6)
        assert {p["distributor_id"]: p["net"] for p in batch["payouts"]} == {"a": 200, "b": 500, "c": 1500}
        assert [x["amount"] for p in batch["payouts"] if p["distributor_id"] == "c" for x in p["lines"]] == [1500]
        earlier = get(f"{url}/payout-batches/2026-10-07T00:00Z")  # m1 was a new member: c's referral bonus, due at once
        assert [(p["distributor_id"], p["lines"][0]["kind"], p["net"]) for p in earlier["payouts"]] == [
            ("c", "referral_bonus", 5000)
        ]

        # --- a defect refund after payout: a negative balance carried into the next batch (R-COM-3)
        late = OrderRefunded(
            order_id="o1",
            refund_id="r2",
            lines=[RefundedLine(sku="mask", qty=1, reason="defect", amount=10_000, goods_returned=True)],
            amount=10_000,
            fully_refunded=True,
            member_id="m1",
            distributor_id="c",
            campaign_id=None,
        )
        _send(suite, "order.events", (late, T0 + 17 * DAY))
        b = until(lambda: get(f"{url}/distributors/b")["balances"], lambda x: x["payable"] < 0, "a negative balance")
        assert b == {
            **{"commission": 667, "bonuses": 0, "earned": 667},
            **{"clawed_back": 667, "pending": 0, "payable": -500, "paid": 500},
        }
        # the balances are kept where the order was sold; the clawback line reaches b's own account one
        # hop later (ChargeClawback routed to b's partition): wait for it rather than read it at once
        lines = until(lambda: get(f"{url}/distributors/b")["account"]["unpaid_lines"], bool, "the clawback line on b's account")
        assert lines == [{"kind": "clawback", "ref": "o1", "sku": "mask", "level": 2, "amount": -500}]

        # --- back to 2 levels: a is still above b, and earns nothing from c's next order (R-COM-1)
        _tick(suite, T0 + 20 * DAY, url)
        assert put(f"{url}/plan/levels", {"levels": 2}).status_code == 200
        plan = get(f"{url}/plan")["current"]
        assert plan["effective_from"] == T0 + 20 * DAY and plan["plan"]["levels"] == 2
        paid2 = OrderPaid(
            order_id="o2",
            amount=10_000,
            payment_ref="p2",
            paid_at=T0 + 20 * DAY + 1,
            member_id="m1",
            distributor_id="c",
            campaign_id=None,
            lines=[OrderLine(sku="mask", qty=1, unit_price=10_000)],
        )
        _send(suite, "order.events", (paid2, T0 + 20 * DAY + 1))
        chain2 = _split(url, "o2", plan["seq"])
        assert _levels(chain2) == [[(1, "c", "0.15", 1500), (2, "b", "0.05", 500)]]

        # --- dynamic rates: low stock past the rule's threshold moves the sku's rate (R-COM-5)
        rule = {"signal": "low_stock", "skus": ["serum"], "delta": "-0.05", "threshold": 10, "floor": "0.08", "ceiling": "0.20"}
        assert put(f"{url}/rate-rules/scarce", rule).status_code == 200
        _send(
            suite, "inventory.events", (LowStockAlertRaised(sku="serum", available=45, threshold=50, crossing=1), T0 + 21 * DAY)
        )  # 5 short: below 10
        _send(
            suite, "inventory.events", (LowStockAlertRaised(sku="serum", available=20, threshold=50, crossing=2), T0 + 22 * DAY)
        )  # 30 short
        rates = until(lambda: get(f"{url}/rates/skus"), lambda r: "serum" in r, "serum's rate changed")
        assert rates["serum"]["rate"] == "0.10" and rates["serum"]["active_rules"] == ["scarce"]
        assert [v["effective_from"] for v in rates["serum"]["history"]] == [T0 + 22 * DAY]
        paid3 = OrderPaid(
            order_id="o3",
            amount=10_000,
            payment_ref="p3",
            paid_at=T0 + 22 * DAY + 1,
            member_id="m1",
            distributor_id="c",
            campaign_id=None,
            lines=[OrderLine(sku="serum", qty=1, unit_price=10_000)],
        )
        _send(suite, "order.events", (paid3, T0 + 22 * DAY + 1))
        # the rate changed on the network's partition; o3 is split on c's, which may learn of it later
        chain3 = _split(url, "o3", rates["serum"]["history"][-1]["seq"])
        assert _levels(chain3)[0][0] == (1, "c", "0.10", 1000)

        # --- the sandbox (R-X-4): what 3 levels at 18/4/1 % would have paid; nothing changes for real.
        # o1 kept nothing (refunded whole); o2: c 1500 → 1800, b 500 → 400, a 0 → 100 (level 3 follows the
        # tree); o3 keeps serum's own level-1 rate (0.10 when it was paid): b 500 → 400, a 0 → 100
        before_o2 = get(f"{url}/orders/o2/commission")
        what_if = post(f"{url}/sandbox/plan-replay", {"levels": 3, "level_rates": ["0.18", "0.04", "0.01"]})
        assert what_if.status_code == 200, what_if.text
        w = what_if.json()
        assert {d: (o["kept"], o["would_keep"]) for d, o in w["distributors"].items()} == {
            "a": (0, 200),
            "b": (1000, 800),
            "c": (2500, 2800),
        }
        assert w["orders"] == {"o2": 300} and w["orders_replayed"] == 3 and w["total"]["delta"] == 300
        past = post(f"{url}/sandbox/plan-replay", {"levels": 3, "level_rates": ["0.18", "0.04", "0.01"], "as_of": T0 + 19 * DAY})
        assert past.json()["orders_replayed"] == 1 and past.json()["total"] == {"kept": 0, "would_keep": 0, "delta": 0}
        later = post(f"{url}/sandbox/plan-replay", {"level_rates": ["0.18", "0.04", "0.01"], "paid_from": T0 + 22 * DAY})
        assert later.json()["orders"] == {"o3": -100} and later.json()["orders_replayed"] == 1  # o3 alone, 2 levels: b 500 → 400
        bad = post(f"{url}/sandbox/plan-replay", {"level_rates": ["0.25", "0.04", "0.01"]})
        assert bad.status_code == 422 and "level-1 rate must be within" in bad.text
        assert get(f"{url}/orders/o2/commission") == before_o2

        # --- a qualification warned 30 days before it ends (R-COM-6)
        expiry = T0 + 60 * DAY
        assert put(f"{url}/distributors/b/qualification", {"qualified_until": expiry}).status_code == 200
        _tick(suite, expiry - 30 * DAY, url)
        eventually(lambda: get(f"{url}/distributors/b")["qualification_warned_for"] == expiry, what="warning")
        warned = [
            e
            for e in events(kafka_bootstrap, suite.topic("commission.events"))
            if e.envelope.event_type == "QualificationExpiryWarned"
        ]
        assert [(e.message.distributor_id, e.message.days_left) for e in warned] == [("b", 30)]

        # --- rebuilt from the log: with snapshots (the same digests), then without any (the same answers;
        # the digest also covers the dedup memory, which a log rebuild cannot restore for commands
        # that changed nothing — a tick with nothing due, a member's second order). Read once nothing is
        # in flight: the last tick and the renewed qualification may still be reaching other partitions
        eventually(lambda: settled(kafka_bootstrap, prefix, service()), what="the service settled")
        before = _digests(url)
        answers = _answers(url)
        suite.stop_all()
        url = suite.start("commission", module=module).url
        assert _digests(url) == before
        suite.stop_all()
        shutil.rmtree(data_dir)
        data_dir.mkdir()
        url = suite.start("commission", module=module).url
        assert _answers(url) == answers
        assert not events(kafka_bootstrap, suite.topic("commission.dlq"))
    finally:
        suite.stop_all()
