"""HTTP APIs: strict validation (4xx with a message per field, nothing published), refused
transitions (409 with the reason, nothing published), idempotency keys."""

from __future__ import annotations

import pytest

from tests.support import Suite, end_offsets, eventually, get, post, run

pytestmark = pytest.mark.broker

GOOD_LINE = {"sku": "mask", "qty": 1, "unit_price": 1990}


@pytest.fixture(scope="module")
def suite(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import uuid

    s = Suite(kafka_bootstrap, f"api{uuid.uuid4().hex[:6]}-", tmp_path_factory.mktemp("api") / "data")
    s.data_dir.mkdir()
    inv, order = s.start("inventory"), s.start("order")
    post(f"{inv.url}/skus", {"sku": "mask", "name": "Mask"})
    post(f"{inv.url}/skus/mask/receipts", {"warehouse": "w1", "qty": 100})
    s.inv, s.order = inv.url, order.url  # type: ignore[attr-defined]
    eventually(
        lambda: (
            post(
                f"{order.url}/orders", {"order_id": "ok1", "member_id": "m", "channel": "live", "lines": [GOOD_LINE]}
            ).status_code
            == 200
        )
    )
    eventually(lambda: get(f"{order.url}/orders/ok1")["status"] == "confirmed")
    yield s
    s.stop_all()


def _published(suite: Suite, service: str) -> int:
    return int(run(end_offsets(suite.bootstrap, suite.topic(f"{service}.commands"))))


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"member_id": "m", "channel": "live", "lines": [{**GOOD_LINE, "qty": "3"}]}, ["lines", 0, "qty"], "integer"),
        ({"member_id": "m", "channel": "live", "lines": [{**GOOD_LINE, "qty": 2.5}]}, ["lines", 0, "qty"], "integer"),
        ({"member_id": "m", "channel": "live", "lines": [{**GOOD_LINE, "qty": -1}]}, ["lines", 0, "qty"], "greater than 0"),
        ({"member_id": "m", "channel": "live", "lines": [{**GOOD_LINE, "qty": 0}]}, ["lines", 0, "qty"], "greater than 0"),
        (
            {"member_id": "m", "channel": "live", "lines": [{**GOOD_LINE, "unit_price": 19.9}]},
            ["lines", 0, "unit_price"],
            "integer",
        ),
        (
            {"member_id": "m", "channel": "live", "lines": [{**GOOD_LINE, "unit_price": -5}]},
            ["lines", 0, "unit_price"],
            "greater than or equal",
        ),
        ({"member_id": "m", "channel": "live", "lines": [{**GOOD_LINE, "sku": "nope"}]}, ["lines", 0, "sku"], "unknown sku nope"),
        ({"member_id": "m", "channel": "tv", "lines": [GOOD_LINE]}, ["channel"], "live"),
        ({"channel": "live", "lines": [GOOD_LINE]}, ["member_id"], "required"),
        ({"member_id": "m", "channel": "live", "lines": []}, ["lines"], "at least 1"),
        ({"member_id": "m", "channel": "live", "lines": [GOOD_LINE, GOOD_LINE]}, ["lines"], "appears in two lines"),
        ({"member_id": "m", "channel": "live", "lines": [GOOD_LINE], "coupon": "x"}, ["coupon"], "not permitted"),
    ],
)
def test_bad_orders_get_422_per_field_and_publish_nothing(suite: Suite, body: dict, loc: list, words: str) -> None:
    before = _published(suite, "order")
    r = post(f"{suite.order}/orders", body)  # type: ignore[attr-defined]
    assert r.status_code == 422
    errors = r.json()["detail"]
    match = [e for e in errors if e["loc"][1:] == loc]
    assert match, errors
    assert words in match[0]["msg"]
    assert _published(suite, "order") == before


@pytest.mark.parametrize("qty", [0, -1, 1.5, "7", None])
def test_bad_receipts_get_422(suite: Suite, qty: object) -> None:
    before = _published(suite, "inventory")
    r = post(f"{suite.inv}/skus/mask/receipts", {"warehouse": "w1", "qty": qty})  # type: ignore[attr-defined]
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "qty"]
    assert _published(suite, "inventory") == before


def test_unknown_sku_and_order_are_404_and_refused_transitions_409(suite: Suite) -> None:
    inv, order = suite.inv, suite.order  # type: ignore[attr-defined]
    before = (_published(suite, "inventory"), _published(suite, "order"))
    assert post(f"{inv}/skus/ghost/receipts", {"warehouse": "w1", "qty": 1}).status_code == 404
    assert post(f"{order}/orders/ghost/payment", {"amount": 1, "payment_ref": "p"}).status_code == 404
    dup = post(f"{inv}/skus", {"sku": "mask", "name": "again"})
    assert dup.status_code == 409 and "already registered" in dup.json()["detail"]["reason"]
    ship = post(f"{order}/orders/ok1/shipment", {"tracking": "t"})
    assert ship.status_code == 409 and "only a paid order can be shipped" in ship.json()["detail"]["reason"]
    pay = post(f"{order}/orders/ok1/payment", {"amount": 1, "payment_ref": "p"})
    assert pay.status_code == 409 and "does not match the order total 1990" in pay.json()["detail"]["reason"]
    assert (_published(suite, "inventory"), _published(suite, "order")) == before


def test_idempotency_key_applies_a_command_once(suite: Suite) -> None:
    inv = suite.inv  # type: ignore[attr-defined]
    start = get(f"{inv}/skus/mask")["on_hand"]
    for _ in range(3):
        r = post(f"{inv}/skus/mask/receipts", {"warehouse": "w2", "qty": 5}, headers={"Idempotency-Key": "rcpt-42"})
        assert r.status_code in (200, 202)
    eventually(lambda: get(f"{inv}/skus/mask")["on_hand"] == start + 5)
    marker = post(f"{inv}/skus/mask/receipts", {"warehouse": "w2", "qty": 1})
    assert marker.status_code == 200
    assert get(f"{inv}/skus/mask")["on_hand"] == start + 6
