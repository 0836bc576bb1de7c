"""Provision and run a real single-node Apache Kafka broker (KRaft combined mode) from the official jars.

Stdlib only. Typical use::

    from flexchain import broker

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
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

__all__ = [
    "DEFAULT_JVM_OPTS",
    "KAFKA_VERSION",
    "BrokerConfig",
    "BrokerError",
    "JavaNotFoundError",
    "PortInUseError",
    "ensure_jars",
    "format_storage",
    "is_formatted",
    "server_properties",
    "start",
    "status",
    "stop",
    "up",
    "wait_ready",
    "write_config",
]

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

#: Flags for the short-lived StorageTool invocations (C1 only: starts noticeably faster).
_TOOL_JVM_OPTS: tuple[str, ...] = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")

_MIN_JAVA = 17  # Kafka 4.x brokers/tools require Java 17+
_REPO_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_POM = _REPO_ROOT / "deploy" / "kafka" / "pom.xml"


class BrokerError(RuntimeError):
    """Anything that prevents provisioning/starting/stopping the local broker."""


class JavaNotFoundError(BrokerError):
    """No usable ``java`` (17+) found."""


class PortInUseError(BrokerError):
    """A port the broker needs is already bound by another process."""


# --------------------------------------------------------------------------------------------- config


@dataclass
class BrokerConfig:
    """Where and how a local single-node KRaft broker runs."""

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
    #: (see :func:`flexchain.security.scram_format_args`).
    format_args: tuple[str, ...] = ()

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
    props: dict[str, str] = {
        # KRaft combined mode, single-node *dynamic* quorum (formatted with --standalone).
        "process.roles": "broker,controller",
        "node.id": str(cfg.node_id),
        "controller.quorum.bootstrap.servers": f"{h}:{cp}",
        "listeners": f"PLAINTEXT://{h}:{p},CONTROLLER://{h}:{cp}",
        "advertised.listeners": f"PLAINTEXT://{h}:{p},CONTROLLER://{h}:{cp}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(cfg.kraft_dir),
        # Single replica everywhere; internal topics must not ask for RF 3.
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "6",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
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
<!-- generated by flexchain.broker: all broker logging to one rolling file.
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
    lines = ["# generated by flexchain.broker -- edit BrokerConfig.overrides instead"]
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

    Runs ``kafka.tools.StorageTool format -t <cluster-id> -c server.properties --standalone``.
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
    _run_tool(cfg, libs, "format", "-t", cluster_id, "-c", str(cfg.properties_file), "--standalone", *cfg.format_args)
    if not is_formatted(cfg):
        raise BrokerError(f"StorageTool format reported success but {cfg.kraft_dir}/meta.properties is missing")
    return True


# -------------------------------------------------------------------------------------------- process


def _pid_alive(pid: int) -> bool:
    try:  # reap it if it is our (exited) child, so a zombie doesn't count as running
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
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    return True


def _is_our_broker(cfg: BrokerConfig, pid: int) -> bool:
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

    def int32(self) -> int:
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return int(v)

    def string(self) -> str | None:
        n = self.int16()
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s


def _probe(host: str, port: int, timeout: float) -> int:
    """ApiVersions v0 + a non-flexible Metadata request; return the number of live brokers."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        r = _Reader(_request(sock, 18, 0, 1, b""))  # ApiVersions v0
        err = r.int16()
        if err != 0:
            raise ConnectionError(f"ApiVersions error code {err}")
        ranges = {}
        for _ in range(r.int32()):
            key, lo, hi = r.int16(), r.int16(), r.int16()
            ranges[key] = (lo, hi)
        lo, hi = ranges.get(3, (0, -1))
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
            raise BrokerError(f"broker process for {cfg.data_dir} is not running.\n{_log_tail(cfg)}")
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
