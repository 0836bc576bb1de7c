"""The referral network (pure): the distributor tree, the plan, qualification timers, replication.

Every change is decided by the one network aggregate (`NETWORK`), so a link is checked against the
whole, current tree: a cycle — or, when the merchant caps recruitment depth, a chain deeper than
`max_chain_depth` — is refused with the path that would have caused it (R-COM-1). The tree itself
may grow to any depth; how far commission flows up is `levels`, applied when an order is paid.
Each accepted change carries a sequence number and the full record
after it; the router copies it to every partition (`ReplicateNetwork`), which folds it into its own
replica (`NetworkReplicated`) — the replica is only ever a prefix of the authoritative history.
"""

from __future__ import annotations

import dataclasses
from collections import ChainMap
from collections.abc import Callable
from typing import Any

from flexchain.messages import Message
from services.commission.accounts import unpark_bonuses
from services.commission.messages import (
    CheckNetworkTimers,
    CommissionPlan,
    CommissionPlanChanged,
    DistributorGradeChanged,
    DistributorLinked,
    DistributorRecord,
    DistributorRegistered,
    LinkDistributor,
    NetworkChange,
    NetworkReplicated,
    PlanVersion,
    QualificationExpired,
    QualificationExpiryWarned,
    QualificationRenewed,
    RegisterDistributor,
    RenewQualification,
    SetBonuses,
    SetCommissionLevels,
    SetDefaultSponsor,
    SetDistributorGrade,
    SetGradePremiums,
    SetLevelRates,
    SetSettlement,
    SkuRateChanged,
    SkuRateVersion,
)
from services.commission.model import CommissionState, depth, height, refuse, upline_chain
from services.commission.plan import DAY_MS, validate_plan
from services.commission.sales import unpark_orders


def unpark(state: CommissionState, record: DistributorRecord, now: int, cmd: Message) -> list[Message]:
    """What waited in this partition for `record` to be known: its orders' commission, its referral
    bonuses (decided with the tree as it is once the record is in)."""
    if not any(p.distributor_id == record.distributor_id for p in state.parked.values()) and (
        record.distributor_id not in state.parked_bonuses
    ):
        return []
    records = ChainMap({record.distributor_id: record}, state.network.distributors)
    return [*unpark_orders(state, records, record.distributor_id), *unpark_bonuses(state, record, now, cmd)]


def _path(chain: list[str]) -> str:
    return " → ".join(chain)


# --- the tree (R-COM-1, R-COM-5a, R-COM-6) ---------------------------------------------------------


def register(state: CommissionState, cmd: RegisterDistributor, now: int) -> list[Message]:
    net, plan = state.network, state.network.plan
    d = cmd.distributor_id
    if not d:
        return refuse(cmd, "distributor_id is empty")
    if d in net.distributors:
        return refuse(cmd, f"distributor {d} is already registered")
    if cmd.grade not in plan.grade_premiums:
        return refuse(cmd, f"unknown grade {cmd.grade}; grades: {', '.join(sorted(plan.grade_premiums))}")
    if cmd.qualified_until is not None and cmd.qualified_until <= now:
        return refuse(cmd, "the qualification would already have expired")
    upline, sponsored = cmd.upline_id, False
    if upline is None and plan.default_sponsor is not None:
        upline, sponsored = plan.default_sponsor, True  # R-COM-5a
    if upline is not None:
        if upline == d:
            return refuse(cmd, f"{d} cannot be their own upline")
        if upline not in net.distributors:
            return refuse(cmd, f"unknown upline {upline}")
        cap = plan.max_chain_depth
        above = upline_chain(net.distributors, upline, cap or None)
        if cap and len(above) + 1 > cap:
            return refuse(
                cmd,
                f"chain too deep: {_path([d, *above])} would be {len(above) + 1} levels, "
                f"the recruitment depth cap is {cap} (max_chain_depth, R-COM-1)",
            )
    record = DistributorRecord(
        distributor_id=d, name=cmd.name, upline_id=upline, grade=cmd.grade, qualified_until=cmd.qualified_until, registered_at=now
    )
    # orders of this distributor may have waited in this very partition (the network's own)
    return [
        DistributorRegistered(network_id=cmd.network_id, seq=net.seq + 1, distributor=record, sponsored=sponsored),
        *unpark(state, record, now, cmd),
    ]


