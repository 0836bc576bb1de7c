"""Settings from the environment (pydantic-settings); one object per process, built by `host.bootstrap`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def redact_url(url: str) -> str:
    """`url` without the password of its userinfo (``user:***@host``): for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}" if parts.password is not None else f"{user}@{host}").geturl()


class RegistrySettings(BaseSettings):
    """How to reach the schema registry (README "Configuration"): its URL, basic-auth credentials from
    a secret, TLS. Part of :class:`Settings`; `flexchain.subscribe` reads it alone."""

    # hide_input_in_errors: a refused value may be a secret (a password, a URL with one)
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False, hide_input_in_errors=True)

    schema_registry_url: str | None = Field(
        None, description="Confluent-compatible registry; unset = schemas/. No credentials in it: SCHEMA_REGISTRY_USER/PASSWORD"
    )
    schema_registry_user: str | None = Field(None, description="basic-auth user of the registry (with SCHEMA_REGISTRY_PASSWORD)")
    schema_registry_password: SecretStr | None = Field(None, description="basic-auth password of the registry (from a secret)")
    schema_registry_ca: Path | None = Field(None, description="PEM CA bundle the registry's TLS certificate is checked against")
    schema_registry_cert: Path | None = Field(None, description="PEM client certificate for mutual TLS (+ SCHEMA_REGISTRY_KEY)")
    schema_registry_key: Path | None = Field(None, description="PEM private key of SCHEMA_REGISTRY_CERT")

    @field_validator(
        "schema_registry_url",
        "schema_registry_user",
        "schema_registry_password",
        "schema_registry_ca",
        "schema_registry_cert",
        "schema_registry_key",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        # compose's `${SCHEMA_REGISTRY_USER:-}` and an env file's `KEY=` give "": the same as unset
        return None if v == "" else v

    @field_validator("schema_registry_url")
    @classmethod
    def _no_userinfo(cls, v: str | None) -> str | None:
        if v is not None and "@" in urlsplit(v).netloc:
            raise ValueError(
                f"SCHEMA_REGISTRY_URL carries credentials ({redact_url(v)}): put them in SCHEMA_REGISTRY_USER and "
                "SCHEMA_REGISTRY_PASSWORD instead, so the URL can be logged"
            )
        return v


class Settings(RegistrySettings):
    # hide_input_in_errors: a refused value may be a secret (a password, a URL with one)
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False, hide_input_in_errors=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    kafka_security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT, SASL_SSL, SASL_PLAINTEXT or SSL")
    kafka_sasl_mechanism: str = Field("SCRAM-SHA-512", description="SASL mechanism when SASL is on")
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = None
    flexchain_partitions: int = Field(6, ge=1, description="partitions of each topic created by flexchain")
    flexchain_replication_factor: int = Field(1, ge=1, description="replicas of topics flexchain creates")
    flexchain_topic_prefix: str = Field("", description="prefix of every topic, group and transactional id")
    flexchain_instance_id: str = Field("0", description="stable per instance: names the transactional ids")
    flexchain_data_dir: Path = Field(PROJECT_ROOT / ".cache" / "data", description="SQLite files")
    flexchain_snapshot_url: str | None = Field(
        None, description="SQLAlchemy URL; default SQLite in data dir. Its password better in FLEXCHAIN_SNAPSHOT_PASSWORD"
    )
    flexchain_snapshot_password: SecretStr | None = Field(
        None, description="password of the snapshot URL's user (from a secret; no URL-encoding needed); overrides the URL's"
    )
    flexchain_snapshot_key: SecretStr | None = Field(
        None, description="HMAC key of snapshot rows (from a secret); unset = a plain checksum, no tamper protection"
    )
    flexchain_snapshot_every: int = Field(50_000, ge=1, description="events folded between snapshots")
    flexchain_dedup_horizon_hours: float = Field(
        168.0, gt=0, description="hours (wall clock) a command id is remembered after its origin (dedup)"
    )
    flexchain_batch_max: int = Field(1000, ge=1, description="records per transaction at most")
    flexchain_clock: Literal["wall", "log"] = Field("wall", description="wall: API stamps wall time; log: last clock.ticks time")
    flexchain_http_host: str = "127.0.0.1"
    flexchain_http_port: int | None = Field(None, description="HTTP port; default per service")
    flexchain_ops_port: int | None = Field(
        None, description="serve /health, /ready and /metrics on this port too, and /metrics only there; unset = the API port"
    )
    flexchain_ops_host: str | None = Field(None, description="the ops port's bind address; unset = FLEXCHAIN_HTTP_HOST")
    flexchain_log_level: str = "INFO"
    # README "Limits": what one client can make a service do
    flexchain_http_max_body_bytes: int = Field(1_048_576, ge=1, description="a larger request body is refused (413)")
    flexchain_rate_limit: str = Field(
        "100/second;3000/minute",
        description="commands (POST/PUT/PATCH/DELETE) per client, `limits` notation joined by ';'; past it 429 "
        "with Retry-After; '' or 0 = no limit",
    )
    flexchain_http_trusted_proxies: str = Field(
        "", description="comma-separated addresses/networks of proxies whose X-Forwarded-For names the client; '' = none"
    )
    flexchain_max_concurrent_replays: int = Field(
        4, ge=1, description="as-of reads and plan replays folding at once; one more is refused (429, Retry-After)"
    )
    # README "Security": who may call the HTTP API (flexchain.auth)
    flexchain_api_keys: SecretStr | None = Field(
        None, description="API keys' hashes, `<name>:<role>:sha256:<hex>` per line or comma (from `flexchain token new`)"
    )
    flexchain_api_keys_file: Path | None = Field(None, description="a file of such lines (a mounted secret)")
    flexchain_auth_jwks_url: str | None = Field(None, description="JWKS of the identity provider whose JWTs are accepted")
    flexchain_auth_issuer: str | None = Field(None, description="the `iss` a JWT must carry (required with a JWKS)")
    flexchain_auth_audience: str = Field("flexchain", description="the `aud` a JWT must carry")
    flexchain_auth_roles_claim: str = Field("roles", description="the JWT claim (dotted path) listing its roles")
    flexchain_auth_leeway_s: int = Field(30, ge=0, description="clock skew tolerated on a JWT's exp/nbf/iat")
    flexchain_http_max_connections: int = Field(
        1000, ge=1, description="concurrent connections and requests uvicorn serves; past it 503"
    )
    flexchain_http_max_header_bytes: int = Field(16_384, ge=1024, description="request line and headers at most (h11)")
    flexchain_http_keepalive_s: int = Field(5, ge=1, description="an idle keep-alive connection is closed after this")
    flexchain_transaction_timeout_ms: int = Field(15_000, ge=1000, description="a transaction open longer is aborted")
    flexchain_session_timeout_ms: int = Field(10_000, ge=1000, description="a silent group member is dropped after this")
    flexchain_shutdown_timeout_s: float = Field(
        30.0,
        gt=0,
        description="on SIGTERM, the loops and clients get this long to stop cleanly (snapshots saved); then the "
        "process says what had not stopped and exits with status 1 (e.g. the broker is gone: nothing can commit)",
    )
    flexchain_static_membership: bool = Field(
        True,
        description="join the consumer groups as FLEXCHAIN_INSTANCE_ID (KIP-345): a crashed instance restarted "
        "takes its partitions back at once; every running instance of a service needs its own id",
    )
    flexchain_fault_abort_every: int = Field(0, ge=0, description="tests: abort every Nth transaction of each loop (0 = off)")
    flexchain_fault_commit_delay_ms: int = Field(0, ge=0, description="tests: hold each transaction open this long")
    flexchain_fault_rebuild_delay_ms: int = Field(0, ge=0, description="tests: pause this long after each batch a rebuild folds")

    def name(self, base: str) -> str:
        """A topic, consumer-group or transactional-id name with the configured prefix."""
        return self.flexchain_topic_prefix + base

    def snapshot_key(self) -> str | None:
        return self.flexchain_snapshot_key.get_secret_value() if self.flexchain_snapshot_key else None

    def snapshot_url(self, service: str) -> str:
        """The SQLAlchemy URL of the service's snapshot store, with FLEXCHAIN_SNAPSHOT_PASSWORD put in."""
        if self.flexchain_snapshot_url:
            password = self.flexchain_snapshot_password.get_secret_value() if self.flexchain_snapshot_password else ""
            if not password:
                return self.flexchain_snapshot_url
            from sqlalchemy.engine import make_url

            return make_url(self.flexchain_snapshot_url).set(password=password).render_as_string(hide_password=False)
        self.flexchain_data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.flexchain_data_dir / f'{service}-snapshots.db'}"
