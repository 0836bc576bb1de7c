"""R-PRE-9 risk signals, pure: which signals hold for a campaign's figures at a business time, and
the events that move the campaign's active set there (raised on entering, cleared on leaving — one
event per cause; a signal whose cause names a day, a milestone or a question is its own cause).

| id | level | holds while |
|---|---|---|
| `red:pledge-rate` | red | open, past the early bird, pledges < 0.8 % of the fan base |
| `red:milestone-late:<m>` | red | milestone `m` not reached more than 7 days after its planned date |
| `red:refund-rate:<day>` | red | on business day `<day>` buyers took back > 2 % of the units ever pledged |
| `yellow:order-value` | yellow | average paid order < 1.5 × unit cost |
| `yellow:supplier-answer` | yellow | a supplier question open > 24 h, or the last answer took > 24 h |
| `green:fund-coverage` | green | money held / (unit cost × pledged units − released) > 1.5 |
| `green:on-time` | green | milestones reached by their planned date > 95 % of those reached |

A failed or cancelled campaign holds no signal (every active one is cleared at the close).
"""

from __future__ import annotations

import functools
import time

from flexchain.messages import Message
from services.presale.messages import RiskSignalCleared, RiskSignalRaised
from services.presale.rules import DAY_MS, PresaleConfig
from services.presale.state import OPEN, SUCCEEDED, Campaign, Tally

Signal = tuple[str, str, str]  # level, rule, detail


def day_name(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * DAY_MS // 1000))


@functools.lru_cache(maxsize=16)
def _ratios(cfg: PresaleConfig) -> dict[str, tuple[int, int]]:
    """The thresholds as exact integer ratios: the comparisons below stay exact and cheap."""
    names = ("red_pledge_rate", "red_refund_day_rate", "yellow_order_value_factor", "green_coverage", "green_on_time")
    return {n: getattr(cfg, n).as_integer_ratio() for n in names}


def desired(c: Campaign, t: Tally, now: int, cfg: PresaleConfig) -> dict[str, Signal]:
    out: dict[str, Signal] = {}
    if t.status not in (OPEN, SUCCEEDED):
        return out
    r = _ratios(cfg)
    num, den = r["red_pledge_rate"]
    judged = t.status == OPEN and c.starts_at is not None and now >= c.starts_at + cfg.early_bird_ms  # after the early bird
    if judged and t.open_pledges * den < num * c.fan_base:
        detail = f"{t.open_pledges} pledges < {cfg.red_pledge_rate:%} of the fan base {c.fan_base}"
        out["red:pledge-rate"] = ("red", "pledge-rate", detail)
    for m, due in sorted(t.milestone_due.items()):
        if m not in t.milestones_done and now - due > cfg.red_milestone_late_ms:
            out[f"red:milestone-late:{m}"] = ("red", "milestone-late", f"{m} due {(now - due) // DAY_MS} days ago")
    num, den = r["red_refund_day_rate"]
    if t.refund_day == now // DAY_MS and t.accepted_units > 0 and t.refund_day_units * den > num * t.accepted_units:
        day = day_name(t.refund_day)
        detail = f"{t.refund_day_units} units refunded on {day}, > {cfg.red_refund_day_rate:%} of {t.accepted_units} pledged"
        out[f"red:refund-rate:{day}"] = ("red", "refund-rate", detail)
    num, den = r["yellow_order_value_factor"]
    if t.paid_orders > 0 and t.paid_total * den < num * t.unit_cost * t.paid_orders:
        detail = f"average order {t.paid_total // t.paid_orders} < {cfg.yellow_order_value_factor} × unit cost {t.unit_cost}"
        out["yellow:order-value"] = ("yellow", "order-value", detail)
    if t.questions_open or t.last_answer_ms is not None:
        slow = sorted(q for q, asked in t.questions_open.items() if now - asked > cfg.yellow_answer_ms)
        last = t.last_answer_ms
        if slow or (last is not None and last > cfg.yellow_answer_ms):
            detail = f"unanswered > 24 h: {', '.join(slow)}" if slow else f"last answer took {(last or 0) // 3_600_000} h"
            out["yellow:supplier-answer"] = ("yellow", "supplier-answer", detail)
    num, den = r["green_coverage"]
    payables = t.unit_cost * t.pledged_units - t.released
    if payables > 0 and t.held * den > num * payables:
        out["green:fund-coverage"] = ("green", "fund-coverage", f"held {t.held} / payables {payables} > {cfg.green_coverage}")
    if t.milestones_done:
        num, den = r["green_on_time"]
        reached = sum(1 for m in t.milestones_done if m in t.milestone_due)
        if reached and t.on_time * den > num * reached:
            out["green:on-time"] = ("green", "on-time", f"{t.on_time} of {reached} milestones on time")
    return out


def signal_events(c: Campaign, t: Tally, now: int, cfg: PresaleConfig) -> list[Message]:
    """Raise what newly holds, clear what no longer does (sorted, so a replay decides the same)."""
    want = desired(c, t, now, cfg)
    why = "no longer holds" if t.status in (OPEN, SUCCEEDED) else f"campaign {t.status}"
    out: list[Message] = []
    for sid in sorted(c.signals):
        if sid not in want:
            level, rule = c.signals[sid], sid.split(":")[1]
            out.append(RiskSignalCleared(campaign_id=c.campaign_id, signal_id=sid, level=level, rule=rule, detail=why, at=now))
    for sid in sorted(want):
        if sid not in c.signals:
            level, rule, detail = want[sid]
            out.append(RiskSignalRaised(campaign_id=c.campaign_id, signal_id=sid, level=level, rule=rule, detail=detail, at=now))
    return out
