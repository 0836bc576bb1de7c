"""The services of the suite, discovered: the kernel names none of them.

A service is a package with a ``PACKAGE = ServicePackage(...)`` in its ``__init__.py`` (name and HTTP
port) beside ``messages.py`` (``MESSAGES``, ``COMMANDS``, ``EVENTS``) and ``app.py`` (``main``, and
``declared()``: its ServiceDef and read model, from which its routes and the topics it reads follow).
The packages scanned are ``FLEXCHAIN_SERVICE_PACKAGES`` (comma-separated, default ``services``): every
sub-package with a ``PACKAGE`` is a service, ordered by port. Schema generation, the AsyncAPI
document, the ACLs, the CLI (``serve``, ``topics``, the ops commands and their entity kinds) and
``scripts/gen-deploy.py`` (compose, Prometheus, Kubernetes, the Dockerfile's ports) read it, so adding a
service is adding its folder.

``PACKAGES`` / ``SERVICES`` are the exactly-once core services alone (a :class:`ServicePackage`).
A package that declares an :class:`EdgePackage` instead (the optional notifier) is an edge service,
listed in ``EDGES``: served, granted its ACLs, given its topics and deployed from its declaration too,
but never iterated as a core service (it has no processor, router or event log).
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from flexchain.declaration import EdgePackage, ServicePackage
from flexchain.messages import Message
from flexchain.serde import Upcaster, declared_upcasters
from flexchain.ticks import MESSAGES as CLOCK_MESSAGES

DEFAULT_PACKAGES = "services"
__all__ = [
    "EDGES",
    "PACKAGES",
    "SERVICES",
    "EdgePackage",
    "ServicePackage",
    "all_messages",
    "all_upcasters",
    "available_services",
    "discover",
    "discover_all",
]


def configured_packages() -> list[str]:
    raw = os.environ.get("FLEXCHAIN_SERVICE_PACKAGES") or DEFAULT_PACKAGES
    return [p.strip() for p in raw.split(",") if p.strip()]


def discover_all(packages: list[str]) -> tuple[dict[str, ServicePackage], dict[str, EdgePackage]]:
    """Name → declaration of every core service and of every edge service found in `packages`, each
    ordered by HTTP port (names and ports unique across both)."""
    found: dict[str, ServicePackage | EdgePackage] = {}
    for root in packages:
        parent = importlib.import_module(root)
        for info in pkgutil.iter_modules(parent.__path__, prefix=f"{root}."):
            if not info.ispkg:
                continue
            declared = getattr(importlib.import_module(info.name), "PACKAGE", None)
            if not isinstance(declared, ServicePackage | EdgePackage):
                continue  # a package that declares no service
            if declared.name in found:
                raise RuntimeError(f"two services named {declared.name!r}: {found[declared.name].package}, {info.name}")
            found[declared.name] = declared
    ports = [d.http_port for d in found.values()]
    if len(set(ports)) != len(ports):
        raise RuntimeError(f"two services with one HTTP port: {sorted(ports)}")
    ordered = sorted(found.items(), key=lambda kv: kv[1].http_port)
    core = {name: d for name, d in ordered if isinstance(d, ServicePackage)}
    edges = {name: d for name, d in ordered if isinstance(d, EdgePackage)}
    return core, edges


def discover(packages: list[str]) -> dict[str, ServicePackage]:
    """Name → declaration of every core service found in `packages`, ordered by HTTP port."""
    return discover_all(packages)[0]


PACKAGES, EDGES = discover_all(configured_packages())

# name → default HTTP port
SERVICES: dict[str, int] = {name: p.http_port for name, p in PACKAGES.items()}


def available_services() -> list[str]:
    """The services of this checkout (every one discovered has its code: kept for the callers)."""
    return list(SERVICES)


def all_messages() -> list[type[Message]]:
    out: list[type[Message]] = list(CLOCK_MESSAGES)
    for p in PACKAGES.values():
        out += p.messages()
    return list(dict.fromkeys(out))


def all_upcasters() -> list[Upcaster]:
    """Every service's upcasters (``UPCASTERS`` next to its messages): how old records are read."""
    return declared_upcasters(all_messages())
