"""How a service declares itself to the kernel (``PACKAGE`` in its package's ``__init__.py``).

Apart from :mod:`flexchain.catalog`, which discovers the declarations: a service's ``__init__`` imports
this while the catalogue may be scanning, so nothing here imports a service or the catalogue.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from flexchain.messages import Message

if TYPE_CHECKING:
    from flexchain.access import Access


@dataclass(frozen=True)
class ServicePackage:
    """What a service declares about itself in its package's ``__init__.py``: its name (its topics are
    ``<name>.commands`` …, its principal ``User:<name>``), its default HTTP port, its package
    (``__name__``) and the entities ``flexchain as-of`` may ask it for: kind → route, ``{}`` standing
    for the entity's id (``{"sku": "/skus/{}", "skus": "/skus"}``; R-X-4's ``?as_of=`` routes). Everything
    else is read from its modules on demand, so discovery stays cheap."""

    name: str
    http_port: int
    package: str
    entities: dict[str, str] = field(default_factory=dict, hash=False)

    def module(self, name: str) -> ModuleType:
        return importlib.import_module(f"{self.package}.{name}")

    def app(self) -> ModuleType:
        """``app.py``: ``main()`` runs an instance, ``declared()`` is its ServiceDef and read model."""
        return self.module("app")

    def declared(self) -> tuple[Any, Any]:
        svc, view = self.app().declared()
        return svc, view

    def messages(self) -> list[type[Message]]:
        return list(self.module("messages").MESSAGES)

    def commands_and_events(self) -> tuple[tuple[type[Message], ...], tuple[type[Message], ...]]:
        mod = self.module("messages")
        return tuple(getattr(mod, "COMMANDS", ())), tuple(getattr(mod, "EVENTS", ()))


@dataclass(frozen=True)
class EdgePackage:
    """An edge service's declaration (``PACKAGE = EdgePackage(...)`` in its ``__init__.py``): a process
    at the edge of the suite that reads the core services' events at least once and owns no event log,
    only its dead letters and what ``flexchain dlq redrive`` sends back (``<name>.dlq``,
    ``<name>.redrive``) — e.g. the optional notifier. Not one of the exactly-once core services: the
    catalogue lists these apart (``flexchain.catalog.EDGES``), so code that iterates the core services
    (processors, routers, snapshots) never meets one. Its ``app`` module has ``main()`` (``flexchain
    serve <name>``) and ``access(prefix)``: the :class:`~flexchain.access.Access` of its principal
    ``User:<name>``, from which its ACLs follow."""

    name: str
    http_port: int
    package: str

    def module(self, name: str) -> ModuleType:
        return importlib.import_module(f"{self.package}.{name}")

    def app(self) -> ModuleType:
        return self.module("app")

    def main(self) -> None:
        self.app().main()

    def topics(self) -> dict[str, str]:
        """Its own topics, unprefixed: ``dlq`` (what it could not deliver) and ``redrive`` (sent back)."""
        return {kind: f"{self.name}.{kind}" for kind in ("dlq", "redrive")}

    def access(self, prefix: str = "") -> Access:
        found: Access = self.app().access(prefix)
        return found
