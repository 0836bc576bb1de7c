"""Sku rates and dynamic-rate rules (R-COM-2, R-COM-5), decided by the network aggregate (pure).

A sku's level-1 rate is its hand-set rate, else the plan's. A rule names a stock `signal` (e.g.
`low_stock`: units below the low-stock threshold; `overstock`, `slow_moving`: from inventory or a
manual signal) and a `threshold`: while the signal's value for a sku is at or past the threshold the
rule is active, and the sku's rate moves by the rule's `delta`, kept within its floor and ceiling.
Active rules apply in activation order. Every change of a sku's rate is a `SkuRateChanged` event,
effective for orders paid from the moment of the change; a signal that changes nothing emits nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flexchain.messages import Message
from services.commission.messages import (
    ApplyStockSignal,
    RateRule,
    RateRuleRemoved,
    RateRuleSet,
    RateRuleTriggered,
    RemoveRateRule,
    SetRateRule,
    SetSkuRate,
    SkuRateChanged,
)
from services.commission.model import CommissionState, refuse
from services.commission.plan import MAX_SKU_RATE, ZERO


def effective_rate(manual: Decimal | None, plan_rate: Decimal, rules: list[RateRule]) -> Decimal | None:
    """A sku's level-1 rate: the hand-set one (None = the plan's), moved by each active rule in turn."""
    if not rules:
        return manual
    rate = manual if manual is not None else plan_rate
    for rule in rules:
        rate = min(max(rate + rule.delta, rule.floor), rule.ceiling)
    return rate


def _recompute(
    state: CommissionState,
    cmd: Any,
    sku: str,
    manual: Decimal | None,
    active: list[str],
    seq: int,
    now: int,
    reason: str,
    rule_id: str | None,
    force: bool = False,
) -> list[Message]:
    auth, net = state.authority, state.network
    rules = [auth.rules[r] for r in active if r in auth.rules]
    new = effective_rate(manual, net.plan.level_rates[0], rules)
    old = net.current_sku_rate(sku)
    if new == old and not force:
        return []
    return [
        SkuRateChanged(
            network_id=cmd.network_id,
            seq=seq,
            sku=sku,
            rate=new,
            previous_rate=old,
            manual_rate=manual,
            effective_from=now,
            reason=reason,
            rule_id=rule_id,
        )
    ]


def set_sku_rate(state: CommissionState, cmd: SetSkuRate, now: int) -> list[Message]:
    if not cmd.sku:
        return refuse(cmd, "sku is empty")
    if cmd.rate is not None and not ZERO <= cmd.rate <= MAX_SKU_RATE:
        return refuse(cmd, f"a sku rate must be within 0–{MAX_SKU_RATE}")
    if state.authority.manual.get(cmd.sku) == cmd.rate:
        return refuse(cmd, f"sku {cmd.sku} already has that rate")
    active = state.authority.active.get(cmd.sku, [])
    reason = f"set by hand to {cmd.rate}" if cmd.rate is not None else "back to the plan's rate"
    return _recompute(state, cmd, cmd.sku, cmd.rate, active, state.network.seq + 1, now, reason, None, force=True)


def _rule_problem(rule: RateRule) -> str | None:
    if not rule.rule_id or not rule.signal:
        return "a rule needs an id and a signal"
    if rule.delta == ZERO or abs(rule.delta) > MAX_SKU_RATE:
        return f"delta must be non-zero and within ±{MAX_SKU_RATE}"
    if rule.threshold < 1:
        return "threshold must be at least 1: a rule acts only past it (R-COM-5)"
    if not ZERO <= rule.floor <= rule.ceiling <= MAX_SKU_RATE:
        return f"need 0 <= floor <= ceiling <= {MAX_SKU_RATE}"
    return None


def set_rule(state: CommissionState, cmd: SetRateRule, now: int) -> list[Message]:
    problem = _rule_problem(cmd.rule)
    if problem:
        return refuse(cmd, problem)
    active_on = sorted(sku for sku, ids in state.authority.active.items() if cmd.rule.rule_id in ids)
    if active_on:
        return refuse(cmd, f"rule {cmd.rule.rule_id} is active on {', '.join(active_on)}; remove it first")
    if state.authority.rules.get(cmd.rule.rule_id) == cmd.rule:
        return refuse(cmd, f"rule {cmd.rule.rule_id} already says so")
    return [RateRuleSet(network_id=cmd.network_id, rule=cmd.rule)]


def remove_rule(state: CommissionState, cmd: RemoveRateRule, now: int) -> list[Message]:
    auth = state.authority
    rule = auth.rules.get(cmd.rule_id)
    if rule is None:
        return refuse(cmd, f"unknown rule {cmd.rule_id}")
    out: list[Message] = []
    seq = state.network.seq
    for sku, ids in sorted(auth.active.items()):
        if cmd.rule_id not in ids:
            continue
        out.append(
            RateRuleTriggered(network_id=cmd.network_id, rule_id=cmd.rule_id, sku=sku, active=False, signal=rule.signal, value=0)
        )
        remaining = [r for r in ids if r != cmd.rule_id]
        changed = _recompute(
            state, cmd, sku, auth.manual.get(sku), remaining, seq + 1, now, f"rule {cmd.rule_id} removed", cmd.rule_id
        )
        seq += len(changed)
        out += changed
    return [*out, RateRuleRemoved(network_id=cmd.network_id, rule_id=cmd.rule_id)]


def apply_signal(state: CommissionState, cmd: ApplyStockSignal, now: int) -> list[Message]:
    """Rules for this signal and sku switch on at their threshold and off below it (R-COM-5)."""
    if cmd.value < 0:
        return refuse(cmd, "a signal's value is >= 0")
    auth = state.authority
    active = list(auth.active.get(cmd.sku, []))
    out: list[Message] = []
    fired: list[str] = []
    for rule_id, rule in sorted(auth.rules.items()):
        if rule.signal != cmd.signal or (rule.skus and cmd.sku not in rule.skus):
            continue
        on = cmd.value >= rule.threshold
        if on == (rule_id in active):
            continue
        out.append(
            RateRuleTriggered(
                network_id=cmd.network_id, rule_id=rule_id, sku=cmd.sku, active=on, signal=cmd.signal, value=cmd.value
            )
        )
        fired.append(f"{rule_id} {'on' if on else 'off'}")
        if on:
            active.append(rule_id)
        else:
            active.remove(rule_id)
    if not out:
        return []
    reason = f"{cmd.signal} = {cmd.value} ({cmd.source}): rule {', '.join(fired)}"
    return out + _recompute(
        state, cmd, cmd.sku, auth.manual.get(cmd.sku), active, state.network.seq + 1, now, reason, fired[-1].split()[0]
    )


def _rule_set(state: CommissionState, e: RateRuleSet) -> None:
    state.authority.rules[e.rule.rule_id] = e.rule


def _rule_removed(state: CommissionState, e: RateRuleRemoved) -> None:
    state.authority.rules.pop(e.rule_id, None)


def _triggered(state: CommissionState, e: RateRuleTriggered) -> None:
    ids = state.authority.active.setdefault(e.sku, [])
    if e.active and e.rule_id not in ids:
        ids.append(e.rule_id)
    elif not e.active and e.rule_id in ids:
        ids.remove(e.rule_id)
    if not ids:
        del state.authority.active[e.sku]


EVOLVERS: dict[type, Callable[[CommissionState, Any], None]] = {
    RateRuleSet: _rule_set,
    RateRuleRemoved: _rule_removed,
    RateRuleTriggered: _triggered,
}


DECIDERS: dict[type, Callable[[CommissionState, Any, int], list[Message]]] = {
    SetSkuRate: set_sku_rate,
    SetRateRule: set_rule,
    RemoveRateRule: remove_rule,
    ApplyStockSignal: apply_signal,
}