def link(state: CommissionState, cmd: LinkDistributor, now: int) -> list[Message]:
    net, plan = state.network, state.network.plan
    d, u = cmd.distributor_id, cmd.upline_id
    rec = net.distributors.get(d)
    if rec is None:
        return refuse(cmd, f"unknown distributor {d}")
    if u not in net.distributors:
        return refuse(cmd, f"unknown upline {u}")
    if u == d:
        return refuse(cmd, f"{d} cannot be their own upline (a cycle)")
    if rec.upline_id == u:
        return refuse(cmd, f"{d} is already linked to {u}")
    above = upline_chain(net.distributors, u)
    if d in above:  # u is in d's downline: d → … → u → d would be a cycle
        return refuse(cmd, f"linking {d} under {u} would make a cycle: {_path([d, *above[: above.index(d) + 1]])}")
    cap = plan.max_chain_depth
    deepest = len(above) + height(net, d) if cap else 0
    if cap and deepest > cap:
        return refuse(
            cmd,
            f"chain too deep: under {_path(above)}, {d} and their downline would reach {deepest} levels, "
            f"the recruitment depth cap is {cap} (max_chain_depth, R-COM-1)",
        )
    return [
        DistributorLinked(
            network_id=cmd.network_id,
            seq=net.seq + 1,
            distributor=dataclasses.replace(rec, upline_id=u),
            previous_upline_id=rec.upline_id,
        )
    ]


def set_grade(state: CommissionState, cmd: SetDistributorGrade, now: int) -> list[Message]:
    net = state.network
    rec = net.distributors.get(cmd.distributor_id)
    if rec is None:
        return refuse(cmd, f"unknown distributor {cmd.distributor_id}")
    if cmd.grade not in net.plan.grade_premiums:
        return refuse(cmd, f"unknown grade {cmd.grade}; grades: {', '.join(sorted(net.plan.grade_premiums))}")
    if rec.grade == cmd.grade:
        return refuse(cmd, f"{cmd.distributor_id} is already {cmd.grade}")
    return [
        DistributorGradeChanged(
            network_id=cmd.network_id,
            seq=net.seq + 1,
            distributor=dataclasses.replace(rec, grade=cmd.grade),
            previous_grade=rec.grade,
        )
    ]


def renew(state: CommissionState, cmd: RenewQualification, now: int) -> list[Message]:
    net = state.network
    rec = net.distributors.get(cmd.distributor_id)
    if rec is None:
        return refuse(cmd, f"unknown distributor {cmd.distributor_id}")
    if cmd.qualified_until <= now:
        return refuse(cmd, "a renewed qualification must end in the future")
    if rec.qualified_until == cmd.qualified_until:
        return refuse(cmd, f"the qualification already runs until {cmd.qualified_until}")
    new = dataclasses.replace(rec, qualified_until=cmd.qualified_until)
    return [QualificationRenewed(network_id=cmd.network_id, seq=net.seq + 1, distributor=new, previous_until=rec.qualified_until)]


