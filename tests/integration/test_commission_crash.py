"""Crash: kill -9 the commission service during payout batches (R-COM-3).

Hand-made order events stand in for the order service (OrderPaid, OrderCompleted, OrderRefunded on
`<prefix>order.events`); business time comes from `clock.ticks`. Each day a tick releases the
commission that became payable and the next tick pays the batch — and the service is killed with
SIGKILL a few moments after that tick, then restarted (rebuilt from its log and snapshots). At the
end every commission line is paid in exactly one batch — none twice, none lost — each distributor is
paid once per batch, and what each was paid is exactly the commission of their orders (3 levels).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from flexchain.clock import ClockPublisher
from flexchain.messages import Message
from flexchain.settings import Settings
from services.commission.app import service
from services.commission.plan import commission
from services.order.messages import OrderCompleted, OrderLine, OrderPaid, OrderRefunded, RefundedLine
from tests.support import Suite, envelope_for, events, eventually, get, http, post, publish, run, settled

pytestmark = pytest.mark.broker

T0 = 1_790_035_200_000  # a day boundary (UTC)
DAY = 86_400_000
RATES = (Decimal("0.15"), Decimal("0.05"), Decimal("0.02"))
CHAINS = 8  # top{i} ← mid{i} ← seller{i}
ORDERS_PER_DAY = 40
DAYS = 5


def _tick(suite: Suite, at: int) -> None:
    async def go() -> None:
        async with ClockPublisher(Settings(kafka_bootstrap_servers=suite.bootstrap, flexchain_topic_prefix=suite.prefix)) as c:
            await c.tick(at)

    run(go())


def _publish(suite: Suite, items: list[tuple[Message, int]]) -> None:
    run(publish(suite.bootstrap, suite.topic("order.events"), [(m, envelope_for(m, at=at)) for m, at in items]))


def test_kill_9_during_payout_batches_pays_every_line_once(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    rng = random.Random(11)
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SNAPSHOT_EVERY="40", FLEXCHAIN_COMMISSION_PAYOUT_DELAY_DAYS="0")
    try:
        svc = suite.start("commission")
        _tick(suite, T0)
        assert http("PUT", f"{svc.url}/plan/levels", json={"levels": 3, "max_chain_depth": 3}, timeout=15).status_code == 200
        for i in range(CHAINS):
            for who, up in ((f"top{i}", None), (f"mid{i}", f"top{i}"), (f"seller{i}", f"mid{i}")):
                assert post(f"{svc.url}/distributors", {"distributor_id": who, "upline_id": up}).status_code == 200

        expected: dict[str, int] = defaultdict(int)  # what each distributor must end up paid
        lines: set[tuple[str, str, str, int]] = set()  # (distributor, order, sku, level) with commission
        kills = early_kills = 0
        # from the start of publishing the batch's tick (sent after ~0.05 s): before, during, after its transaction
        delays = [0.02, 0.05, 0.08, 0.11, 0.3]
        for day in range(DAYS):
            now = T0 + day * DAY + 3_600_000
            batch: list[tuple[Message, int]] = []
            for n in range(ORDERS_PER_DAY):
                i = rng.randrange(CHAINS)
                oid, sku, amount = f"o{day}-{n}", rng.choice(("mask", "serum", "cream")), rng.randint(1, 50_000)
                member = f"m{day}-{n}" if n % 4 else "regular"  # some new members: referral bonuses too
                batch.append(
                    (
                        OrderPaid(
                            order_id=oid,
                            amount=amount,
                            payment_ref="p",
                            paid_at=now,
                            member_id=member,
                            distributor_id=f"seller{i}",
                            campaign_id=None,
                            lines=[OrderLine(sku=sku, qty=1, unit_price=amount)],
                        ),
                        now,
                    )
                )
                chain = (f"seller{i}", f"mid{i}", f"top{i}")
                refunded = amount // 3 if n % 10 == 0 else 0  # some refunded in part before completion
                if refunded:
                    rl = RefundedLine(sku=sku, qty=1, reason="no_reason", amount=refunded, goods_returned=True)
                    batch.append(
                        (
                            OrderRefunded(
                                order_id=oid,
                                refund_id="r1",
                                lines=[rl],
                                amount=refunded,
                                fully_refunded=False,
                                member_id=member,
                                distributor_id=chain[0],
                                campaign_id=None,
                            ),
                            now + 1,
                        )
                    )
                for level, who in enumerate(chain, start=1):
                    share = commission(RATES[level - 1], amount - refunded)
                    expected[who] += share
                    if share:
                        lines.add((who, oid, sku, level))
                batch.append(
                    (
                        OrderCompleted(
                            order_id=oid, completed_at=now + 2, member_id=member, distributor_id=chain[0], campaign_id=None
                        ),
                        now + 2,
                    )
                )
            _publish(suite, batch)
            _tick(suite, now + 10)  # releases the day's payable commission (T+0 here)
            time.sleep(1.0)
            killer = threading.Timer(delays[day], svc.kill9)  # the payout batch of the next cutoff, killed ...
            killer.start()
            _tick(suite, T0 + (day + 1) * DAY)  # ... around the moment it runs
            killer.join()
            kills += 1
            done = [e for e in events(kafka_bootstrap, suite.topic("commission.events")) if _batch_of(e, day + 1)]
            early_kills += not done  # killed before the batch was committed: its transaction is redone
            svc = suite.start("commission")
        _tick(suite, T0 + (DAYS + 1) * DAY)  # a last batch for anything credited after a cutoff

        def all_paid() -> list:
            # read the log, and below the balances, only with nothing in flight: a batch of the last
            # tick settled after the log was read would be in the balances and not in `batches`
            if not settled(kafka_bootstrap, prefix, service()):
                return []
            evs = events(kafka_bootstrap, suite.topic("commission.events"))
            paid = {
                (e.message.distributor_id, x.ref, x.sku, x.level)
                for e in evs
                if e.envelope.event_type == "PayoutBatchSettled"
                for x in e.message.lines
            }
            if lines <= paid:
                return evs
            _tick(suite, T0 + (DAYS + 2) * DAY)
            return []

        evs = eventually(all_paid, timeout=90, interval=2.0, what="every commission line paid")
        batches = [e.message for e in evs if e.envelope.event_type == "PayoutBatchSettled"]
        paid_lines = Counter(
            (b.distributor_id, x.ref, x.sku, x.level) for b in batches for x in b.lines if x.kind == "commission"
        )
        assert set(paid_lines) == lines, "none lost, none invented"
        assert set(paid_lines.values()) == {1}, "no line paid twice"
        assert max(Counter((b.distributor_id, b.batch_id) for b in batches).values()) == 1, "one payout per batch"
        accrued = Counter(e.message.order_id for e in evs if e.envelope.event_type == "CommissionAccrued")
        assert len(accrued) == DAYS * ORDERS_PER_DAY and set(accrued.values()) == {1}
        commission_paid: dict[str, int] = defaultdict(int)
        for b in batches:
            commission_paid[b.distributor_id] += sum(x.amount for x in b.lines if x.kind == "commission")
        assert dict(commission_paid) == {k: v for k, v in expected.items() if v}
        assert kills == DAYS and early_kills >= 1, (kills, early_kills)
        assert not events(kafka_bootstrap, suite.topic("commission.dlq"))
        # the restarted service's balances agree with the batches
        for who in ("seller0", "mid0", "top0"):
            b = get(f"{svc.url}/distributors/{who}")["balances"]
            assert b["earned"] - b["clawed_back"] == b["pending"] + b["payable"] + b["paid"]
            assert b["paid"] == sum(p.net for p in batches if p.distributor_id == who)
    finally:
        suite.stop_all()


def _batch_of(e: object, day: int) -> bool:
    msg = getattr(e, "message", None)
    return type(msg).__name__ == "PayoutBatchSettled" and getattr(msg, "cutoff", None) == T0 + day * DAY
