"""Kafka security by configuration: one SCRAM principal per service and the ACLs each one needs.

Every service authenticates as its own principal (``User:<service>``, SCRAM-SHA-512 over TLS when
``KAFKA_SECURITY_PROTOCOL=SASL_SSL``) and is allowed exactly this, with the configured topic prefix:

* its own topics `<svc>.commands`, `<svc>.events`, `<svc>.dlq` (literal): READ, WRITE, CREATE — the API
  and the router write commands, the processor reads them and writes events and dead letters, rebuild
  and the own view read the events; CREATE so it can create them where no operator does;
* every topic in ``READS[svc]`` (literal): READ — the other services' event topics its router or read
  model folds, and `clock.ticks`;
* groups `<svc>` and `<svc>-router` (literal): READ — the processor's and the router's consumer groups
  (offsets committed inside transactions);
* transactional ids with the prefix `<svc>-`: WRITE — one per input partition, `<svc>-<svc>.commands-<p>`
  and `<svc>-router-<topic>-<p>`.

READ and WRITE imply DESCRIBE in Kafka's authorizer, so DESCRIBE is not listed. No cluster-level
grant is needed: since Kafka 3.0 WRITE on a topic lets a principal's idempotent producers get a
producer id (KIP-679), so IDEMPOTENT_WRITE on the cluster is left out (tested). The `clock`
principal (``flexchain clock``) may write and create `clock.ticks` only; the `notify` principal (the
optional notifier) may read the five event topics and `notify.redrive`, write `notify.dlq`, and
commit its group `notify`.

``READS`` is declared here, not discovered, because it is a security decision; the deployment tests
check that every service in the checkout reads nothing beyond it (routes and read-model topics).

The same data renders ``deploy/kafka/acls.md`` (kafka-acls commands), the Strimzi ``KafkaUser``
resources in ``deploy/k8s/`` and, through :func:`apply_acls`, real ACLs on a broker (the tests do so
on the local broker started with SASL_SSL, SCRAM-SHA-512 and the StandardAuthorizer).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flexchain.catalog import SERVICES
from flexchain.kafka import topic_names
from flexchain.settings import Settings

CLOCK_TOPIC = "clock.ticks"
CLOCK_PRINCIPAL = "clock"
NOTIFY_PRINCIPAL = "notify"  # the optional notifier (services/notify): reads events, writes its DLQ

#: Topics each service reads besides its own (its routes and its read model). A security decision:
#: a service that starts reading another topic must be added here (the deploy tests check it).
READS: dict[str, tuple[str, ...]] = {
    "order": ("inventory.events", "presale.events", "loyalty.events", CLOCK_TOPIC),
    "inventory": ("order.events", "presale.events", CLOCK_TOPIC),
    "presale": ("order.events", "inventory.events", CLOCK_TOPIC),
    "commission": ("order.events", "inventory.events", "loyalty.events", CLOCK_TOPIC),
    "loyalty": ("order.events", "inventory.events", "commission.events", CLOCK_TOPIC),
}

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


def acls(service: str, prefix: str = "") -> list[Acl]:
    """Every binding the service's principal needs (see the module docstring)."""
    who = principal(service)
    out: list[Acl] = []
    for topic in topic_names(service).values():
        for op in ("READ", "WRITE", "CREATE"):
            out.append(Acl(who, "TOPIC", prefix + topic, "LITERAL", op))
    for topic in READS[service]:
        out.append(Acl(who, "TOPIC", prefix + topic, "LITERAL", "READ"))
    for group in (service, f"{service}-router"):
        out.append(Acl(who, "GROUP", prefix + group, "LITERAL", "READ"))
    out.append(Acl(who, "TRANSACTIONAL_ID", f"{prefix}{service}-", "PREFIXED", "WRITE"))
    return out


def clock_acls(prefix: str = "") -> list[Acl]:
    who = principal(CLOCK_PRINCIPAL)
    return [
        Acl(who, "TOPIC", prefix + CLOCK_TOPIC, "LITERAL", "WRITE"),
        Acl(who, "TOPIC", prefix + CLOCK_TOPIC, "LITERAL", "CREATE"),
    ]


def notify_acls(prefix: str = "") -> list[Acl]:
    """The notifier: READ every service's events, WRITE its dead letters, READ what `flexchain dlq
    redrive` sends back, its consumer group; no transactions (it is at-least-once by design)."""
    who = principal(NOTIFY_PRINCIPAL)
    out = [Acl(who, "TOPIC", f"{prefix}{svc}.events", "LITERAL", "READ") for svc in SERVICES]
    out += [Acl(who, "TOPIC", f"{prefix}notify.dlq", "LITERAL", op) for op in ("WRITE", "CREATE")]
    out += [Acl(who, "TOPIC", f"{prefix}notify.redrive", "LITERAL", op) for op in ("READ", "CREATE")]
    out.append(Acl(who, "GROUP", f"{prefix}notify", "LITERAL", "READ"))
    return out


