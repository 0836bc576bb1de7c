"""Every message type of the suite, by service: the input of schema generation and the AsyncAPI doc."""

from __future__ import annotations

from flexchain.messages import Message


def all_messages() -> list[type[Message]]:
    from services.clock.messages import MESSAGES as clock
    from services.inventory.messages import MESSAGES as inventory
    from services.order.messages import MESSAGES as order

    return [*clock, *order, *inventory]
