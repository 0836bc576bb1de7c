"""`flexchain` command line: broker, services, clock, schemas, demo, simulate."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flexchain import dlqcli, ops
from flexchain.output import JsonFlag, emit_one
from flexchain.schemas import SCHEMAS_DIR
from flexchain.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from flexchain.tools import broker as kbroker

app = typer.Typer(
    help="flexchain: event-sourced supply chain on Apache Kafka", no_args_is_help=True, pretty_exceptions_enable=False
)
broker_app = typer.Typer(
    help="The local Kafka (KRaft, official jars from Maven Central): one node, or a cluster with --brokers 3"
)
app.add_typer(broker_app, name="broker")
app.add_typer(dlqcli.app, name="dlq")
token_app = typer.Typer(help='API keys of the HTTP APIs (README "Security")', no_args_is_help=True)
app.add_typer(token_app, name="token")

CACHE = PROJECT_ROOT / ".cache"


def broker_config(data_dir: Path, port: int) -> kbroker.BrokerConfig:
    from flexchain.tools import broker as kbroker  # tooling: imported only by the broker commands

    return kbroker.BrokerConfig(data_dir=data_dir, port=port, controller_port=port + 1)


def cluster_config(data_dir: Path | None, port: int, brokers: int) -> kbroker.ClusterConfig:
    from flexchain.tools import broker as kbroker  # tooling: imported only by the broker commands

    return kbroker.ClusterConfig(data_dir=data_dir or CACHE / "broker-cluster", nodes=brokers, port=port)


ClusterDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="FLEXCHAIN_BROKER_DIR",
        help="broker data dir (default .cache/broker; with --brokers N > 1: .cache/broker-cluster)",
    ),
]
Port = Annotated[int, typer.Option(envvar="FLEXCHAIN_BROKER_PORT", help="broker port (controller: port+1)")]
ClusterPort = Annotated[
    int,
    typer.Option(
        "--port", envvar="FLEXCHAIN_BROKER_PORT", help="broker port (controller: port+1); node i of a cluster: port+2(i-1)"
    ),
]
Brokers = Annotated[
    int,
    typer.Option(
        "--brokers",
        min=1,
        envvar="FLEXCHAIN_BROKERS",
        help="nodes: 1 = one combined node; N > 1 = N combined broker+controller nodes, an N-voter quorum, "
        "replication factor min(3, N) and min.insync.replicas RF-1 for every topic",
    ),
]


@broker_app.command("up")
def broker_up(data_dir: ClusterDir = None, port: ClusterPort = 9092, brokers: Brokers = 1) -> None:
    """Fetch the jars (once), format the data dir (once) and start the broker; wait until it answers.

    With --brokers N: start every node that is not running (also a killed one) and wait until the
    cluster is healthy (every broker registered, every partition with its full ISR).
    """
    from flexchain.tools import broker as kbroker  # tooling: imported only by the broker commands

    t0 = time.monotonic()
    if brokers == 1:
        cfg = broker_config(data_dir or CACHE / "broker", port)
        pid = kbroker.up(cfg, CACHE / "kafka")
        typer.echo(f"kafka {kbroker.KAFKA_VERSION} up on {cfg.bootstrap} (pid {pid}, {time.monotonic() - t0:.1f}s)")
        return
    cluster = cluster_config(data_dir, port, brokers)
    pids = kbroker.cluster_up(cluster, CACHE / "kafka")
    nodes = ", ".join(f"node {n} pid {pid}" for n, pid in pids.items())
    typer.echo(
        f"kafka {kbroker.KAFKA_VERSION} cluster up on {cluster.bootstrap} ({nodes}; replication factor "
        f"{cluster.rf}, min.insync.replicas {cluster.min_isr}; {time.monotonic() - t0:.1f}s)"
    )


@broker_app.command("down")
def broker_down(data_dir: ClusterDir = None, port: ClusterPort = 9092, brokers: Brokers = 1) -> None:
    """Stop the broker (SIGTERM, then SIGKILL after 30 s); with --brokers N every node at once."""
    from flexchain.tools import broker as kbroker  # tooling: imported only by the broker commands

    if brokers == 1:
        stopped = kbroker.stop(broker_config(data_dir or CACHE / "broker", port))
        typer.echo("kafka stopped" if stopped else "kafka was not running")
        return
    ids = kbroker.cluster_stop(cluster_config(data_dir, port, brokers))
    typer.echo(f"kafka nodes stopped: {ids}" if ids else "no kafka node was running")


@broker_app.command("status")
def broker_status(data_dir: ClusterDir = None, port: ClusterPort = 9092, brokers: Brokers = 1) -> None:
    """Exit 0 when running; with --brokers N: each node's pid, and 0 only when every node runs."""
    from flexchain.tools import broker as kbroker  # tooling: imported only by the broker commands

    if brokers == 1:
        pid = kbroker.status(broker_config(data_dir or CACHE / "broker", port))
        typer.echo(f"running (pid {pid})" if pid else "not running")
        raise typer.Exit(0 if pid else 1)
    cluster = cluster_config(data_dir, port, brokers)
    pids = kbroker.cluster_status(cluster)
    for n, pid in pids.items():
        typer.echo(
            f"node {n} on {cluster.host}:{cluster.node_ports(n)[0]}: " + (f"running (pid {pid})" if pid else "not running")
        )
    if any(pids.values()):
        try:
            lagging = kbroker.describe(cluster.bootstrap).under_replicated()
            typer.echo(f"partitions without a leader or a full ISR: {len(lagging)}")
        except kbroker.BrokerError as e:
            typer.echo(f"metadata: {e}")
    raise typer.Exit(0 if all(pids.values()) else 1)


