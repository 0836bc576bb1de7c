"""Security by configuration, on a real broker: SASL_SSL + SCRAM-SHA-512, one principal per service,
the ACLs of flexchain.security — generated from what each service's code uses (flexchain.access) and
checked against its real loops both ways. A wrong password and a principal without ACLs are refused
with a clear error; a service cannot take another's transactional id nor read its commands; all five
services and the notifier play the demo with exactly their ACLs, and the operator's commands
(`flexchain dlq`, `flexchain lag`) work with exactly the operator's."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from flexchain import access, dlq, kafka, security
from flexchain.catalog import SERVICES
from flexchain.host import service_topics
from flexchain.ops import loops_of
from flexchain.settings import Settings
from flexchain.tools.demo import scenario
from tests.deploy.conftest import SecureBroker
from tests.notify_support import Sink
from tests.support import Suite, eventually, get

pytestmark = pytest.mark.broker

ALL_TOPICS = ["clock.ticks", *(t for svc in SERVICES for t in kafka.topic_names(svc).values())]


def _loops(service: str, prefix: str) -> tuple[Any, Any, Any, Any]:
    """The service's definition and its loops as `serve` builds them, not started (no broker): the
    runtime (API, projection, own view), the processor and the router (None without routes)."""
    from flexchain.host import build_runtime
    from flexchain.runtime import Processor, Router

    svc, view = access.declared(service)
    s = Settings(flexchain_topic_prefix=prefix)
    rt = build_runtime(svc, view, s)
    proc = Processor(svc, s, rt.codec, rt.metrics, None, "cluster")  # type: ignore[arg-type]  # no snapshot store: not started
    router = Router(svc, s, rt.codec, rt.metrics) if svc.routes else None
    return svc, rt, proc, router


def _granted(bindings: list[security.Acl], resource: str, operation: str) -> set[str]:
    return {a.name for a in bindings if a.resource == resource and a.operation == operation}


@pytest.mark.parametrize("service", list(SERVICES))
def test_each_service_is_granted_exactly_what_its_loops_use(service: str) -> None:
    """The generated grants against the loops the service really builds, both ways: a topic, group or
    transactional id granted but unused fails, as does one used but not granted (issue 16)."""
    prefix = "p."  # the topic prefix applies to every name
    svc, rt, proc, router = _loops(service, prefix)
    loops = [proc, *([router] if router is not None else [])]
    got = security.acls(service, prefix)
    assert {a.principal for a in got} == {f"User:{service}"}
    assert {a.resource for a in got} == {"TOPIC", "GROUP", "TRANSACTIONAL_ID"}  # nothing on the cluster
    # READ: the loops' inputs, the own view / rebuild / as-of (own events), the projection (read model + clock.ticks)
    consumed = {t for loop in loops for t in loop.topics} | set(rt.projection.topics) | {rt.own.topic}
    assert _granted(got, "TOPIC", "READ") == consumed
    # WRITE: the API's and the router's commands, the processor's events, both loops' dead letters
    produced = {rt.settings.name(svc.topics["commands"]), proc._events_topic, proc.names["dlq"]}
    if router is not None:
        produced |= {router._commands_topic, router.names["dlq"]}
    assert _granted(got, "TOPIC", "WRITE") == produced
    # CREATE: its own topics only (`serve` ensures them); never another service's
    own = {prefix + t for t in kafka.topic_names(service).values()}
    assert _granted(got, "TOPIC", "CREATE") == own
    assert own <= {prefix + t for t in service_topics(svc, rt.view)}
    # groups: the processor's and the router's, READ only
    assert _granted(got, "GROUP", "READ") == {loop.group_id for loop in loops}
    assert {a.operation for a in got if a.resource == "GROUP"} == {"READ"}
    # transactional ids: every id a loop opens (one per input partition) falls under a granted prefix,
    # every granted prefix is used, and no other service's id falls under them
    prefixes = {a.name for a in got if a.resource == "TRANSACTIONAL_ID" and a.pattern == "PREFIXED" and a.operation == "WRITE"}
    assert len(prefixes) == len([a for a in got if a.resource == "TRANSACTIONAL_ID"])
    ids = {loop.transactional_id(TopicPartition(t, p)) for loop in loops for t in loop.topics for p in range(6)}
    assert all(any(i.startswith(x) for x in prefixes) for i in ids), (ids, prefixes)
    assert all(any(i.startswith(x) for i in ids) for x in prefixes), (ids, prefixes)
    for other in set(SERVICES) - {service}:
        _, _, oproc, orouter = _loops(other, prefix)
        theirs = {oproc.transactional_id(TopicPartition(t, 0)) for t in oproc.topics}
        theirs |= {orouter.transactional_id(TopicPartition(t, 0)) for t in orouter.topics} if orouter else set()
        assert not {i for i in theirs if any(i.startswith(x) for x in prefixes)}, f"{service} may use {other}'s ids"


def test_the_over_grants_issue_16_found_are_gone() -> None:
    """The hand list granted topics no code consumed: presale inventory.events, commission
    loyalty.events, loyalty inventory.events and commission.events."""
    reads = {svc: _granted(security.acls(svc), "TOPIC", "READ") for svc in SERVICES}
    assert "inventory.events" not in reads["presale"]
    assert "loyalty.events" not in reads["commission"]
    assert not {"inventory.events", "commission.events"} & reads["loyalty"]
    assert all("clock.ticks" in r for r in reads.values())  # every service folds business time (R-X-1)


def test_the_operator_gets_what_the_ops_commands_use_and_no_event_log() -> None:
    got = security.operator_acls()
    assert {a.principal for a in got} == {"User:operator"}
    written = _granted(got, "TOPIC", "WRITE")
    assert written == {f"{s}.{k}" for s in SERVICES for k in ("commands", "redrive", "dlq")} | {"notify.redrive", "notify.dlq"}
    assert not any(a.operation == "CREATE" for a in got)
    assert not {t for t in written if t.endswith(".events")}
    # `flexchain lag`: every loop's group described, its inputs read; `flexchain dlq`: every DLQ read
    loops = [loop for s in SERVICES for loop in loops_of(s, Settings())]
    assert _granted(got, "GROUP", "DESCRIBE") == {loop.group for loop in loops}
    assert _granted(got, "TOPIC", "READ") == {t for loop in loops for t in loop.topics} | {
        f"{s}.dlq" for s in [*SERVICES, "notify"]
    }
    assert _granted(got, "TRANSACTIONAL_ID", "WRITE") == {dlq.redrive_transactional_id(s) for s in [*SERVICES, "notify"]}


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


def test_a_service_cannot_take_another_services_transactional_id_nor_read_its_commands(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    """With exactly their generated ACLs: order opens its own processor's transactional id but is
    refused inventory's (TransactionalIdAuthorizationFailed: it cannot fence inventory's producers),
    cannot read nor write inventory.commands nor join inventory's group, and loyalty cannot read
    inventory.events (it never needed it). A service started with a wrong password exits naming the
    SASL failure."""
    admin = secure_broker.settings("admin")
    _run(kafka.ensure_topics(admin, ALL_TOPICS))
    _run(security.apply_acls(admin, [a for svc in ("order", "loyalty") for a in security.acls(svc)]))
    order = secure_broker.settings("order")

    async def transactional(transactional_id: str) -> None:
        p = kafka.producer(order, transactional_id=transactional_id)
        try:
            await p.start()
        finally:
            await p.stop()

    async def consume(s: Settings, topic: str, group: str) -> None:
        c = kafka.consumer(s, topic, group_id=group)
        try:
            await c.start()
        finally:
            await c.stop()

    _run(transactional("order-order.commands-0"))  # its own: allowed
    with pytest.raises(TransactionalIdAuthorizationFailed):
        _run(transactional("inventory-inventory.commands-0"))
    with pytest.raises(TransactionalIdAuthorizationFailed):
        _run(transactional("inventory-router-order.events-0"))
    with pytest.raises(TopicAuthorizationFailedError):
        _run(asyncio.wait_for(consume(order, "inventory.commands", "order"), 30))
    with pytest.raises(TopicAuthorizationFailedError):
        _run(asyncio.wait_for(consume(secure_broker.settings("loyalty"), "inventory.events", "loyalty"), 30))
    with pytest.raises(GroupAuthorizationFailedError):
        _run(asyncio.wait_for(consume(order, "order.events", "inventory"), 30))

    async def write_inventory_commands() -> None:
        p = kafka.producer(order)
        await p.start()
        try:
            await p.send_and_wait("inventory.commands", b"x", key=b"k")
        finally:
            await p.stop()

    with pytest.raises(TopicAuthorizationFailedError):
        _run(write_inventory_commands())

    suite = Suite(secure_broker.bootstrap, "", tmp_path / "data")
    try:
        bad = suite.start("order", instance="bad", wait=False, **secure_broker.env("order", "wrong-password"))
        assert bad.proc is not None
        assert bad.proc.wait(timeout=60) != 0
        log = bad.log_path.read_text()
        assert "SaslAuthenticationFailed" in log and "invalid credentials" in log, log[-2000:]
    finally:
        suite.stop_all()


def test_notify_runs_with_exactly_its_acls(secure_broker: SecureBroker, tmp_path: Path) -> None:
    """The notifier as principal `notify` over SASL_SSL with only security.edge_acls("notify"): it reads an
    event topic, delivers to a webhook, and writes notify.dlq when another webhook keeps failing."""
    import json

    from aiokafka import TopicPartition

    from flexchain.procs import ServiceProcess, free_port
    from tests.notify_support import Behaviour, Sink, event
    from tests.support import CODEC

    admin = secure_broker.settings("admin")
    _run(kafka.ensure_topics(admin, [*ALL_TOPICS, "notify.dlq", "notify.redrive"]))
    _run(security.apply_acls(admin, security.edge_acls("notify")))
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


# ------------------------------------------------------------------- the whole suite, least privilege

PREFIX = "acl."  # the suite's own topics, groups and transactional ids on the shared secure broker


@dataclass
class SecureSuite:
    urls: dict[str, str]
    sink: Sink
    env: dict[str, str]  # what every process shares (the topic prefix, ...), without credentials


@pytest.fixture(scope="module")
def secure_suite(secure_broker: SecureBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureSuite]:
    """Topics created by the admin (as an operator or Strimzi's KafkaTopic would), every principal's
    generated ACLs applied, then the five services and the notifier, each as its own principal."""
    admin = secure_broker.settings("admin", flexchain_topic_prefix=PREFIX)
    topics = [*ALL_TOPICS, "notify.dlq", "notify.redrive"]
    _run(kafka.ensure_topics(admin, [PREFIX + t for t in topics]))
    _run(security.apply_acls(admin, [a for bindings in security.all_acls(PREFIX).values() for a in bindings]))
    root = tmp_path_factory.mktemp("secure-suite")
    (root / "data").mkdir()
    env = {"FLEXCHAIN_TOPIC_PREFIX": PREFIX, "FLEXCHAIN_ORDER_MEMBER_DISCOUNTS": "true"}  # as the demo runs
    env["FLEXCHAIN_SESSION_TIMEOUT_MS"] = "30000"  # six processes and TLS on a busy CI box: no heartbeat-miss rebalances
    suite = Suite(secure_broker.bootstrap, PREFIX, root / "data", **env)
    with Sink() as sink:
        try:
            hooks = [{"name": "all", "url": sink.url("/all"), "secret": "s" * 16, "events": ["*"]}]
            procs = [suite.start(svc, wait=False, **secure_broker.env(svc)) for svc in SERVICES]
            procs.append(
                suite.start("notify", wait=False, FLEXCHAIN_NOTIFY_WEBHOOKS=json.dumps(hooks), **secure_broker.env("notify"))
            )
            for p in procs:
                p.wait_ready(120)
            yield SecureSuite({p.service: p.url for p in procs}, sink, env)
        finally:
            suite.stop_all()


def test_the_demo_runs_on_all_five_services_and_notify_with_exactly_their_acls(
    secure_broker: SecureBroker, secure_suite: SecureSuite
) -> None:
    """The demo flow (flexchain.tools.demo.scenario) on the SASL_SSL broker, every service as its own
    principal with only its generated ACLs, the clock ticks published as `clock`: the saga, the
    31-minute tick, the presale escrow, the return window and the refund cascade all go through,
    and the notifier delivers the low-stock alert of the rush to a webhook."""
    run = uuid.uuid4().hex[:6]
    urls = secure_suite.urls
    scenario(secure_broker.settings("clock", flexchain_topic_prefix=PREFIX), run, urls)

    # what each service could only compute from another's events (its READ grants were enough)
    def clearance() -> int:
        return sum(int(w.get("clearance", 0)) for w in get(f"{urls['inventory']}/skus/mask-{run}")["warehouses"].values())

    eventually(lambda: get(f"{urls['order']}/orders/E-{run}")["status"] == "cancelled", what="R-ORD-2: E unpaid at the tick")
    eventually(lambda: clearance() == 2, what="R-X-3: the defective masks back in inventory, grade B")
    eventually(lambda: get(f"{urls['presale']}/campaigns/notebook-{run}")["money"]["received"] > 0, what="R-PRE-5: escrowed")
    for who in (f"lin-{run}", f"ming-{run}"):
        clawed = lambda w=who: get(f"{urls['commission']}/distributors/{w}")["balances"]["clawed_back"] > 0  # noqa: E731
        eventually(clawed, what=f"R-X-3: commission clawed back from {who}")
    totals = lambda: get(f"{urls['loyalty']}/members/m-{run}")["totals"]  # noqa: E731
    eventually(
        lambda: totals()["released"] > 0 and totals()["reversed"] > 0, what="R-LOY-2 / R-X-3: points released, then taken back"
    )

    def alert_delivered() -> bool:
        return any(b'"LowStockAlertRaised"' in r.body and f"mask-{run}".encode() in r.body for r in secure_suite.sink.ok("/all"))

    eventually(alert_delivered, 60, what="the rush's low-stock alert delivered by notify")


def _flexchain(secure_broker: SecureBroker, suite: SecureSuite, *args: str) -> Any:
    """`flexchain <args> --json` as the operator would run it: credentials and prefix from the environment."""
    from typer.testing import CliRunner

    from flexchain.cli import app

    env = {**suite.env, **secure_broker.env(security.OPERATOR_PRINCIPAL)}
    env |= {f"FLEXCHAIN_{svc.upper()}_URL": url for svc, url in suite.urls.items()}
    result = CliRunner().invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return json.loads(result.stdout)


def test_the_operator_lists_redrives_and_reads_lag_with_exactly_its_acls(
    secure_broker: SecureBroker, secure_suite: SecureSuite
) -> None:
    """`flexchain dlq list|show|redrive` and `flexchain lag` as `User:operator`: a record order cannot
    decode is parked, listed, shown, planned (dry run) and redriven back to its command partition,
    where it is parked again (redrive count 1); lag reads every group. The operator may not write an
    event log nor take a service's transactional id."""
    admin = secure_broker.settings("admin")
    key = f"poison-{uuid.uuid4().hex[:6]}".encode()

    async def publish() -> None:
        p = kafka.producer(admin)
        await p.start()
        try:
            await p.send_and_wait(PREFIX + "order.commands", b"\x00not avro", key=key, headers=[("type", b"PlaceOrder")])
        finally:
            await p.stop()

    _run(publish())

    def parked(redrives: int) -> list[dict[str, Any]]:  # (only this test parks anything in the suite's order.dlq)
        letters = _flexchain(secure_broker, secure_suite, "dlq", "list", "order")
        return [d for d in letters if d["source"].startswith(f"{PREFIX}order.commands:") and d["redrives"] == redrives]

    first = eventually(lambda: parked(0), 60, interval=1, what="the poison record parked in order.dlq")[0]
    assert _flexchain(secure_broker, secure_suite, "dlq", "show", "order", first["id"])["key"] == key.decode()
    plan = _flexchain(secure_broker, secure_suite, "dlq", "redrive", "order", first["id"], "--dry-run")
    assert [(s["action"], s["to"].rsplit(":", 1)[0]) for s in plan] == [("redrive", f"{PREFIX}order.commands")]
    sent = _flexchain(secure_broker, secure_suite, "dlq", "redrive", "order", first["id"], "--yes")
    assert sent[0]["action"] == "redrive" and sent[0]["to"].startswith(f"{PREFIX}order.commands:")
    eventually(lambda: parked(1), 60, interval=1, what="the redriven record parked again, counted")

    rows = _flexchain(secure_broker, secure_suite, "lag")
    assert {(r["service"], r["loop"]) for r in rows} == {(s, loop) for s in SERVICES for loop in ("processor", "router")}
    assert any(r["group"] == f"{PREFIX}order" and r["committed"] for r in rows)  # the poison's offset, committed
    assert {r["http"] for r in rows} == {"ready"}

    operator = secure_broker.settings(security.OPERATOR_PRINCIPAL, flexchain_topic_prefix=PREFIX)

    async def write_events() -> None:
        p = kafka.producer(operator)
        await p.start()
        try:
            await p.send_and_wait(PREFIX + "order.events", b"x", key=b"k")
        finally:
            await p.stop()

    async def take_processor_id() -> None:
        p = kafka.producer(operator, transactional_id=f"{PREFIX}order-order.commands-0")
        try:
            await p.start()
        finally:
            await p.stop()

    with pytest.raises(TopicAuthorizationFailedError):
        _run(write_events())
    with pytest.raises(TransactionalIdAuthorizationFailed):
        _run(take_processor_id())
