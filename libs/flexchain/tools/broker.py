"""Provision and run a real single-node Apache Kafka broker (KRaft combined mode) from the official jars.

Stdlib only. Typical use::

    from flexchain.tools import broker

    libs = broker.ensure_jars(Path(".cache/kafka"))            # maven, once per version
    cfg = broker.BrokerConfig(data_dir=Path(".cache/broker"))
    broker.format_storage(cfg, libs)                          # once per data dir
    broker.start(cfg, libs)                                   # detached JVM, pid file in data_dir
    broker.wait_ready(cfg.bootstrap, timeout=60, cfg=cfg)
    ...
    broker.stop(cfg)

Layout of ``data_dir``: ``server.properties``, ``log4j2.xml``, ``cluster.id``, ``broker.pid`` and
``kraft-logs/`` (the Kafka ``log.dirs``: topic data + ``__cluster_metadata``).  ``log_dir`` (default
``data_dir/logs``) receives ``kafka.out`` (JVM stdout/stderr) and ``server.log`` (log4j2).

A cluster of several nodes (production's topology: three combined broker+controller nodes, a
three-voter dynamic KRaft quorum, replication factor 3 and ``min.insync.replicas`` 2 for every topic
including ``__consumer_offsets`` and ``__transaction_state``)::

    cluster = broker.ClusterConfig(data_dir=Path(".cache/broker-cluster"), nodes=3, port=9092)
    broker.cluster_up(cluster, Path(".cache/kafka"))          # format (once), start, wait healthy
    broker.kill(cluster.node(2))                              # kill -9 one node
    broker.cluster_up(cluster, Path(".cache/kafka"))          # restart what is down, wait healthy
    broker.cluster_stop(cluster)

``data_dir`` then holds ``cluster.id``, ``controllers`` (the initial voters) and one ``node-<id>/``
per node, each a single node's layout as above, with its own ports and pid file.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import errno
import fcntl
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from xml.sax.saxutils import quoteattr

__all__ = [
    "CLUSTER_JVM_OPTS",
    "DEFAULT_JVM_OPTS",
    "KAFKA_VERSION",
    "BrokerConfig",
    "BrokerError",
    "ClusterConfig",
    "ClusterState",
    "JavaNotFoundError",
    "Listener",
    "PartitionState",
    "PortInUseError",
    "cluster_format",
    "cluster_start",
    "cluster_status",
    "cluster_stop",
    "cluster_up",
    "describe",
    "ensure_jars",
    "format_storage",
    "is_formatted",
    "kill",
    "server_properties",
    "start",
    "status",
    "stop",
    "up",
    "wait_healthy",
    "wait_ready",
    "write_config",
]

_T = TypeVar("_T")

#: Kafka release fetched by ``deploy/kafka/pom.xml`` (passed to maven as ``-Dkafka.version``).
KAFKA_VERSION = "4.4.0"

#: Heap + the GC flags ``kafka-run-class.sh``/``kafka-server-start.sh`` use by default.
DEFAULT_JVM_OPTS: tuple[str, ...] = (
    "-Xmx1g",
    "-Xms256m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)

#: One node of a local multi-node cluster: three JVMs share a developer machine or a 2-core CI runner.
CLUSTER_JVM_OPTS: tuple[str, ...] = ("-Xmx384m", "-Xms128m", *DEFAULT_JVM_OPTS[2:])

#: Flags for the short-lived StorageTool invocations (C1 only: starts noticeably faster).
_TOOL_JVM_OPTS: tuple[str, ...] = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")

_MIN_JAVA = 17  # Kafka 4.x brokers/tools require Java 17+
_REPO_ROOT = Path(__file__).resolve().parents[3]  # libs/flexchain/tools/broker.py
_DEFAULT_POM = _REPO_ROOT / "deploy" / "kafka" / "pom.xml"


class BrokerError(RuntimeError):
    """Anything that prevents provisioning/starting/stopping the local broker."""


class JavaNotFoundError(BrokerError):
    """No usable ``java`` (17+) found."""


class PortInUseError(BrokerError):
    """A port the broker needs is already bound by another process."""


# --------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Listener:
    """An extra PLAINTEXT listener: bound on ``host:port``, advertised to clients as ``advertised``.

    E.g. ``Listener("PROXIED", 19092, "127.0.0.1:29092")`` with a TCP proxy forwarding 29092 → 19092:
    clients bootstrapped at 29092 get 29092 back in metadata, so every connection goes through the proxy.
    """

    name: str
    port: int
    advertised: str
    host: str = "127.0.0.1"


@dataclass
class BrokerConfig:
    """Where and how a local KRaft broker runs (a single node, or one node of a :class:`ClusterConfig`)."""

    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    host: str = "127.0.0.1"
    #: Extra/overriding ``server.properties`` entries (applied last).
    overrides: dict[str, str] = field(default_factory=dict)
    #: Directory for ``kafka.out`` (stdout/stderr) and ``server.log``; default ``data_dir/logs``.
    log_dir: Path | None = None
    jvm_opts: tuple[str, ...] = DEFAULT_JVM_OPTS
    node_id: int = 1
    #: Extra ``StorageTool format`` arguments, e.g. ``--add-scram 'SCRAM-SHA-512=[name=u,password=p]'``
    #: (see :func:`flexchain.tools.pki.scram_format_args`).
    format_args: tuple[str, ...] = ()
    #: ``controller.quorum.bootstrap.servers`` of a multi-node quorum; None: this node's own controller.
    quorum_bootstrap: str | None = None
    #: ``--initial-controllers`` of a multi-node dynamic quorum (``id@host:port:directory-id,...``);
    #: None: formatted ``--standalone`` as a single-voter quorum.
    initial_controllers: str | None = None
    #: Replicas of every topic (``default.replication.factor`` and the internal topics).
    replication_factor: int = 1
    #: ``min.insync.replicas`` of every topic (and ``transaction.state.log.min.isr``).
    min_insync_replicas: int = 1
    #: More client listeners besides PLAINTEXT (which stays the inter-broker listener).
    extra_listeners: tuple[Listener, ...] = ()

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if self.log_dir is not None:
            self.log_dir = Path(self.log_dir).expanduser().resolve()

    @property
    def logs(self) -> Path:
        return self.log_dir if self.log_dir is not None else self.data_dir / "logs"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def kraft_dir(self) -> Path:
        return self.data_dir / "kraft-logs"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.data_dir / "log4j2.xml"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def cluster_id_file(self) -> Path:
        return self.data_dir / "cluster.id"

    @property
    def stdout_file(self) -> Path:
        return self.logs / "kafka.out"

    @property
    def server_log(self) -> Path:
        return self.logs / "server.log"


def server_properties(cfg: BrokerConfig) -> dict[str, str]:
    """The effective ``server.properties`` entries (defaults for a dev single node + ``cfg.overrides``)."""
    h, p, cp = cfg.host, cfg.port, cfg.controller_port
    rf, isr = str(cfg.replication_factor), str(cfg.min_insync_replicas)
    listeners = [f"PLAINTEXT://{h}:{p}", f"CONTROLLER://{h}:{cp}"]
    advertised = list(listeners)
    protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
    for extra in cfg.extra_listeners:
        listeners.append(f"{extra.name}://{extra.host}:{extra.port}")
        advertised.append(f"{extra.name}://{extra.advertised}")
        protocols.append(f"{extra.name}:PLAINTEXT")
    props: dict[str, str] = {
        # KRaft combined mode: a single-node *dynamic* quorum (formatted with --standalone), or one
        # voter of a multi-node dynamic quorum (formatted with --initial-controllers).
        "process.roles": "broker,controller",
        "node.id": str(cfg.node_id),
        "controller.quorum.bootstrap.servers": cfg.quorum_bootstrap or f"{h}:{cp}",
        "listeners": ",".join(listeners),
        "advertised.listeners": ",".join(advertised),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": ",".join(protocols),
        "log.dirs": str(cfg.kraft_dir),
        # One replica everywhere on a single node (internal topics must not ask for RF 3); a cluster
        # sets replication_factor / min_insync_replicas for every topic, internal ones included.
        "default.replication.factor": rf,
        "min.insync.replicas": isr,
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "transaction.state.log.num.partitions": "6",
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": isr,
        "num.partitions": "6",
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "3",
        "num.io.threads": "8",
        "num.recovery.threads.per.data.dir": "1",
        "log.retention.hours": "168",
        "log.segment.bytes": "1073741824",
    }
    props.update({str(k): str(v) for k, v in cfg.overrides.items()})
    return props


def _prop_escape(s: str, *, key: bool) -> str:
    out = s.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    if key:
        for ch in "=: #!":
            out = out.replace(ch, "\\" + ch)
    elif out.startswith(" "):
        out = "\\" + out
    return out


def _log4j2_xml(log_file: Path) -> str:
    pattern = "[%d] %p %m (%c)%n"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by flexchain.tools.broker: all broker logging to one rolling file.
     shutdownHook="disable": otherwise log4j2's own JVM shutdown hook stops logging while Kafka's
     shutdown hook is still running, truncating the shutdown log. -->
<Configuration status="WARN" shutdownHook="disable">
  <Appenders>
    <RollingFile name="file" fileName={quoteattr(str(log_file))}
                 filePattern={quoteattr(str(log_file) + ".%i")}>
      <PatternLayout pattern={quoteattr(pattern)}/>
      <Policies><SizeBasedTriggeringPolicy size="100 MB"/></Policies>
      <DefaultRolloverStrategy max="5"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="kafka.authorizer.logger" level="WARN"/>
    <Logger name="org.apache.kafka.raft" level="INFO"/>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
"""


