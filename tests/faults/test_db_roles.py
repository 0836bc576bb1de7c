"""One PostgreSQL role per service, and one for the registry (issue 16 item 3), on a real server.

The deploy's own SQL (deploy/postgres/init/01-roles.sql, which compose's postgres image and the
Kubernetes Job postgres-roles run) is applied with psql, passwords from the environment as there.
Then each service writes and reads its snapshots through flexchain's store, built from Settings as
`flexchain serve` builds it, and is refused (permission denied) another service's table and any
object outside its schema; the registry's role reaches only its own database.

The test server trusts local connections (tests/faults/postgres.py): the passwords are set, as the
catalogue shows, but not what keeps one role out of another's schema — the grants are.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from flexchain.catalog import SERVICES
from flexchain.fold import PartitionState
from flexchain.settings import PROJECT_ROOT, Settings
from flexchain.snapshots import SnapshotStore, SnapshotStoreUnavailable
from services.loyalty.state import Loyalty
from tests.faults.postgres import PostgresDatabase

pytestmark = pytest.mark.faults

ROLES_SQL = PROJECT_ROOT / "deploy" / "postgres" / "init" / "01-roles.sql"
ROLES = [*SERVICES, "registry"]
TABLE = "flexchain_partition_snapshots"


def _psql(db: PostgresDatabase, passwords: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """psql -f the deploy's SQL as the compose image runs it: the admin connected to the snapshots'
    database, each password in the environment (<ROLE>_DB_PASSWORD)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DB_PASSWORD")}
    env.update({f"{role.upper()}_DB_PASSWORD": pw for role, pw in passwords.items()})
    cmd = [str(db.server.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(ROLES_SQL),
           db.server.url(db.name, driver="postgresql")]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)


def _url(db: PostgresDatabase, role: str, database: str | None = None) -> str:
    return f"postgresql+psycopg://{role}@{db.server.host}:{db.server.port}/{database or db.name}"


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.NullPool, connect_args={"connect_timeout": 5})


def _refused(engine: sa.Engine, statement: str) -> None:
    with pytest.raises((ProgrammingError, OperationalError), match="permission denied"), engine.begin() as conn:
        conn.execute(sa.text(statement))


def test_each_service_role_reaches_only_its_own_snapshots(postgres: PostgresDatabase) -> None:
    passwords = {role: f"{role}-{uuid.uuid4().hex[:10]}-it's@:/?#%" for role in ROLES}  # quotes, URL characters

    # a password missing from the environment stops it, naming the variable
    partial = _psql(postgres, {r: pw for r, pw in passwords.items() if r != "loyalty"})
    assert partial.returncode != 0 and "LOYALTY_DB_PASSWORD is not set" in partial.stderr, partial.stderr
    for _ in range(2):  # idempotent: run again (rotation) it succeeds again
        proc = _psql(postgres, passwords)
        assert proc.returncode == 0, proc.stderr
    assert not any(pw in proc.stdout + proc.stderr for pw in passwords.values())

    admin = _engine(postgres.url)
    with admin.connect() as conn:
        privileged = "rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls"
        query = f"SELECT rolname, {privileged}, rolpassword IS NOT NULL FROM pg_authid WHERE rolname = ANY(:roles)"
        rows = conn.execute(sa.text(query), {"roles": ROLES}).all()
    assert sorted(rows) == sorted((role, False, True) for role in ROLES)  # plain login roles with a password

    # each service: its snapshots through flexchain's store, built as `flexchain serve` builds it
    stores: dict[str, SnapshotStore] = {}
    for i, svc in enumerate(SERVICES):
        settings = Settings(flexchain_snapshot_url=_url(postgres, svc), flexchain_snapshot_password=passwords[svc])
        assert make_url(settings.snapshot_url(svc)).password == passwords[svc]  # put into the URL, URL-encoded
        store = stores[svc] = SnapshotStore(settings.snapshot_url(svc), key="k")
        assert store.save(svc, 0, "cluster", "loyalty-1", PartitionState(Loyalty(), next_offset=10 + i), Loyalty)
        loaded = store.load(svc, 0, "cluster", "loyalty-1", Loyalty)
        assert loaded is not None and loaded.next_offset == 10 + i
    with admin.connect() as conn:
        where = conn.execute(
            sa.text("SELECT table_schema, tableowner FROM information_schema.tables t "
                    "JOIN pg_tables p ON p.schemaname = t.table_schema AND p.tablename = t.table_name WHERE table_name = :t"),
            {"t": TABLE},
        ).all()  # fmt: skip
    assert sorted(where) == sorted((svc, svc) for svc in SERVICES)  # each in its own schema, owned by its role

    # ... and nothing of another service's, nor anything outside its own schema
    ring = list(SERVICES)
    for svc, other in zip(ring, ring[1:] + ring[:1], strict=True):
        engine = _engine(_url(postgres, svc))
        _refused(engine, f'SELECT * FROM "{other}".{TABLE}')
        _refused(engine, f'DELETE FROM "{other}".{TABLE}')
        _refused(engine, f'INSERT INTO "{other}".{TABLE} SELECT * FROM "{svc}".{TABLE}')
        _refused(engine, f'CREATE TABLE "{other}".planted (i int)')
        _refused(engine, "CREATE TABLE public.planted (i int)")
        _refused(engine, "CREATE SCHEMA planted")
        _refused(engine, "CREATE TEMP TABLE planted (i int)")
        _refused(_engine(_url(postgres, svc, "registry")), "SELECT 1")  # the registry's database
    # the store pointed at another service's schema cannot use it either: without USAGE on it, the
    # schema is not even on the role's search path, so there is nowhere to create the table
    other_schema = f"{_url(postgres, 'order')}?options=-csearch_path%3Dinventory"
    with pytest.raises(SnapshotStoreUnavailable, match="no schema has been selected to create in"):
        SnapshotStore(other_schema, key="k").load("inventory", 0, "cluster", "loyalty-1", Loyalty)

    # the registry: its own database, nothing of the snapshots'
    registry = _engine(_url(postgres, "registry", "registry"))
    with registry.begin() as conn:
        conn.execute(sa.text("CREATE TABLE artifacts (id int)"))  # Apicurio creates its tables there
        owner = conn.execute(sa.text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'registry'")).scalar()
    assert owner == "registry"
    _refused(_engine(_url(postgres, "registry")), f"SELECT * FROM inventory.{TABLE}")  # cannot even connect
    for store in stores.values():
        store.close()
