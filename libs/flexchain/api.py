"""Shared HTTP helpers: strict request models, command submission and its answer.

A command is validated (pydantic, strict: no coercion of "3" or 2.5 into an int), checked against
the read model with the domain's own `decide` (a refused transition answers 409 with the reason
and publishes nothing), then published. `?wait=` seconds (default 5) waits for the events it
caused: 200 with the events, 409 if the processor refused it, 202 if they did not arrive in time.
An `Idempotency-Key` header becomes the command id: sending the same command again changes nothing
(200, `status: duplicate`, once the first is applied); the same key with a different body is refused
(422) and changes nothing either. A key is remembered for `FLEXCHAIN_DEDUP_HORIZON_HOURS` of business
time after its command was applied (README "Exactly once, dedup, rebuild").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from fastapi import HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from flexchain.asof import AsOfTimeout, M, PastStates, Replayed
from flexchain.fold import UnreadableEvent
from flexchain.host import Runtime
from flexchain.messages import Message, to_record
from flexchain.step import command_digest

T = TypeVar("T")

AsOf = Annotated[
    int | None,
    Query(
        ge=0,
        description="R-X-4: the answer as of this business time (ms UTC), folded from the event log "
        "(the events up to the first one after it, per partition); omit for now",
    ),
]


async def past_states(rt: Runtime, at: int) -> PastStates:
    """The service's state as of business time `at` (R-X-4); 504 if the log cannot be read in time,
    503 if an event of it cannot be read at all (naming where and why)."""
    try:
        return await rt.as_of(at)
    except AsOfTimeout as exc:
        raise HTTPException(status_code=504, detail=str(exc)) from exc
    except UnreadableEvent as exc:
        raise HTTPException(status_code=503, detail=f"the event log cannot be read: {exc}") from exc


async def past_entity(rt: Runtime, at: int, key: str, pick: Callable[[Any], T | None], what: str) -> tuple[T, PastStates]:
    """`pick(state of key's partition)` as of business time `at` (R-X-4), 404 if it did not exist then."""
    past = await past_states(rt, at)
    found = pick(past.state_for(key))
    if found is None:
        raise HTTPException(status_code=404, detail=f"no {what} {key} as of business time {at}")
    return found, past


async def past_model(rt: Runtime, kind: str, at: int, new_model: Callable[[list[int]], M]) -> tuple[M, Replayed]:
    """A read model of the service's events as of business time `at` (R-X-4); 504 as above."""
    try:
        return await rt.model_as_of(kind, at, new_model)
    except AsOfTimeout as exc:
        raise HTTPException(status_code=504, detail=str(exc)) from exc
    except UnreadableEvent as exc:
        raise HTTPException(status_code=503, detail=f"the event log cannot be read: {exc}") from exc


# Bounds for every number a request may carry, so that any sum or product the services make of them
# still fits the Avro `long` of their events: a number past them is a 422 naming the field, never a 500.
MAX_TIME_MS = 253_402_300_799_999  # business time up to 9999-12-31T23:59:59.999Z
MAX_DURATION_MS = 100 * 366 * 86_400_000  # a delay or interval: a century at most
MAX_CENTS = 10**10  # one amount or price: 100 million yuan
MAX_UNITS = 10**6  # units or points in one line or command
MAX_COUNT = 10**9  # any other count (visitors, fans, thresholds, signal values)


def _examples(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    example = getattr(cls, "EXAMPLE", None)
    if example is not None:
        schema["examples"] = [example]


class StrictModel(BaseModel):
    """A request body: strict types, no unknown field, and an `EXAMPLE` (a valid body, shown in the
    OpenAPI document at `/docs`; tests check that every model has one and that it validates)."""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra=_examples)
    EXAMPLE: ClassVar[dict[str, Any] | None] = None


class CommandAnswer(BaseModel):
    """What every command route answers: 200 `applied` with the events it caused, 202 `accepted`
    (the events did not arrive within `?wait=`), 409 `refused` with the reason, or 200 `duplicate`
    (its Idempotency-Key was applied already)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "command_id": "3f6c1a52-8d2e-4c4b-9a57-0f1f4d1f9b10",
                    "command": "ReceiveStock",
                    "status": "applied",
                    "events": [{"type": "StockReceived", "sku": "mask-01", "warehouse": "hz-1", "qty": 100}],
                }
            ]
        }
    )

    command_id: str
    command: str
    status: Literal["applied", "accepted", "refused", "duplicate"]
    events: list[dict[str, Any]] | None = None
    reason: str | None = None
    applied_at: int | None = None


class Refusal(BaseModel):
    """A refusal: `detail` says why — a reason (409), or one message per field (422)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": {"command": "PayOrder", "reason": "order o-1 is cancelled"}}]}
    )

    detail: Any


COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": CommandAnswer, "description": "applied (with its events), or a duplicate of an applied command"},
    202: {"model": CommandAnswer, "description": "published; its events did not arrive within `?wait=` seconds"},
    409: {"model": Refusal, "description": "refused by the business rules, with the reason; nothing changed"},
    422: {"model": Refusal, "description": "the body or a parameter is not valid, or an Idempotency-Key was reused"},
}


def field_error(loc: list[str | int], msg: str) -> HTTPException:
    """A 422 in the same shape as pydantic's own errors: one message per field."""
    return HTTPException(status_code=422, detail=[{"loc": ["body", *loc], "msg": msg, "type": "value_error"}])


async def submit(
    rt: Runtime,
    cmd: Message,
    precheck: Callable[[Message, int], list[Message]] | None,
    is_refusal: Callable[[Message], bool],
    idempotency_key: str | None,
    wait: float,
) -> JSONResponse:
    now = rt.now()
    if idempotency_key:
        answered = _already_applied(rt, cmd, idempotency_key)
        if answered is not None:
            return answered
    if precheck is not None:
        async with rt.consistent():
            refused = [e for e in precheck(cmd, now) if is_refusal(e)]
        if refused:
            reason = getattr(refused[0], "reason", "refused")
            raise HTTPException(status_code=409, detail={"command": type(cmd).__name__, "reason": reason})
    command_id, events = await rt.send(cmd, command_id=idempotency_key, wait=wait)
    body: dict[str, Any] = {"command_id": command_id, "command": type(cmd).__name__}
    if events is None:
        body["status"] = "accepted"
        return JSONResponse(body, status_code=202)
    body["events"] = [{"type": e.envelope.event_type, **to_record(e.message)} for e in events]
    refused_events = [e for e in events if is_refusal(e.message)]
    if refused_events:
        body["status"] = "refused"
        body["reason"] = getattr(refused_events[0].message, "reason", "refused")
        return JSONResponse(body, status_code=409)
    body["status"] = "applied"
    return JSONResponse(body, status_code=200)


def _already_applied(rt: Runtime, cmd: Message, key: str) -> JSONResponse | None:
    """The answer to a command whose Idempotency-Key was applied already, if it was."""
    applied = rt.own.applied(cmd.key, key)
    if applied is None:
        return None
    name = type(cmd).__name__
    if applied.digest and applied.digest != command_digest(cmd):
        raise HTTPException(
            status_code=422,
            detail={
                "command": name,
                "reason": f"Idempotency-Key {key!r} was already used for a different request; nothing was done",
            },
        )
    body = {"command_id": key, "command": name, "status": "duplicate", "applied_at": applied.at}
    return JSONResponse(body, status_code=200)
