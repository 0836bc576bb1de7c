"""notify's test kit: a local HTTP sink that records every request (each path can fail for a while, always,
or answer slowly) and sample derived events written with the project's codec."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import types
import typing
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from flexchain.catalog import all_messages
from flexchain.messages import Envelope, Enveloped, Message

BY_NAME = {cls.__name__: cls for cls in all_messages()}


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def doc(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Behaviour:
    fail_until: float = 0.0  # answer 503 until this monotonic time
    always: int = 0  # answer this status on every request (0 = no)
    delay: float = 0.0  # seconds before answering


@dataclass
class Sink:
    """`with Sink() as sink:` — `sink.url(path)`; `sink.requests` (every request, in arrival order)."""

    requests: list[Request] = field(default_factory=list)
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Sink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                b = sink.behaviour.get(self.path, Behaviour())
                if b.delay:
                    time.sleep(b.delay)
                status = b.always or (503 if time.monotonic() < b.fail_until else 200)
                with sink.lock:
                    sink.requests.append(Request(self.path, dict(self.headers.items()), body, status, time.monotonic()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def ok(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path and r.status == 200]

    def all(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


def sample(tp: Any, name: str, n: int) -> Any:
    """A plausible value of an annotated type (the payload of a test event)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return None
    if origin in (list, tuple):
        return []
    if origin is dict:
        return {}
    if tp is str:
        return f"{name}-{n}"
    if tp is bool:
        return False
    if tp is int:
        return 1_700_000_000_000 + n if name.endswith("_at") or name.endswith("until") else 7 + n
    if tp is Decimal:
        return Decimal("0.125")
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: sample(hints[f.name], f.name, n) for f in dataclasses.fields(tp)})
    raise TypeError(tp)


def event(type_name: str, n: int, event_id: str | None = None) -> Enveloped:
    cls = BY_NAME[type_name]
    msg: Message = sample(cls, type_name, n)
    eid = event_id or str(uuid.uuid4())
    return Enveloped(
        envelope=Envelope(
            event_id=eid,
            event_type=type_name,
            aggregate_id=msg.key,
            aggregate_version=n,
            business_time=1_700_000_000_000 + n,
            correlation_id=f"order-{n}",
            causation_id=None,
            producer=cls.SERVICE,
        ),
        message=msg,
    )
