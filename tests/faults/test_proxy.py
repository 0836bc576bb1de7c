"""The TCP proxy cuts the network the way the fault tests need, and a Kafka client behind it
(a consumer in a group) loses its session when the cut outlasts the session timeout, then recovers."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from flexchain import kafka
from flexchain.tools import broker as kbroker
from tests.faults.proxy import Mode, TcpProxy
from tests.faults.support import LocalBroker, aeventually, timed
from tests.support import publish_raw, settings

pytestmark = pytest.mark.faults


# ------------------------------------------------------------------------------------ plain TCP


@contextlib.asynccontextmanager
async def _echo_server() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def _roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, timeout: float = 5.0) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), timeout)


async def test_blackhole_holds_bytes_silently_and_restore_delivers_them() -> None:
    async with _echo_server() as port:
        with TcpProxy(upstream=("127.0.0.1", port)) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            assert await _roundtrip(reader, writer, b"ping") == b"ping"

            proxy.cut("blackhole")
            writer.write(b"held")
            await writer.drain()
            # silence: no answer, and no FIN or RST either — the read just waits
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.read(1), 1.0)
            assert not reader.at_eof()
            # a new connection is accepted, then nothing flows through it
            r2, w2 = await asyncio.open_connection("127.0.0.1", proxy.port)
            w2.write(b"new")
            await w2.drain()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(r2.read(1), 0.5)

            proxy.restore()
            # the held bytes arrive, in order: the stream is intact, as TCP would have it after a heal
            assert await asyncio.wait_for(reader.readexactly(4), 5) == b"held"
            assert await asyncio.wait_for(r2.readexactly(3), 5) == b"new"
            assert await _roundtrip(reader, writer, b"again") == b"again"
            for w in (writer, w2):
                w.close()


async def test_reset_aborts_open_connections_and_new_ones_until_restored() -> None:
    async with _echo_server() as port:
        with TcpProxy(upstream=("127.0.0.1", port)) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            assert await _roundtrip(reader, writer, b"ping") == b"ping"

            proxy.cut("reset")
            with pytest.raises(ConnectionResetError):
                await _roundtrip(reader, writer, b"lost")
            with pytest.raises(ConnectionResetError):  # new connections: accepted and reset at once
                r2, w2 = await asyncio.open_connection("127.0.0.1", proxy.port)
                await _roundtrip(r2, w2, b"x")
            assert proxy.open_connections == 0

            proxy.restore()
            r3, w3 = await asyncio.open_connection("127.0.0.1", proxy.port)
            assert await _roundtrip(r3, w3, b"back") == b"back"
            w3.close()


# ------------------------------------------------------------------------- a consumer group behind it


async def _group(admin: AIOKafkaAdminClient, group: str) -> tuple[str, int]:
    """(state, number of members) of a consumer group, as its coordinator sees it."""
    [response] = await admin.describe_consumer_groups([group])
    [entry] = response.groups
    error_code, _, state, _, _, members = entry[:6]
    assert error_code == 0, f"DescribeGroups error {error_code}"
    return state, len(members)


@pytest.mark.broker
@pytest.mark.parametrize("mode", ["blackhole", "reset"])
async def test_group_member_behind_proxy_loses_session_and_rejoins(proxied_broker: LocalBroker, mode: Mode) -> None:
    b = proxied_broker
    assert b.proxy is not None
    topic, group = f"proxy-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    # the broker tells a client on the proxied listener the proxy's address, one on the direct listener its own
    assert kbroker.describe(b.proxied_bootstrap).brokers == {1: b.proxy.address}
    assert kbroker.describe(b.bootstrap).brokers == {1: b.bootstrap}
    await kafka.ensure_topics(settings(b.bootstrap, ""), [topic], partitions=2)
    session_ms = 6000  # the broker's minimum (group.min.session.timeout.ms)

    # the member under test: bootstrapped at the proxy, so every connection it opens goes through it
    consumer = kafka.consumer(
        settings(b.proxied_bootstrap, ""),
        topic,
        group_id=group,
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=1000,
        request_timeout_ms=15000,
    )
    seen: list[bytes] = []

    async def consume() -> None:
        async for record in consumer:
            seen.append(record.value)

    admin = AIOKafkaAdminClient(bootstrap_servers=b.bootstrap)  # the test's own view: direct
    await admin.start()
    await consumer.start()
    task = asyncio.create_task(consume())
    try:
        await publish_raw(b.bootstrap, topic, [(b"k", b"before")])
        await aeventually(lambda: b"before" in seen, 60, what="the proxied consumer reads 'before'")
        assert await _group(admin, group) == ("Stable", 1)
        assert b.proxy.open_connections >= 2  # bootstrap/metadata + coordinator + leader, all proxied

        b.proxy.cut(mode)
        t_cut = time.monotonic()

        async def evicted() -> bool:
            return await _group(admin, group) == ("Empty", 0)

        await aeventually(evicted, session_ms / 1000 + 30, 0.5, "the coordinator evicts the cut-off member")
        assert timed(f"proxy {mode}: member evicted after", time.monotonic() - t_cut) >= session_ms / 1000 - 1

        b.proxy.restore()
        t_restore = time.monotonic()
        await publish_raw(b.bootstrap, topic, [(b"k", b"after")])
        await aeventually(lambda: b"after" in seen, 90, what="the member rejoins and reads 'after'")

        async def stable() -> bool:
            return await _group(admin, group) == ("Stable", 1)

        await aeventually(stable, 30, 0.5, "the group is stable again with the member back")
        timed(f"proxy {mode}: member back after restore", time.monotonic() - t_restore)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await consumer.stop()
        await admin.close()
