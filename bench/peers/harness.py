"""What bench/run.py needs to run the peers: build or install each one, write its config, run it as
a child process, and count the answers of a kill -9 run.

Each peer runs in its own environment under ``.cache/bench-peers/`` (ignored by git):

- ``kstreams`` — the Maven project ``bench/peers/kstreams`` built with ``mvn -q -B package`` into
  ``.cache/bench-peers/kstreams/build`` (Maven's local repository ``.cache/bench-peers/m2``); rebuilt when
  a file of the project changes.
- ``quix``, ``faust`` — a virtualenv each (``.cache/bench-peers/<peer>-venv``) installed from
  ``bench/peers/requirements-<peer>.txt`` (every package pinned); reinstalled when that file changes.
  Not an extra of pyproject.toml: quixstreams 3.28 requires pydantic < 2.14 and pydantic-settings < 2.16,
  faust-streaming 0.15 click < 8.4 — all below flexchain's own pins, so neither can share its venv.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flexchain.messages import ID_NAMESPACE, Message
from flexchain.procs import ChildProcess
from flexchain.schemas import load_json, schema_path, self_contained
from flexchain.serde import Codec
from flexchain.settings import PROJECT_ROOT
from services.inventory.messages import ReceiveStock, RegisterSku, ReservationRejected, ReserveStock, StockReserved

HERE = Path(__file__).resolve().parent
CACHE = PROJECT_ROOT / ".cache" / "bench-peers"
BUILD_TIMEOUT = 1200.0  # seconds: a first build fetches Kafka Streams, RocksDB and Maven's plugins


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    commit_default_ms: int  # the peer's own default commit interval under exactly-once


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer("kstreams", "Kafka Streams 4.4.0 (exactly_once_v2)", 100),
        Peer("quix", "quixstreams 3.28.1 (exactly-once)", 5000),
        Peer("faust", "faust-streaming 0.15.3 (exactly_once)", 2800),
    )
}
JOB_TYPES: tuple[type[Message], ...] = (RegisterSku, ReceiveStock, ReserveStock, StockReserved, ReservationRejected)


class PeerUnavailable(Exception):
    """A peer that cannot be built or installed here; the reason goes to the table."""


def _digest(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p.relative_to(HERE)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)


def ensure_kstreams(cache: Path = CACHE) -> list[str]:
    """Build the Kafka Streams peer once per version of its sources; the command that runs it."""
    project = HERE / "kstreams"
    sources = [project / "pom.xml", *(p for p in (project / "src").rglob("*") if p.is_file())]
    home = cache / "kstreams"
    build = home / "build"
    marker = home / f".built-{_digest(sources)}"
    java, mvn = shutil.which("java"), shutil.which("mvn")
    if java is None:
        raise PeerUnavailable("java not found on PATH (Java 17+ is needed)")
    if not marker.is_file():
        if mvn is None:
            raise PeerUnavailable("mvn (Apache Maven) not found on PATH")
        for old in home.glob(".built-*"):
            old.unlink()
        shutil.rmtree(build, ignore_errors=True)
        home.mkdir(parents=True, exist_ok=True)
        cmd = [
            mvn, "-q", "-B", "-f", str(project / "pom.xml"), "package",
            f"-Dpeer.build.dir={build}", f"-Dmaven.repo.local={cache / 'm2'}",
        ]  # fmt: skip
        try:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise PeerUnavailable(f"maven build timed out after {BUILD_TIMEOUT:.0f}s") from exc
        (home / "build.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
        if proc.returncode != 0:
            raise PeerUnavailable(f"maven build failed (exit {proc.returncode}): {_tail(proc.stdout + proc.stderr, 3)}")
        if not (build / "inventory-peer.jar").is_file():
            raise PeerUnavailable(f"maven succeeded but {build / 'inventory-peer.jar'} is missing")
        marker.write_text(" ".join(cmd) + "\n", encoding="utf-8")
    classpath = f"{build / 'inventory-peer.jar'}{os.pathsep}{build / 'lib' / '*'}"
    return [java, "-Xms64m", "-Xmx512m", "-cp", classpath, "flexchain.bench.InventoryPeer"]


def ensure_venv(name: str, cache: Path = CACHE) -> list[str]:
    """Install the Python peer's virtualenv once per version of its requirements; the command that runs it."""
    reqs = HERE / f"requirements-{name}.txt"
    venv = cache / f"{name}-venv"
    python = venv / "bin" / "python"
    marker = venv / f".installed-{_digest([reqs])}"
    if not marker.is_file():
        venv.parent.mkdir(parents=True, exist_ok=True)
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(reqs)],
        ]
        for cmd in steps:
            try:
                proc = subprocess.run(
                    cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
                )
            except subprocess.TimeoutExpired as exc:
                raise PeerUnavailable(f"{' '.join(cmd[:3])} timed out after {BUILD_TIMEOUT:.0f}s") from exc
            if proc.returncode != 0:
                raise PeerUnavailable(
                    f"{' '.join(cmd[1:4])} failed (exit {proc.returncode}): {_tail(proc.stdout + proc.stderr, 3)}"
                )
        for old in venv.glob(".installed-*"):
            old.unlink()
        marker.write_text(reqs.read_text(encoding="utf-8"), encoding="utf-8")
    return [str(python), str(HERE / f"{name}_peer.py")]


