"""notify: delivers the derived events a person should hear about to the webhooks a merchant configures.

Owns nothing in the event store: it reads the five services' ``<service>.events`` topics
(read_committed) and ``notify.redrive`` (dead letters sent back by ``flexchain dlq redrive``), and
writes only ``notify.dlq`` (an event a webhook refused, or kept failing, N times). It runs on
faust-streaming: at-least-once with an idempotent side effect — each delivery carries the event id
as ``Idempotency-Key`` and an HMAC-SHA256 signature of its body — which is exactly faust's strength;
the five core services stay on the exactly-once kernel.

    catalog.py   which event types are notifications, and their text in Chinese and English (pure)
    config.py    webhooks and settings, validated at start (pydantic)
    delivery.py  the JSON body, its signature, one delivery with retries and backoff (httpx, tenacity)
    app.py       the faust app: codec, agent, dead letters, metrics and readiness pages; ``main``

Run it with ``flexchain serve notify`` (or ``python -m services.notify``).
"""

from flexchain.declaration import EdgePackage

# what the kernel discovers (flexchain.catalog.EDGES): an edge service, not one of the exactly-once core
# ones; its topics (notify.dlq, notify.redrive) follow from the name, its ACLs from app.access
PACKAGE = EdgePackage(name="notify", http_port=8086, package=__name__)
