"""Subscribe to flexchain's events from your own system, with faust-streaming.

faust suits a subscriber whose effect is idempotent: it reads at least once, so an event can come again
after a crash or a rebalance — drop it by its event id. ``flexchain.subscribe`` gives the two pieces
faust lacks for our topics: :func:`faust_app`, whose consumers read ``read_committed`` (flexchain writes
in Kafka transactions), and :func:`faust_codec`, which turns the Avro wire format into an ``Event``
(type, id, business time, body) using a schema registry (``SCHEMA_REGISTRY_URL``) or a copy of the
schemas (``FLEXCHAIN_SCHEMAS_DIR``, default ``./schemas``).

    KAFKA_BOOTSTRAP_SERVERS=localhost:9092 SUBSCRIBE_TOPICS=inventory.events,loyalty.events \\
        python examples/subscribe/faust_subscriber.py worker --without-web -l warn

Prints one JSON line per new event (the effect of this example); Ctrl-C stops it.
"""

from __future__ import annotations

import json
import os
import sys
from collections import OrderedDict
from typing import Any

from flexchain.subscribe import Event, EventDecoder, faust_app, faust_codec

app = faust_app(
    os.environ.get("SUBSCRIBE_GROUP", "flexchain-example-faust"),  # your consumer group
    broker=";".join(f"kafka://{b}" for b in os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092").split(",")),
    processing_guarantee="at_least_once",  # offsets committed after the agent handled the event
    consumer_auto_offset_reset="earliest",
    topic_allow_declare=False,  # the topics are flexchain's
    topic_disable_leader=True,  # no tables here
    datadir=os.environ.get("SUBSCRIBE_DATA_DIR", ".faust-subscriber"),
)
topics = os.environ.get("SUBSCRIBE_TOPICS", "inventory.events").split(",")
events = app.topic(*topics, key_type=bytes, key_serializer="raw", value_serializer=faust_codec(EventDecoder.from_env()))

OUT = sys.__stdout__
seen: OrderedDict[str, None] = OrderedDict()  # the last ids handled; a real subscriber keeps them with its effect


@app.agent(events)
async def handle(stream: Any) -> None:
    async for event in stream:
        assert isinstance(event, Event)
        if event.id in seen:
            continue  # delivered again: already handled
        seen[event.id] = None
        if len(seen) > 100_000:
            seen.popitem(last=False)
        line = {"type": event.type, "event_id": event.id, "aggregate_id": event.aggregate_id, "business_time": event.time}
        # faust's worker turns print() into log lines; the process's own stdout is sys.__stdout__
        OUT.write(json.dumps({**line, "body": event.body}, ensure_ascii=False, default=str) + "\n")
        OUT.flush()


if __name__ == "__main__":
    app.main()
