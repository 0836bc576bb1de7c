"""Who may call a service's HTTP API (README "Security"): bearer tokens and four roles.

Every route but `/health`, `/ready` and `/metrics` (and the API's own description, `/openapi.json`
and `/docs`) needs `Authorization: Bearer <token>`. A token is one of:

* an **API key** (small setups): an opaque `fxk_…` string made by `flexchain token new`. Services
  hold only its SHA-256, in `FLEXCHAIN_API_KEYS` or the file `FLEXCHAIN_API_KEYS_FILE` (a mounted
  secret), one key per line: `<name>:<role>:sha256:<hex>`. Several lines may share a name (rotation:
  add the new key, move the clients, remove the old line);
* a **JWT** from the merchant's identity provider: signed with a key of the JWKS at
  `FLEXCHAIN_AUTH_JWKS_URL` (asymmetric algorithms only), issued by `FLEXCHAIN_AUTH_ISSUER`, for the
  audience `FLEXCHAIN_AUTH_AUDIENCE`, not expired; its roles in the claim `FLEXCHAIN_AUTH_ROLES_CLAIM`
  (a dotted path, e.g. `realm_access.roles` for Keycloak), its caller in `sub`.

The roles (:data:`ROLES`): **operator** may call everything; **merchant** every business route
(catalogue, stock, orders, gift rules, campaigns, distributors and plans, members) but not
`/internal/…` (rebuilds, partitions); **service** — a shop front — only the routes a service marks
with :func:`allow` (placing an order, paying it, reading it); **reader** every GET but `/internal/…`.

No token, an unknown key, a bad signature, a wrong issuer or audience, an expired token: 401 with
`WWW-Authenticate: Bearer`; the identity provider's JWKS unreachable: 503 with `Retry-After`. A valid
token without a role the route allows: 403. All are refused before the request body is read, each
logged once (`http request refused`: status, reason, method, path, client, and for 403 the caller and
its roles — never the token) and counted in `flexchain_<service>_http_refused_total{reason}`. A
service with neither keys nor a JWKS configured refuses to start.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from flexchain.httplimits import client_of, refusal
from flexchain.settings import Settings

log = structlog.get_logger("flexchain.auth")

OPERATOR, MERCHANT, SERVICE, READER = "operator", "merchant", "service", "reader"
ROLES = (OPERATOR, MERCHANT, SERVICE, READER)
#: Routes anyone may call: probes and metrics (they say nothing about the business).
OPEN = frozenset({"/health", "/ready", "/metrics"})
READ_METHODS = frozenset({"GET", "HEAD"})
KEY_PREFIX = "fxk_"
#: `openapi_extra` key a route uses to let more roles in (see :func:`allow`), and the one the
#: OpenAPI document lists each route's roles under.
ALSO = "x-flexchain-also-allowed"
ROLES_KEY = "x-flexchain-roles"
#: Why a request was refused: the label values of `flexchain_http_refused_total` (a closed set).
REASONS = ("missing", "malformed", "unknown_key", "invalid_token", "expired", "forbidden", "unavailable")
JWKS_COOLDOWN_S = 30
#: JWT algorithms accepted: asymmetric only (a JWKS holds public keys; HS* would be key confusion).
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]

SCHEME = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`fxk_…`, from `flexchain token new`) or a JWT from the configured issuer "
        '(README "Security"). Roles: operator, merchant, service, reader.',
    }
}
UNAUTHENTICATED: dict[int | str, dict[str, Any]] = {
    401: {
        "description": 'no token, or one that is unknown, forged, expired, or for another issuer or audience (README "Security")',
        "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    },
    403: {"description": 'the token is valid, but none of its roles may call this route (README "Security")'},
}


class AuthConfigError(ValueError):
    """The authentication settings cannot work (no keys and no JWKS, or an unreadable key line)."""


class Refused(Exception):
    def __init__(self, status: int, reason: str, detail: str, caller: Caller | None = None) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail, self.caller = status, reason, detail, caller


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a valid token says is calling: a key's name or a JWT's `sub`, and its roles."""

    name: str
    roles: frozenset[str]
    via: str  # "api-key" | "jwt"


