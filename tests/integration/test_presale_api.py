"""Presale over HTTP and business time on the real broker: phase boundaries exact to the millisecond
(an order 1 ms before the 72 h mark gets the early price), a rebuild from the log alone giving the
same prices and state, and bad commands refused with a clear reason, publishing nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.test_presale_money import (
    COST,
    EARLY_END,
    END,
    START,
    T0,
    accepted_prices,
    campaign,
    order_events,
    paid,
    placed,
    presale_events,
    tick,
)
from tests.support import Suite, end_offsets, eventually, get, http, post, run

pytestmark = pytest.mark.broker


def test_phase_boundaries_are_exact_on_business_time_and_a_rebuild_gives_the_same_prices(
    kafka_bootstrap: str, prefix: str, data_dir: Path
) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir, FLEXCHAIN_SNAPSHOT_EVERY="3")
    try:
        pre = suite.start("presale")
        tick(suite, T0)
        campaign(pre.url, "c1", moq=1, capacity=100)
        tick(suite, START)
        eventually(lambda: get(f"{pre.url}/campaigns/c1")["phase"] == "early_bird", what="early bird by the tick")
        order_events(
            suite,
            [
                (placed("o-before", "c1", 2, START - 1), START - 1),
                (placed("o-early", "c1", 2, EARLY_END - 1), EARLY_END - 1),
                (placed("o-regular", "c1", 1, EARLY_END), EARLY_END),
            ],
        )
        prices = accepted_prices(suite, 2)
        assert (prices["o-early"].unit_price, prices["o-early"].phase) == (COST * 12 // 10, "early_bird")
        assert (prices["o-regular"].unit_price, prices["o-regular"].phase) == (COST * 18 // 10, "regular")
        rejected = eventually(lambda: presale_events(suite, "PledgeRejected"))
        assert "opens at" in rejected[0].message.reason
        tick(suite, EARLY_END)
        eventually(lambda: get(f"{pre.url}/campaigns/c1")["unit_price_now"] == 3_600, what="regular price by the tick")
        order_events(suite, [(paid("o-early", "c1", 4_800, EARLY_END), EARLY_END)])
        eventually(lambda: get(f"{pre.url}/campaigns/c1")["money"]["received"] == 4_800)

        before_events = presale_events(suite)
        view = get(f"{pre.url}/campaigns/c1")
        pledges = get(f"{pre.url}/campaigns/c1/pledges")
        # restart with snapshots (every 3 events), then from the log alone: same state, nothing emitted again.
        # (Partition digests are not compared: they include the ids of commands that caused no event —
        # broadcast ticks on partitions without a campaign — which a rebuild from the log cannot know.)
        for wipe in (False, True):
            suite.stop_all()
            if wipe:
                shutil.rmtree(data_dir)
                data_dir.mkdir()
            pre = suite.start("presale")
            assert get(f"{pre.url}/campaigns/c1") == view
            assert get(f"{pre.url}/campaigns/c1/pledges") == pledges
        assert presale_events(suite) == before_events
        assert {o: p["unit_price"] for o, p in pledges.items()} == {"o-early": 2_400, "o-regular": 3_600}
        # the rebuilt processor decides on: one more order at the same instant gets the same price
        order_events(suite, [(placed("o-after", "c1", 1, EARLY_END), EARLY_END)])
        assert accepted_prices(suite, 3)["o-after"].unit_price == 3_600
    finally:
        suite.stop_all()


@pytest.fixture(scope="module")
def api(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import uuid

    s = Suite(kafka_bootstrap, f"papi{uuid.uuid4().hex[:6]}-", tmp_path_factory.mktemp("papi") / "data")
    s.data_dir.mkdir()
    pre = s.start("presale")
    tick(s, T0)
    campaign(pre.url, "won", moq=2, capacity=100)
    tick(s, START)
    order_events(s, [(placed("w1", "won", 2, START), START)])
    accepted_prices(s, 1)
    order_events(s, [(paid("w1", "won", 4_800, START + 1), START + 1)])
    eventually(lambda: get(f"{pre.url}/campaigns/won")["money"]["received"] == 4_800)
    assert post(f"{pre.url}/campaigns/won/close", {"reason": "sold out"}).status_code == 200
    assert post(f"{pre.url}/campaigns", {"campaign_id": "draft", "product": "x", "unit_cost": 100, "fan_base": 100, "moq": 1,
                                         "max_capacity": 10}).status_code == 200  # fmt: skip
    s.url = pre.url  # type: ignore[attr-defined]
    yield s
    s.stop_all()


def _commands(s: Suite) -> int:
    return int(run(end_offsets(s.bootstrap, s.topic("presale.commands"))))


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/campaigns/won/close", {"reason": "twice"}, "already closed (succeeded)"),
        ("/campaigns/won/milestones/shipped", {"evidence": "SF1", "amount": 1_921}, "the production reserve holds 1920"),
        ("/campaigns/won/milestones/painted", {"evidence": "x"}, "unknown milestone painted"),
        ("/campaigns/won/deposits", {"member_id": "m", "amount": 2_500}, "collected before the launch"),
        ("/campaigns/draft/milestones/shipped", {"evidence": "x"}, "released only after it succeeded"),
        ("/campaigns/draft/launch", {"force": True}, "schedule the campaign before launching it"),
        ("/campaigns/draft/deposits", {"member_id": "m", "amount": 1_000}, "an intent deposit is 2000–3000 cents"),
        ("/campaigns/won/price-rises", {"new_unit_cost": 1_000, "evidence": "quote"}, "not a rise"),
    ],
)
def test_a_refused_command_answers_409_with_its_reason_and_publishes_nothing(
    api: Suite, path: str, body: dict[str, object], reason: str
) -> None:
    before = _commands(api)
    r = post(api.url + path, body)  # type: ignore[attr-defined]
    assert r.status_code == 409, r.text
    assert reason in r.json()["detail"]["reason"]
    assert _commands(api) == before


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/campaigns/draft/deposits", {"member_id": "m", "amount": -2_500}, "amount"),
        ("/campaigns/draft/deposits", {"member_id": "m", "amount": "2500"}, "amount"),
        ("/campaigns/won/milestones/shipped", {"evidence": "x", "amount": -1}, "amount"),
        ("/campaigns/won/price-rises", {"new_unit_cost": 25.5, "evidence": "q"}, "new_unit_cost"),
        ("/campaigns/draft/schedule", {"starts_at": END, "ends_at": START}, "ends_at"),
    ],
)
def test_a_malformed_command_answers_422_per_field_and_publishes_nothing(
    api: Suite, path: str, body: dict[str, object], field: str
) -> None:
    before = _commands(api)
    r = post(api.url + path, body)  # type: ignore[attr-defined]
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == field, r.text
    assert _commands(api) == before


def test_pay_a_closed_campaign_is_refused_and_changes_nothing(api: Suite) -> None:
    url = api.url  # type: ignore[attr-defined]
    before = get(f"{url}/campaigns/won")
    order_events(api, [(paid("stranger", "won", 9_999, END), END)])
    refused = eventually(
        lambda: [e for e in presale_events(api, "PresaleCommandRejected") if e.message.command == "RecordPayment"]
    )
    assert "no accepted pledge for order stranger" in refused[0].message.reason
    after = get(f"{url}/campaigns/won")
    assert after["money"] == before["money"] and after["buckets"] == before["buckets"]


def test_queries_show_phase_pledges_buckets_releases_and_the_ledger(api: Suite) -> None:
    url = api.url  # type: ignore[attr-defined]
    r = post(f"{url}/campaigns/won/milestones/materials_bought", {"evidence": "invoice 7"})
    assert r.status_code == 200 and r.json()["events"][1]["amount"] == 576  # 30 % of production 1920
    c = get(f"{url}/campaigns/won")
    assert c["status"] == "succeeded" and c["pledged_units"] == 2 and c["first_batch_units"] == 2
    assert c["buckets"] == {"production": 1_344, "risk": 1_200, "marketing": 960, "operations": 720, "deposits": 0}
    assert [x["amount"] for x in c["releases"]] == [576]
    lines = get(f"{url}/campaigns/won/ledger")["lines"]
    assert [(x["kind"], x["amount"], x["balanced"]) for x in lines] == [("payment", 4_800, True), ("release", 576, True)]
    assert http("GET", f"{url}/campaigns/nope", timeout=10).status_code == 404
