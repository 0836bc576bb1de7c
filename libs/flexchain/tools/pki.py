"""Local TLS and SCRAM material for the SASL_SSL test broker: a throwaway CA and broker certificate,
the broker's server.properties for SASL_SSL with ACLs, and the SCRAM credentials it is formatted with.

Tooling (tests, `flexchain.tools.broker`), not runtime: a deployed service gets its certificates and
credentials from the cluster's operator (Strimzi). Moved out of :mod:`flexchain.security`, which keeps
the ACLs the services need.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


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
