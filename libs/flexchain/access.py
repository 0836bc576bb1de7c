"""What each process of the suite does on Kafka, derived from what its code declares.

:mod:`flexchain.security` turns these into ACLs, so a principal is granted what its code uses and
nothing more; ``tests/deploy/test_security.py`` builds the real loops of each service and checks that
they use exactly what is derived here, both ways.

A core service (``services/<svc>/app.py`` ``declared()``: its :class:`~flexchain.runtime.ServiceDef`
and its read model), as :mod:`flexchain.host` runs it:

* the processor — group ``<svc>``, reads ``<svc>.commands``, writes ``<svc>.events`` and
  ``<svc>.dlq`` in transactions with ids ``<svc>-<svc>.commands-<p>``; rebuild, the own view and the
  as-of reads (R-X-4) read ``<svc>.events``;
* the router (only with routes) — group ``<svc>-router``, reads each route's topic and
  ``<svc>.redrive`` (what ``flexchain dlq redrive`` sends back), writes ``<svc>.commands`` and
  ``<svc>.dlq`` in transactions with ids ``<svc>-router-<topic>-<p>``;
* the API writes ``<svc>.commands``; the projection reads the read model's topics and ``clock.ticks``
  (every service folds business time for ``GET /clock`` and its timers, R-X-1);
* ``serve`` creates the service's own topics where no operator did (``kafka.ensure_topics``); the
  other services' topics are theirs (or the operator's) to create.

The offsets of both loops are committed inside their transactions; the snapshot store and the dedup
memory are not on Kafka. The clock (``flexchain clock``) and the operator (``flexchain lag``,
``flexchain dlq list|show|redrive``) are described the same way; an edge service (the optional
notifier, ``services/notify``) describes its own, as ``access(prefix)`` in its ``app`` module
(:class:`~flexchain.declaration.EdgePackage`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flexchain.kafka import topic_names

CLOCK_TOPIC = "clock.ticks"


@dataclass(frozen=True)
class Access:
    """What one principal does on Kafka (names with the topic prefix). READ and WRITE imply DESCRIBE."""

    principal: str
    reads: tuple[str, ...] = ()  # topics it consumes
    writes: tuple[str, ...] = ()  # topics it produces to
    creates: tuple[str, ...] = ()  # topics it creates when they are missing
    groups: tuple[str, ...] = ()  # consumer groups it joins or commits offsets for (READ)
    watches: tuple[str, ...] = ()  # consumer groups whose offsets and members it only reads (DESCRIBE)
    transactional_prefixes: tuple[str, ...] = ()  # transactional ids it uses start with one of these
    transactional_ids: tuple[str, ...] = ()  # ... or are one of these

    def topics(self) -> list[str]:
        return list(dict.fromkeys([*self.reads, *self.writes, *self.creates]))


def _unique(*names: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def declared(service: str) -> tuple[Any, Any]:
    """The service's definition and read model, as its `main` builds them (`app.declared()`)."""
    from flexchain.catalog import PACKAGES

    return PACKAGES[service].declared()


def service_access(svc: Any, view: Any, prefix: str = "") -> Access:
    """A core service's access, from its ServiceDef (name, routes) and read model (`topics`); see the
    module docstring for which loop uses what."""
    own = topic_names(svc.name)
    commands, events, dlq, redrive = (prefix + own[k] for k in ("commands", "events", "dlq", "redrive"))
    routed = [prefix + r.topic for r in svc.routes]
    groups = [prefix + svc.name]
    txn = [f"{prefix}{svc.name}-{own['commands']}-"]  # Processor.transactional_id: <group>-<topic>-<p>
    if svc.routes:
        groups.append(f"{prefix}{svc.name}-router")
        txn.append(f"{prefix}{svc.name}-router-")
    projected = [prefix + t for t in [*view.topics, CLOCK_TOPIC]]
    reads = [commands, events, *routed, *([redrive] if svc.routes else []), *projected]
    return Access(
        principal=svc.name,
        reads=_unique(*reads),
        writes=(commands, events, dlq),
        creates=tuple(prefix + t for t in own.values()),
        groups=tuple(groups),
        transactional_prefixes=tuple(txn),
    )


def clock_access(prefix: str = "") -> Access:
    """`flexchain clock` (ClockPublisher): creates `clock.ticks` if missing, writes ticks."""
    from flexchain.clock import TOPIC

    return Access("clock", writes=(prefix + TOPIC,), creates=(prefix + TOPIC,))


OPERATOR = "operator"


def operator_access(services: list[str], prefix: str = "") -> Access:
    """What the ops commands do (no topic creation: the topics are the services' or the cluster
    operator's, e.g. Strimzi KafkaTopics):

    * `flexchain lag` (ops.read_lag): describes every loop's group (committed offsets, members) and
      reads its input topics (records between the committed and the last stable offset are counted);
    * `flexchain dlq list|show` (dlq.read_dead_letters): reads `<svc>.dlq`;
    * `flexchain dlq redrive` (dlq.execute): in one transaction (`flexchain-dlq-redrive-<svc>`) writes
      `<svc>.commands` (a command back to its partition), `<svc>.redrive` (another log's event) and a
      marker per dead letter to `<svc>.dlq`. Also for each edge service's `<edge>.dlq` (the
      catalogue's EDGES), which has no commands topic: its letters go back on `<edge>.redrive`."""
    from flexchain.catalog import EDGES
    from flexchain.dlq import redrive_transactional_id
    from flexchain.ops import loops_of
    from flexchain.settings import Settings

    settings = Settings(flexchain_topic_prefix=prefix)
    loops = [loop for svc in services for loop in loops_of(svc, settings)]
    reads: list[str] = [t for loop in loops for t in loop.topics]
    writes: list[str] = []
    txn: list[str] = []
    for svc in services:
        own = topic_names(svc)
        reads.append(prefix + own["dlq"])
        writes += [prefix + own[k] for k in ("commands", "redrive", "dlq")]
        txn.append(settings.name(redrive_transactional_id(svc)))
    for edge, declared in EDGES.items():
        own = declared.topics()
        reads.append(prefix + own["dlq"])
        writes += [prefix + own["redrive"], prefix + own["dlq"]]
        txn.append(settings.name(redrive_transactional_id(edge)))
    return Access(
        OPERATOR,
        reads=_unique(*reads),
        writes=_unique(*writes),
        watches=_unique(*(loop.group for loop in loops)),
        transactional_ids=tuple(txn),
    )
