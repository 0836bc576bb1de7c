"""One notification: its JSON body, its signature, and its delivery to one webhook with retries.

The body of an event is the same bytes on every attempt and every redelivery (keys sorted, no
delivery time in it), so a repeat after a crash carries the same ``Idempotency-Key`` (the event id)
and the same ``X-Flexchain-Signature``: a receiver drops it by the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential

from flexchain.subscribe import Event
from services.notify.catalog import NOTIFIABLE, texts

SIGNATURE_HEADER = "X-Flexchain-Signature"
USER_AGENT = "flexchain-notify/1"


def body(event: Event) -> bytes:
    """The JSON body: ``{id, type, service, rule, time, time_iso, text: {zh, en}, data, envelope}``."""
    doc: dict[str, Any] = {
        "id": event.id,
        "type": event.type,
        "service": event.service,
        "rule": NOTIFIABLE[event.type].rule,
        "time": event.time,
        "time_iso": datetime.fromtimestamp(event.time / 1000, UTC).isoformat().replace("+00:00", "Z"),
        "text": texts(event.type, event.body),
        "data": event.body,
        "envelope": event.envelope,
    }
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def signature(key: bytes, payload: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body with the webhook's secret>``."""
    return "sha256=" + hmac.new(key, payload, hashlib.sha256).hexdigest()


def verify(key: bytes, payload: bytes, header: str) -> bool:
    """What a receiver does: recompute the signature of the raw body and compare in constant time."""
    return hmac.compare_digest(signature(key, payload), header)


def headers(event: Event, key: bytes, payload: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": event.id,
        "X-Flexchain-Event-Type": event.type,
        SIGNATURE_HEADER: signature(key, payload),
    }


class Refused(Exception):
    """The webhook answered with a status that a retry cannot change (4xx other than 408/429)."""


class Failed(Exception):
    """One attempt failed in a way a retry may fix (5xx, 408, 429, a timeout, no connection)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    attempts: int
    reason: str = ""  # why it was not delivered: goes to the dead letter's flexchain.dlq.reason


@dataclass(frozen=True, slots=True)
class Backoff:
    max_attempts: int
    initial_s: float
    max_s: float


async def _attempt(client: httpx.AsyncClient, url: str, payload: bytes, hdrs: dict[str, str], timeout: float) -> None:
    try:
        resp = await client.post(url, content=payload, headers=hdrs, timeout=timeout)
    except httpx.HTTPError as exc:
        raise Failed(f"no answer: {exc.__class__.__name__}") from exc
    if resp.is_success:
        return
    status = resp.status_code
    if status >= 500 or status in (408, 429):
        raise Failed(f"answered {status}")
    raise Refused(f"refused with {status}")


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    payload: bytes,
    hdrs: dict[str, str],
    backoff: Backoff,
    timeout: float = 10.0,
    on_failure: Callable[[str], None] = lambda reason: None,
    on_retry: Callable[[], None] = lambda: None,
) -> Outcome:
    """POST until a 2xx, at most ``backoff.max_attempts`` times with exponential waits; never raises
    for the webhook's sake (only cancellation gets through)."""
    attempts = 0

    def before_sleep(state: RetryCallState) -> None:
        on_retry()

    retrying = AsyncRetrying(
        stop=stop_after_attempt(backoff.max_attempts),
        wait=wait_exponential(multiplier=backoff.initial_s, max=backoff.max_s),
        retry=retry_if_exception(lambda exc: isinstance(exc, Failed)),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                attempts += 1
                try:
                    await _attempt(client, url, payload, hdrs, timeout)
                except (Failed, Refused) as exc:
                    on_failure(str(exc))
                    raise
    except Refused as exc:
        return Outcome(False, attempts, f"webhook {exc}")
    except Failed as exc:
        return Outcome(False, attempts, f"webhook failed {attempts} times, last: {exc}")
    return Outcome(True, attempts)


def now() -> float:
    return time.time()