def allow(*roles: str) -> dict[str, Any]:
    """Route keyword arguments letting `roles` in besides the default ones (operator always; merchant
    on business routes; reader on reads): `@app.post("/orders", **allow(SERVICE))`."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; known: {ROLES}")
    return {"openapi_extra": {ALSO: sorted(roles)}}


def route_roles(method: str, path: str, also: Iterable[str] = ()) -> frozenset[str]:
    """The roles that may call `method path` (a route's path template)."""
    if path.startswith("/internal/"):
        return frozenset({OPERATOR})
    roles = {OPERATOR, MERCHANT, *also}
    if method in READ_METHODS:
        roles.add(READER)
    return frozenset(roles)


# --- API keys -----------------------------------------------------------------------------------


def new_key() -> str:
    """A fresh API key: 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_line(name: str, role: str, key: str) -> str:
    """The line a service's key list holds for `key` (its hash, never the key)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
    if not name or ":" in name or any(c.isspace() for c in name):
        raise ValueError(f"key name {name!r}: non-empty, no ':' and no spaces")
    return f"{name}:{role}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    role: str
    digest: bytes


def parse_keys(text: str, source: str) -> list[_Key]:
    """Key lines (newline- or comma-separated; blank lines and `#` comments skipped)."""
    out = []
    for n, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 4 or parts[2] != "sha256" or len(parts[3]) != 64:
            raise AuthConfigError(f"{source} line {n}: expected <name>:<role>:sha256:<64 hex digits>")
        name, role, _, hexdigest = parts
        if role not in ROLES:
            raise AuthConfigError(f"{source} line {n}: unknown role {role!r} (known: {', '.join(ROLES)})")
        try:
            digest = bytes.fromhex(hexdigest)
        except ValueError:
            raise AuthConfigError(f"{source} line {n}: the digest is not hex") from None
        out.append(_Key(name, role, digest))
    return out


# --- the authenticator --------------------------------------------------------------------------


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class Authenticator:
    """Checks a bearer token against the configured keys and JWKS."""

    def __init__(self, settings: Settings) -> None:
        keys_text = settings.flexchain_api_keys.get_secret_value() if settings.flexchain_api_keys else ""
        self.keys = parse_keys(keys_text, "FLEXCHAIN_API_KEYS")
        if settings.flexchain_api_keys_file is not None:
            path = Path(settings.flexchain_api_keys_file)
            try:
                text = path.read_text()
            except OSError as exc:
                raise AuthConfigError(f"FLEXCHAIN_API_KEYS_FILE {path}: {exc.strerror}") from None
            self.keys += parse_keys(text, str(path))
        self.jwks = None
        if settings.flexchain_auth_jwks_url:
            import jwt

            if not settings.flexchain_auth_issuer:
                raise AuthConfigError(
                    "FLEXCHAIN_AUTH_JWKS_URL is set: set FLEXCHAIN_AUTH_ISSUER too (tokens of any issuer would pass)"
                )
            # keys cached 5 min; a token naming an unknown key id refetches the set at most every 30 s
            # (a flood of made-up key ids does not become a flood of requests to the provider)
            self.jwks = jwt.PyJWKClient(
                settings.flexchain_auth_jwks_url, cache_keys=True, lifespan=300, timeout=10, cooldown_duration=JWKS_COOLDOWN_S
            )
        if not self.keys and self.jwks is None:
            raise AuthConfigError(
                "no authentication configured: set FLEXCHAIN_API_KEYS or FLEXCHAIN_API_KEYS_FILE (keys from "
                '`flexchain token new`), or FLEXCHAIN_AUTH_JWKS_URL and FLEXCHAIN_AUTH_ISSUER (README "Security")'
            )
        self.issuer = settings.flexchain_auth_issuer
        self.audience = settings.flexchain_auth_audience
        self.roles_claim = settings.flexchain_auth_roles_claim
        self.leeway = settings.flexchain_auth_leeway_s

    def api_key(self, token: str) -> Caller:
        digest = hashlib.sha256(token.encode()).digest()
        match = None
        for key in self.keys:  # every key is compared, in constant time: no timing says which was close
            if hmac.compare_digest(digest, key.digest):
                match = key
        if match is None:
            raise Refused(401, "unknown_key", "unknown API key")
        return Caller(match.name, frozenset({match.role}), "api-key")

    def jwt(self, token: str) -> Caller:
        import jwt

        if self.jwks is None:
            raise Refused(401, "invalid_token", "JWTs are not accepted here (no FLEXCHAIN_AUTH_JWKS_URL)")
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Refused(401, "expired", "the token has expired") from None
        except jwt.PyJWKClientConnectionError as exc:  # our problem, not the caller's: 503, try again
            log.error("jwks unreachable", url=self.jwks.uri, error=str(exc))
            raise Refused(503, "unavailable", "tokens cannot be checked now: the provider's JWKS is unreachable") from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise Refused(401, "invalid_token", f"invalid token: {exc}") from None
        raw = _claim(claims, self.roles_claim)
        roles = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
        return Caller(str(claims["sub"]), frozenset(r for r in roles if r in ROLES), "jwt")

    async def caller(self, authorization: str | None) -> Caller:
        if not authorization:
            raise Refused(401, "missing", 'this route needs `Authorization: Bearer <token>` (README "Security")')
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Refused(401, "malformed", "the Authorization header must be `Bearer <token>`")
        if token.startswith(KEY_PREFIX):
            return self.api_key(token)
        if token.count(".") == 2:
            return await run_in_threadpool(self.jwt, token)  # a JWKS fetch may block
        raise Refused(401, "malformed", "the token is neither an API key (fxk_…) nor a JWT")


# --- the middleware -----------------------------------------------------------------------------


class Guard:
    """ASGI middleware: finds the route a request is for, lets it through if the caller's token has a
    role the route allows, else answers 401/403 before the body is read. A path no route matches needs
    a valid token too (its 404 is no one else's business)."""

    def __init__(self, app: ASGIApp, fastapi: FastAPI, authenticator: Authenticator, refused: Any) -> None:
        self.app = app
        self.fastapi = fastapi
        self.auth = authenticator
        self.refused = refused

    def roles_for(self, scope: Scope) -> frozenset[str] | None:
        """The roles the request's route allows; None for an open route."""
        for route in self.fastapi.router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                if not isinstance(route, APIRoute):
                    return None  # the API description (/openapi.json, /docs)
                if route.path in OPEN:
                    return None
                return frozenset((route.openapi_extra or {}).get(ROLES_KEY, (OPERATOR,)))
        return frozenset(ROLES)  # no route (404), or not with this method (405): any valid token may learn that

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        roles = self.roles_for(scope)
        if roles is None:
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            caller = await self.auth.caller(header)
            if not caller.roles & roles:
                raise Refused(
                    403,
                    "forbidden",
                    f"{caller.name} ({', '.join(sorted(caller.roles)) or 'no role'}) may not call this route; "
                    f"allowed: {', '.join(r for r in ROLES if r in roles)}",
                    caller,
                )
        except Refused as exc:
            self.refused.labels(exc.reason).inc()
            who = {"caller": exc.caller.name, "roles": sorted(exc.caller.roles), "via": exc.caller.via} if exc.caller else {}
            log.warning(
                "http request refused",
                status=exc.status,
                reason=exc.reason,
                method=scope["method"],
                path=scope["path"],
                client=client_of(scope),
                **who,
            )
            answer = refusal(exc.status, exc.detail, retry_after=JWKS_COOLDOWN_S if exc.status == 503 else None)
            if exc.status == 401:
                error = "" if exc.reason == "missing" else ', error="invalid_token"'
                answer.headers["WWW-Authenticate"] = f'Bearer realm="flexchain"{error}'
            await answer(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


def document(app: FastAPI) -> None:
    """Each route's roles in the OpenAPI document (`x-flexchain-roles`, the description, `security`,
    401/403), the bearer scheme in its components; the open routes are marked as needing nothing."""
    from fastapi.utils import create_model_field

    from flexchain.api import Refusal

    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        extra = dict(route.openapi_extra or {})
        if route.path in OPEN:
            extra["security"] = []
            route.openapi_extra = extra
            continue
        method = next(iter(sorted(route.methods or {"GET"})))
        roles = route_roles(method, route.path, extra.pop(ALSO, ()))
        extra[ROLES_KEY] = [r for r in ROLES if r in roles]
        extra["security"] = [{"bearer": []}]
        route.openapi_extra = extra
        note = f'Roles: {", ".join(extra[ROLES_KEY])} (README "Security").'
        route.description = f"{route.description}\n\n{note}" if route.description else note
        for status, response in UNAUTHENTICATED.items():
            route.responses = {**route.responses, status: {**response, "model": Refusal}}
            name = f"Response_{status}_{route.unique_id}"
            route.response_fields[int(status)] = create_model_field(name=name, type_=Refusal, mode="serialization")

    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SCHEME)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI, settings: Settings, refused: Any) -> None:
    """Authentication on `app` (raises AuthConfigError if nothing is configured); `refused` is the
    counter of refusals by reason."""
    authenticator = Authenticator(settings)
    for reason in REASONS:
        refused.labels(reason)
    document(app)
    app.add_middleware(Guard, fastapi=app, authenticator=authenticator, refused=refused)


