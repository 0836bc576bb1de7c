"""The services of the suite, discovered: the kernel names none of them.

A service is a package with a ``PACKAGE = ServicePackage(...)`` in its ``__init__.py`` (name and HTTP
port) beside ``messages.py`` (``MESSAGES``, ``COMMANDS``, ``EVENTS``) and ``app.py`` (``main``, and
``declared()``: its ServiceDef and read model, from which its routes and the topics it reads follow).
The packages scanned are ``FLEXCHAIN_SERVICE_PACKAGES`` (comma-separated, default ``services``): every
sub-package with a ``PACKAGE`` is a service, ordered by port. Schema generation, the AsyncAPI
document, the ACLs, the CLI (``serve``, ``topics``, the ops commands) and ``scripts/gen-deploy.py``
(compose, Prometheus, Kubernetes) read it, so adding a service is adding its folder.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from flexchain.declaration import ServicePackage
from flexchain.messages import Message
from flexchain.serde import Upcaster, declared_upcasters
from flexchain.ticks import MESSAGES as CLOCK_MESSAGES

DEFAULT_PACKAGES = "services"
__all__ = ["PACKAGES", "SERVICES", "ServicePackage", "all_messages", "all_upcasters", "available_services", "discover"]


def configured_packages() -> list[str]:
    raw = os.environ.get("FLEXCHAIN_SERVICE_PACKAGES") or DEFAULT_PACKAGES
    return [p.strip() for p in raw.split(",") if p.strip()]


def discover(packages: list[str]) -> dict[str, ServicePackage]:
    """Name → declaration of every service found in `packages`, ordered by HTTP port."""
    found: dict[str, ServicePackage] = {}
    for root in packages:
        parent = importlib.import_module(root)
        for info in pkgutil.iter_modules(parent.__path__, prefix=f"{root}."):
            if not info.ispkg:
                continue
            declared = getattr(importlib.import_module(info.name), "PACKAGE", None)
            if not isinstance(declared, ServicePackage):
                continue  # a package that is not a core service (e.g. the optional notifier)
            if declared.name in found:
                raise RuntimeError(f"two services named {declared.name!r}: {found[declared.name].package}, {info.name}")
            found[declared.name] = declared
    ports = [d.http_port for d in found.values()]
    if len(set(ports)) != len(ports):
        raise RuntimeError(f"two services with one HTTP port: {sorted(ports)}")
    return dict(sorted(found.items(), key=lambda kv: kv[1].http_port))


PACKAGES: dict[str, ServicePackage] = discover(configured_packages())

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
