"""Subscribe to flexchain's events from your own system, with confluent-kafka (librdkafka).

Knows only what README.md and the Avro schemas say — it imports nothing from flexchain:

* read ``read_committed`` (a service writes its events in transactions; aborted ones must stay unseen);
* a value is the Confluent wire format: byte 0, a 4-byte big-endian schema id, the Avro body. The id is
  resolved by a schema registry (``--registry``, flexchain's services run with ``SCHEMA_REGISTRY_URL``)
  or, without one, from the schema files (``--schemas schemas/history``): there the id of a schema is
  the CRC-32 (31 bits, 0 → 1) of its Avro parsing canonical form;
* every event carries ``envelope.event_id``: drop the ones you have already handled (this example keeps
  a bounded in-memory set; a real subscriber keeps the ids with the effect, in its own database);
* commit your offsets only after the effect (at-least-once), which is what makes the dedup necessary.

Prints one JSON line per new event. ``--to-end`` stops once every partition is read up to where it
ended when the subscriber started (for scripts and tests); without it, it runs until Ctrl-C.

    python examples/subscribe/confluent_subscriber.py --bootstrap localhost:9092 \\
        --schemas schemas/history --group my-shop --to-end inventory.events order.events
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import to_parsing_canonical_form


class SchemaFiles:
    """Schema id → parsed writer schema, from self-contained .avsc files (flexchain's schemas/history)."""

    def __init__(self, root: Path) -> None:
        self.by_id: dict[int, Any] = {}
        for path in sorted(root.rglob("*.avsc")):
            parsed = parse_schema(json.loads(path.read_text(encoding="utf-8")), _write_hint=False)
            crc = zlib.crc32(to_parsing_canonical_form(parsed).encode("utf-8")) & 0x7FFFFFFF
            self.by_id[crc or 1] = parsed

    def __call__(self, schema_id: int) -> Any:
        try:
            return self.by_id[schema_id]
        except KeyError:
            raise LookupError(f"schema id {schema_id} is in no .avsc file: update your copy of the schemas") from None


class Registry:
    """Schema id → parsed writer schema, from a Confluent-compatible registry (cached: ids never change)."""

    def __init__(self, url: str) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.client = SchemaRegistryClient({"url": url})
        self.cache: dict[int, Any] = {}

    def __call__(self, schema_id: int) -> Any:
        if schema_id not in self.cache:
            self.cache[schema_id] = parse_schema(json.loads(self.client.get_schema(schema_id).schema_str))
        return self.cache[schema_id]


def decode(value: bytes, writer_schema: Any) -> dict[str, Any]:
    magic, schema_id = struct.unpack(">bI", value[:5])
    if magic != 0:
        raise ValueError(f"not the Confluent wire format (magic byte {magic})")
    record: dict[str, Any] = schemaless_reader(io.BytesIO(value[5:]), writer_schema(schema_id), None)
    return record


class Seen:
    """The last ``size`` event ids handled: an event delivered again is dropped."""

    def __init__(self, size: int = 100_000) -> None:
        self.ids: OrderedDict[str, None] = OrderedDict()
        self.size = size

    def first_time(self, event_id: str) -> bool:
        if event_id in self.ids:
            self.ids.move_to_end(event_id)
            return False
        self.ids[event_id] = None
        if len(self.ids) > self.size:
            self.ids.popitem(last=False)
        return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("topics", nargs="+", help="e.g. inventory.events (with your FLEXCHAIN_TOPIC_PREFIX, if any)")
    ap.add_argument("--bootstrap", default="localhost:9092")
    ap.add_argument("--group", default="flexchain-example-subscriber", help="your consumer group")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--registry", help="Confluent-compatible registry URL (Apicurio: …/apis/ccompat/v7)")
    src.add_argument("--schemas", type=Path, help="a copy of flexchain's schemas/history directory")
    ap.add_argument("--to-end", action="store_true", help="stop at the end offsets seen at start")
    args = ap.parse_args(argv)

    writer_schema = Registry(args.registry) if args.registry else SchemaFiles(args.schemas)
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    seen = Seen()
    ends: dict[tuple[str, int], int] = {}
    if args.to_end:  # where each partition ends now; read_committed stops at the last stable offset
        meta = consumer.list_topics(timeout=30)
        for topic in args.topics:
            for p in meta.topics[topic].partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                ends[(topic, p)] = high
    consumer.subscribe(args.topics)
    try:
        while True:
            if args.to_end and _caught_up(consumer, ends):
                return 0
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            event = decode(msg.value(), writer_schema)
            envelope = event.pop("envelope")
            if seen.first_time(envelope["event_id"]):
                # the effect goes here; this example prints the event as one JSON line
                line = {
                    "topic": msg.topic(),
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "type": envelope["event_type"],
                    "event_id": envelope["event_id"],
                    "aggregate_id": envelope["aggregate_id"],
                    "business_time": envelope["business_time"],
                    "body": event,
                }
                print(json.dumps(line, ensure_ascii=False), flush=True)
            consumer.commit(message=msg, asynchronous=False)  # after the effect: at-least-once
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()


def _caught_up(consumer: Consumer, ends: dict[tuple[str, int], int]) -> bool:
    assigned = consumer.assignment()
    if not assigned:
        return False
    positions = consumer.position(assigned)
    mine = {(tp.topic, tp.partition): tp.offset for tp in positions}
    if len(mine) < len(ends):
        return False  # one group member reading everything; a shared group would need its share only
    for key, end in ends.items():
        if end == 0:
            continue
        pos = mine.get(key, -1)
        if pos < 0:
            committed = consumer.committed([TopicPartition(*key)], timeout=10)[0].offset
            pos = committed if committed >= 0 else -1
        if pos < end:
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
