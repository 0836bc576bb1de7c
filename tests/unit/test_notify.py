"""notify without a broker: the catalogue and its texts, the webhook configuration, the signature, and
the subscriber codec (flexchain.subscribe) against the project's own codec."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
from pathlib import Path

import pytest

from flexchain.catalog import all_messages
from flexchain.schemas import SCHEMAS_DIR
from flexchain.subscribe import DecodeError, Event, EventDecoder, LocalSchemas, Undecodable, faust_codec
from services.notify import delivery
from services.notify.catalog import NOTIFIABLE, texts
from services.notify.config import ConfigError, NotifySettings, load, parse
from tests.notify_support import event
from tests.support import CODEC

DECODE = EventDecoder([LocalSchemas(SCHEMAS_DIR)])
SECRET = "s3cret-s3cret-s3cret"


def hook(**over: object) -> dict[str, object]:
    return {"name": "ops", "url": "https://hooks.example.com/flexchain", "secret": SECRET, "events": ["*"], **over}


# --- the catalogue ---------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", list(NOTIFIABLE))
def test_each_notifiable_type_is_an_event_of_its_service_and_reads_in_both_languages(type_name: str) -> None:
    notice = NOTIFIABLE[type_name]
    events = importlib.import_module(f"services.{notice.service}.messages").EVENTS
    assert type_name in {cls.__name__ for cls in events}
    decoded = DECODE(CODEC.encode(event(type_name, 3)))  # the body as a subscriber reads it off the wire
    text = texts(type_name, decoded.body)
    for lang in ("zh", "en"):
        assert text[lang] and "{" not in text[lang]
    assert text["zh"] != text["en"]


def test_a_body_is_the_same_bytes_every_time_and_its_signature_verifies() -> None:
    e = DECODE(CODEC.encode(event("LowStockAlertRaised", 1)))
    payload = delivery.body(e)
    assert payload == delivery.body(DECODE(CODEC.encode(event("LowStockAlertRaised", 1, e.id))))
    doc = json.loads(payload)
    assert doc["id"] == e.id and doc["type"] == "LowStockAlertRaised" and doc["rule"] == "R-INV-3"
    assert doc["data"] == e.body and doc["text"]["en"].startswith("Low stock: ")
    sig = delivery.headers(e, SECRET.encode(), payload)["X-Flexchain-Signature"]
    assert sig == "sha256=" + hmac.new(SECRET.encode(), payload, hashlib.sha256).hexdigest()
    assert delivery.verify(SECRET.encode(), payload, sig)
    assert not delivery.verify(SECRET.encode(), payload + b" ", sig)


# --- configuration -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["htps//hooks.example.com", "ftp://hooks.example.com/x", "hooks.example.com/x", "http://", ""])
def test_a_bad_webhook_url_is_refused_naming_the_webhook_and_the_url(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse([hook(), hook(name="crm", url=url)], "test")
    assert "webhook 'crm'.url" in str(err.value) and repr(url) in str(err.value)


@pytest.mark.parametrize(
    ("over", "says"),
    [
        ({"events": ["LowStockAlert"]}, "unknown event type(s) ['LowStockAlert']"),
        ({"events": []}, "events"),
        ({"secret": None}, "exactly one of secret or secret_env"),
        ({"secret_env": "X"}, "exactly one of secret or secret_env"),
        ({"secret": "short"}, "shorter than 16 bytes"),
        ({"secret": None, "secret_env": "NOTIFY_TEST_UNSET"}, "NOTIFY_TEST_UNSET (its secret) is not set"),
        ({"name": "has space"}, "webhook 'has space'.name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_every_configuration_mistake_is_named(over: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse([hook(**over)], "test", env={})
    assert says in str(err.value)


def test_webhooks_from_a_toml_file_with_the_secret_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "notify.toml"
    path.write_text(
        '[[webhooks]]\nname = "ops"\nurl = "https://hooks.example.com/a"\n'
        'secret_env = "OPS_KEY"\nevents = ["ChurnWarningRaised"]\n'
    )
    config = load(NotifySettings(config=path), env={"OPS_KEY": SECRET})
    (ops,) = config.webhooks
    assert ops.key({"OPS_KEY": SECRET}) == SECRET.encode()
    assert config.targets("ChurnWarningRaised") == [ops] and config.targets("LowStockAlertRaised") == []
    with pytest.raises(ConfigError, match="not both"):
        load(NotifySettings(config=path, webhooks="[]"))
    with pytest.raises(ConfigError, match="no webhooks"):
        load(NotifySettings())
    with pytest.raises(ConfigError, match="must be unique"):
        parse([hook(), hook()], "test")


# --- the subscriber codec ----------------------------------------------------------------------------


def test_the_subscriber_codec_finds_every_schema_the_services_write() -> None:
    local = LocalSchemas(SCHEMAS_DIR)
    missing = [cls.__name__ for cls in all_messages() if local.schema(CODEC.schema_id(cls)) is None]
    assert missing == []


def test_the_subscriber_codec_reads_events_and_names_what_it_cannot_read() -> None:
    written = event("ChurnWarningRaised", 2)
    e = DECODE(CODEC.encode(written))
    assert isinstance(e, Event)
    assert (e.type, e.id, e.time, e.service) == (
        "ChurnWarningRaised",
        written.envelope.event_id,
        written.envelope.business_time,
        "loyalty",
    )
    assert e.body["member_id"] == written.message.member_id and e.correlation_id == written.envelope.correlation_id
    for value, reason in [
        (b"\x00", "shorter than 5 bytes"),
        (b"\x01\x00\x00\x00\x01xx", "magic byte 1"),
        (b"\x00\x00\x00\x00\x07xx", "unknown schema id 7"),
        (CODEC.encode(written)[:-3], "body does not match"),
    ]:
        with pytest.raises(DecodeError, match=reason):
            DECODE(value)
    keep, strict = faust_codec(DECODE, errors="keep"), faust_codec(DECODE)
    assert keep.loads(CODEC.encode(written)) == e
    bad = keep.loads(b"\x00\x00\x00\x00\x07xx")
    assert isinstance(bad, Undecodable) and not bad.transient and "unknown schema id" in bad.reason
    with pytest.raises(DecodeError):
        strict.loads(b"junk")


# --- the step, with a fake dead-letter port and httpx's mock transport at the HTTP edge ---------------


def test_the_step_parks_a_refusal_at_once_an_unreadable_record_and_redelivers_to_one_webhook() -> None:
    import asyncio

    import httpx
    import structlog

    from services.notify.app import REDRIVE, Notifier, NotifyMetrics, Record

    calls: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append((request.url.path, request.headers["Idempotency-Key"]))
        return httpx.Response(410 if request.url.path == "/gone" else 200)

    config = parse([hook(name="ops", url="http://sink/ok"), hook(name="gone", url="http://sink/gone")], "test")
    parked: list[tuple[str, bytes | None, dict[str, bytes]]] = []
    back_in_stock = event("StockBecameAvailable", 1)
    value, eid = CODEC.encode(back_in_stock), back_in_stock.envelope.event_id

    async def park(topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        parked.append((topic, value, dict(headers)))

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            step = Notifier(
                config,
                {"ops": SECRET.encode(), "gone": SECRET.encode()},
                client,
                delivery.Backoff(5, 0.001, 0.001),
                NotifyMetrics(config.webhooks),
                park,
                "notify.dlq",
                REDRIVE,
                DECODE,
                structlog.get_logger(),
            )
            rec = Record("inventory.events", 2, 40, 0.0, b"k", value, {"type": b"StockBecameAvailable"})
            await step.handle(rec, DECODE.read(value))
            quiet = CODEC.encode(event("StockReceived", 2))
            await step.handle(Record("inventory.events", 2, 41, 0.0, b"k", quiet, {}), DECODE.read(quiet))
            await step.handle(Record("inventory.events", 3, 7, 0.0, None, b"junk", {}), DECODE.read(b"junk"))
            # what `flexchain dlq redrive notify` sends (flexchain.dlq.redrive_headers): the target, the count
            # and where the record was first read — not the dead letter's own source headers
            first = dict(parked[0][2])
            back = {
                "flexchain.target.webhook": first["flexchain.target.webhook"],
                "flexchain.redrive.count": b"1",
                "flexchain.redrive.from": b"notify.dlq:0:0",
                "flexchain.redrive.topic": first["flexchain.source.topic"],
                "flexchain.redrive.partition": first["flexchain.source.partition"],
                "flexchain.redrive.offset": first["flexchain.source.offset"],
            }
            await step.handle(Record(REDRIVE, 0, 0, 0.0, b"k", value, back), DECODE.read(value))

    asyncio.run(scenario())
    # ops and gone once each (a 410 is not retried), nothing for StockReceived, then the redrive: gone alone
    assert sorted(calls[:2]) == [("/gone", eid), ("/ok", eid)] and calls[2:] == [("/gone", eid)]
    (topic, parked_value, h), (_, junk, h2), (_, _, h3) = parked
    assert topic == "notify.dlq" and parked_value == value and h["flexchain.dlq.reason"] == b"webhook refused with 410"
    assert (h["flexchain.source.topic"], h["flexchain.source.partition"], h["flexchain.source.offset"]) == (
        b"inventory.events",
        b"2",
        b"40",
    )
    assert h["flexchain.target.webhook"] == b"gone" and h["type"] == b"StockBecameAvailable"
    assert junk == b"junk" and h2["flexchain.dlq.reason"].startswith(b"undecodable: not in the wire format")
    # parked again after the redrive: the original source, the redrive count carried
    assert h3["flexchain.source.topic"] == b"inventory.events" and h3["flexchain.source.offset"] == b"40"
    assert h3["flexchain.redrive.count"] == b"1"


# --- renamed types (issue 17: events named for what happened) ----------------------------------------


def test_the_former_names_of_notifiable_types_are_those_of_the_renamed_classes() -> None:
    from services.notify.catalog import FORMERLY

    renamed = {old: cls.__name__ for cls in all_messages() for old in cls.FORMERLY if cls.__name__ in NOTIFIABLE}
    assert renamed == FORMERLY and renamed


def test_a_webhook_listing_a_former_name_gets_the_renamed_type() -> None:
    config = parse([hook(events=["SupplierPenaltyDue", "LowStockAlertRaised"])], "test")  # formerly SupplierPenaltyDue
    assert config.webhooks[0].events == ["SupplierPenaltyIncurred", "LowStockAlertRaised"]
    assert [w.name for w in config.targets("SupplierPenaltyIncurred")] == ["ops"]


def test_a_record_written_under_a_former_name_is_delivered_as_the_renamed_type() -> None:
    import asyncio

    import httpx
    import structlog

    from services.notify.app import REDRIVE, Notifier, NotifyMetrics, Record

    bodies: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200)

    config = parse([hook(events=["StockBecameAvailable"])], "test")
    current = DECODE.read(CODEC.encode(event("StockBecameAvailable", 1)))
    assert isinstance(current, Event)
    old = Event(**{**{f: getattr(current, f) for f in Event.__slots__}, "type": "StockBackInStock"})  # formerly

    async def park(topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        raise AssertionError("nothing is parked")

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            step = Notifier(
                config,
                {"ops": SECRET.encode()},
                client,
                delivery.Backoff(5, 0.001, 0.001),
                NotifyMetrics(config.webhooks),
                park,
                "notify.dlq",
                REDRIVE,
                DECODE,
                structlog.get_logger(),
            )
            await step.handle(Record("inventory.events", 2, 40, 0.0, b"k", b"", {}), old)

    asyncio.run(scenario())
    assert [b["type"] for b in bodies] == ["StockBecameAvailable"]
