"""The gift rules' fold (pure): what the events of the gift-rule aggregate (`gift_rules.py`) change in
a partition's `OrderBook` — the rules whose aggregate lives here, this partition's replicas of every
rule (highest version wins) and the rules with a review open (R-ORD-6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flexchain.messages import Message
from services.order.messages import (
    GiftRuleChanged,
    GiftRuleCommandRejected,
    GiftRuleRecovered,
    GiftRuleReplicated,
    GiftRuleReviewSuggested,
)

if TYPE_CHECKING:
    from services.order.state import OrderBook


def _changed(book: OrderBook, e: GiftRuleChanged) -> None:
    book.gift_rules[e.rule_id] = e.rule


def _replicated(book: OrderBook, e: GiftRuleReplicated) -> None:
    old = book.rule_replicas.get(e.rule.rule_id)
    if old is None or old.version < e.rule.version:
        book.rule_replicas[e.rule.rule_id] = e.rule


def _review_suggested(book: OrderBook, e: GiftRuleReviewSuggested) -> None:
    book.reviews_open.add(e.rule_id)


def _healthy(book: OrderBook, e: GiftRuleRecovered) -> None:
    book.reviews_open.discard(e.rule_id)


def _unchanged(book: OrderBook, e: GiftRuleCommandRejected) -> None:
    """A refusal changes nothing."""


EVOLVERS: dict[type[Message], Callable[[OrderBook, Any], None]] = {
    GiftRuleChanged: _changed,
    GiftRuleReplicated: _replicated,
    GiftRuleReviewSuggested: _review_suggested,
    GiftRuleRecovered: _healthy,
    GiftRuleCommandRejected: _unchanged,
}
RULE_EVENTS = tuple(EVOLVERS)