# --- tokens for local runs ----------------------------------------------------------------------


def local_tokens(directory: Path) -> tuple[str, dict[str, str]]:
    """One API key per role for a local run (demo, bench), kept in `directory` (mode 0600) so a rerun
    reuses them: the key lines for `FLEXCHAIN_API_KEYS`, and role → token."""
    directory.mkdir(parents=True, exist_ok=True)
    tokens: dict[str, str] = {}
    for role in ROLES:
        path = directory / role
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(new_key() + "\n")
        tokens[role] = path.read_text().strip()
    lines = "\n".join(key_line(f"local-{role}", role, token) for role, token in tokens.items())
    return lines, tokens


def bearer(token: str | None = None) -> dict[str, str]:
    """The Authorization header for `token`, by default `FLEXCHAIN_TOKEN` from the environment."""
    import os

    token = token if token is not None else os.environ.get("FLEXCHAIN_TOKEN", "")
    return {"Authorization": f"Bearer {token}"} if token else {}


def ensure_local_auth(directory: Path) -> dict[str, str]:
    """For a local run (demo, bench): unless the environment configures authentication, keys per
    role kept in `directory`, their hashes in `FLEXCHAIN_API_KEYS` for the services this process
    starts, and the operator's token in `FLEXCHAIN_TOKEN` for its own calls. Returns role → token
    (empty if the environment already decides)."""
    import os

    if (
        os.environ.get("FLEXCHAIN_API_KEYS")
        or os.environ.get("FLEXCHAIN_API_KEYS_FILE")
        or os.environ.get("FLEXCHAIN_AUTH_JWKS_URL")
    ):
        return {}
    lines, tokens = local_tokens(directory)
    os.environ["FLEXCHAIN_API_KEYS"] = lines.replace("\n", ",")
    os.environ.setdefault("FLEXCHAIN_TOKEN", tokens[OPERATOR])
    return tokens
