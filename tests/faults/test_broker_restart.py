"""A broker of the test's own can be killed -9 and comes back with its data, on the same port."""

from __future__ import annotations

import socket
import time
import uuid

import psutil
import pytest

from flexchain import kafka
from tests.faults.support import LocalBroker, timed
from tests.support import read_all, settings

pytestmark = [pytest.mark.broker, pytest.mark.faults]


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = kafka.producer(settings(bootstrap, ""))
    await producer.start()
    try:
        for i, v in enumerate(values):
            await producer.send(topic, v, key=str(i % 7).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def test_kill9_and_restart_keeps_data_and_port(killable_broker: LocalBroker) -> None:
    b = killable_broker
    topic = f"kill9-{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(settings(b.bootstrap, ""), [topic], partitions=3)
    before = [f"v{i}".encode() for i in range(200)]
    await _produce(b.bootstrap, topic, before)

    pid, port, data_dir = b.pid, b.cfg.port, b.cfg.data_dir
    assert pid is not None
    b.kill9()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert b.pid is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

    t0 = time.monotonic()
    b.start()  # same data dir, same ports: log recovery after the crash
    timed("own broker restarted after kill -9", time.monotonic() - t0)
    assert b.pid not in (None, pid)
    assert (b.cfg.port, b.cfg.data_dir) == (port, data_dir)
    got = await read_all(b.bootstrap, topic, decode=False)
    assert sorted(r.value for r in got) == sorted(before)  # every acknowledged record survived

    await _produce(b.bootstrap, topic, [b"after"])  # and it takes writes again
    got = await read_all(b.bootstrap, topic, decode=False)
    assert len(got) == len(before) + 1 and b"after" in {r.value for r in got}
