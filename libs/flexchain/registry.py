"""The HTTP client of the schema registry, built from :class:`flexchain.settings.RegistrySettings`.

One way in: the URL carries no credentials (the settings refuse one that does, so a URL can always be
logged); basic auth comes from SCHEMA_REGISTRY_USER / SCHEMA_REGISTRY_PASSWORD, TLS is checked
against SCHEMA_REGISTRY_CA (else the system's CAs), and SCHEMA_REGISTRY_CERT / SCHEMA_REGISTRY_KEY
give a client certificate for mutual TLS. Both the serde's `RegistryClient` (services, ops commands)
and `flexchain.subscribe.RegistrySchemas` (subscribers) use it.

:func:`explain` turns what httpx raises into a message that names the registry, the status or the TLS
failure and the setting to check — never the password (httpx sends it in a header, never in the URL).
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Any

import httpx

from flexchain.settings import RegistrySettings, redact_url


class RegistryConfigError(ValueError):
    """The registry's TLS files cannot be used (missing, unreadable, a key that does not fit)."""


def tls(settings: RegistrySettings) -> ssl.SSLContext | bool:
    """httpx's `verify`: True (the system's CAs) unless a CA bundle or a client certificate is set."""
    ca, cert, key = settings.schema_registry_ca, settings.schema_registry_cert, settings.schema_registry_key
    if key is not None and cert is None:
        raise RegistryConfigError("SCHEMA_REGISTRY_KEY is set without SCHEMA_REGISTRY_CERT")
    if ca is None and cert is None:
        return True
    try:
        ctx = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise RegistryConfigError(f"SCHEMA_REGISTRY_CA {ca}: not a readable PEM CA bundle ({exc})") from exc
    if cert is not None:
        try:
            ctx.load_cert_chain(str(cert), str(key) if key is not None else None)
        except (OSError, ssl.SSLError) as exc:
            raise RegistryConfigError(
                f"SCHEMA_REGISTRY_CERT {cert} / SCHEMA_REGISTRY_KEY {key}: not a usable certificate and key ({exc})"
            ) from exc
    return ctx


def http_client(settings: RegistrySettings, timeout: float = 10.0) -> httpx.Client:
    """An httpx client for the registry at SCHEMA_REGISTRY_URL, with its credentials and TLS."""
    if not settings.schema_registry_url:
        raise ValueError("SCHEMA_REGISTRY_URL is not set")
    auth: tuple[str, str] | None = None
    if settings.schema_registry_user is not None or settings.schema_registry_password is not None:
        password = settings.schema_registry_password.get_secret_value() if settings.schema_registry_password else ""
        auth = (settings.schema_registry_user or "", password)
    return httpx.Client(base_url=settings.schema_registry_url.rstrip("/"), auth=auth, verify=tls(settings), timeout=timeout)


def explain(exc: httpx.HTTPError, user: str | None = None) -> str:
    """What went wrong talking to the registry, for a log line or an error: no secret in it."""
    try:
        url = redact_url(str(exc.request.url))
    except RuntimeError:  # an error raised before any request
        url = "the schema registry"
    if isinstance(exc, httpx.HTTPStatusError):
        status = f"{exc.response.status_code} {exc.response.reason_phrase}".strip()
        if exc.response.status_code == 401:
            who = f"user {user!r}" if user else "no credentials"
            return f"schema registry {url}: {status} ({who}): check SCHEMA_REGISTRY_USER / SCHEMA_REGISTRY_PASSWORD"
        if exc.response.status_code == 403:
            return f"schema registry {url}: {status}: user {user!r} is not allowed this"
        return f"schema registry {url}: {status}"
    text = str(exc) or type(exc).__name__
    if is_tls(exc):
        return (
            f"schema registry {url}: TLS failed ({text}): check SCHEMA_REGISTRY_CA (the server's CA) and, if it "
            "asks for a client certificate, SCHEMA_REGISTRY_CERT / SCHEMA_REGISTRY_KEY"
        )
    return f"schema registry {url}: {type(exc).__name__}: {text}"


def is_tls(exc: BaseException) -> bool:
    """A TLS failure (bad CA, no client certificate): retrying does not help."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLError) or "SSL" in str(cur) or "certificate" in str(cur).lower():
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def clear(exc: httpx.HTTPError, user: str | None = None) -> httpx.HTTPError:
    """The same kind of httpx error, its message replaced by :func:`explain`'s (callers still catch
    httpx.HTTPStatusError / TransportError as before)."""
    message = explain(exc, user)
    new: httpx.HTTPError
    if isinstance(exc, httpx.HTTPStatusError):
        new = httpx.HTTPStatusError(message, request=exc.request, response=exc.response)
    elif isinstance(exc, httpx.TransportError):
        kwargs: dict[str, Any] = {}
        with contextlib.suppress(RuntimeError):
            kwargs["request"] = exc.request
        new = type(exc)(message, **kwargs)
    else:
        new = httpx.HTTPError(message)
    return new
