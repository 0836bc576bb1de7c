"""The benchmark peers' pieces that run without a broker: the Python job (bench/peers/job.py) writes
what flexchain's Codec reads, with flexchain's envelope, and the kill -9 check's answer counter."""

from __future__ import annotations

from typing import Any

from fastavro.schema import parse_schema

from bench.peers.harness import PeerUnavailable, count_answers, failure, job_schemas
from bench.peers.job import Job
from flexchain.messages import Envelope, Enveloped, Message, derived_id
from flexchain.schemas import canonical_id
from flexchain.serde import Codec
from services.inventory.messages import (
    MESSAGES,
    Allocation,
    ReceiveStock,
    RegisterSku,
    ReservationRejected,
    ReserveStock,
    StockReserved,
)

CODEC = Codec(list(MESSAGES))


def config() -> dict[str, Any]:
    return {
        "schemas": job_schemas(CODEC),
        "id_namespace": "8b5f4a52-6a43-4b0a-9a1e-5c1f3c3f0f11",
        "id_scope": "inventory",
        "producer": "test-peer",
    }


def wire(cmd: Message, cid: str) -> bytes:
    return CODEC.encode(
        Enveloped(
            envelope=Envelope(
                event_id=cid,
                event_type=type(cmd).__name__,
                aggregate_id=cmd.key,
                aggregate_version=0,
                business_time=1234,
                correlation_id=f"corr-{cid}",
                causation_id=None,
                producer="bench",
            ),
            message=cmd,
        )
    )


def run(job: Job, state: list[Any] | None, cmd: Message, cid: str) -> tuple[list[Any] | None, Enveloped | None]:
    got = job.command(wire(cmd, cid))
    assert got is not None
    new, out = job.apply(state, *got)
    return (new if new is not None else state), (CODEC.decode(out) if out is not None else None)


def test_schema_ids_are_flexchains_and_the_self_contained_schemas_give_them() -> None:
    for name, spec in job_schemas(CODEC).items():
        assert canonical_id(parse_schema(spec["schema"])) == spec["id"], name


def test_the_job_answers_as_the_service_with_flexchains_bytes() -> None:
    job = Job(config())
    state, out = run(job, None, RegisterSku(sku="sku-1", name="one"), "c1")
    assert out is None and state is not None
    state, out = run(job, state, ReceiveStock(sku="sku-1", warehouse="w1", qty=3), "c2")
    assert out is None and state is not None and state[1] == 3

    state, out = run(job, state, ReserveStock(sku="sku-1", order_id="o-1", qty=2), "c3")
    assert out is not None
    assert out.message == StockReserved(sku="sku-1", order_id="o-1", qty=2, allocations=[Allocation(warehouse="w1", qty=2)])
    env = out.envelope
    assert (env.event_id, env.causation_id, env.correlation_id) == (derived_id("c3", 0, "inventory"), "c3", "corr-c3")
    assert (env.event_type, env.aggregate_id, env.aggregate_version, env.business_time) == ("StockReserved", "sku-1", 1, 1234)
    assert job.type_header(CODEC.encode(out)) == b"StockReserved"

    state, out = run(job, state, ReserveStock(sku="sku-1", order_id="o-2", qty=2), "c4")
    assert out is not None and out.message == ReservationRejected(
        sku="sku-1", order_id="o-2", qty=2, available=1, reason="only 1 available, 2 requested"
    )
    assert out.envelope.aggregate_version == 2
    _, out = run(job, None, ReserveStock(sku="sku-9", order_id="o-3", qty=1), "c5")
    assert out is not None and out.message == ReservationRejected(
        sku="sku-9", order_id="o-3", qty=1, available=0, reason="unknown sku sku-9"
    )


def test_a_record_of_another_type_or_format_is_no_command() -> None:
    job = Job(config())
    assert job.command(None) is None
    assert job.command(b"\x01\x00\x00\x00\x01rest") is None
    answer = CODEC.encode(
        Enveloped(
            envelope=Envelope(
                event_id="e",
                event_type="StockReserved",
                aggregate_id="s",
                aggregate_version=1,
                business_time=0,
                correlation_id="c",
                causation_id=None,
                producer="x",
            ),
            message=StockReserved(sku="s", order_id="o", qty=1, allocations=[]),
        )
    )
    assert job.command(answer) is None


def test_count_answers() -> None:
    counts = count_answers(["a", "b", "c", "d"], ["a", "b", "b", "c", "c", "c", "z"])
    assert counts == {
        "commands": 4,
        "answers": 7,
        "answered_once": 1,
        "answered_twice": 2,
        "extra_answers": 3,
        "never": 1,
        "unexpected": 1,
    }


def test_failure_keeps_the_first_and_last_line_of_a_log_tail() -> None:
    exc = RuntimeError("service exited during the throughput run: starting\nTraceback (most recent call last):\nTypeError: bad\n")
    assert failure(exc) == "RuntimeError: service exited during the throughput run: starting … TypeError: bad"
    assert failure(PeerUnavailable("mvn (Apache Maven) not found on PATH")) == "mvn (Apache Maven) not found on PATH"


def test_progress_rate_of_commits_seconds_apart() -> None:
    from bench.run import progress_rate

    steady = progress_rate([(0.0, 0), (1.0, 100), (2.0, 300), (3.0, 500), (4.0, 600)], 600)
    assert steady["rate"] == 200 and not steady["coarse"]
    two_commits = progress_rate([(0.0, 0), (5.0, 300), (5.1, 300), (10.0, 600)], 600)  # commit to commit
    assert two_commits["rate"] == 60 and two_commits["coarse"]
    one_commit = progress_rate([(0.0, 0), (1.0, 0), (6.0, 600), (6.1, 600)], 600)  # nothing, then all at once
    assert one_commit["rate"] == 100 and one_commit["coarse"]  # from the first zero: start-up included
