"""Kafka security by configuration: one SCRAM principal per process and exactly the ACLs its code needs.

Every service authenticates as its own principal (``User:<service>``, SCRAM-SHA-512 over TLS when
``KAFKA_SECURITY_PROTOCOL=SASL_SSL``). Its bindings are GENERATED from what its code declares —
its routes, its read model's topics, its own topics, its loops' consumer groups and transactional
ids — by :mod:`flexchain.access` (which says which loop uses what); with the configured topic prefix:

* its own `<svc>.commands` and `<svc>.events`: READ, WRITE; `<svc>.dlq`: WRITE (it never reads its
  dead letters); `<svc>.redrive`: READ (its router; the operator writes it); all four CREATE, since
  `serve` creates its own topics where no operator did (another service's topics it cannot create);
* the topics of its routes and read model, and `clock.ticks` (every service folds business time):
  READ — e.g. presale reads `order.events` and `clock.ticks`, nothing of inventory or loyalty;
* groups `<svc>` (processor) and `<svc>-router` (router, when it has routes): READ — offsets are
  committed inside the transactions;
* transactional ids with the prefixes `<svc>-<svc>.commands-` (the processor's, one per partition)
  and `<svc>-router-` (the router's, one per input topic and partition): WRITE.

READ and WRITE imply DESCRIBE in Kafka's authorizer, so DESCRIBE is not listed. No cluster-level
grant is needed: since Kafka 3.0 WRITE on a topic lets a principal's idempotent producers get a
producer id (KIP-679), so IDEMPOTENT_WRITE on the cluster is left out (tested). The other principals:

* `clock` (``flexchain clock``): WRITE and CREATE `clock.ticks`;
* each edge service (``flexchain.catalog.EDGES``: the optional notifier `notify`), as its own
  ``access`` describes it — the notifier: READ the five event topics and `notify.redrive`, WRITE
  `notify.dlq`, CREATE both of its topics, READ its group `notify` (no transactions);
* `operator` (whoever runs the ops commands): DESCRIBE the services' groups and READ their input
  topics (``flexchain lag``), READ every `<svc>.dlq` (``flexchain dlq list|show``), WRITE
  `<svc>.commands`, `<svc>.redrive`, `<svc>.dlq` and the transactional id
  `flexchain-dlq-redrive-<svc>` (``flexchain dlq redrive``); never an `<svc>.events` topic, and no
  CREATE (topics are created by the cluster's operator, e.g. Strimzi ``KafkaTopic``).

The deployment tests check the generated grants against the loops each service really builds, both
ways (a topic granted but unused fails, as does one used but not granted), and run all five services
and the notifier through the demo on a SASL_SSL broker with exactly these ACLs.

The same data renders ``deploy/kafka/acls.md`` (kafka-acls commands), the Strimzi ``KafkaUser``
resources in ``deploy/k8s/`` and, through :func:`apply_acls`, real ACLs on a broker (the tests do so
on the local broker started with SASL_SSL, SCRAM-SHA-512 and the StandardAuthorizer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flexchain import access
from flexchain.catalog import EDGES, SERVICES
from flexchain.settings import Settings

CLOCK_TOPIC = access.CLOCK_TOPIC
CLOCK_PRINCIPAL = "clock"
OPERATOR_PRINCIPAL = access.OPERATOR  # the ops commands: `flexchain lag`, `flexchain dlq ...`

# Kafka's enum codes (org.apache.kafka.common.resource / acl).
RESOURCE_TYPES = {"TOPIC": 2, "GROUP": 3, "CLUSTER": 4, "TRANSACTIONAL_ID": 5}
PATTERN_TYPES = {"LITERAL": 3, "PREFIXED": 4}
OPERATIONS = {"READ": 3, "WRITE": 4, "CREATE": 5, "DESCRIBE": 8, "IDEMPOTENT_WRITE": 12}
ALLOW = 3
CLUSTER_NAME = "kafka-cluster"


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW binding for a principal: `operation` on `resource` `name` (`pattern` LITERAL/PREFIXED)."""

    principal: str
    resource: str
    name: str
    pattern: str
    operation: str

    def kafka_acls_args(self) -> str:
        """The arguments of Kafka's `kafka-acls.sh --add` for this binding."""
        res = {
            "TOPIC": f"--topic '{self.name}'",
            "GROUP": f"--group '{self.name}'",
            "TRANSACTIONAL_ID": f"--transactional-id '{self.name}'",
            "CLUSTER": "--cluster",
        }[self.resource]
        pattern = " --resource-pattern-type prefixed" if self.pattern == "PREFIXED" else ""
        op = self.operation.title().replace("_", "")
        return f"--allow-principal '{self.principal}' --operation {op} {res}{pattern}"


