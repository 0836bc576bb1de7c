"""A throwaway PostgreSQL server for the snapshot store, from Debian's ``postgresql`` package.

``scripts/setup-deploy-tools.sh`` installs the package when run as root (``make test`` calls it).
The server runs from the package's binaries (``/usr/lib/postgresql/<version>/bin``; Debian puts no
``initdb`` on PATH) in a fresh directory under ``/tmp``, TCP on 127.0.0.1 and a free port, trust
authentication, no fsync (a test server: a killed server loses no committed row — commits still
write the WAL to the OS before they return, only an OS crash would lose them; hence not
``synchronous_commit=off``, which loses the last commits on a kill -9, as a test here showed)::

    server = PostgresServer().start()        # initdb (once) + pg_ctl start, ~2 s
    url = server.create_database("t1")        # postgresql+psycopg://postgres@127.0.0.1:<port>/t1
    server.stop(); server.start()              # down and up again: same port, same data
    server.pause(); server.resume()            # SIGSTOP / SIGCONT every server process: connections hang
    server.kill()                              # SIGKILL every server process (crash; start() recovers)
    server.destroy()

``initdb`` refuses to run as root, so as root every server command runs as the ``postgres`` user
the package creates (``runuser -u postgres --``), which owns the directory; as any other user the
commands run as that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from flexchain.procs import free_port

SERVER_USER = "postgres"  # created by Debian's postgresql-common
SUPERUSER = "postgres"  # the database role initdb creates


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries here (not installed, or not root to run them as the postgres user)."""


def bindir() -> Path:
    """Directory of ``initdb``/``pg_ctl``: ``$FLEXCHAIN_PG_BINDIR``, Debian's newest version, or PATH."""
    if env := os.environ.get("FLEXCHAIN_PG_BINDIR"):
        return Path(env)
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0),
    )
    if versions:
        return versions[-1]
    if found := shutil.which("initdb"):
        return Path(found).resolve().parent
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb): install Debian's `postgresql` package "
        "(scripts/setup-deploy-tools.sh does when run as root) or set FLEXCHAIN_PG_BINDIR"
    )


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError as e:
        raise PostgresUnavailable(f"running as root, and there is no {SERVER_USER!r} user to run initdb as") from e
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root, and `runuser` (util-linux) is missing")
    return ["runuser", "-u", SERVER_USER, "--"]


class PostgresServer:
    """One throwaway PostgreSQL cluster (see the module doc)."""

    def __init__(self, port: int | None = None) -> None:
        self.bin = bindir()
        self.as_user = _run_as()
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.root = Path(tempfile.mkdtemp(prefix="flexchain-pg-", dir="/tmp"))
        if self.as_user:
            info = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, info.pw_uid, info.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.paused = False

    # ----------------------------------------------------------------------------------- lifecycle

    def _cmd(self, tool: str, *args: str, timeout: float = 120.0) -> str:
        cmd = [*self.as_user, str(self.bin / tool), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root)
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}\n{self.log_tail()}")
        return proc.stdout

    def start(self, timeout: float = 60.0) -> PostgresServer:
        """initdb on first use, then start and wait until it accepts connections (same port every time)."""
        if not (self.data / "PG_VERSION").is_file():
            self._cmd("initdb", "-D", str(self.data), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--locale=C.UTF-8", "-N")
        options = " ".join(
            (
                f"-p {self.port}",
                f"-k {self.root}",  # its unix socket next to the data, not in /var/run/postgresql
                "-c listen_addresses=127.0.0.1",
                "-c fsync=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            )
        )
        self._cmd("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", str(int(timeout)), "start")
        self.paused = False
        return self

    def stop(self, mode: str = "fast") -> None:
        """A clean stop (``pg_ctl stop -m fast``: open sessions are ended); clients then get refused."""
        if self.paused:
            self.resume()
        if self.pid() is not None:
            self._cmd("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def pid(self) -> int | None:
        """The postmaster's pid, when it runs."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def _processes(self) -> list[psutil.Process]:
        pid = self.pid()
        if pid is None:
            return []
        with contextlib.suppress(psutil.NoSuchProcess):
            main = psutil.Process(pid)
            return [main, *main.children(recursive=True)]
        return []

    def pause(self) -> None:
        """SIGSTOP the postmaster and every backend: the port still accepts TCP, nothing answers."""
        procs = self._processes()
        if not procs:
            raise RuntimeError("postgres is not running")
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        for p in self._processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """Crash it: SIGKILL the postmaster and every backend (``start()`` runs crash recovery)."""
        procs = self._processes()
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGCONT)  # a stopped process dies on SIGKILL too, but be explicit
                p.kill()
        psutil.wait_procs(procs, timeout=10)
        self.paused = False

    def ensure_running(self) -> None:
        """After a test that stopped, paused or killed it: the server is up again for the next one."""
        if self.paused:
            self.resume()
        if self.pid() is None:
            self.start()

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.paused:
                self.resume()
            if self.pid() is not None:
                self._cmd("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ----------------------------------------------------------------------------------- databases

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        """A SQLAlchemy URL (``driver="postgresql"`` for a libpq/psycopg conninfo URL)."""
        return f"{driver}://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name``; its SQLAlchemy URL."""
        import psycopg

        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"not a plain database name: {name!r}")
        with psycopg.connect(self.url(driver="postgresql"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # a checked identifier: no injection
        return self.url(name)

    def wait_accepting(self, timeout: float = 30.0) -> None:
        """Until a connection succeeds (after resume/start by other means)."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url(driver="postgresql"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


@dataclass(frozen=True)
class PostgresDatabase:
    """A database of one test on a :class:`PostgresServer` (the ``postgres`` fixture)."""

    server: PostgresServer
    name: str
    url: str  # SQLAlchemy: postgresql+psycopg://postgres@127.0.0.1:<port>/<name>
