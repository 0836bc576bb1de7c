"""The HTTP limits (README "Limits"), offline: each service's API built by `host.build_app` as
`serve` builds it, without a broker. A command the read model refuses (an order of an unknown sku:
422) answers without publishing, so a flood of them needs no Kafka; the as-of fold is a fake of the
runtime's own port that holds until the test lets it go.

Some tests run the app on a real uvicorn (in a thread, on a free port): chunked bodies arrive as the
socket delivers them, and two clients are told apart by their source address (127.0.0.1, 127.0.0.2:
Linux routes all of 127/8 to loopback)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flexchain.asof import M, Replayed
from flexchain.auth import bearer
from flexchain.host import Runtime
from flexchain.httplimits import Gate, parse_rates
from flexchain.metrics import ServiceMetrics
from flexchain.procs import free_port
from tests.support import offline_service, token

AUTH = bearer(token())  # README "Security": every route here needs a token

SERVICES = ("order", "inventory", "presale", "commission", "loyalty")
ORDER = {  # a valid order of a sku nobody registered: 422, nothing published
    "order_id": "o-1",
    "member_id": "m-1",
    "channel": "live",
    "lines": [{"sku": "nope", "qty": 1, "unit_price": 100}],
}


def runtime(service: str, **settings: Any) -> tuple[Runtime, FastAPI]:
    rt, app = offline_service(service, **settings)
    return rt, app


class Server:
    """`app` on a real uvicorn, in a thread, as `host.serve` configures it."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", http="h11")
        config.proxy_headers = False
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def client_from(address: str, timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=timeout, headers=AUTH)


# --- body size: 413 ------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_by_its_content_length() -> None:
    _, app = runtime("order", flexchain_http_max_body_bytes=2000)
    client = TestClient(app, headers=AUTH)
    small = client.post("/orders", json=ORDER)
    assert small.status_code == 422, small.text  # under the limit: read, and refused by the rules
    big = client.post("/orders", json={**ORDER, "member_id": "m" * 3000})
    assert big.status_code == 413, big.text
    assert "FLEXCHAIN_HTTP_MAX_BODY_BYTES" in big.json()["detail"]


def test_a_chunked_body_is_counted_as_it_streams_and_refused_past_the_limit() -> None:
    """No Content-Length: the body is refused as soon as it passes the limit, before its end."""
    _, app = runtime("order", flexchain_http_max_body_bytes=4096)
    sent = 0
    more = threading.Event()  # the client sends the rest only if the server has not answered yet

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(64):
            sent += 1024
            yield b" " * 1024
            if more.is_set():
                return

    with Server(app) as url, client_from("127.0.0.1") as http:
        r = http.post(url + "/orders", content=chunks(), headers={"content-type": "application/json"})
        more.set()
        assert r.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in r.request.headers
        assert r.status_code == 413, r.text
        assert "larger than 4096 bytes" in r.json()["detail"]
        ok = http.post(url + "/orders", json=ORDER)  # the server still serves
        assert ok.status_code == 422


# --- commands per client: 429 with Retry-After ---------------------------------------------------


def test_a_flood_from_one_client_is_refused_while_another_is_served() -> None:
    _, app = runtime("order", flexchain_rate_limit="5/minute")
    with Server(app) as url, client_from("127.0.0.1") as a, client_from("127.0.0.2") as b:
        answers = [a.post(url + "/orders", json=ORDER) for _ in range(8)]
        assert [r.status_code for r in answers] == [422] * 5 + [429] * 3
        refused = answers[-1]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "127.0.0.1" in refused.json()["detail"]
        assert b.post(url + "/orders", json=ORDER).status_code == 422  # the other client: served
        assert a.get(url + "/clock").status_code == 200  # reads are not counted
        assert a.post(url + "/orders", json=ORDER).status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client() -> None:
    _, app = runtime("order", flexchain_rate_limit="3/minute", flexchain_http_trusted_proxies="testclient")
    proxy = TestClient(app, headers=AUTH)  # its peer address is "testclient"

    def post(client: str) -> int:
        return proxy.post("/orders", json=ORDER, headers={"X-Forwarded-For": client}).status_code

    assert [post("10.0.0.1") for _ in range(4)] == [422, 422, 422, 429]
    assert post("10.0.0.2") == 422


