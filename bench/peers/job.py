"""The peers' job in Python: what `InventoryPeer.java` does, for the quixstreams and faust peers.

Commands RegisterSku, ReceiveStock and ReserveStock in flexchain's wire format (magic byte 0, 4-byte
schema id, Avro body) → per-sku stock → one StockReserved or ReservationRejected per ReserveStock,
encoded with flexchain's schemas and schema ids, with the envelope flexchain's processor writes
(event id uuid5(namespace, "<scope>/<command id>/0"), causation = command id, the command's business
time and correlation id, a version per sku). Only fastavro and the standard library: this module is
imported by the peers in their own virtualenvs, without flexchain. The schemas and their ids come
from the config file the bench writes (:func:`bench.peers.harness.write_config`, from flexchain's Codec).

The state of a sku is a JSON-friendly list ``[registered, received, reserved, version, warehouse]``.
Unlike the service, the peers keep no per-order reservations (so no "order already holds a
reservation" check) and no command-id dedup: what a redelivered command does is what the peer's
exactly-once gives.
"""

from __future__ import annotations

import io
import json
import struct
import uuid
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

COMMANDS = ("RegisterSku", "ReceiveStock", "ReserveStock")
ANSWERS = ("StockReserved", "ReservationRejected")
State = list[Any]  # [registered, received, reserved, version, warehouse]
_HEADER = struct.Struct(">bI")


def load_config(path: str | Path) -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return cfg


def new_state() -> State:
    return [False, 0, 0, 0, ""]


class Job:
    """Decode a command, apply it to its sku's state, encode the answer."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        schemas = cfg["schemas"]
        self.readers: dict[int, tuple[str, Any]] = {}
        self.writers: dict[str, tuple[bytes, Any]] = {}
        self.type_of_id: dict[bytes, bytes] = {}
        for name, spec in schemas.items():
            parsed = parse_schema(spec["schema"])
            sid = int(spec["id"])
            if name in COMMANDS:
                self.readers[sid] = (name, parsed)
            if name in ANSWERS:
                self.writers[name] = (_HEADER.pack(0, sid), parsed)
            self.type_of_id[struct.pack(">I", sid)] = name.encode()
        self.namespace = uuid.UUID(cfg["id_namespace"])
        self.scope = str(cfg["id_scope"])
        self.producer = str(cfg["producer"])

    def command(self, value: bytes | None) -> tuple[str, dict[str, Any]] | None:
        """(type, record) of a command of the job, or None for anything else."""
        if value is None or len(value) < 5 or value[0] != 0:
            return None
        _, sid = _HEADER.unpack_from(value)
        found = self.readers.get(sid)
        if found is None:
            return None
        name, parsed = found
        record = schemaless_reader(io.BytesIO(value[5:]), parsed)
        assert isinstance(record, dict)
        return name, record

    def type_header(self, value: bytes) -> bytes:
        """The `type` header of an answer this job encoded."""
        return self.type_of_id.get(value[1:5], b"")

    def apply(self, state: State | None, name: str, cmd: dict[str, Any]) -> tuple[State | None, bytes | None]:
        """(the sku's new state or None when unchanged, the encoded answer or None)."""
        st = list(state) if state is not None else new_state()
        if name == "RegisterSku":
            if st[0]:
                return None, None
            st[0] = True
            return st, None
        if name == "ReceiveStock":
            if not st[0] or cmd["qty"] <= 0:
                return None, None
            st[1] += cmd["qty"]
            st[4] = cmd["warehouse"]
            return st, None
        return self._reserve(st, cmd)

    def _reserve(self, st: State, cmd: dict[str, Any]) -> tuple[State | None, bytes]:
        sku, order, qty = cmd["sku"], cmd["order_id"], cmd["qty"]
        registered = bool(st[0])
        available = st[1] - st[2] if registered else 0
        answer: dict[str, Any]
        if not registered or qty <= 0 or qty > available:
            kind = "ReservationRejected"
            if not registered:
                reason = f"unknown sku {sku}"
            elif qty <= 0:
                reason = "qty must be positive"
            else:
                reason = f"only {available} available, {qty} requested"
            answer = {"sku": sku, "order_id": order, "qty": qty, "available": available, "reason": reason}
        else:
            kind = "StockReserved"
            answer = {
                "sku": sku,
                "order_id": order,
                "qty": qty,
                "allocations": [{"warehouse": st[4], "qty": qty}],
                "gift_rule_id": cmd.get("gift_rule_id"),
            }
            st[2] += qty
        st[3] += 1
        env = cmd["envelope"]
        cause = env["event_id"]
        answer["envelope"] = {
            "event_id": str(uuid.uuid5(self.namespace, f"{self.scope}/{cause}/0")),
            "event_type": kind,
            "aggregate_id": sku,
            "aggregate_version": st[3],
            "business_time": env["business_time"],
            "correlation_id": env["correlation_id"],
            "causation_id": cause,
            "producer": self.producer,
        }
        header, parsed = self.writers[kind]
        buf = io.BytesIO()
        buf.write(header)
        schemaless_writer(buf, parsed, answer)
        return (st if registered else None), buf.getvalue()