def principal(service: str) -> str:
    return f"User:{service}"


def bindings(a: access.Access) -> list[Acl]:
    """The ALLOW bindings of one principal's access: per topic READ / WRITE / CREATE as used, READ on
    the groups it commits for, DESCRIBE on the groups it watches, WRITE on its transactional ids."""
    who = principal(a.principal)
    out: list[Acl] = []
    for topic in a.topics():
        for op, used in (("READ", a.reads), ("WRITE", a.writes), ("CREATE", a.creates)):
            if topic in used:
                out.append(Acl(who, "TOPIC", topic, "LITERAL", op))
    out += [Acl(who, "GROUP", g, "LITERAL", "READ") for g in a.groups]
    out += [Acl(who, "GROUP", g, "LITERAL", "DESCRIBE") for g in a.watches]
    out += [Acl(who, "TRANSACTIONAL_ID", t, "PREFIXED", "WRITE") for t in a.transactional_prefixes]
    out += [Acl(who, "TRANSACTIONAL_ID", t, "LITERAL", "WRITE") for t in a.transactional_ids]
    return out


def acls(service: str, prefix: str = "") -> list[Acl]:
    """Every binding the service's principal needs, generated from its code (see the module docstring)."""
    svc, view = access.declared(service)
    return bindings(access.service_access(svc, view, prefix))


def clock_acls(prefix: str = "") -> list[Acl]:
    return bindings(access.clock_access(prefix))


def edge_acls(edge: str, prefix: str = "") -> list[Acl]:
    """An edge service's principal (named like it), as its own `access` says — the notifier: READ every
    service's events, WRITE its dead letters, READ what `flexchain dlq redrive` sends back, its consumer
    group; no transactions (it is at-least-once by design)."""
    return bindings(EDGES[edge].access(prefix))


def operator_acls(prefix: str = "") -> list[Acl]:
    """The ops commands' principal: `flexchain lag` and `flexchain dlq list|show|redrive`."""
    return bindings(access.operator_access(list(SERVICES), prefix))


def all_acls(prefix: str = "") -> dict[str, list[Acl]]:
    """Principal name → bindings, for every service of the catalogue, the clock, the edge services (the
    notifier) and the operator."""
    out = {svc: acls(svc, prefix) for svc in SERVICES}
    out[CLOCK_PRINCIPAL] = clock_acls(prefix)
    out |= {edge: edge_acls(edge, prefix) for edge in EDGES}
    out[OPERATOR_PRINCIPAL] = operator_acls(prefix)
    return out


# --------------------------------------------------------------------------------------- rendering


def acls_markdown(prefix: str = "") -> str:
    """deploy/kafka/acls.md: the principals, their bindings and the kafka-acls commands."""
    others = ", ".join(f"`{p}`" for p in [CLOCK_PRINCIPAL, *EDGES])  # the clock, the edge services (the notifier)
    lines = [
        "# Kafka principals and ACLs (generated by scripts/gen-deploy.py from flexchain.security — do not edit)",
        "",
        f"One SCRAM-SHA-512 principal per service, plus {others} and `{OPERATOR_PRINCIPAL}` (the ops commands).",
        "Each service's bindings are generated from what its code uses (flexchain.access): its routes, read",
        "model, own topics, consumer groups and transactional ids. The broker runs an authorizer with",
        "`allow.everyone.if.no.acl.found=false`; READ and WRITE imply DESCRIBE.",
        "",
    ]
    for name, bindings in all_acls(prefix).items():
        lines += [f"## `{principal(name)}`", "", "| resource | name | pattern | operation |", "|---|---|---|---|"]
        lines += [f"| {a.resource} | `{a.name}` | {a.pattern} | {a.operation} |" for a in bindings]
        lines += ["", "```sh"]
        lines += [
            f"kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config admin.properties --add {a.kafka_acls_args()}"
            for a in bindings
        ]
        lines += ["```", ""]
    return "\n".join(lines)


