"""Authentication and roles on every route of every service (README "Security"), generated from each
service's OpenAPI document: no token, an unknown key, a forged, expired or foreign JWT → 401; a valid
token whose roles the route does not list → 403; a role it lists gets through. Checked on the apps as
`serve` builds them (no broker: a refused request never reaches a handler, and an allowed one is
shown reaching the routes by a recording app behind the same guard and route table)."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter
from starlette.types import Receive, Scope, Send

from flexchain import auth
from flexchain.catalog import SERVICES
from flexchain.settings import Settings
from tests.support import offline_service

ISSUER = "https://id.example.test/realms/shop"
OPS = ["operator"]
HS_KEY = "a shared secret an attacker would try" * 2  # HS256 must never be accepted (key confusion)
TOKENS = {role: auth.new_key() for role in auth.ROLES}
KEYS = ",".join(auth.key_line(f"k-{r}", r, t) for r, t in TOKENS.items())


class Idp:
    """An identity provider: its signing key, its JWKS served over HTTP on a local port, its tokens."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "k1"
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        body = json.dumps({"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}).encode()

        provider = self
        self.fetches = 0

        class Jwks(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                self.send_response(200 if self.path == "/jwks" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks"

    def token(self, roles: list[str], *, key: Any = None, expires_in: int = 300, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": "flexchain", "sub": "alice", "iat": now, "exp": now + expires_in, "roles": roles, **claims}
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture(scope="module")
def idp() -> Iterator[Idp]:
    provider = Idp()
    yield provider
    provider.server.shutdown()


def _app(service: str, idp: Idp) -> Any:
    _, app = offline_service(
        service, flexchain_api_keys=KEYS, flexchain_auth_jwks_url=idp.url, flexchain_auth_issuer=ISSUER, flexchain_rate_limit=""
    )
    return app


def _routes(app: Any) -> Iterator[tuple[str, str, list[str] | None]]:
    """(method, concrete path, roles) of every operation of the OpenAPI document; roles None = open."""
    for path, ops in app.openapi()["paths"].items():
        concrete = path.replace("{", "x-").replace("}", "")
        for method, op in ops.items():
            yield method.upper(), concrete, op.get("x-flexchain-roles")


def _hdr(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_route_refuses_who_may_not_call_it(service: str, idp: Idp) -> None:
    app = _app(service, idp)
    client = TestClient(app, raise_server_exceptions=False)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad_tokens = {
        "no token": {},
        "not bearer": {"Authorization": f"Basic {TOKENS['operator']}"},
        "unknown key": _hdr(auth.new_key()),
        "forged JWT": _hdr(idp.token(["operator"], key=other)),
        "expired JWT": _hdr(idp.token(["operator"], expires_in=-120)),
        "other issuer": _hdr(idp.token(["operator"], iss="https://evil.example.test")),
        "other audience": _hdr(idp.token(["operator"], aud="someone-else")),
        "HS256 JWT": _hdr(jwt.encode({"iss": ISSUER, "aud": "flexchain", "sub": "x", "exp": 2**40, "roles": OPS}, HS_KEY)),
    }
    checked = 0
    for method, path, roles in _routes(app):
        if roles is None:
            assert path in auth.OPEN, f"{method} {path} is open but not a probe or /metrics"
            assert client.request(method, path).status_code not in (401, 403)
            continue
        assert set(roles) <= set(auth.ROLES) and "operator" in roles
        for why, headers in bad_tokens.items():
            r = client.request(method, path, headers=headers, json={})
            assert r.status_code == 401, f"{method} {path} with {why}: {r.status_code} {r.text}"
            assert r.headers["WWW-Authenticate"].startswith("Bearer"), (method, path, why)
        for role in set(auth.ROLES) - set(roles):
            for via, token in (("key", TOKENS[role]), ("JWT", idp.token([role]))):
                r = client.request(method, path, headers=_hdr(token), json={})
                assert r.status_code == 403, f"{method} {path} as {role} ({via}): {r.status_code} {r.text}"
                assert role in r.json()["detail"]
        checked += 1
    assert checked >= 10, f"only {checked} protected routes found in {service}'s OpenAPI"


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_route_lets_the_roles_it_lists_through(service: str, idp: Idp) -> None:
    """The guard and the route table of the real app, in front of an app that records what reaches it."""
    app = _app(service, idp)
    reached: list[tuple[str, str]] = []

    async def recorder(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    settings = Settings(flexchain_api_keys=KEYS, flexchain_auth_jwks_url=idp.url, flexchain_auth_issuer=ISSUER)
    counter = Counter("refused", "x", ["reason"], registry=CollectorRegistry())
    guard = auth.Guard(recorder, fastapi=app, authenticator=auth.Authenticator(settings), refused=counter)
    client = TestClient(guard)
    for method, path, roles in _routes(app):
        for role in roles or []:
            for token in (TOKENS[role], idp.token([role])):
                reached.clear()
                r = client.request(method, path, headers=_hdr(token))
                assert r.status_code == 204, f"{method} {path} as {role}: {r.status_code} {r.text}"
                assert reached == [(method, path)]


def test_the_role_table() -> None:
    """operator everything; merchant the business, not /internal; service only what a route allows it
    (placing, paying, cancelling and reading an order); reader every GET but /internal."""
    assert auth.route_roles("POST", "/internal/rebuild") == {"operator"}
    assert auth.route_roles("GET", "/internal/partitions") == {"operator"}
    assert auth.route_roles("POST", "/skus") == {"operator", "merchant"}
    assert auth.route_roles("GET", "/skus/{sku}") == {"operator", "merchant", "reader"}
    assert auth.route_roles("POST", "/orders", also=["service"]) == {"operator", "merchant", "service"}


def test_order_routes_open_to_a_shop_front() -> None:
    _, app = offline_service("order", flexchain_api_keys=KEYS)
    doc = app.openapi()
    ops = [(m.upper(), p, op) for p, methods in doc["paths"].items() for m, op in methods.items()]
    service_routes = sorted(f"{m} {p}" for m, p, op in ops if "service" in op.get("x-flexchain-roles", []))
    assert service_routes == [
        "GET /orders/{order_id}",
        "POST /orders",
        "POST /orders/{order_id}/cancellation",
        "POST /orders/{order_id}/payment",
    ]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"]["/orders/{order_id}/refunds"]["post"]["security"] == [{"bearer": []}]
    assert doc["paths"]["/health"]["get"]["security"] == []


def test_roles_from_a_nested_claim(idp: Idp) -> None:
    """Keycloak puts realm roles under `realm_access.roles`; roles nobody defined are ignored."""
    settings = Settings(
        flexchain_api_keys=None,
        flexchain_auth_jwks_url=idp.url,
        flexchain_auth_issuer=ISSUER,
        flexchain_auth_roles_claim="realm_access.roles",
    )
    a = auth.Authenticator(settings)
    caller = a.jwt(idp.token([], realm_access={"roles": ["reader", "offline_access"]}))
    assert caller == auth.Caller("alice", frozenset({"reader"}), "jwt")


def test_a_refusal_is_logged_and_counted_without_the_token(idp: Idp, caplog: pytest.LogCaptureFixture) -> None:
    _, app = offline_service("inventory", flexchain_api_keys=KEYS, flexchain_rate_limit="")
    client = TestClient(app)
    secret = auth.new_key()
    caplog.set_level(logging.WARNING)
    assert client.post("/skus", json={}, headers=_hdr(secret)).status_code == 401
    assert client.post("/skus", json={}, headers=_hdr(TOKENS["reader"])).status_code == 403
    text = caplog.text + "".join(str(r.msg) for r in caplog.records)
    assert secret not in text and TOKENS["reader"] not in text
    metrics = client.get("/metrics").text
    assert 'flexchain_inventory_http_refused_total{reason="unknown_key"} 1.0' in metrics
    assert 'flexchain_inventory_http_refused_total{reason="forbidden"} 1.0' in metrics


def test_a_service_without_any_authentication_refuses_to_start() -> None:
    with pytest.raises(auth.AuthConfigError, match="no authentication configured"):
        offline_service("inventory", flexchain_api_keys=None, flexchain_api_keys_file=None)
    with pytest.raises(auth.AuthConfigError, match="set FLEXCHAIN_AUTH_ISSUER"):
        offline_service("inventory", flexchain_api_keys=None, flexchain_auth_jwks_url="file:///nowhere")


def test_key_lines_are_checked(tmp_path: Path) -> None:
    with pytest.raises(auth.AuthConfigError, match="line 2: unknown role 'admin'"):
        auth.parse_keys("a:reader:sha256:" + "0" * 64 + "\nb:admin:sha256:" + "0" * 64, "keys")
    with pytest.raises(auth.AuthConfigError, match="line 1: expected"):
        auth.parse_keys("shop:service:" + uuid.uuid4().hex, "keys")
    keys = tmp_path / "keys"
    line = auth.key_line("shop", "service", TOKENS["service"])
    keys.write_text(f"# the shop front's key\n{line}\n")
    a = auth.Authenticator(Settings(flexchain_api_keys=None, flexchain_api_keys_file=keys))
    assert a.api_key(TOKENS["service"]) == auth.Caller("shop", frozenset({"service"}), "api-key")


def test_token_new_prints_a_key_and_the_line_that_admits_it() -> None:
    from typer.testing import CliRunner

    from flexchain.cli import app

    out = CliRunner().invoke(app, ["token", "new", "--name", "shop-front", "--role", "service", "--json"])
    assert out.exit_code == 0, out.output
    made = json.loads(out.output)
    assert made["key"].startswith("fxk_") and made["key"] not in made["line"]
    a = auth.Authenticator(Settings(flexchain_api_keys=made["line"]))
    assert a.api_key(made["key"]) == auth.Caller("shop-front", frozenset({"service"}), "api-key")
    bad = CliRunner().invoke(app, ["token", "new", "--name", "x", "--role", "admin"])
    assert bad.exit_code != 0 and "unknown role 'admin'" in bad.output


def test_made_up_key_ids_do_not_become_a_flood_of_jwks_fetches(idp: Idp) -> None:
    """A token naming a key id the JWKS does not hold refetches the set at most once per cooldown."""
    a = auth.Authenticator(Settings(flexchain_api_keys=None, flexchain_auth_jwks_url=idp.url, flexchain_auth_issuer=ISSUER))
    a.jwt(idp.token(["reader"]))  # the set is fetched and cached
    before = idp.fetches
    for i in range(20):
        forged = jwt.encode({"sub": "x"}, idp.key, algorithm="RS256", headers={"kid": f"nope-{i}"})
        with pytest.raises(auth.Refused) as refused:
            a.jwt(forged)
        assert refused.value.status == 401
    assert idp.fetches - before <= 1, f"{idp.fetches - before} JWKS fetches for 20 unknown key ids"
    assert a.jwt(idp.token(["reader"])).roles == {"reader"}  # the known key still works


def test_an_unreachable_identity_provider_is_a_503_not_a_bad_token() -> None:
    from flexchain.procs import free_port

    _, app = offline_service(
        "inventory",
        flexchain_api_keys=KEYS,
        flexchain_auth_jwks_url=f"http://127.0.0.1:{free_port()}/jwks",  # nothing listens there
        flexchain_auth_issuer=ISSUER,
    )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode({"sub": "x"}, other, algorithm="RS256", headers={"kid": "k1"})
    r = TestClient(app).get("/skus", headers=_hdr(token))
    assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, r.text
    assert "JWKS is unreachable" in r.json()["detail"]
    assert TestClient(app).get("/internal/partitions", headers=_hdr(TOKENS["operator"])).status_code == 200  # keys still work
