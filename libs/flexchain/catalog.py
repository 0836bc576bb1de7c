"""The services of the suite and every message type they define.

One place that names the services: schema generation, the AsyncAPI document, the CLI (`serve`) and
the test helpers read it. A service is a package `services/<name>/` with `messages.py`
(`MESSAGES`), `domain.py`, `policy.py`, `app.py` (`main`, `SERVICE`, `HTTP_PORT`) and `api.py`.
"""

from __future__ import annotations

import importlib

from flexchain.messages import Message
from flexchain.serde import Upcaster, declared_upcasters

# name → default HTTP port
SERVICES: dict[str, int] = {"order": 8081, "inventory": 8082, "presale": 8083, "commission": 8084, "loyalty": 8085}


def available_services() -> list[str]:
    """The services whose code exists in this checkout (the suite grows issue by issue)."""
    out = []
    for name in SERVICES:
        try:
            importlib.import_module(f"services.{name}.app")
        except ModuleNotFoundError:
            continue
        out.append(name)
    return out


def all_messages() -> list[type[Message]]:
    modules = ["flexchain.ticks"] + [f"services.{name}.messages" for name in SERVICES]
    out: list[type[Message]] = []
    for mod in modules:
        try:
            out += importlib.import_module(mod).MESSAGES
        except ModuleNotFoundError:
            continue
    return list(dict.fromkeys(out))


def all_upcasters() -> list[Upcaster]:
    """Every service's upcasters (``UPCASTERS`` next to its messages): how old records are read."""
    return declared_upcasters(all_messages())
