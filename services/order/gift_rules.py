"""The gift-rule aggregate's deciders (pure), keyed by rule id: define or redefine a rule (R-ORD-3,
R-ORD-4's cost cap is checked when a rule is attached, in `gifts.py`), grant an interaction gift,
announce a surprise window, retire a rule, and R-ORD-6's review on the rule's ROI. Every change is a
`GiftRuleChanged` carrying the whole rule, copied to every partition (`ReplicateGiftRule`, decided by
`gifts.replicate` on each). The fold of these events is `gift_rules_state.py`.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flexchain.messages import Message
from services.order.gifts import replicate
from services.order.messages import (
    CHANNELS,
    GIFT_TIERS,
    AnnounceSurpriseWindow,
    DefineGiftRule,
    GiftRule,
    GiftRuleChanged,
    GiftRuleCommandRejected,
    GiftRuleRecovered,
    GiftRuleReviewSuggested,
    GrantInteractionGift,
    ReplicateGiftRule,
    RetireGiftRule,
    ReviewGiftRule,
)

if TYPE_CHECKING:
    from services.order.state import OrderBook

ROI_REVIEW_BELOW = Decimal("1.2")  # R-ORD-6: below → GiftRuleReviewSuggested
ROI_HEALTHY = Decimal("1.5")  # R-ORD-6: at or above → healthy (re-arms the suggestion)

RULE_COMMANDS = (DefineGiftRule, GrantInteractionGift, AnnounceSurpriseWindow, RetireGiftRule, ReviewGiftRule, ReplicateGiftRule)


def _refuse(cmd: Any, reason: str) -> list[Message]:
    return [GiftRuleCommandRejected(rule_id=cmd.rule_id, command=type(cmd).__name__, reason=reason)]


def validate_definition(cmd: DefineGiftRule) -> str | None:
    if cmd.tier not in GIFT_TIERS:
        return f"tier must be one of {', '.join(GIFT_TIERS)}"
    if min(cmd.main_unit_cost, cmd.gift_unit_cost, cmd.fallback_unit_cost) < 0:
        return "unit costs are cents >= 0"
    if cmd.gift_qty <= 0:
        return "gift_qty must be a positive whole number"
    if cmd.gift_sku == cmd.main_sku:
        return "the gift must be another sku than the main product"
    if cmd.fallback_sku is not None and cmd.fallback_sku in (cmd.main_sku, cmd.gift_sku):
        return "the fallback gift must differ from the main product and the gift"
    if not cmd.channels or any(c not in CHANNELS for c in cmd.channels):
        return f"channels must be a non-empty list of {', '.join(CHANNELS)}"
    return None


def decide_rule(book: OrderBook, cmd: Message) -> list[Message]:
    if isinstance(cmd, ReplicateGiftRule):
        return replicate(book, cmd.rule)
    rule = book.gift_rules.get(cmd.key)
    if isinstance(cmd, DefineGiftRule):
        problem = validate_definition(cmd)
        if problem:
            return _refuse(cmd, problem)
        c = cmd
        new = GiftRule(
            rule_id=c.rule_id,
            version=(rule.version if rule else 0) + 1,
            tier=c.tier,
            main_sku=c.main_sku,
            main_unit_cost=c.main_unit_cost,
            gift_sku=c.gift_sku,
            gift_unit_cost=c.gift_unit_cost,
            gift_qty=c.gift_qty,
            fallback_sku=c.fallback_sku,
            fallback_unit_cost=c.fallback_unit_cost,
            consumable=c.consumable,
            converts_to=c.converts_to or c.main_sku,
            channels=sorted(set(c.channels)),
            members=list(rule.members) if rule and rule.tier == c.tier else [],
            window_start=rule.window_start if rule and rule.tier == c.tier else None,
            window_end=rule.window_end if rule and rule.tier == c.tier else None,
            active=True,
        )
        return [GiftRuleChanged(rule_id=c.rule_id, change="defined" if rule is None else "redefined", rule=new)]
    if rule is None:
        return _refuse(cmd, f"unknown gift rule {cmd.key}")
    if isinstance(cmd, GrantInteractionGift):
        if rule.tier != "interaction":
            return _refuse(cmd, f"rule {rule.rule_id} is a {rule.tier} rule: only interaction rules are granted to members")
        if cmd.member_id in rule.members:
            return _refuse(cmd, f"member {cmd.member_id} was already granted rule {rule.rule_id}")
        changed = dataclasses.replace(rule, version=rule.version + 1, members=sorted([*rule.members, cmd.member_id]))
        return [GiftRuleChanged(rule_id=rule.rule_id, change="member_granted", rule=changed)]
    if isinstance(cmd, AnnounceSurpriseWindow):
        if rule.tier != "surprise":
            return _refuse(cmd, f"rule {rule.rule_id} is a {rule.tier} rule: only surprise rules have a window")
        if cmd.ends_at <= cmd.starts_at:
            return _refuse(cmd, "the window must end after it starts")
        changed = dataclasses.replace(rule, version=rule.version + 1, window_start=cmd.starts_at, window_end=cmd.ends_at)
        return [GiftRuleChanged(rule_id=rule.rule_id, change="window_announced", rule=changed)]
    if isinstance(cmd, RetireGiftRule):
        if not rule.active:
            return _refuse(cmd, f"rule {rule.rule_id} is already retired")
        return [
            GiftRuleChanged(
                rule_id=rule.rule_id, change="retired", rule=dataclasses.replace(rule, version=rule.version + 1, active=False)
            )
        ]
    if isinstance(cmd, ReviewGiftRule):
        return _review(book, cmd)
    return _refuse(cmd, f"{type(cmd).__name__} is not a gift-rule command")


def _review(book: OrderBook, cmd: ReviewGiftRule) -> list[Message]:
    """R-ORD-6: ROI below 1.2 suggests a review, once until the rule is healthy (≥ 1.5) again."""
    perf = cmd.performance
    if perf.gifts_given < book.config.gift_review_min_gifts or not perf.roi:
        return []
    roi = Decimal(perf.roi)
    open_ = cmd.rule_id in book.reviews_open
    if roi < ROI_REVIEW_BELOW and not open_:
        return [GiftRuleReviewSuggested(rule_id=cmd.rule_id, roi=perf.roi, threshold=str(ROI_REVIEW_BELOW), performance=perf)]
    if roi >= ROI_HEALTHY and open_:
        return [GiftRuleRecovered(rule_id=cmd.rule_id, roi=perf.roi)]
    return []
