"""The ops commands' parsing and errors, without a broker: times (ISO 8601 or ms, naive = UTC), entity
names mapped to the R-X-4 routes, service URLs, the commit metadata `lag` reads, and the clear
answer of each command when its service does not answer or the input names nothing known."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from flexchain.cli import app
from flexchain.commits import CommitInfo, commit_metadata, read_commit_metadata
from flexchain.ops import KINDS, _instance_of, entity_path, parse_time, service_url
from flexchain.procs import free_port

T1 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
RUNNER = CliRunner()


@pytest.mark.parametrize(
    "text",
    ["2026-01-01", "2026-01-01T00:00", "2026-01-01T00:00:00Z", "2026-01-01T08:00:00+08:00", "2025-12-31T19:00-05:00", str(T1)],
)
def test_a_time_is_iso_8601_or_ms_and_naive_means_utc(text: str) -> None:
    assert parse_time(text) == T1


def test_milliseconds_of_an_iso_time_are_kept() -> None:
    assert parse_time("2026-01-01T00:00:00.123Z") == T1 + 123


@pytest.mark.parametrize("text", ["yesterday", "1.5", "-1", "2026-13-01", "1969-12-31"])
def test_a_bad_time_is_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_time(text)


def test_entities_map_to_the_as_of_routes() -> None:
    assert entity_path("inventory", "sku/mask") == "/skus/mask"
    assert entity_path("inventory", "skus") == "/skus"
    assert entity_path("loyalty", "member/M 1/x") == "/members/M%201%2Fx"  # the id is one path segment
    assert entity_path("presale", "pledges/C1") == "/campaigns/C1/pledges"
    assert {svc for svc, _ in KINDS.values()} == {"order", "inventory", "presale", "commission", "loyalty"}


@pytest.mark.parametrize(
    ("service", "entity", "says"),
    [
        ("inventory", "widget/1", "unknown entity kind 'widget'; supported: order/<id> (order), sku/<id> (inventory)"),
        ("inventory", "member/M1", "member is an entity of loyalty, not of inventory"),
        ("order", "order", "give the order's id"),
        ("inventory", "skus/x", "skus takes no id"),
    ],
)
def test_an_entity_that_cannot_be_asked_is_refused_clearly(service: str, entity: str, says: str) -> None:
    with pytest.raises(typer.BadParameter, match=says.replace("(", r"\(").replace(")", r"\)")):
        entity_path(service, entity)


def test_service_urls_come_from_the_option_the_environment_or_the_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEXCHAIN_ORDER_URL", raising=False)
    assert service_url("order") == "http://127.0.0.1:8081"
    monkeypatch.setenv("FLEXCHAIN_ORDER_URL", "http://order.internal:8080/")
    assert service_url("order") == "http://order.internal:8080"
    assert service_url("order", "http://10.0.0.7:9000") == "http://10.0.0.7:9000"


def test_commit_metadata_round_trips_and_foreign_metadata_is_unknown() -> None:
    assert read_commit_metadata(commit_metadata("pod-2", 1_795_001_860_000)) == CommitInfo(1_795_001_860_000, "pod-2")
    assert len(commit_metadata("0")) < 64  # travels with every offset commit
    for foreign in ("", None, "hello", '{"t": "x"}', "[1]"):
        assert read_commit_metadata(foreign) is None


def test_the_instance_is_read_from_a_static_members_id() -> None:
    g = "t1-inventory"
    assert _instance_of(f"{g}-1-4b6c5e3a-1f2d-4c8e-9a7b-0c1d2e3f4a5b", g) == "1"
    assert _instance_of(f"{g}-pod-7-AbCdEfGhIjKlMn-pQrStuv", g) == "pod-7"  # Kafka's own base64 UUID (22 chars)
    assert _instance_of("aiokafka-0.14.0-4b6c5e3a-1f2d-4c8e-9a7b-0c1d2e3f4a5b", g) is None  # not a static member


def test_the_cli_names_what_it_cannot_do() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = RUNNER.invoke(app, ["rebuild", "inventory", "--url", url])
    assert result.exit_code == 2 and f"inventory does not answer at {url}" in result.output
    result = RUNNER.invoke(app, ["as-of", "loyalty", "member/M1", "2026-01-01", "--url", url])
    assert result.exit_code == 2 and "FLEXCHAIN_LOYALTY_URL" in result.output
    result = RUNNER.invoke(app, ["as-of", "loyalty", "points/M1", "2026-01-01", "--url", url])
    assert result.exit_code == 2 and "unknown entity kind 'points'" in result.output
    result = RUNNER.invoke(app, ["as-of", "warehouse", "sku/x", "2026-01-01"])
    assert result.exit_code == 2 and "unknown service 'warehouse'" in result.output
    shown = RUNNER.invoke(app, ["as-of", "--help"], env={"COLUMNS": "400"}).output
    assert "without an offset it is UTC" in shown and "member/<id> (loyalty)" in shown
