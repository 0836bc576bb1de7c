"""Security by configuration, on a real broker: SASL_SSL + SCRAM-SHA-512, one principal per service,
the ACLs of flexchain.security. A wrong password and a principal without ACLs are refused with a
clear error; the services run with exactly their listed ACLs (a whole order saga goes through)."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from flexchain import kafka, security
from flexchain.catalog import SERVICES, available_services
from tests.deploy.conftest import SecureBroker
from tests.support import Suite, eventually, get, post

pytestmark = pytest.mark.broker

ALL_TOPICS = ["clock.ticks", *(t for svc in SERVICES for t in kafka.topic_names(svc).values())]


# ------------------------------------------------------------------------------------- the listing


@pytest.mark.parametrize("service", list(SERVICES))
def test_each_principal_gets_its_own_topics_groups_and_transactional_ids(service: str) -> None:
    got = {(a.resource, a.name, a.pattern, a.operation) for a in security.acls(service)}
    for topic in kafka.topic_names(service).values():
        assert {("TOPIC", topic, "LITERAL", op) for op in ("READ", "WRITE")} <= got
    assert ("GROUP", service, "LITERAL", "READ") in got
    assert ("GROUP", f"{service}-router", "LITERAL", "READ") in got
    assert ("TRANSACTIONAL_ID", f"{service}-", "PREFIXED", "WRITE") in got
    # it may write no other service's topic
    written = {a.name for a in security.acls(service) if a.resource == "TOPIC" and a.operation in ("WRITE", "CREATE")}
    assert written == set(kafka.topic_names(service).values())
    assert all(a.principal == f"User:{service}" for a in security.acls(service))


@pytest.mark.parametrize("service", available_services())
def test_declared_reads_cover_what_the_code_consumes(service: str) -> None:
    missing = security.code_reads(service) - set(security.READS[service])
    assert not missing, f"{service} consumes {sorted(missing)}: add them to flexchain.security.READS (and regenerate deploy/)"


# ------------------------------------------------------------------------------------- the broker


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_wrong_password_is_rejected_with_a_clear_error(secure_broker: SecureBroker, caplog: pytest.LogCaptureFixture) -> None:
    async def connect(password: str) -> None:
        client = kafka.admin(secure_broker.settings("order", password))
        try:
            await client.start()
            await client.list_topics()
        finally:
            await client.close()

    _run(connect(secure_broker.passwords["order"]))  # the right one works
    caplog.set_level(logging.ERROR, logger="aiokafka")
    with pytest.raises(KafkaConnectionError):
        _run(connect("not-the-password"))
    said = caplog.text
    assert "SaslAuthenticationFailed" in said and "invalid credentials with SASL mechanism SCRAM-SHA-512" in said, said


def _librdkafka_version() -> tuple[int, ...]:
    out = subprocess.run(["kcat", "-V"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0,)


def test_scram_with_kcat(secure_broker: SecureBroker, deploy_tools: dict[str, str]) -> None:
    """The same with a client no one here wrote (librdkafka's kcat): right password in, wrong one out.

    librdkafka before 2.6.1 builds a SCRAM client-final message that Kafka 4.x rejects (the client nonce
    appended twice; confluentinc/librdkafka#4895, edenhill/kcat#462), so Debian bookworm's kcat
    (librdkafka 2.0.2) cannot authenticate to any Kafka 4 broker, even with the right password."""
    if shutil.which("kcat") is None:
        pytest.skip("kcat not installed (scripts/setup-deploy-tools.sh installs it with apt-get as root)")
    if _librdkafka_version() < (2, 6, 1):
        pytest.skip(f"kcat links librdkafka {_librdkafka_version()}: SCRAM against Kafka 4 needs >= 2.6.1 (librdkafka#4895)")

    def kcat(password: str) -> subprocess.CompletedProcess[str]:
        args = ["kcat", "-b", secure_broker.bootstrap, "-L", "-m", "10", "-X", "security.protocol=SASL_SSL"]
        args += ["-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=order", "-X", f"sasl.password={password}"]
        args += ["-X", f"ssl.ca.location={secure_broker.ca}"]
        return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)

    ok = kcat(secure_broker.passwords["order"])
    assert ok.returncode == 0 and "1 brokers" in ok.stdout, ok.stdout + ok.stderr
    bad = kcat("not-the-password")
    assert bad.returncode != 0
    assert "Authentication failed during authentication due to invalid credentials" in bad.stderr, bad.stderr


def test_a_principal_without_acls_is_refused(secure_broker: SecureBroker) -> None:
    async def scenario() -> None:
        admin = secure_broker.settings("admin")
        await kafka.ensure_topics(admin, ALL_TOPICS)
        nobody = secure_broker.settings("nobody")
        # authenticated, but sees no topic and may write none
        client = kafka.admin(nobody)
        await client.start()
        try:
            assert await client.list_topics() == []
        finally:
            await client.close()
        # flexchain's idempotent producer: no producer id without a WRITE (or IDEMPOTENT_WRITE) grant
        p = kafka.producer(nobody)
        try:
            with pytest.raises(ClusterAuthorizationFailedError):
                await p.start()
        finally:
            await p.stop()
        # a plain producer gets as far as the topic
        p = kafka.producer(nobody, enable_idempotence=False, acks=1)
        await p.start()
        try:
            with pytest.raises(TopicAuthorizationFailedError):
                await p.send_and_wait("order.commands", b"x", key=b"k")
        finally:
            await p.stop()
        c = kafka.consumer(nobody, "order.events", group_id="order")
        try:
            with pytest.raises(TopicAuthorizationFailedError):
                await c.start()
        finally:
            await c.stop()
        t = kafka.producer(nobody, transactional_id="order-0")
        try:
            with pytest.raises(TransactionalIdAuthorizationFailed):
                await t.start()
        finally:
            await t.stop()
        # ensure_topics names the refusal
        with pytest.raises(RuntimeError, match="TopicAuthorizationFailedError"):
            await kafka.ensure_topics(nobody, ["order.events"])

    _run(scenario())


def test_services_run_with_exactly_their_acls(secure_broker: SecureBroker, tmp_path: Path) -> None:
    """Topics created by the operator (as Strimzi's KafkaTopic would), the listed ACLs applied, then
    inventory and order run as their own principals: a sku is registered, an order is confirmed
    through the saga. The order principal cannot write inventory's topics, and a service started
    with a wrong password exits naming the SASL failure."""
    admin = secure_broker.settings("admin")
    _run(kafka.ensure_topics(admin, ALL_TOPICS))
    _run(security.apply_acls(admin, [a for svc in ("order", "inventory") for a in security.acls(svc)]))

    async def order_cannot_write_inventory() -> None:
        p = kafka.producer(secure_broker.settings("order"))
        await p.start()
        try:
            with pytest.raises(TopicAuthorizationFailedError):
                await p.send_and_wait("inventory.commands", b"x", key=b"k")
        finally:
            await p.stop()

    async def order_cannot_use_inventorys_group() -> None:
        c = kafka.consumer(secure_broker.settings("order"), "order.events", group_id="inventory")
        try:
            with pytest.raises(GroupAuthorizationFailedError):
                await c.start()
        finally:
            await c.stop()

    _run(order_cannot_write_inventory())
    _run(asyncio.wait_for(order_cannot_use_inventorys_group(), 30))

    data = tmp_path / "data"
    data.mkdir()
    suite = Suite(secure_broker.bootstrap, "", data)
    try:
        inv = suite.start("inventory", **secure_broker.env("inventory"))
        order = suite.start("order", **secure_broker.env("order"))
        assert post(f"{inv.url}/skus", {"sku": "mask", "name": "Mask"}).status_code == 200
        assert post(f"{inv.url}/skus/mask/receipts", {"warehouse": "w1", "qty": 10}).status_code == 200
        oid = f"o-{uuid.uuid4().hex[:6]}"
        body = {"order_id": oid, "member_id": "m", "channel": "live", "lines": [{"sku": "mask", "qty": 2, "unit_price": 100}]}
        eventually(lambda: post(f"{order.url}/orders", body).status_code in (200, 202), what="order accepted")
        eventually(lambda: get(f"{order.url}/orders/{oid}")["status"] == "confirmed", timeout=60, what="order confirmed")
        eventually(lambda: get(f"{inv.url}/skus/mask")["reserved"] == 2, what="stock reserved")

        bad = suite.start("order", instance="bad", wait=False, **secure_broker.env("order", "wrong-password"))
        assert bad.proc is not None
        assert bad.proc.wait(timeout=60) != 0
        log = bad.log_path.read_text()
        assert "SaslAuthenticationFailed" in log and "invalid credentials" in log, log[-2000:]
    finally:
        suite.stop_all()


def test_notify_runs_with_exactly_its_acls(secure_broker: SecureBroker, tmp_path: Path) -> None:
    """The notifier as principal `notify` over SASL_SSL with only security.notify_acls(): it reads an
    event topic, delivers to a webhook, and writes notify.dlq when another webhook keeps failing."""
    import json

    from aiokafka import TopicPartition

    from flexchain.procs import ServiceProcess, free_port
    from tests.notify_support import Behaviour, Sink, event
    from tests.support import CODEC

    admin = secure_broker.settings("admin")
    _run(kafka.ensure_topics(admin, [*ALL_TOPICS, "notify.dlq", "notify.redrive"]))
    _run(security.apply_acls(admin, security.notify_acls()))
    with Sink() as sink:
        sink.behaviour["/down"] = Behaviour(always=503)
        hooks = [
            {"name": "ops", "url": sink.url("/ops"), "secret": "s" * 16, "events": ["LowStockAlertRaised"]},
            {"name": "down", "url": sink.url("/down"), "secret": "s" * 16, "events": ["LowStockAlertRaised"]},
        ]
        env = {
            **secure_broker.env("notify"),
            "FLEXCHAIN_DATA_DIR": str(tmp_path / "data"),
            "FLEXCHAIN_NOTIFY_WEBHOOKS": json.dumps(hooks),
            "FLEXCHAIN_NOTIFY_MAX_ATTEMPTS": "2",
            "FLEXCHAIN_NOTIFY_BACKOFF_INITIAL_S": "0.1",
        }
        notify = ServiceProcess("notify", env, tmp_path / "logs", free_port()).start()
        try:
            notify.wait_ready(90)
            alert = event("LowStockAlertRaised", 1)

            async def publish() -> None:
                p = kafka.producer(admin)
                await p.start()
                try:
                    await p.send_and_wait("inventory.events", CODEC.encode(alert), key=alert.message.key.encode())
                finally:
                    await p.stop()

            _run(publish())
            # (an earlier test of this broker may have left a real alert on inventory.events: also delivered)
            delivered = lambda: {r.headers["Idempotency-Key"] for r in sink.ok("/ops")}  # noqa: E731
            eventually(lambda: alert.envelope.event_id in delivered(), 30, what="delivered as principal notify")

            async def dead_letters() -> int:
                c = kafka.consumer(admin)
                await c.start()
                try:
                    tps = [TopicPartition("notify.dlq", p) for p in await kafka.partitions_of(c, "notify.dlq")]
                    return sum((await c.end_offsets(tps)).values())
                finally:
                    await c.stop()

            eventually(lambda: _run(dead_letters()) >= 1, 30, what="the failing webhook's dead letter in notify.dlq")
        finally:
            notify.stop()