def check_qualifications(state: CommissionState, cmd: CheckNetworkTimers, now: int) -> list[Message]:
    """A warning once per expiry date, `qualification_warning_ms` before it; then the expiry (R-COM-6)."""
    auth, plan, t = state.authority, state.network.plan, cmd.time
    out: list[Message] = []
    for d, rec in sorted(state.network.distributors.items()):
        until = rec.qualified_until
        if until is None:
            continue
        if t >= until:
            if auth.expired.get(d) != until:
                out.append(QualificationExpired(network_id=cmd.network_id, distributor_id=d, qualified_until=until))
        elif t >= until - plan.qualification_warning_ms and auth.warned.get(d) != until:
            out.append(
                QualificationExpiryWarned(
                    network_id=cmd.network_id, distributor_id=d, qualified_until=until, days_left=-(-(until - t) // DAY_MS)
                )
            )
    return out


# --- the plan ---------------------------------------------------------------------------------


def _plan_change(state: CommissionState, cmd: Any, now: int, change: str, **fields: Any) -> list[Message]:
    plan: CommissionPlan = dataclasses.replace(state.network.plan, **fields)
    problem = validate_plan(plan)
    if problem:
        return refuse(cmd, problem)
    if plan == state.network.plan:
        return refuse(cmd, "the plan already says so")
    return [
        CommissionPlanChanged(network_id=cmd.network_id, seq=state.network.seq + 1, change=change, plan=plan, effective_from=now)
    ]


def set_levels(state: CommissionState, cmd: SetCommissionLevels, now: int) -> list[Message]:
    """Levels commission flows up; with `max_chain_depth`, the cap on recruitment depth (0: none),
    which cannot go below a chain the tree already holds."""
    net = state.network
    cap = net.plan.max_chain_depth if cmd.max_chain_depth is None else cmd.max_chain_depth
    if cap and cap != net.plan.max_chain_depth:
        deepest = max((depth(net.distributors, d) for d in net.distributors), default=0)
        if cap < deepest:
            return refuse(
                cmd, f"the tree already holds chains of {deepest} levels; relink them before capping recruitment depth at {cap}"
            )
    change = f"levels {cmd.levels}" + (f", recruitment depth cap {cap or 'none'}" if cap != net.plan.max_chain_depth else "")
    return _plan_change(state, cmd, now, change, levels=cmd.levels, max_chain_depth=cap)


def set_level_rates(state: CommissionState, cmd: SetLevelRates, now: int) -> list[Message]:
    change = "level rates " + " / ".join(str(r) for r in cmd.rates)
    return _plan_change(state, cmd, now, change, level_rates=list(cmd.rates))


def set_grade_premiums(state: CommissionState, cmd: SetGradePremiums, now: int) -> list[Message]:
    if not cmd.grade:
        return refuse(cmd, "grade is empty")
    premiums = {**state.network.plan.grade_premiums, cmd.grade: list(cmd.premiums)}
    change = f"grade {cmd.grade} premiums " + " / ".join(str(p) for p in cmd.premiums)
    return _plan_change(state, cmd, now, change, grade_premiums=premiums)


def set_default_sponsor(state: CommissionState, cmd: SetDefaultSponsor, now: int) -> list[Message]:
    if cmd.distributor_id is not None and cmd.distributor_id not in state.network.distributors:
        return refuse(cmd, f"unknown distributor {cmd.distributor_id}")
    change = f"default sponsor {cmd.distributor_id or 'none'}"
    return _plan_change(state, cmd, now, change, default_sponsor=cmd.distributor_id)


def set_settlement(state: CommissionState, cmd: SetSettlement, now: int) -> list[Message]:
    change = f"payout delay {cmd.payout_delay_ms} ms, batch every {cmd.batch_interval_ms} ms"
    return _plan_change(state, cmd, now, change, payout_delay_ms=cmd.payout_delay_ms, batch_interval_ms=cmd.batch_interval_ms)


def set_bonuses(state: CommissionState, cmd: SetBonuses, now: int) -> list[Message]:
    change = f"{len(cmd.tiers)} bonus tiers, referral bonus {cmd.referral_bonus}"
    return _plan_change(state, cmd, now, change, bonus_tiers=list(cmd.tiers), referral_bonus=cmd.referral_bonus)


DECIDERS: dict[type, Callable[[CommissionState, Any, int], list[Message]]] = {
    RegisterDistributor: register,
    LinkDistributor: link,
    SetDistributorGrade: set_grade,
    RenewQualification: renew,
    CheckNetworkTimers: check_qualifications,
    SetCommissionLevels: set_levels,
    SetLevelRates: set_level_rates,
    SetGradePremiums: set_grade_premiums,
    SetDefaultSponsor: set_default_sponsor,
    SetSettlement: set_settlement,
    SetBonuses: set_bonuses,
}


# --- replication ------------------------------------------------------------------------------


def change_of(event: Message) -> tuple[int, NetworkChange] | None:
    """The replicated change an authoritative network event carries (None: not replicated)."""
    if isinstance(event, (DistributorRegistered, DistributorLinked, DistributorGradeChanged, QualificationRenewed)):
        return event.seq, NetworkChange(distributor=event.distributor, plan=None, sku_rate=None)
    if isinstance(event, CommissionPlanChanged):
        return event.seq, NetworkChange(
            distributor=None, plan=PlanVersion(effective_from=event.effective_from, seq=event.seq, plan=event.plan), sku_rate=None
        )
    if isinstance(event, SkuRateChanged):
        return event.seq, NetworkChange(
            distributor=None,
            plan=None,
            sku_rate=SkuRateVersion(sku=event.sku, rate=event.rate, effective_from=event.effective_from, seq=event.seq),
        )
    return None


def _replicated(state: CommissionState, e: NetworkReplicated) -> None:
    if e.seq > state.network.seq:  # the network's own partition already has it
        state.network.apply(e.seq, e.change)
        if e.change.distributor is not None:  # parked bonuses were decided with it (awarded or refused)
            state.parked_bonuses.pop(e.change.distributor.distributor_id, None)


def _changed(state: CommissionState, e: Message) -> None:
    found = change_of(e)
    if found is not None:
        state.network.apply(*found)
    if isinstance(e, DistributorRegistered):
        state.parked_bonuses.pop(e.distributor.distributor_id, None)
    if isinstance(e, SkuRateChanged):
        if e.manual_rate is None:
            state.authority.manual.pop(e.sku, None)
        else:
            state.authority.manual[e.sku] = e.manual_rate


def _warned(state: CommissionState, e: QualificationExpiryWarned) -> None:
    state.authority.warned[e.distributor_id] = e.qualified_until


def _expired(state: CommissionState, e: QualificationExpired) -> None:
    state.authority.expired[e.distributor_id] = e.qualified_until


EVOLVERS: dict[type, Callable[[CommissionState, Any], None]] = {
    NetworkReplicated: _replicated,
    QualificationExpiryWarned: _warned,
    QualificationExpired: _expired,
    **dict.fromkeys(
        (
            DistributorRegistered,
            DistributorLinked,
            DistributorGradeChanged,
            QualificationRenewed,
            CommissionPlanChanged,
            SkuRateChanged,
        ),
        _changed,
    ),
}