def strimzi_users(cluster: str = "flexchain", prefix: str = "") -> list[dict[str, Any]]:
    """Strimzi `KafkaUser` resources (SCRAM-SHA-512, simple authorization) for every principal."""
    out = []
    for name, bindings in all_acls(prefix).items():
        rules = []
        for a in bindings:
            resource: dict[str, Any] = {"type": {"TRANSACTIONAL_ID": "transactionalId"}.get(a.resource, a.resource.lower())}
            if a.resource != "CLUSTER":
                resource["name"] = a.name
                resource["patternType"] = {"LITERAL": "literal", "PREFIXED": "prefix"}[a.pattern]
            op = "".join(w.title() for w in a.operation.split("_"))
            rules.append({"resource": resource, "operations": [op], "host": "*"})
        out.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaUser",
                "metadata": {"name": name, "labels": {"strimzi.io/cluster": cluster}},
                "spec": {"authentication": {"type": "scram-sha-512"}, "authorization": {"type": "simple", "acls": rules}},
            }
        )
    return out


# ------------------------------------------------------------------------------------ applying ACLs


async def apply_acls(settings: Settings, bindings: Iterable[Acl], timeout: float = 30.0) -> None:
    """Create the bindings on the cluster (CreateAcls; the settings' principal must be allowed to), then
    wait until the broker answers them in DescribeAcls: the controller has committed them at once, but
    a broker's authorizer applies them from the metadata log a moment later (a client that connects
    in between is refused)."""
    from aiokafka.protocol.admin import CreateAclsRequest

    from flexchain import kafka

    wanted = list(dict.fromkeys(bindings))
    client = kafka.admin(settings)
    await client.start()
    try:
        for a in wanted:
            req = CreateAclsRequest(
                RESOURCE_TYPES[a.resource], a.name, PATTERN_TYPES[a.pattern], a.principal, "*", OPERATIONS[a.operation], ALLOW
            )
            resp = await client._send_request(req)
            for code, message in resp.creation_responses:
                if code != 0:
                    raise RuntimeError(f"cannot create ACL {a}: error {code} {message}")
        deadline = time.monotonic() + timeout
        while missing := set(wanted) - await _described(client, {a.principal for a in wanted}):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(missing)} ACLs not in effect after {timeout:.0f}s, e.g. {sorted(missing)[0]}")
            await asyncio.sleep(0.2)
    finally:
        await client.close()


async def _described(client: Any, principals: set[str]) -> set[Acl]:
    """The ALLOW bindings of these principals the broker answers (DescribeAcls)."""
    from aiokafka.protocol.admin import DescribeAclsRequest

    names = {v: k for k, v in RESOURCE_TYPES.items()}
    patterns = {v: k for k, v in PATTERN_TYPES.items()}
    ops = {v: k for k, v in OPERATIONS.items()}
    found: set[Acl] = set()
    for who in principals:
        any_ = 1  # ANY, for every filter field
        resp = await client._send_request(DescribeAclsRequest(any_, None, any_, who, None, any_, any_))
        if resp.error_code != 0:
            raise RuntimeError(f"cannot describe ACLs: error {resp.error_code} {resp.error_message}")
        for rtype, name, pattern, entries in resp.resources:
            for principal_, _host, op, permission in entries:
                if permission == ALLOW and rtype in names and pattern in patterns and op in ops:
                    found.add(Acl(principal_, names[rtype], name, patterns[pattern], ops[op]))
    return found
