"""The simulator's HTTP client never loses a command quietly (issue 15): a command answered 429 (its
client's budget, `FLEXCHAIN_RATE_LIMIT`) was not published, so it is sent again after `Retry-After`
— with the same Idempotency-Key — and any answer that is neither done (200), published (202, when not
waiting) nor refused by the domain (409, counted) stops the run. Before, a 429 was returned as if it
were an answer: the medium scale's deliveries, sent 64 at a time, lost a few and two runs of one seed
differed. The services are stood in for by httpx's MockTransport: this is the client's behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from flexchain.tools.simulate import THROTTLED_RETRIES, Api, AsyncApi

URLS = {"order": "http://order.test"}


def served(answers: list[int]) -> tuple[Callable[[httpx.Request], httpx.Response], list[httpx.Request]]:
    """A server that answers with `answers` in turn (the last one for ever), logging each request."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = answers[min(len(seen), len(answers)) - 1]
        headers = {"Retry-After": "0"} if status == 429 else {}
        return httpx.Response(status, json={"status": status}, headers=headers)

    return handle, seen


def sync_api(answers: list[int]) -> tuple[Api, list[httpx.Request]]:
    handle, seen = served(answers)
    api = Api(URLS)
    api.client.close()
    api.client = httpx.Client(transport=httpx.MockTransport(handle))
    return api, seen


def async_send(answers: list[int], wait: float = 0) -> tuple[tuple[int, object], list[httpx.Request], Api]:
    handle, seen = served(answers)
    api = Api(URLS)

    async def go() -> tuple[int, object]:
        aapi = AsyncApi(api)
        await aapi.client.aclose()
        aapi.client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
        try:
            return await aapi.send("POST", "order", "/orders/o-1/delivery", None, wait=wait)
        finally:
            await aapi.close()

    return asyncio.run(go()), seen, api


def test_a_throttled_command_is_sent_again_until_it_is_published() -> None:
    api, seen = sync_api([429, 429, 202])
    assert api.send("POST", "order", "/orders/o-1/shipment", {"tracking": "SF-1"}, wait=0)[0] == 202
    assert len(seen) == 3


def test_the_concurrent_client_resends_a_throttled_command_with_the_same_idempotency_key() -> None:
    (status, _), seen, _ = async_send([429, 202])
    assert status == 202 and len(seen) == 2
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(keys) == 1 and keys.pop().startswith("sim-")


def test_a_command_still_throttled_after_every_retry_stops_the_run() -> None:
    api, seen = sync_api([429])
    with pytest.raises(RuntimeError, match="HTTP 429"):
        api.send("POST", "order", "/orders/o-1/delivery", None, wait=0)
    assert len(seen) == THROTTLED_RETRIES


@pytest.mark.parametrize("status", [400, 401, 404, 413, 422, 500, 503])
def test_any_other_refusal_stops_the_run(status: int) -> None:
    with pytest.raises(RuntimeError, match=f"HTTP {status}"):
        async_send([status])


def test_a_domain_refusal_is_an_answer_and_is_counted() -> None:
    (status, _), _, api = async_send([409])
    assert status == 409
    assert api.refused == {"order POST /orders/…/delivery": 1}


def test_published_but_not_answered_while_waiting_is_a_timeout() -> None:
    with pytest.raises(TimeoutError):
        async_send([202], wait=5)
