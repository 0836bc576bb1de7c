"""Issue 12, item 2: folding the order service's own log is idempotent (and inventory's, which the
same saga writes) — the order ⇄ inventory saga of tests/unit/test_properties.py (orders placed, paid,
shipped, delivered, cancelled, refunded by line, gift rules and their broadcast replicas, clock ticks
that expire holds and close return windows), each command enveloped as the processor writes it; see
tests/unit/foldlog.py for what is checked."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from flexchain.messages import Message
from flexchain.ticks import ClockTicked
from services.inventory import policy as inventory_policy
from services.inventory.app import SERVICE as INVENTORY
from services.inventory.messages import ReceiveStock, RegisterSku
from services.order import policy as order_policy
from services.order.app import service
from tests.unit.foldlog import OwnLog, check_fold, horizon_st, repeats_st
from tests.unit.test_properties import GIFT_RULES, GIFT_SKUS, SKUS, Action, Saga, action_st, command_for


class LoggedSaga(Saga):
    """The saga of test_properties with each service's partition written as its processor writes it."""

    def __init__(self, horizon: int) -> None:
        self.own = {"order": OwnLog(service(), horizon, partition=2), "inventory": OwnLog(INVENTORY, horizon, partition=2)}
        super().__init__(orders=self.own["order"].live.state, inventory=self.own["inventory"].live.state)

    def send(self, first: Message) -> None:
        queue: deque[Message] = deque([first])
        while queue:
            msg = queue.popleft()
            if isinstance(msg, ClockTicked):
                events: list[Message] = [msg]
            else:
                events = self.own[msg.SERVICE].handle(msg, self.now)
                (self.order_log if msg.SERVICE == "order" else self.inventory_log).extend(events)
            for e in events:
                queue.extend(inventory_policy.react(e))
                queue.extend(order_policy.react(e))


@settings(max_examples=50, deadline=None)
@given(st.lists(action_st, min_size=5, max_size=40), horizon_st, repeats_st, repeats_st)
def test_folding_the_order_log_with_repeats_gives_the_live_partition(
    actions: list[Action], horizon: int, repeats: list[tuple[str, int, int]], inventory_repeats: list[tuple[str, int, int]]
) -> None:
    saga = LoggedSaga(horizon)
    for sku in SKUS:
        saga.send(RegisterSku(sku=sku, name=sku))
    for sku in GIFT_SKUS:
        saga.send(RegisterSku(sku=sku, name=sku, is_gift=True))
    for rule in GIFT_RULES:
        saga.send(rule)
    for sku, warehouse, qty in (("s1", "north", 60), ("s2", "south", 80), ("s3", "north", 20), ("g1", "north", 1)):
        saga.send(ReceiveStock(sku=sku, warehouse=warehouse, qty=qty))
    for action in actions:
        cmd = command_for(saga, action)
        if cmd is not None:
            saga.send(cmd)
    check_fold(saga.own["order"], repeats)
    check_fold(saga.own["inventory"], inventory_repeats)
