"""The AsyncAPI 3.0 document of every flexchain topic and message, generated from ``schemas/`` and
the catalogue, for teams that subscribe from other systems: topic names, keys, partitions,
retention, the Avro schema of each message (Confluent wire format) and what the records mean.

`flexchain asyncapi` prints it (or writes it with ``--out``). No copy is committed: the deployment
test (``tests/deploy/test_asyncapi.py``) generates it and validates it with the AsyncAPI project's
own parser (@asyncapi/parser with its Avro schema parser).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flexchain.catalog import PACKAGES, SERVICES
from flexchain.kafka import topic_names
from flexchain.messages import Message
from flexchain.schemas import SCHEMAS_DIR, load_json, local_schema_id, schema_path, self_contained

ASYNCAPI_VERSION = "3.0.0"
AVRO_FORMAT = "application/vnd.apache.avro;version=1.9.0"
KAFKA_BINDING = "0.5.0"
CONTENT_TYPE = "application/vnd.apache.avro+binary"  # Confluent wire format: 0x00, 4-byte schema id, Avro body
CLOCK_TOPIC = "clock.ticks"

WIRE = (
    "Values are Avro in the Confluent wire format: byte 0, a 4-byte big-endian schema id, the Avro body. "
    "With a schema registry each type is registered under its full name (`flexchain.<service>.<Type>`, "
    "RecordNameStrategy); without one the id is the CRC-32 (31 bits) of the schema's canonical form "
    "(given per message as `x-flexchain-local-schema-id`). The `type` header names the message type. "
    "Every record is `{envelope, ...payload}`; the envelope carries event_id, event_type, aggregate_id, "
    "aggregate_version, business_time (ms since the epoch, UTC), correlation_id (the order id through "
    "a whole flow), causation_id and producer. Money is integer cents (fen); rates are decimal strings."
)
READING = (
    "Read with isolation.level=read_committed (records are written in Kafka transactions, exactly once "
    "per cause); use the envelope's event_id to drop duplicates on your side; order is guaranteed per key."
)


def _messages(service: str) -> tuple[tuple[type[Message], ...], tuple[type[Message], ...]]:
    return PACKAGES[service].commands_and_events()


def _inline_envelope(schema: dict[str, Any], root: Path) -> dict[str, Any]:
    """The .avsc with the shared envelope record inlined (names stay short, namespaces apart, as Avro
    writes them and as the AsyncAPI Avro schema format requires); the same schema a registry stores."""
    return self_contained(schema, root)


def _message(cls: type[Message], root: Path) -> dict[str, Any]:
    schema = load_json(schema_path(cls, root))
    doc = schema.get("doc", "")
    key = f"`{cls.KEY}`" if cls.KEY else "none: an empty key (the command is broadcast to every partition)"
    return {
        "name": cls.__name__,
        "title": f"{cls.SERVICE}.{cls.__name__}",
        "summary": doc or cls.__name__,
        "description": f"{doc}\n\nRecord key: {key}. Avro record `{cls.full_name()}`.".strip(),
        "contentType": CONTENT_TYPE,
        "headers": {
            "type": "object",
            "properties": {"type": {"type": "string", "const": cls.__name__, "description": "the message type"}},
            "required": ["type"],
        },
        "payload": {"schemaFormat": AVRO_FORMAT, "schema": _inline_envelope(schema, root)},
        "correlationId": {
            "description": "the order id (or the aggregate id) that threads a flow through every service",
            "location": "$message.payload#/envelope/correlation_id",
        },
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": f"UTF-8; {key}"},
                "schemaIdLocation": "payload",
                "schemaIdPayloadEncoding": "confluent",
                "schemaLookupStrategy": "RecordNameStrategy",
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "x-flexchain-local-schema-id": local_schema_id(schema, root),
    }


def _channel(topic: str, description: str, messages: list[str], partitions: int, replicas: int, retention: int) -> dict[str, Any]:
    return {
        "address": topic,
        "title": topic,
        "description": description,
        "messages": {m.split(".", 1)[1]: {"$ref": f"#/components/messages/{m}"} for m in messages},
        "bindings": {
            "kafka": {
                "topic": topic,
                "partitions": partitions,
                "replicas": replicas,
                "topicConfiguration": {"cleanup.policy": ["delete"], "retention.ms": retention},
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _keys(classes: tuple[type[Message], ...]) -> str:
    keys = sorted({c.KEY for c in classes if c.KEY})
    return ", ".join(f"`{k}`" for k in keys) or "none"


def document(partitions: int = 6, replicas: int = 3, root: Path = SCHEMAS_DIR) -> dict[str, Any]:
    """The AsyncAPI document (a JSON-able dict). `partitions`/`replicas` as deployed (deploy/k8s)."""
    from flexchain.ticks import MESSAGES as CLOCK_MESSAGES

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}

    def add(classes: tuple[type[Message], ...]) -> list[str]:
        ids = []
        for cls in classes:
            mid = f"{cls.SERVICE}.{cls.__name__}"
            messages[mid] = _message(cls, root)
            ids.append(mid)
        return ids

    def operation(op_id: str, action: str, channel: str, ids: list[str], summary: str) -> None:
        operations[op_id] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": summary,
            "messages": [{"$ref": f"#/channels/{channel}/messages/{m.split('.', 1)[1]}"} for m in ids],
        }

    for service in SERVICES:
        commands, events = _messages(service)
        names = topic_names(service)
        ev_ids, cmd_ids = add(events), add(commands)
        ch = f"{service}-events"
        channels[ch] = _channel(
            names["events"],
            f"The event store of the {service} service: every state change it decided, never deleted "
            f"(retention unlimited). Key: the aggregate id ({_keys(events)}), so all events of one aggregate "
            f"are in one partition, in order. Partition p of `{names['events']}` is written by the instance "
            f"that owns partition p of `{names['commands']}`. {READING} {WIRE}",
            ev_ids,
            partitions,
            replicas,
            -1,
        )
        operation(f"receive-{service}-events", "receive", ch, ev_ids, f"Subscribe to what the {service} service decided")
        ch = f"{service}-commands"
        channels[ch] = _channel(
            names["commands"],
            f"Commands to the {service} service (its HTTP API validates and publishes here; other systems "
            f"should prefer the API). Key: the aggregate id ({_keys(commands)}); a command with an empty key "
            f"is meant for every partition. The envelope's event_id is the command id: a repeated id is "
            f"applied once. A refused command yields a `...CommandRejected` event. {WIRE}",
            cmd_ids,
            partitions,
            replicas,
            7 * 24 * 3600 * 1000,
        )
        operation(f"send-{service}-commands", "send", ch, cmd_ids, f"Ask the {service} service to do something")
        ch = f"{service}-dlq"
        channels[ch] = {
            "address": names["dlq"],
            "title": names["dlq"],
            "description": (
                f"Dead letters of the {service} service: records of `{names['commands']}` (or routed topics) that "
                "could not be decoded, had an unknown schema id, were not a command of the service, or whose "
                "decision failed — unchanged (key and value as received), with headers `flexchain.dlq.reason`, "
                "`flexchain.source.topic`, `flexchain.source.partition`, `flexchain.source.offset`, "
                "`flexchain.source.timestamp`, the record's own headers as `flexchain.original.<name>`, and "
                "`flexchain.redrive.count` once redriven. For operators (`flexchain dlq list|show|redrive`)."
            ),
            "bindings": {
                "kafka": {
                    "topic": names["dlq"],
                    "partitions": partitions,
                    "replicas": replicas,
                    "topicConfiguration": {"cleanup.policy": ["delete"], "retention.ms": 30 * 24 * 3600 * 1000},
                    "bindingVersion": KAFKA_BINDING,
                }
            },
        }
        operations[f"receive-{service}-dlq"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{ch}"},
            "summary": f"Inspect what the {service} service could not process",
        }

    clock_ids = add(tuple(CLOCK_MESSAGES))
    for mid in clock_ids:  # ticks come from schedulers of every kind: a record without the header is read too
        messages[mid]["headers"]["required"] = []
    channels["clock-ticks"] = _channel(
        CLOCK_TOPIC,
        "Business time (R-X-1): `ClockTicked` records, key `main`, one partition. Any producer allowed to "
        "write this topic (on a secured cluster: the `clock` principal) may publish a tick: `time` in ms since "
        "the epoch (UTC), `clock_id` `main`, an envelope whose `event_id` is unique per tick; `envelope.producer` "
        "is not read and the `type` header is optional. Every tick moves both the services' timers (payment "
        "holds, return windows, campaign phases, daily reviews) and the time their APIs stamp on commands with "
        "FLEXCHAIN_CLOCK=log (`GET /clock`): business time is the largest `time` read, so a tick older than one "
        f"already read changes nothing. {WIRE}",
        clock_ids,
        1,
        replicas,
        7 * 24 * 3600 * 1000,
    )
    operation("receive-clock-ticks", "receive", "clock-ticks", clock_ids, "Follow business time")

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:flexchain:topics",
        "info": {
            "title": "flexchain topics",
            "version": "0.1.0",
            "description": (
                "Every topic and message of flexchain, an event-sourced supply chain on Apache Kafka "
                "(services: " + ", ".join(SERVICES) + "). Generated from schemas/ by `flexchain asyncapi`. "
                "Subscribe to `<service>.events`; " + READING
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "production": {
                "host": "kafka-bootstrap:9093",
                "protocol": "kafka-secure",
                "protocolVersion": "4.0",
                "description": "SASL_SSL with SCRAM-SHA-512; one principal per client (see deploy/kafka/acls.md).",
                "security": [{"$ref": "#/components/securitySchemes/scram"}],
                "bindings": {
                    "kafka": {
                        "schemaRegistryUrl": "http://schema-registry:8080/apis/ccompat/v7",
                        "schemaRegistryVendor": "apicurio",
                        "bindingVersion": KAFKA_BINDING,
                    }
                },
            },
            "compose": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "protocolVersion": "4.0",
                "description": "docker compose (PLAINTEXT, no authentication).",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "securitySchemes": {"scram": {"type": "scramSha512", "description": "SASL/SCRAM-SHA-512 over TLS"}},
        },
    }


def render(partitions: int = 6, replicas: int = 3, root: Path = SCHEMAS_DIR) -> str:
    return json.dumps(document(partitions, replicas, root), indent=2, ensure_ascii=False) + "\n"
