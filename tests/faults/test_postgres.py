"""The PostgreSQL fixture is a real server the fault tests can take away and give back."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from tests.faults.postgres import PostgresDatabase

pytestmark = pytest.mark.faults


def _engine(url: str) -> sa.Engine:
    # no pool: every statement below opens a connection of its own, as a process that starts does
    return sa.create_engine(url, poolclass=sa.NullPool, connect_args={"connect_timeout": 2})


def _rows(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT v FROM t ORDER BY v"))]


def test_sqlalchemy_psycopg_stop_start_keeps_data(postgres: PostgresDatabase) -> None:
    assert postgres.url.startswith("postgresql+psycopg://")
    engine = _engine(postgres.url)
    with engine.begin() as conn:
        version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        conn.execute(sa.text("CREATE TABLE t (v text PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO t VALUES ('before')"))
    assert version and int(version.split(".")[0]) >= 13
    assert _rows(engine) == ["before"]

    postgres.server.stop()
    with pytest.raises(OperationalError, match=r"(?i)connection refused"):
        _rows(engine)

    postgres.server.start()  # same port, same data dir
    assert _rows(engine) == ["before"]
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES ('after')"))
    assert _rows(engine) == ["after", "before"]


def test_paused_server_hangs_clients_until_resumed(postgres: PostgresDatabase) -> None:
    engine = _engine(postgres.url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (v text PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO t VALUES ('x')"))

    postgres.server.pause()  # SIGSTOP: TCP still accepts, nothing answers — a frozen database
    t0 = time.monotonic()
    with pytest.raises(OperationalError, match=r"(?i)timeout expired"):
        _rows(engine)
    assert time.monotonic() - t0 >= 1.5  # it hung until connect_timeout (2 s), it was not refused

    postgres.server.resume()
    assert _rows(engine) == ["x"]


def test_killed_server_recovers_committed_rows(postgres: PostgresDatabase) -> None:
    engine = _engine(postgres.url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (v text PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO t VALUES ('committed')"))
    postgres.server.kill()
    with pytest.raises(OperationalError):
        _rows(engine)
    postgres.server.start()  # crash recovery from the WAL
    assert _rows(engine) == ["committed"]
