"""Commission's pure core: `decide(state, command, now) -> events` (`evolve` and `new_state` are in
`state.py`).

The rules live in one module per family — `tree` (the referral network, the plan, qualification:
R-COM-1, R-COM-5a, R-COM-6), `rates` (sku rates and dynamic-rate rules: R-COM-2, R-COM-5), `sales`
(accrual per line and level, clawback, payable, monthly targets, new members: R-COM-2..4)
and `accounts` (credits, clawbacks charged, bonuses, payout batches: R-COM-3, R-COM-4). This
module dispatches to them and handles the two broadcast commands (clock ticks, replication).
Every refused command is one `CommissionCommandRejected` with the reason; folding it changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flexchain.messages import Message
from services.commission import accounts, rates, sales, tree
from services.commission.messages import (
    NETWORK,
    CheckCommissionTimers,
    NetworkChange,
    NetworkMessage,
    NetworkReplicated,
    ReplicateNetwork,
)
from services.commission.model import CommissionState, refuse
from services.commission.state import evolve, new_state

__all__ = ["DECIDERS", "decide", "evolve", "new_state", "replicate"]


def replicate(state: CommissionState, cmd: ReplicateNetwork, now: int) -> list[Message]:
    """This partition's copy of the network takes change `seq` (once; the network's own partition
    already has it). A distributor's first record also releases what waited for it here."""
    if cmd.seq <= state.network.seq:
        return []
    out: list[Message] = [NetworkReplicated(seq=cmd.seq, change=cmd.change)]
    record = cmd.change.distributor
    if record is not None and record.distributor_id not in state.network.distributors:
        out += tree.unpark(state, record, now, cmd)
    return out + _late_rate_changes(state, [(cmd.seq, cmd.change)], now)


def _late_rate_changes(state: CommissionState, changes: list[tuple[int, NetworkChange]], now: int) -> list[Message]:
    """Orders of this partition paid after a plan or sku-rate change but split without it (the change
    reached the partition later) are recomputed (R-COM-5)."""
    out: list[Message] = []
    net = state.network
    for seq, change in changes:
        effective = change.plan.effective_from if change.plan else change.sku_rate.effective_from if change.sku_rate else None
        if effective is None or not state.orders:
            continue  # a distributor's record: chains are as of the payment's processing (see README)
        net = net.with_change(seq, change)
        out += sales.recompute(state, net, change, effective, now)
    return out


def check_timers(state: CommissionState, cmd: CheckCommissionTimers, now: int) -> list[Message]:
    """On each clock tick, per partition: close past months (bonus tiers), then pay the batch of the
    latest cutoff (R-COM-3, R-COM-4). Nothing decided here is routed to another partition."""
    return [*sales.close_months(state, cmd.time), *accounts.pay_batches(state, cmd.time)]


DECIDERS: dict[type, Callable[[CommissionState, Any, int], list[Message]]] = {
    **tree.DECIDERS,
    **rates.DECIDERS,
    **sales.DECIDERS,
    **accounts.DECIDERS,
    ReplicateNetwork: replicate,
    CheckCommissionTimers: check_timers,
}


def decide(state: CommissionState, cmd: Message, now: int) -> list[Message]:
    handler = DECIDERS.get(type(cmd))
    if handler is None:
        return refuse(cmd, f"{type(cmd).__name__} is not a commission command")
    if isinstance(cmd, NetworkMessage):
        if getattr(cmd, "network_id", None) != NETWORK:
            return refuse(cmd, f"unknown network {getattr(cmd, 'network_id', None)}; this merchant's network is {NETWORK}")
        events = handler(state, cmd, now)
        changes = [found for e in events if (found := tree.change_of(e)) is not None]
        return events + _late_rate_changes(state, changes, now) if changes else events
    return handler(state, cmd, now)
