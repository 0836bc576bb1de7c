"""How a service declares itself to the kernel (``PACKAGE`` in its package's ``__init__.py``).

Apart from :mod:`flexchain.catalog`, which discovers the declarations: a service's ``__init__`` imports
this while the catalogue may be scanning, so nothing here imports a service or the catalogue.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from flexchain.messages import Message


@dataclass(frozen=True)
class ServicePackage:
    """What a service declares about itself in its package's ``__init__.py``: its name (its topics are
    ``<name>.commands`` …, its principal ``User:<name>``), its default HTTP port and its package
    (``__name__``). Everything else is read from its modules on demand, so discovery stays cheap."""

    name: str
    http_port: int
    package: str

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