def write_config(cfg: BrokerConfig) -> Path:
    """Write ``server.properties`` and the log4j2 config into ``cfg.data_dir``; return the properties path."""
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    cfg.logs.mkdir(parents=True, exist_ok=True)
    _atomic_write(cfg.log4j_file, _log4j2_xml(cfg.server_log))
    lines = ["# generated by flexchain.tools.broker -- edit BrokerConfig.overrides instead"]
    lines += [f"{_prop_escape(k, key=True)}={_prop_escape(v, key=False)}" for k, v in server_properties(cfg).items()]
    _atomic_write(cfg.properties_file, "\n".join(lines) + "\n")
    return cfg.properties_file


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------- jars


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def ensure_jars(cache_dir: Path, *, version: str = KAFKA_VERSION, pom: Path | None = None) -> Path:
    """Fetch the Kafka server jars + runtime deps with maven into ``<cache_dir>/kafka-<version>/libs``.

    Maven's local repository is ``<cache_dir>/m2`` (nothing touches ``~/.m2``).  Skipped when the
    per-version marker file exists.  Safe against concurrent callers (file lock).
    """
    cache_dir = Path(cache_dir).expanduser().resolve()
    home = cache_dir / f"kafka-{version}"
    libs = home / "libs"
    marker = home / ".complete"
    if marker.is_file() and libs.is_dir():
        return libs
    with _file_lock(cache_dir / ".ensure_jars.lock"):
        if marker.is_file() and libs.is_dir():
            return libs
        pom = (pom or _DEFAULT_POM).resolve()
        if not pom.is_file():
            raise BrokerError(f"kafka jar pom not found at {pom} (pass pom=...)")
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("'mvn' (Apache Maven) not found on PATH; it is needed once to fetch the Kafka jars")
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        cmd = [
            mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-Dkafka.version={version}",
            f"-Dmaven.repo.local={cache_dir / 'm2'}",
            f"-DoutputDirectory={staging}",
        ]  # fmt: skip
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerError(
                f"maven failed to fetch Kafka {version} jars (exit {proc.returncode}):\n"
                f"{' '.join(cmd)}\n{_tail(proc.stdout + proc.stderr)}"
            )
        if not (staging / f"kafka_2.13-{version}.jar").is_file():
            raise BrokerError(f"maven succeeded but kafka_2.13-{version}.jar is missing from {staging}")
        shutil.rmtree(libs, ignore_errors=True)
        os.replace(staging, libs)
        marker.write_text(f"{version}\n", encoding="utf-8")
    return libs