def test_an_untrusted_peer_cannot_escape_its_budget_with_x_forwarded_for() -> None:
    _, app = runtime("order", flexchain_rate_limit="3/minute")  # no trusted proxy: the peer is the client
    client = TestClient(app, headers=AUTH)
    codes = [client.post("/orders", json=ORDER, headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code for i in range(5)]
    assert codes == [422, 422, 422, 429, 429]


def test_rate_limits_parse_and_can_be_off() -> None:
    assert [str(r) for r in parse_rates("50/second;1000/minute")] == ["50 per 1 second", "1000 per 1 minute"]
    assert parse_rates("") == parse_rates("0") == []
    _, app = runtime("order", flexchain_rate_limit="0")
    client = TestClient(app, headers=AUTH)
    assert {client.post("/orders", json=ORDER).status_code for _ in range(200)} == {422}
    with pytest.raises(ValueError):
        parse_rates("lots")


# --- concurrent as-of folds: 429 with Retry-After, not a queue -----------------------------------


class HeldPast:
    """The runtime's as-of port (`AsOf.model`), held open until the test releases it."""

    def __init__(self) -> None:
        self.release = threading.Event()

    async def model(self, kind: object, at: int, new_model: Callable[[list[int]], M]) -> tuple[M, Replayed]:
        await asyncio.to_thread(self.release.wait, 30)
        return new_model([0]), Replayed(at, {0: 0}, {0: 0})

    async def close(self) -> None:
        return None


def test_as_of_reads_past_the_bound_are_refused_while_others_are_served() -> None:
    rt, app = runtime("inventory", flexchain_max_concurrent_replays=2)
    held = HeldPast()
    rt.history = held  # type: ignore[assignment]
    answers: list[httpx.Response] = []

    with Server(app) as url, client_from("127.0.0.1", timeout=30) as http:

        def ask(at: int) -> None:
            answers.append(http.get(f"{url}/skus", params={"as_of": at}))

        running = [threading.Thread(target=ask, args=(at,)) for at in (1, 2)]
        for t in running:
            t.start()
        deadline = time.monotonic() + 10
        while rt.replays.inflight < 2:
            assert time.monotonic() < deadline, "the two as-of reads did not start"
            time.sleep(0.01)
        third = http.get(f"{url}/skus", params={"as_of": 3})
        assert third.status_code == 429, third.text
        assert int(third.headers["Retry-After"]) >= 1
        assert "FLEXCHAIN_MAX_CONCURRENT_REPLAYS" in third.json()["detail"]
        assert http.get(f"{url}/skus").status_code == 200  # the live read does not fold: served
        held.release.set()
        for t in running:
            t.join(timeout=30)
        assert [r.status_code for r in answers] == [200, 200]
        assert rt.replays.inflight == 0
        assert http.get(f"{url}/skus", params={"as_of": 4}).status_code == 200  # slots given back


def test_a_plan_replay_counts_against_the_same_bound() -> None:
    rt, app = runtime("commission", flexchain_max_concurrent_replays=1)
    held = HeldPast()
    held.release.set()
    rt.history = held  # type: ignore[assignment]
    client = TestClient(app, headers=AUTH)
    rt.replays.enter()  # one fold running
    try:
        for body in ({"paid_from": 0}, {"paid_from": 0, "as_of": 1}):  # live, and as of a past time
            r = client.post("/sandbox/plan-replay", json=body)
            assert r.status_code == 429, r.text
            assert int(r.headers["Retry-After"]) >= 1
    finally:
        rt.replays.leave()
    r = client.post("/sandbox/plan-replay", json={"paid_from": 0, "as_of": 1})
    assert r.status_code == 200, r.text


def test_the_gate_refuses_at_once_and_tells_how_long_the_last_fold_took() -> None:
    gate = Gate(1)
    gate.last_s = 2.2
    gate.enter()
    with pytest.raises(Exception, match="FLEXCHAIN_MAX_CONCURRENT_REPLAYS=1") as refused:
        gate.enter()
    assert refused.value.retry_after == 3  # type: ignore[attr-defined]
    gate.leave()
    gate.enter()


# --- the OpenAPI documents the limits --------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_documents_its_limits(service: str) -> None:
    _, app = runtime(service)
    doc = app.openapi()
    commands = bodies = as_of = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            where = f"{method.upper()} {path}"
            if method in ("post", "put", "patch", "delete"):
                commands += 1
                assert "429" in codes, where
                assert "Retry-After" in op["responses"]["429"]["headers"], where
            if "requestBody" in op:
                bodies += 1
                assert "413" in codes, where
            if any(p["name"] == "as_of" for p in op.get("parameters", [])):
                as_of += 1
                assert "429" in codes, where
    assert commands >= 3 and bodies >= 3, (commands, bodies)
    assert as_of >= 1 or service == "order"


# --- metric labels: a closed set ------------------------------------------------------------------


def test_a_type_label_outside_the_known_types_is_other() -> None:
    m = ServiceMetrics("order", types=["PlaceOrder"])
    assert m.type_label("PlaceOrder") == "PlaceOrder"
    assert m.type_label("Evil" + "x" * 100) == "other"