def all_acls(prefix: str = "") -> dict[str, list[Acl]]:
    """Principal name → bindings, for every service of the catalogue, the clock and the notifier."""
    out = {svc: acls(svc, prefix) for svc in SERVICES}
    out[CLOCK_PRINCIPAL] = clock_acls(prefix)
    out[NOTIFY_PRINCIPAL] = notify_acls(prefix)
    return out


def code_reads(service: str) -> set[str]:
    """Foreign topics the service's code consumes: its routes and its read model (None if no code yet)."""
    app = importlib.import_module(f"services.{service}.app")
    svc = getattr(app, "SERVICE", None)
    if svc is None:
        svc = app.service()
    topics = {r.topic for r in svc.routes}
    for obj in vars(app).values():
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and hasattr(obj, "fold"):
            for f in dataclasses.fields(obj):
                if f.name == "topics" and f.default_factory is not dataclasses.MISSING:
                    topics |= set(f.default_factory())
    return {t for t in topics if t not in topic_names(service).values()}


# --------------------------------------------------------------------------------------- rendering


def acls_markdown(prefix: str = "") -> str:
    """deploy/kafka/acls.md: the principals, their bindings and the kafka-acls commands."""
    lines = [
        "# Kafka principals and ACLs (generated by scripts/gen-deploy.py from flexchain.security — do not edit)",
        "",
        "One SCRAM-SHA-512 principal per service. The broker runs an authorizer with",
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


async def apply_acls(settings: Settings, bindings: Iterable[Acl]) -> None:
    """Create the bindings on the cluster (CreateAcls; the settings' principal must be allowed to)."""
    from aiokafka.protocol.admin import CreateAclsRequest

    from flexchain import kafka

    client = kafka.admin(settings)
    await client.start()
    try:
        for a in bindings:
            req = CreateAclsRequest(
                RESOURCE_TYPES[a.resource], a.name, PATTERN_TYPES[a.pattern], a.principal, "*", OPERATIONS[a.operation], ALLOW
            )
            resp = await client._send_request(req)
            for code, message in resp.creation_responses:
                if code != 0:
                    raise RuntimeError(f"cannot create ACL {a}: error {code} {message}")
    finally:
        await client.close()


# ------------------------------------------------------------------------------- local TLS material


@dataclass(frozen=True)
class Pki:
    """PEM files of a throwaway CA and a broker certificate (for the local SASL_SSL broker)."""

    ca_cert: Path
    broker_keystore: Path  # private key (PKCS#8, unencrypted) + certificate chain, for ssl.keystore.type=PEM
    broker_subject: str  # the broker's SSL principal: its certificate's DN


def make_pki(directory: Path, hosts: Iterable[str] = ("localhost", "127.0.0.1"), days: int = 2) -> Pki:
    """A CA and a broker certificate for `hosts` (SANs), written as PEM into `directory` (needs `cryptography`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flexchain test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flexchain-broker")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path, ks_path = directory / "ca.pem", directory / "broker.pem"
    ca_path.write_bytes(ca.public_bytes(pem))
    ks_path.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(pem)
        + ca.public_bytes(pem)
    )
    ks_path.chmod(0o600)
    return Pki(ca_path, ks_path, "CN=flexchain-broker")


def secure_broker_overrides(host: str, port: int, controller_port: int, pki: Pki, admin_password: str) -> dict[str, str]:
    """server.properties entries for a local broker that only speaks SASL_SSL (SCRAM-SHA-512) to clients.

    The controller listener uses mutual TLS (the broker's own certificate, SCRAM is not available to
    controllers in KRaft); the StandardAuthorizer denies anything no ACL allows; `admin` and the
    broker's certificate principal are super users. SCRAM credentials are added at format time
    (:func:`scram_format_args`), as Kafka's StorageTool does for a new KRaft cluster.
    """
    jaas = f'org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="{admin_password}";'
    return {
        "listeners": f"SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "listener.security.protocol.map": "CONTROLLER:SSL,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(pki.broker_keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki.ca_cert),
        "listener.name.controller.ssl.client.auth": "required",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:admin;User:{pki.broker_subject}",
    }


def scram_format_args(credentials: dict[str, str]) -> tuple[str, ...]:
    """`StorageTool format` arguments that store SCRAM-SHA-512 credentials in the new cluster's metadata."""
    args: list[str] = []
    for user, password in credentials.items():
        if any(c in user + password for c in ",[]=\"'"):
            raise ValueError(f"SCRAM user/password for {user!r} must not contain , [ ] = or quotes")
        args += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
    return tuple(args)