@broker_app.command("kill")
def broker_kill(
    node: Annotated[int, typer.Option(help="node id (1..N) to kill")] = 1,
    data_dir: ClusterDir = None,
    port: ClusterPort = 9092,
    brokers: Brokers = 1,
) -> None:
    """kill -9 a node (a fault drill); `broker up` with the same options starts it again with its data."""
    from flexchain.tools import broker as kbroker  # tooling: imported only by the broker commands

    cfg = (
        broker_config(data_dir or CACHE / "broker", port) if brokers == 1 else cluster_config(data_dir, port, brokers).node(node)
    )
    typer.echo(f"node {node} killed" if kbroker.kill(cfg) else f"node {node} was not running")


def _edges() -> list[str]:
    from flexchain.catalog import EDGES

    return list(EDGES)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help=" | ".join(["a service of the catalogue (order, inventory, …)", *_edges()]))],
) -> None:
    """Run one instance of a service (settings from the environment, see README); an edge service
    (`flexchain.catalog.EDGES`: the optional notifier on faust-streaming, the `notify` extra) the same way."""
    from flexchain.catalog import EDGES, PACKAGES

    services = [*PACKAGES, *EDGES]
    if service not in services:
        raise typer.BadParameter(f"unknown service {service!r}; choose one of {', '.join(services)}")
    if service in EDGES:
        EDGES[service].main()
    else:
        PACKAGES[service].app().main()


@app.command()
def topics() -> None:
    """Create every flexchain topic that does not exist yet."""
    from flexchain import kafka
    from flexchain.settings import Settings

    s = Settings()
    from flexchain.catalog import EDGES, available_services

    names = ["clock.ticks"] + [t for svc in available_services() for t in kafka.topic_names(svc).values()]
    names += [t for edge in EDGES.values() for t in edge.topics().values()]  # the edge services' (the notifier's)
    names = [s.name(n) for n in names]
    cluster = asyncio.run(kafka.ensure_topics(s, names))
    typer.echo(f"topics ready on cluster {cluster}: {', '.join(names)}")


@app.command()
def clock(
    speed: Annotated[float, typer.Option(help="business seconds per real second (1 = real time)")] = 1.0,
    interval: Annotated[float, typer.Option(help="real seconds between ticks")] = 1.0,
    start: Annotated[int | None, typer.Option(help="business time to start at, ms (default: now)")] = None,
    count: Annotated[int, typer.Option(help="ticks to publish (0 = until Ctrl-C)")] = 0,
) -> None:
    """Publish business time to `clock.ticks` (R-X-1): real time, or simulated faster."""
    from flexchain.clock import run_clock
    from flexchain.settings import Settings

    asyncio.run(run_clock(Settings(), speed, interval, start, count))


schemas_app = typer.Typer(
    help="schemas/ from the message classes, and the schema history that keeps every old record readable",
    invoke_without_command=True,
)
app.add_typer(schemas_app, name="schemas")
SchemasDir = Annotated[Path, typer.Option("--root", help="the schemas folder (default: FLEXCHAIN_SCHEMAS_DIR or schemas/)")]


