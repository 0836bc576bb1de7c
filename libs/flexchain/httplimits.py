"""The HTTP limits of every service (README "Limits"): what one client can make a service do.

* **Body size** (`FLEXCHAIN_HTTP_MAX_BODY_BYTES`): a request whose `Content-Length` is over the limit
  is answered 413 before a byte of its body is read; a body without one (chunked) is counted as it
  streams in, and refused (413) as soon as it passes the limit — never read whole into memory first.
* **Commands per client** (`FLEXCHAIN_RATE_LIMIT`, e.g. `100/second;3000/minute`): every POST, PUT,
  PATCH and DELETE counts against its client's budget (the `limits` library, a sliding window per
  client kept in memory); past it, 429 with `Retry-After` — other clients are still served. The client
  is the peer address, or, from a proxy listed in `FLEXCHAIN_HTTP_TRUSTED_PROXIES`, the address it
  forwards in `X-Forwarded-For` (uvicorn's own proxy-headers middleware).
* **Concurrent replays** (`FLEXCHAIN_MAX_CONCURRENT_REPLAYS`): an as-of read or a plan replay folds a
  whole log; past the bound the next one is answered 429 with `Retry-After` at once, not queued.

Every refusal has the one refusal shape of the API: `{"detail": "<why>"}`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from flexchain.settings import Settings

#: The methods that change something: what the rate limit counts.
COMMAND_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"description": 'the request body is larger than `FLEXCHAIN_HTTP_MAX_BODY_BYTES` (README "Limits")'},
}
TOO_MANY_COMMANDS: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "this client sent more commands than `FLEXCHAIN_RATE_LIMIT` allows; `Retry-After` says "
        'in how many seconds to try again (README "Limits")',
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    },
}
TOO_MANY_REPLAYS: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "`FLEXCHAIN_MAX_CONCURRENT_REPLAYS` folds of the log are running already; `Retry-After` says "
        'in how many seconds to try again (README "Limits")',
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    },
}


def refusal(status: int, detail: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


# --- body size ----------------------------------------------------------------------------------


class _TooLarge(HTTPException):
    """Raised while the body is read: an `HTTPException`, because FastAPI turns any other exception
    raised there into a 400 ("error parsing the body"); FastAPI answers it as every refusal (413)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes (FLEXCHAIN_HTTP_MAX_BODY_BYTES)")


class BodyLimit:
    """ASGI middleware: 413 for a body over `max_bytes`, checked on `Content-Length` first, then
    counted chunk by chunk as the application reads it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await refusal(413, _TooLarge(self.max_bytes).detail)(scope, receive, send)
                return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge as exc:  # read by something else than a FastAPI route
            if started:  # (it answered before reading its body: nothing more to say)
                raise
            await refusal(413, exc.detail)(scope, receive, send)


# --- commands per client ------------------------------------------------------------------------


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimit:
    """ASGI middleware: every command (POST, PUT, PATCH, DELETE) is a hit on its client's budget; a
    client past any of the limits is answered 429 with `Retry-After`, and nothing else happens."""

    def __init__(self, app: ASGIApp, rates: list[RateLimitItem]) -> None:
        self.app = app
        self.rates = rates
        self.limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    def refused(self, client: str) -> tuple[RateLimitItem, int] | None:
        """The limit `client` is past with this hit, and the seconds until it may try again."""
        for rate in self.rates:
            if not self.limiter.hit(rate, client):
                reset = self.limiter.get_window_stats(rate, client).reset_time
                return rate, max(1, math.ceil(reset - time.time()))
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in COMMAND_METHODS:
            client = client_of(scope)
            over = self.refused(client)
            if over is not None:
                rate, retry = over
                detail = f"too many commands from {client}: more than {rate} (FLEXCHAIN_RATE_LIMIT); try again in {retry} s"
                await refusal(429, detail, retry)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def parse_rates(spec: str) -> list[RateLimitItem]:
    """`FLEXCHAIN_RATE_LIMIT`: `"100/second;3000/minute"`; `""` or `"0"` = no limit."""
    spec = spec.strip()
    if spec in ("", "0", "off"):
        return []
    return list(parse_many(spec))


# --- concurrent replays -------------------------------------------------------------------------


class Busy(Exception):
    """The bound of concurrent replays is reached: try again in `retry_after` seconds."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class Gate:
    """At most `bound` replays at once (running, or waiting for the one consumer that folds them);
    one more is refused at once with `Busy` — a queue would only grow under a flood. `Retry-After`
    is the last replay's duration, rounded up (at least 1 s)."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.inflight = 0
        self.last_s = 1.0

    def enter(self) -> None:
        if self.inflight >= self.bound:
            retry = max(1, math.ceil(self.last_s))
            raise Busy(
                f"{self.inflight} folds of the log are running already (FLEXCHAIN_MAX_CONCURRENT_REPLAYS={self.bound}); "
                f"try again in {retry} s",
                retry,
            )
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.enter()
        started = time.monotonic()
        try:
            yield
        finally:
            self.last_s = time.monotonic() - started
            self.leave()


# --- wiring -------------------------------------------------------------------------------------


def install(app: FastAPI, settings: Settings, guard: Callable[[], None] | None = None) -> None:
    """The limits on `app`, outermost first: the client's address (from a trusted proxy's
    `X-Forwarded-For`), its command budget, then `guard` (authentication: a flood is refused before a
    token is checked), the body size; and `Busy` answered 429."""

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        return refusal(429, exc.detail, exc.retry_after)

    app.add_middleware(BodyLimit, max_bytes=settings.flexchain_http_max_body_bytes)
    if guard is not None:
        guard()
    rates = parse_rates(settings.flexchain_rate_limit)
    if rates:
        app.add_middleware(RateLimit, rates=rates)
    trusted = [h.strip() for h in settings.flexchain_http_trusted_proxies.split(",") if h.strip()]
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)
