"""What the read routes answer, as models: documented in the OpenAPI document with an example each.

Every `GET` route of every service declares its answer as an `Answer` (`@app.get(..., **reads(M))`).
FastAPI then checks each real answer against its model before sending it: a field the route answers
but the model does not declare is an error (`extra="forbid"`), so the document cannot drift from the
code without a test noticing. Each model carries an `EXAMPLE`, a real answer taken from the demo;
`tests/contract/test_api_examples.py` checks that every read route has one and that it validates.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


def _examples(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    example = getattr(cls, "EXAMPLE", None)
    if example is not None:
        schema["examples"] = [example]


class Answer(BaseModel):
    """The body of a read route's answer: every field declared, and an `EXAMPLE` (a real answer)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_examples)
    EXAMPLE: ClassVar[Any] = None


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such entity (now, or as of the business time asked)"},
}


AS_OF_ERRORS: dict[int | str, dict[str, Any]] = {  # a read with `?as_of=` folds the log (R-X-4)
    503: {"description": "`?as_of=`: an event of the log cannot be read (the detail names where and why)"},
    504: {"description": "`?as_of=`: the log could not be folded up to the business time asked in time"},
}


def reads(model: Any, *, not_found: bool = False, also: dict[int | str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The decorator arguments of a read route answering `model` (an `Answer`, or a list or dict of
    them): the answer is documented and checked, and a field the code leaves out is not sent as null.
    `not_found`: the route answers 404 for an unknown entity; `also`: its other documented answers."""
    return {
        "response_model": model,
        "response_model_exclude_unset": True,
        "responses": {**(NOT_FOUND if not_found else {}), **(also or {})},
    }


class ReplaySummary(Answer):
    """R-X-4: what an `?as_of=` answer was folded from."""

    EXAMPLE = {"business_time": 1795001860000, "events_folded": 12, "partitions": {"0": {"events": 9, "next_offset": 10}}}

    business_time: int = Field(description="the business time asked for (ms UTC)")
    events_folded: int
    partitions: dict[str, dict[str, int]] = Field(description="per partition: events folded and the next offset read")


class Health(Answer):
    EXAMPLE = {"status": "up"}

    status: Literal["up"]


class StoppedPartition(Answer):
    """A partition stopped on an event of its own log that cannot be read (README "Exactly once")."""

    EXAMPLE = {"topic": "order.events", "partition": 3, "offset": 41, "reason": "unknown schema id 977"}

    topic: str
    partition: int
    offset: int
    reason: str


class Ready(Answer):
    """200 once every owned partition is rebuilt and the read model has caught up; 503 until then,
    naming the partitions stopped on an unreadable event if there are any."""

    EXAMPLE = {"ready": True}

    ready: bool
    stopped_partitions: list[StoppedPartition] | None = None


class PartitionDigest(Answer):
    EXAMPLE = {"next_offset": 10, "aggregates": 2, "digest": "c338c49f659aca064f582b420119d4d0fd3cc57d3ea2a02b535e0da083374dd6"}

    next_offset: int = Field(description="the next offset of the service's event topic to fold")
    aggregates: int
    digest: str = Field(description="SHA-256 of the partition's state: equal digests, equal states")


class Partitions(Answer):
    """The partitions this instance owns, with a digest of each one's state (rebuild == live)."""

    EXAMPLE = {
        "instance": "0",
        "ready": True,
        "partitions": {"0": PartitionDigest.EXAMPLE, "1": {"next_offset": 1, "aggregates": 1, "digest": "2ab6f970d8ec…"}},
    }

    instance: str
    ready: bool
    partitions: dict[str, PartitionDigest]


class Clock(Answer):
    """The business time this instance stamps on the commands it publishes (R-X-1)."""

    EXAMPLE = {"business_time": 1795691260000, "day": 20783, "date": "2026-11-26", "source": "log"}

    business_time: int = Field(description="ms since the epoch (UTC); with `FLEXCHAIN_CLOCK=log`, the last tick read")
    day: int = Field(description="the business day, in days since the epoch (UTC; loyalty's in the merchant's time zone)")
    date: str = Field(description="the same business day as an ISO 8601 date")
    source: Literal["wall", "log"] = Field(description="`FLEXCHAIN_CLOCK`: the wall clock, or `clock.ticks`")


METRICS_EXAMPLE = """# HELP flexchain_order_messages_in_total Records consumed and decoded
# TYPE flexchain_order_messages_in_total counter
flexchain_order_messages_in_total{topic="inventory.events",type="SkuRegistered"} 4.0
"""