def _shown(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


@schemas_app.callback()
def schemas_main(ctx: typer.Context, root: SchemasDir = SCHEMAS_DIR) -> None:
    """Without a subcommand: `write`."""
    if ctx.invoked_subcommand is None:
        schemas_write(root)


@schemas_app.command("write")
def schemas_write(root: SchemasDir = SCHEMAS_DIR) -> None:
    """(Re)write schemas/ from the message classes and record each changed schema as the next version
    in schemas/history/ — refused (exit 1, nothing written) if a recorded version would become unreadable."""
    from flexchain.catalog import all_messages, all_upcasters
    from flexchain.evolution import plan_release, write_release

    classes = all_messages()
    release = plan_release(classes, all_upcasters(), root)
    if release.refused:
        typer.echo("refused: the new schemas could not read every recorded version (BACKWARD_TRANSITIVE)", err=True)
        for reason in release.refused:
            typer.echo(f"  {reason}", err=True)
        typer.echo(
            "make the change compatible (a default for a new field, keep union branches and enum symbols), "
            "declare an Upcaster next to the messages, or publish a new message type. Nothing was written.",
            err=True,
        )
        raise typer.Exit(1)
    written = write_release(classes, release, root)
    for path in written:
        typer.echo(_shown(path))
    typer.echo(f"{len(release.record)} new version(s) recorded, {release.unchanged} unchanged")


@schemas_app.command("check")
def schemas_check(root: SchemasDir = SCHEMAS_DIR) -> None:
    """CI: every schema file is its class's and the last recorded version of its type, and reads every
    earlier version (Avro resolution or an upcaster); exit 1 with the reasons otherwise."""
    from flexchain.catalog import all_messages, all_upcasters
    from flexchain.evolution import check
    from flexchain.history import recorded

    problems = check(all_messages(), all_upcasters(), root)
    for problem in problems:
        typer.echo(problem, err=True)
    versions = sum(len(v) for v in recorded(root).values())
    typer.echo(f"{versions} recorded schema versions; {len(problems)} problem(s)")
    raise typer.Exit(1 if problems else 0)


@app.command("asyncapi")
def asyncapi_doc(
    out: Annotated[Path | None, typer.Option(help="write here instead of stdout")] = None,
    partitions: Annotated[int, typer.Option(help="partitions per topic as deployed (clock.ticks: 1)")] = 6,
    replicas: Annotated[int, typer.Option(help="replicas per topic as deployed")] = 3,
) -> None:
    """The AsyncAPI 3.0 document of every topic and message (from schemas/ and the catalogue)."""
    from flexchain.tools.asyncapi import render

    text = render(partitions, replicas)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")


@app.command()
def demo(
    wait: Annotated[bool, typer.Option(help="keep running until Ctrl-C after the scenario")] = True,
    port: Port = 9092,
) -> None:
    """Start a fresh local broker and the five services, run the demo scenario; Ctrl-C, SIGTERM or
    SIGHUP stops everything it started."""
    from flexchain.tools.demo import run_demo

    root = Path(os.environ.get("FLEXCHAIN_DEMO_DIR") or CACHE / "demo")  # broker data, service data and logs
    run_id = os.environ.get("FLEXCHAIN_DEMO_RUN") or uuid.uuid4().hex[:6]
    raise typer.Exit(run_demo(root, port, wait, run_id=run_id, jars=CACHE / "kafka"))


@app.command()
def simulate(
    days: Annotated[int, typer.Option(help="business days to play")] = 90,
    seed: Annotated[int, typer.Option(help="one seed, one merchant: the same seed gives the same report numbers")] = 7,
    scale: Annotated[
        str, typer.Option(help="small (a few hundred orders) | medium (≥ 50,000; FLEXCHAIN_SIM_MEDIUM=1)")
    ] = "small",
    out: Annotated[Path, typer.Option(help="where index.html and numbers.json go")] = Path("report"),
    port: Port = 9192,
) -> None:
    """Play a seeded merchant's quarter through the five services on business time (a fresh local
    broker unless KAFKA_BOOTSTRAP_SERVERS is set) and write a self-contained HTML report."""
    from flexchain.tools.simulate import run_cli

    if scale not in ("small", "medium"):
        raise typer.BadParameter("small or medium", param_hint="--scale")
    root = Path(os.environ.get("FLEXCHAIN_SIM_DIR") or CACHE / "simulate")
    raise typer.Exit(run_cli(out, seed, days, scale, port, root, CACHE / "kafka"))


@token_app.command("new")
def token_new(
    name: Annotated[str, typer.Option(help="who holds the key (a shop front, a person, a job): logged on refusals")],
    role: Annotated[str, typer.Option(help="operator | merchant | service | reader")],
    as_json: JsonFlag = False,
) -> None:
    """A new API key: give the key to its holder (it is shown once), add the line to the services'
    FLEXCHAIN_API_KEYS (or the FLEXCHAIN_API_KEYS_FILE secret). Remove the line to revoke it."""
    from flexchain.auth import key_line, new_key

    key = new_key()
    try:
        line = key_line(name, role, key)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    emit_one({"name": name, "role": role, "key": key, "line": line}, as_json=as_json)


ops.register(app)  # lag, rebuild, as-of (flexchain/ops.py)


if __name__ == "__main__":
    app()