# ----------------------------------------------------------------------------------------------- java


_java_cache: dict[str, str] = {}


def _java() -> str:
    """Path of a Java 17+ executable (``$JAVA_HOME/bin/java`` first, then PATH)."""
    if "java" in _java_cache:
        return _java_cache["java"]
    candidates: list[str] = []
    if java_home := os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(java_home) / "bin" / "java"))
    if found := shutil.which("java"):
        candidates.append(found)
    for cand in candidates:
        if not os.access(cand, os.X_OK):
            continue
        try:
            out = subprocess.run([cand, "-version"], capture_output=True, text=True, timeout=30, check=False).stderr
        except OSError:
            continue
        m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
        if m is None:
            continue
        major = int(m.group(1))
        if major == 1 and m.group(2):  # "1.8.0_x"
            major = int(m.group(2))
        if major < _MIN_JAVA:
            raise JavaNotFoundError(f"Kafka {KAFKA_VERSION} needs Java {_MIN_JAVA}+, but {cand} is Java {major}")
        _java_cache["java"] = cand
        return cand
    raise JavaNotFoundError(
        f"no 'java' executable found (JAVA_HOME / PATH); Kafka {KAFKA_VERSION} needs a "
        f"Java {_MIN_JAVA}+ runtime, e.g. apt-get install openjdk-17-jre-headless"
    )


def _classpath(libs: Path) -> str:
    libs = Path(libs).resolve()
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise BrokerError(f"no kafka_2.13-*.jar in {libs}; call ensure_jars() first")
    return f"{libs}/*"


def _run_tool(cfg: BrokerConfig, libs: Path, *args: str, timeout: float = 120.0) -> str:
    cmd = [
        _java(), *_TOOL_JVM_OPTS, f"-Dlog4j2.configurationFile={cfg.log4j_file}",
        "-cp", _classpath(libs), "kafka.tools.StorageTool", *args,
    ]  # fmt: skip
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise BrokerError(f"StorageTool {args[0]} failed (exit {proc.returncode}):\n{_tail(proc.stdout + proc.stderr)}")
    return proc.stdout


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------------------------- format


def is_formatted(cfg: BrokerConfig) -> bool:
    return (cfg.kraft_dir / "meta.properties").is_file()