def prepare(name: str, cache: Path = CACHE) -> list[str]:
    """The command that runs peer `name` (its config file is appended); PeerUnavailable when it cannot be had."""
    if name not in PEERS:
        raise PeerUnavailable(f"unknown peer {name!r} (known: {', '.join(PEERS)})")
    return ensure_kstreams(cache) if name == "kstreams" else ensure_venv(name, cache)


def job_schemas(codec: Codec) -> dict[str, dict[str, Any]]:
    """Type → {id, schema}: the schema ids flexchain writes and reads, and each schema self-contained
    (the envelope inlined), as the peers decode and encode with them."""
    return {
        cls.__name__: {"id": codec.schema_id(cls), "schema": self_contained(load_json(schema_path(cls)))} for cls in JOB_TYPES
    }


def write_config(
    path: Path,
    *,
    peer: str,
    codec: Codec,
    bootstrap: str,
    group: str,
    source: str,
    sink: str,
    state_dir: Path,
    partitions: int,
    replication_factor: int,
    commit_interval_ms: int | None,
) -> Path:
    """The one file a peer reads: where to run, and the job's schemas (see bench/peers/job.py)."""
    cfg = {
        "peer": peer,
        "bootstrap": bootstrap,
        "group": group,
        "input": source,
        "output": sink,
        "state_dir": str(state_dir),
        "partitions": partitions,
        "replication_factor": replication_factor,
        "commit_interval_ms": commit_interval_ms,
        "producer": f"{peer}-peer",
        "id_namespace": str(ID_NAMESPACE),
        "id_scope": "inventory",
        "schemas": job_schemas(codec),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg, indent=1), encoding="utf-8")
    return path


class PeerProcess(ChildProcess):
    """One peer as a child process in its own session, output to a log file (start, running, kill9,
    stop, tail — what the bench uses of a service process too)."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, instance: int = 0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONPATH", None)  # a peer runs in its own venv, on its own packages only
        super().__init__(name, argv, env, log_dir / f"peer-{name}-{instance}.log", cwd=PROJECT_ROOT)
        self.service = name


def count_answers(expected: Iterable[str], answered: Iterable[str]) -> dict[str, int]:
    """Commands (by order id) answered once, more than once, or never; answers to ids never sent.

    `answered_twice` counts the commands with two or more answers, `extra_answers` the answers beyond
    the first (so a command answered three times adds 1 and 2)."""
    want = set(expected)
    seen = Counter(answered)
    twice = [oid for oid, n in seen.items() if n > 1 and oid in want]
    return {
        "commands": len(want),
        "answers": sum(seen.values()),
        "answered_once": sum(1 for oid in want if seen.get(oid) == 1),
        "answered_twice": len(twice),
        "extra_answers": sum(seen[oid] - 1 for oid in twice),
        "never": sum(1 for oid in want if oid not in seen),
        "unexpected": sum(n for oid, n in seen.items() if oid not in want),
    }


def failure(exc: BaseException) -> str:
    """One line for the table: the exception's class, the first line of its message and, when the
    message goes on (a process's log tail), its last line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " … ".join(dict.fromkeys([lines[0], lines[-1]])) if lines else type(exc).__name__
    if not isinstance(exc, PeerUnavailable):
        text = f"{type(exc).__name__}: {text}"
    return text[:200]