def format_storage(cfg: BrokerConfig, libs: Path) -> bool:
    """Format ``log.dirs`` for a single-node dynamic KRaft quorum, unless already formatted.

    Runs ``kafka.tools.StorageTool format -t <cluster-id> -c server.properties --standalone`` (or
    ``--initial-controllers ...`` for a node of a cluster, see :func:`cluster_format`).
    The cluster id comes from ``data_dir/cluster.id`` (generated with ``StorageTool random-uuid``
    on first use).  Returns True if it formatted now, False if the data dir was already formatted.
    """
    write_config(cfg)
    if is_formatted(cfg):
        return False
    if cfg.cluster_id_file.is_file():
        cluster_id = cfg.cluster_id_file.read_text(encoding="utf-8").strip()
    else:
        cluster_id = _run_tool(cfg, libs, "random-uuid").strip().splitlines()[-1].strip()
        if not re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id):
            raise BrokerError(f"StorageTool random-uuid returned an unexpected id: {cluster_id!r}")
        _atomic_write(cfg.cluster_id_file, cluster_id + "\n")
    quorum = ("--initial-controllers", cfg.initial_controllers) if cfg.initial_controllers else ("--standalone",)
    _run_tool(cfg, libs, "format", "-t", cluster_id, "-c", str(cfg.properties_file), *quorum, *cfg.format_args)
    if not is_formatted(cfg):
        raise BrokerError(f"StorageTool format reported success but {cfg.kraft_dir}/meta.properties is missing")
    return True


# -------------------------------------------------------------------------------------------- process


#: the brokers this process started, by pid: holding the Popen keeps subprocess' own clean-up from
#: reaping them behind our back, so how one ended (``returncode``) can be told in an error
_children: dict[int, subprocess.Popen[bytes]] = {}


def _exit_reason(cfg: BrokerConfig) -> str:
    """How the broker whose pid is in ``cfg``'s pid file ended, when this process started it."""
    try:
        pid = int(cfg.pid_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return "no pid file"
    proc = _children.get(pid)
    if proc is None or proc.poll() is None:
        try:  # what /proc says of it, since status() found it not (or no longer) running
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            tasks = len(os.listdir(f"/proc/{pid}/task"))
            cmdline = len(Path(f"/proc/{pid}/cmdline").read_bytes())
        except OSError as e:
            return f"pid {pid}: {e}"
        return f"pid {pid}: state {state}, {tasks} threads, command line {cmdline} bytes"
    rc = proc.returncode
    return f"pid {pid} killed by signal {-rc}" if rc < 0 else f"pid {pid} exited with status {rc}"


def _pid_alive(pid: int) -> bool:
    if (proc := _children.get(pid)) is not None:
        # started here: waitpid is the authority — it reports the exit only once every thread of the
        # JVM is gone (and with them its sockets); no /proc guesswork
        return proc.poll() is None
    try:  # reap it if it is a child of ours we do not hold, so a zombie doesn't count as running
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        # A zombie main thread is not yet a dead process: after SIGKILL the JVM's other threads take
        # a moment to exit, and until the last one has, its sockets are still bound (a restart on the
        # same ports would fail). Dead = zombie with no other thread left.
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X") and len(os.listdir(f"/proc/{pid}/task")) <= 1:
            return False
    return True


def _is_our_broker(cfg: BrokerConfig, pid: int) -> bool:
    if (proc := _children.get(pid)) is not None:  # started here: its command line is known
        return str(cfg.properties_file) in [str(a) for a in proc.args]  # type: ignore[union-attr]
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc: trust the pid file
    args = [a.decode(errors="replace") for a in cmdline]
    return "kafka.Kafka" in args and str(cfg.properties_file) in args


def status(cfg: BrokerConfig) -> int | None:
    """Pid of the broker running for ``cfg.data_dir`` (per its pid file), or None."""
    try:
        pid = int(cfg.pid_file.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None
    if _pid_alive(pid) and _is_our_broker(cfg, pid):
        return pid
    return None


def _check_port_free(host: str, port: int, what: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT leftovers
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"{what} port {host}:{port} is already in use (another Kafka? "
                    f"check with `ss -ltnp 'sport = :{port}'`); choose another BrokerConfig port"
                ) from e
            raise


def start(cfg: BrokerConfig, libs: Path) -> int:
    """Start ``java -cp '<libs>/*' kafka.Kafka server.properties`` detached; return its pid.

    Own session, stdin from /dev/null, stdout+stderr appended to ``logs/kafka.out``; log4j2 writes
    ``logs/server.log``.  Idempotent: returns the existing pid if this data dir's broker is running.
    Does not wait for readiness (see :func:`wait_ready`).
    """
    if (pid := status(cfg)) is not None:
        return pid
    java = _java()
    cp = _classpath(libs)
    if not is_formatted(cfg):
        raise BrokerError(f"{cfg.kraft_dir} is not formatted; call format_storage(cfg, libs) first")
    _check_port_free(cfg.host, cfg.port, "broker (PLAINTEXT)")
    _check_port_free(cfg.host, cfg.controller_port, "controller (CONTROLLER)")
    for extra in cfg.extra_listeners:
        _check_port_free(extra.host, extra.port, f"listener {extra.name}")
    write_config(cfg)
    cmd = [
        java, *cfg.jvm_opts,
        f"-Dlog4j2.configurationFile={cfg.log4j_file}",
        f"-Dkafka.logs.dir={cfg.logs}",
        "-cp", cp, "kafka.Kafka", str(cfg.properties_file),
    ]  # fmt: skip
    with open(cfg.stdout_file, "ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cfg.data_dir,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    _atomic_write(cfg.pid_file, f"{proc.pid}\n")
    return proc.pid


def stop(cfg: BrokerConfig, timeout: float = 30.0) -> bool:
    """SIGTERM the broker (controlled shutdown), SIGKILL after ``timeout``; remove the pid file.

    Returns True if a running broker was stopped, False if none was running.
    """
    pid = status(cfg)
    if pid is None:
        cfg.pid_file.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _wait_gone(pid, 10.0):
            raise BrokerError(f"broker pid {pid} survived SIGKILL")
    cfg.pid_file.unlink(missing_ok=True)
    return True


def kill(cfg: BrokerConfig) -> bool:
    """Crash the broker: SIGKILL, no controlled shutdown, nothing flushed by Kafka (``kill -9``).

    The data dir, ports and configuration stay as they are, so :func:`start` brings the same node
    back with its data (log recovery on start).  Returns True if a running broker was killed.
    """
    pid = status(cfg)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_gone(pid, 10.0):
        raise BrokerError(f"broker pid {pid} survived SIGKILL")
    cfg.pid_file.unlink(missing_ok=True)
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


# ------------------------------------------------------------------------------------------ readiness


def _split_bootstrap(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    first = first.split("://", 1)[-1]
    host, _, port = first.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


def _request(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    client_id = b"flexchain-broker-probe"
    header = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id  # request header v1
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    resp = _recv_exact(sock, size)
    (got_corr,) = struct.unpack_from(">i", resp, 0)
    if got_corr != corr:
        raise ConnectionError(f"correlation id mismatch ({got_corr} != {corr})")
    return resp[4:]  # response header v0 (non-flexible versions only)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def int16(self) -> int:
        (v,) = struct.unpack_from(">h", self.data, self.pos)
        self.pos += 2
        return int(v)

    def int8(self) -> int:
        (v,) = struct.unpack_from(">b", self.data, self.pos)
        self.pos += 1
        return int(v)

    def int32(self) -> int:
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return int(v)

    def int32s(self) -> tuple[int, ...]:
        return tuple(self.int32() for _ in range(max(0, self.int32())))

    def string(self) -> str | None:
        n = self.int16()
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s


def _api_ranges(sock: socket.socket) -> dict[int, tuple[int, int]]:
    r = _Reader(_request(sock, 18, 0, 1, b""))  # ApiVersions v0
    err = r.int16()
    if err != 0:
        raise ConnectionError(f"ApiVersions error code {err}")
    ranges = {}
    for _ in range(r.int32()):
        key, lo, hi = r.int16(), r.int16(), r.int16()
        ranges[key] = (lo, hi)
    return ranges


def _probe(host: str, port: int, timeout: float) -> int:
    """ApiVersions v0 + a non-flexible Metadata request; return the number of live brokers."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        lo, hi = _api_ranges(sock).get(3, (0, -1))
        version = min(hi, 8)
        if version < max(lo, 1):
            return 1  # only flexible Metadata versions left: ApiVersions answered, good enough
        body = struct.pack(">i", 0)  # topics: empty array -> no topic metadata
        if version >= 4:
            body += b"\x00"  # allow_auto_topic_creation
        if version >= 8:
            body += b"\x00\x00"  # include cluster/topic authorized operations
        r = _Reader(_request(sock, 3, version, 2, body))
        if version >= 3:
            r.int32()  # throttle_time_ms
        brokers = 0
        for _ in range(r.int32()):
            r.int32(), r.string(), r.int32(), r.string()  # node_id, host, port, rack
            brokers += 1
        return brokers


@dataclass(frozen=True)
class PartitionState:
    """One partition as the cluster's metadata describes it (node ids; leader -1: none)."""

    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline: tuple[int, ...] = ()

    @property
    def fully_replicated(self) -> bool:
        return self.leader >= 0 and set(self.isr) == set(self.replicas) and not self.offline


@dataclass(frozen=True)
class ClusterState:
    """What a Metadata request (all topics, internal ones included) answers."""

    brokers: dict[int, str]  # live, unfenced brokers: node id -> advertised host:port
    cluster_id: str | None
    partitions: dict[tuple[str, int], PartitionState]
    topic_errors: dict[str, int]  # topics whose metadata came back with an error code

    def leader(self, topic: str, partition: int) -> int:
        return self.partitions[(topic, partition)].leader

    def under_replicated(self) -> dict[tuple[str, int], PartitionState]:
        return {tp: ps for tp, ps in self.partitions.items() if not ps.fully_replicated}


def _describe_one(host: str, port: int, timeout: float) -> ClusterState:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        lo, hi = _api_ranges(sock).get(3, (0, -1))
        version = min(hi, 8)
        if version < max(lo, 4):
            raise BrokerError(f"broker offers Metadata v{lo}..v{hi}; this probe speaks the non-flexible v4..v8")
        body = struct.pack(">i", -1) + b"\x00"  # topics: null = all topics; allow_auto_topic_creation
        if version >= 8:
            body += b"\x00\x00"  # include cluster/topic authorized operations
        r = _Reader(_request(sock, 3, version, 2, body))
        r.int32()  # throttle_time_ms
        brokers = {}
        for _ in range(r.int32()):
            node, bhost, bport = r.int32(), r.string(), r.int32()
            r.string()  # rack
            brokers[node] = f"{bhost}:{bport}"
        cluster_id = r.string()
        r.int32()  # controller_id (in KRaft: some live broker, not the active controller)
        partitions: dict[tuple[str, int], PartitionState] = {}
        topic_errors: dict[str, int] = {}
        for _ in range(r.int32()):
            err, name = r.int16(), r.string() or ""
            r.int8()  # is_internal
            if err:
                topic_errors[name] = err
            for _ in range(r.int32()):
                r.int16()  # partition error code (e.g. LEADER_NOT_AVAILABLE: leader -1 says it too)
                index, leader = r.int32(), r.int32()
                if version >= 7:
                    r.int32()  # leader_epoch
                replicas, isr = r.int32s(), r.int32s()
                offline = r.int32s() if version >= 5 else ()
                partitions[(name, index)] = PartitionState(leader, replicas, isr, offline)
            if version >= 8:
                r.int32()  # topic_authorized_operations
        return ClusterState(brokers, cluster_id, partitions, topic_errors)


def describe(bootstrap: str, timeout: float = 5.0) -> ClusterState:
    """The cluster's metadata, asked of the first address in ``bootstrap`` (comma-separated) that answers."""
    last: BaseException | None = None
    for address in bootstrap.split(","):
        host, port = _split_bootstrap(address)
        try:
            return _describe_one(host, port, timeout)
        except (OSError, struct.error, UnicodeDecodeError) as e:
            last = e
    raise BrokerError(f"no broker of {bootstrap} answered a Metadata request (last: {last})")


def wait_ready(bootstrap: str, timeout: float = 60.0, *, cfg: BrokerConfig | None = None) -> float:
    """Poll ``bootstrap`` until the broker answers ApiVersions + Metadata (with >= 1 broker).

    With ``cfg``, also fails fast if the broker process died, and includes its log tail in errors.
    Returns the seconds waited.
    """
    host, port = _split_bootstrap(bootstrap)
    t0 = time.monotonic()
    deadline = t0 + timeout
    last: BaseException | str = "not tried"
    while True:
        try:
            if _probe(host, port, timeout=min(5.0, max(0.5, deadline - time.monotonic()))) >= 1:
                return time.monotonic() - t0
            last = "metadata response listed no brokers"
        except (OSError, struct.error, UnicodeDecodeError) as e:
            last = e
        if cfg is not None and status(cfg) is None:
            raise BrokerError(f"broker process for {cfg.data_dir} is not running ({_exit_reason(cfg)}).\n{_log_tail(cfg)}")
        if time.monotonic() >= deadline:
            extra = f"\n{_log_tail(cfg)}" if cfg is not None else ""
            raise BrokerError(f"Kafka at {bootstrap} not ready after {timeout:.0f}s (last: {last}){extra}")
        time.sleep(0.2)


def _log_tail(cfg: BrokerConfig, lines: int = 30) -> str:
    parts = []
    for f in (cfg.stdout_file, cfg.server_log):
        with contextlib.suppress(OSError):
            parts.append(f"--- {f} (tail)\n{_tail(f.read_text(errors='replace'), lines)}")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------- one-shot


def up(cfg: BrokerConfig, cache_dir: Path, *, timeout: float = 90.0) -> int:
    """ensure_jars + format_storage + start + wait_ready; return the broker pid."""
    libs = ensure_jars(cache_dir)
    format_storage(cfg, libs)
    pid = start(cfg, libs)
    wait_ready(cfg.bootstrap, timeout, cfg=cfg)
    return pid


def up_on_free_ports(
    make: Callable[[int], BrokerConfig],
    cache_dir: Path,
    *,
    first_port: Callable[[], int],
    attempts: int = 3,
    timeout: float = 90.0,
) -> BrokerConfig:
    """`up` a broker on free ports: `make(port)` gives its config for a port pair found by
    `first_port()`. A port found free can be taken by another process before the JVM binds it (test
    sessions and benchmarks run side by side): then the broker exits with "Address already in use",
    and it is tried again on other ports, its data dir emptied, up to `attempts` times."""
    for attempt in range(1, attempts + 1):
        cfg = make(first_port())
        try:
            up(cfg, cache_dir, timeout=timeout)
            return cfg
        except BrokerError as exc:
            if attempt == attempts or "Address already in use" not in str(exc):
                raise
            stop(cfg)
            shutil.rmtree(cfg.data_dir, ignore_errors=True)
    raise AssertionError("unreachable")


# -------------------------------------------------------------------------------------------- cluster


@dataclass
class ClusterConfig:
    """A local cluster of ``nodes`` combined broker+controller nodes (node ids 1..n).

    Why combined nodes with a quorum of ``nodes`` voters rather than brokers + one controller: losing
    any one node is then survivable, as in production (a single controller would make the test
    cluster die with a node production never loses alone), killing a node also moves the active
    controller when it was that node — a superset of the faults — and it costs ``nodes`` JVMs, not
    ``nodes + 1``.  Production also runs separate controller processes (Kafka calls combined mode
    unfit for critical deployments); for broker faults that difference does not matter.

    Node ``i`` listens on ``port + 2(i-1)`` (PLAINTEXT) and the port after it (CONTROLLER), unless
    ``ports`` lists ``(broker, controller)`` per node.
    """

    data_dir: Path
    nodes: int = 3
    port: int = 9092
    host: str = "127.0.0.1"
    ports: tuple[tuple[int, int], ...] = ()
    #: Extra ``server.properties`` entries for every node.
    overrides: dict[str, str] = field(default_factory=dict)
    jvm_opts: tuple[str, ...] = CLUSTER_JVM_OPTS
    #: Default: min(3, nodes); every topic, internal ones included.
    replication_factor: int | None = None
    #: Default: replication_factor - 1 (2 with three replicas: one node may be down, acks=all still works).
    min_insync_replicas: int | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if self.nodes < 1:
            raise ValueError("a cluster needs at least one node")
        if self.ports and len(self.ports) != self.nodes:
            raise ValueError(f"ports lists {len(self.ports)} nodes, the cluster has {self.nodes}")

    @property
    def node_ids(self) -> list[int]:
        return list(range(1, self.nodes + 1))

    @property
    def rf(self) -> int:
        return self.replication_factor if self.replication_factor is not None else min(3, self.nodes)

    @property
    def min_isr(self) -> int:
        return self.min_insync_replicas if self.min_insync_replicas is not None else max(1, self.rf - 1)

    def node_ports(self, node_id: int) -> tuple[int, int]:
        if node_id not in self.node_ids:
            raise KeyError(f"no node {node_id} in a cluster of {self.nodes}")
        if self.ports:
            return self.ports[node_id - 1]
        port = self.port + 2 * (node_id - 1)
        return port, port + 1

    @property
    def quorum_bootstrap(self) -> str:
        return ",".join(f"{self.host}:{self.node_ports(n)[1]}" for n in self.node_ids)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{self.node_ports(n)[0]}" for n in self.node_ids)

    @property
    def cluster_id_file(self) -> Path:
        return self.data_dir / "cluster.id"

    @property
    def controllers_file(self) -> Path:
        return self.data_dir / "controllers"

    def node(self, node_id: int) -> BrokerConfig:
        """The configuration of one node (its own data dir, ports, pid file and logs)."""
        port, controller_port = self.node_ports(node_id)
        return BrokerConfig(
            data_dir=self.data_dir / f"node-{node_id}",
            port=port,
            controller_port=controller_port,
            host=self.host,
            overrides=dict(self.overrides),
            jvm_opts=self.jvm_opts,
            node_id=node_id,
            quorum_bootstrap=self.quorum_bootstrap,
            replication_factor=self.rf,
            min_insync_replicas=self.min_isr,
        )

    def all_nodes(self) -> list[BrokerConfig]:
        return [self.node(n) for n in self.node_ids]


def _random_uuid() -> str:
    """A Kafka ``Uuid`` as its tools print it (16 random bytes, URL-safe base64, no padding)."""
    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka's Uuid.randomUuid() avoids these too (command-line flags)
            return text


def _initial_controllers(cluster: ClusterConfig) -> str:
    """``id@host:port:directory-id,...`` — generated once, then read back, so a wiped node is formatted alike."""
    if cluster.controllers_file.is_file():
        return cluster.controllers_file.read_text(encoding="utf-8").strip()
    voters = ",".join(f"{n}@{cluster.host}:{cluster.node_ports(n)[1]}:{_random_uuid()}" for n in cluster.node_ids)
    _atomic_write(cluster.controllers_file, voters + "\n")
    return voters


def _parallel(fn: Callable[[BrokerConfig], _T], items: Iterable[BrokerConfig]) -> list[_T]:
    work = list(items)
    if not work:
        return []
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        return list(pool.map(fn, work))


def cluster_format(cluster: ClusterConfig, libs: Path) -> list[int]:
    """Format every node not yet formatted (in parallel) for one cluster id and one dynamic quorum
    of all nodes as voters; return the node ids formatted now."""
    cluster.data_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(cluster.data_dir / ".format.lock"):
        if not cluster.cluster_id_file.is_file():
            _atomic_write(cluster.cluster_id_file, _random_uuid() + "\n")
        cluster_id = cluster.cluster_id_file.read_text(encoding="utf-8").strip()
        voters = _initial_controllers(cluster)
        todo = []
        for cfg in cluster.all_nodes():
            if not is_formatted(cfg):
                cfg.data_dir.mkdir(parents=True, exist_ok=True)
                _atomic_write(cfg.cluster_id_file, cluster_id + "\n")
                todo.append(dataclasses.replace(cfg, initial_controllers=voters))
        _parallel(lambda cfg: format_storage(cfg, libs), todo)
        return [cfg.node_id for cfg in todo]


def cluster_start(cluster: ClusterConfig, libs: Path, nodes: Iterable[int] | None = None) -> dict[int, int]:
    """Start the given nodes (default: all) that are not running; return node id -> pid. No wait."""
    return {n: start(cluster.node(n), libs) for n in (cluster.node_ids if nodes is None else nodes)}


def cluster_status(cluster: ClusterConfig) -> dict[int, int | None]:
    """Node id -> pid of its running JVM, or None."""
    return {n: status(cluster.node(n)) for n in cluster.node_ids}


def cluster_stop(cluster: ClusterConfig, timeout: float = 30.0) -> list[int]:
    """Stop every node at once (SIGTERM, SIGKILL after ``timeout``); return the ids that were running.

    All at once: stopped one after another, the last nodes would wait for a controller quorum that
    is already gone before they finish their controlled shutdown.
    """
    stopped = _parallel(lambda cfg: stop(cfg, timeout), cluster.all_nodes())
    return [n for n, was in zip(cluster.node_ids, stopped, strict=True) if was]


def _health(address: str, brokers: int, timeout: float) -> str | None:
    """None when the broker at ``address`` sees a healthy cluster, else why not."""
    host, port = _split_bootstrap(address)
    try:
        st = _describe_one(host, port, timeout)
    except (OSError, struct.error, UnicodeDecodeError, BrokerError) as e:
        return f"{address}: {e}"
    lagging = st.under_replicated()
    if len(st.brokers) < brokers:
        return f"{address} sees {len(st.brokers)} of {brokers} brokers ({sorted(st.brokers)})"
    if st.topic_errors:
        return f"{address} sees topics with errors: {st.topic_errors}"
    if lagging:
        shown = ", ".join(f"{t}-{p} isr={list(ps.isr)} of {list(ps.replicas)}" for (t, p), ps in list(lagging.items())[:5])
        return f"{address} sees {len(lagging)} partitions without a leader or a full ISR: {shown}"
    return None


def wait_healthy(bootstrap: str, brokers: int, timeout: float = 120.0, *, nodes: Iterable[BrokerConfig] = ()) -> float:
    """Wait until every broker in ``bootstrap`` (comma-separated) answers and sees ``brokers`` live
    brokers and every partition (internal topics included) with a leader and its full replica set in
    sync; return the seconds waited.

    Every address is asked, not just one: a node killed a moment ago is still listed by the others
    until its session times out, so only its own answer shows it is back.  With ``nodes``, fails fast
    when one of their processes is not running (with its log tail).
    """
    watched = list(nodes)
    addresses = [a.strip() for a in bootstrap.split(",") if a.strip()]
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        probe_timeout = min(5.0, max(0.5, deadline - time.monotonic()))
        why = next((w for a in addresses if (w := _health(a, brokers, probe_timeout)) is not None), None)
        if why is None:
            return time.monotonic() - t0
        for cfg in watched:
            if status(cfg) is None:
                raise BrokerError(f"node {cfg.node_id} ({cfg.data_dir}) is not running ({_exit_reason(cfg)}).\n{_log_tail(cfg)}")
        if time.monotonic() >= deadline:
            raise BrokerError(f"cluster at {bootstrap} not healthy after {timeout:.0f}s: {why}")
        time.sleep(0.25)


def cluster_up(cluster: ClusterConfig, cache_dir: Path, *, timeout: float = 120.0) -> dict[int, int]:
    """ensure_jars + format (once) + start every node not running + wait until healthy; node id -> pid.

    Also what brings a killed node back: the running nodes keep their pids.
    """
    libs = ensure_jars(cache_dir)
    cluster_format(cluster, libs)
    pids = cluster_start(cluster, libs)
    wait_healthy(cluster.bootstrap, cluster.nodes, timeout, nodes=cluster.all_nodes())
    return pids
