"""The report of a simulated quarter: `report/index.html` (one self-contained file, PNG plots as data:
URIs, opens offline) and `report/numbers.json` (every number the report shows, sorted keys).

Every number is read back from the services (HTTP, `?as_of=` for the time series) or folded from
their event topics (read_committed) — never from the simulator's own bookkeeping. The simulator
hands over only ids (skus, campaigns, gift rules) and the business days it played.
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flexchain.tools.simulate import DAY, OPEN_HOUR, T0, Api

SERVICES = ("order", "inventory", "presale", "commission", "loyalty")
LEVEL_NAMES = {1: "level 1", 2: "level 2", 3: "level 3"}


@dataclass(frozen=True)
class Event:
    service: str
    partition: int
    offset: int
    type: str
    time: int
    msg: Any

    @property
    def day(self) -> int:
        return (self.time - T0) // DAY


async def _read_topic(bootstrap: str, topic: str, service: str) -> list[Event]:
    from flexchain import kafka
    from flexchain.catalog import all_messages
    from flexchain.serde import Codec
    from flexchain.settings import Settings

    codec = Codec(all_messages())
    out = []
    for rec in await kafka.read_to_end(Settings(kafka_bootstrap_servers=bootstrap), topic):
        e = codec.decode(rec.value)
        out.append(Event(service, rec.partition, rec.offset, e.envelope.event_type, e.envelope.business_time, e.message))
    return out


def read_events(bootstrap: str, prefix: str) -> dict[str, list[Event]]:
    """Every committed event of the five event topics, in (business time, partition, offset) order."""

    async def go() -> list[list[Event]]:
        return list(await asyncio.gather(*(_read_topic(bootstrap, f"{prefix}{s}.events", s) for s in SERVICES)))

    out = {}
    for service, evs in zip(SERVICES, asyncio.run(go()), strict=True):
        out[service] = sorted(evs, key=lambda e: (e.time, e.partition, e.offset))
    return out


def of(events: list[Event], *types: str) -> list[Event]:
    return [e for e in events if e.type in types]


def week(day: int) -> int:
    return day // 7


# --- figures --------------------------------------------------------------------------------------


def gather(
    api: Api, bootstrap: str, prefix: str, days: int, skus: list[str], campaigns: list[str], rules: list[str]
) -> dict[str, Any]:
    """Every figure of the report, as plain JSON data (ints and strings: byte-for-byte comparable)."""
    ev = read_events(bootstrap, prefix)
    n: dict[str, Any] = {"days": days, "events": {s: len(v) for s, v in ev.items()}}
    n["orders"] = orders(api, ev["order"], days)
    n["stock"] = stock(api, ev["inventory"], days, skus)
    n["presale"] = {c: presale(api, ev["presale"], c) for c in campaigns}
    n["commission"] = commission(api, ev["commission"], days)
    n["loyalty"] = loyalty(api, ev["loyalty"], days)
    n["gifts"] = gifts(api, ev["order"], rules)
    n["reconciliation"] = reconcile(n)
    return n


def orders(api: Api, evs: list[Event], days: int) -> dict[str, Any]:
    channel = {e.msg.order_id: e.msg.channel for e in of(evs, "OrderPlaced")}
    per_day: dict[str, list[int]] = {c: [0] * (days + 1) for c in ("live", "short_video", "article", "mini_program")}
    gmv_day: dict[str, list[int]] = {c: [0] * (days + 1) for c in per_day}
    for e in of(evs, "OrderPaid"):
        per_day[channel[e.msg.order_id]][min(e.day, days)] += 1
        gmv_day[channel[e.msg.order_id]][min(e.day, days)] += e.msg.amount
    refunds_by_reason: Counter[str] = Counter()
    refunded_units: Counter[str] = Counter()
    refunded = 0
    for e in of(evs, "OrderRefunded"):
        refunded += e.msg.amount
        for line in e.msg.lines:
            refunds_by_reason[line.reason] += line.amount
            refunded_units[line.reason] += line.qty
    cancelled_refunds = sum(e.msg.refund_amount or 0 for e in of(evs, "OrderCancelled"))
    for e in of(evs, "OrderRefunded"):
        gmv_day[channel[e.msg.order_id]][min(e.day, days)] -= e.msg.amount
    paid = sum(e.msg.amount for e in of(evs, "OrderPaid"))
    # the same totals asked from the order service, order by order (HTTP)
    http_paid = http_refunded = 0
    statuses: Counter[str] = Counter()
    for oid in sorted(channel):
        o = api.get("order", f"/orders/{oid}")
        http_paid += int(o["paid"])
        http_refunded += int(o["refunded_amount"])
        statuses[o["status"]] += 1
    return {
        "placed": len(channel),
        "paid_orders": len(of(evs, "OrderPaid")),
        "statuses": dict(sorted(statuses.items())),
        "paid_per_day": per_day,
        "gmv_per_day": gmv_day,
        "paid_total": paid,
        "refunded_total": refunded + cancelled_refunds,
        "gmv": paid - refunded - cancelled_refunds,
        "http_paid": http_paid,
        "http_refunded": http_refunded,
        "refunds_by_reason": dict(sorted(refunds_by_reason.items())),
        "refunded_units_by_reason": dict(sorted(refunded_units.items())),
    }


def stock(api: Api, evs: list[Event], days: int, skus: list[str]) -> dict[str, Any]:
    series: dict[str, dict[str, list[int]]] = {s: {"available": [], "threshold": [], "safety": []} for s in skus}
    sample_days = list(range(0, days + 1))
    for d in sample_days:  # as each day closed (R-X-4)
        rows = {r["sku"]: r for r in api.get("inventory", "/skus", as_of=T0 + (d + 1) * DAY - 1)}
        for s in skus:
            r = rows.get(s)
            series[s]["available"].append(int(r["available"]) if r else 0)
            series[s]["threshold"].append(int(r["threshold"]) if r else 0)
            series[s]["safety"].append(int(r["safety_stock"]["effective"]) if r else 0)
    marks: dict[str, dict[str, list[Any]]] = {s: {"alerts": [], "streams": [], "replenishments": []} for s in skus}
    for e in evs:
        if getattr(e.msg, "sku", None) not in marks:
            continue
        m = marks[e.msg.sku]
        if e.type == "LowStockAlertRaised":
            m["alerts"].append(e.day)
        elif e.type == "LiveStreamScheduled":
            m["streams"].append([e.day, int(e.msg.stream_id.rsplit("-", 1)[1]), e.msg.expected_sales])
        elif e.type == "ReplenishmentSuggested":
            m["replenishments"].append([e.day, e.msg.qty])
    return {"days": sample_days, "series": series, "marks": marks}


def presale(api: Api, evs: list[Event], cid: str) -> dict[str, Any]:
    now = api.get("presale", f"/campaigns/{cid}")
    mine = [e for e in evs if getattr(e.msg, "campaign_id", None) == cid]
    first = min(e.day for e in mine)
    last = max(e.day for e in mine)
    over_time: dict[str, list[int]] = defaultdict(list)
    span = list(range(first, last + 1))
    for d in span:
        c = api.get("presale", f"/campaigns/{cid}", as_of=T0 + (d + 1) * DAY - 1)
        over_time["pledged"].append(int(c["pledged_units"]))
        for b, v in sorted(c["buckets"].items()):
            over_time[b].append(int(v))
        over_time["released"].append(int(c["money"]["released"]))
        over_time["refunded"].append(int(c["money"]["refunded"]))
    money = now["money"]
    return {
        "status": now["status"],
        "moq": int(now["moq"]),
        "cap": int(now["max_capacity"]) * 8 // 10,
        "pledged_units": int(now["pledged_units"]),
        "days": span,
        "over_time": dict(over_time),
        "money": {k: int(money[k]) for k in ("received", "held", "released", "refunded")},
        "buckets": {k: int(v) for k, v in sorted(now["buckets"].items())},
        "releases": [[e.day, e.msg.milestone, int(e.msg.amount)] for e in of(mine, "FundsReleased")],
        "milestones": [[e.day, e.msg.milestone, int(e.msg.days_late or 0)] for e in of(mine, "MilestoneReached")],
        "refunds": sum(1 for _ in of(mine, "PresaleRefundIssued", "EscrowRefunded")),
        "risk": [
            [e.day, e.type.removeprefix("RiskSignal"), e.msg.level, e.msg.rule]
            for e in of(mine, "RiskSignalRaised", "RiskSignalCleared")
        ],
    }


def commission(api: Api, evs: list[Event], days: int) -> dict[str, Any]:
    weeks = week(days) + 1
    accrued = {lvl: [0] * weeks for lvl in (1, 2, 3)}
    for e in of(evs, "CommissionAccrued"):
        for line in e.msg.lines:
            for share in line.shares:
                if share.distributor_id == e.msg.distributor_id:
                    accrued[int(share.level)][min(week(e.day), weeks - 1)] += int(share.amount)
    clawed = [0] * weeks
    for e in of(evs, "CommissionClawedBack"):
        clawed[min(week(e.day), weeks - 1)] += int(e.msg.total)
    paid = [0] * weeks
    # each payout batch (R-COM-3): settled day, distributors paid, gross, deductions, net
    batches: dict[str, list[int]] = {}
    for e in of(evs, "PayoutBatchSettled"):
        paid[min(week(e.day), weeks - 1)] += int(e.msg.net)
        b = batches.setdefault(e.msg.batch_id, [e.day, 0, 0, 0, 0])
        b[1] += 1
        b[2] += int(e.msg.gross)
        b[3] += int(e.msg.deductions)
        b[4] += int(e.msg.net)
    balances: dict[str, dict[str, int]] = {}
    for d in sorted(row["distributor_id"] for row in api.get("commission", "/distributors")):
        b = api.get("commission", f"/distributors/{d}")["balances"]
        balances[d] = {k: int(b[k]) for k in ("commission", "bonuses", "earned", "clawed_back", "pending", "payable", "paid")}
    top = sorted(balances, key=lambda d: (-balances[d]["earned"], d))[:10]
    totals = {k: sum(b[k] for b in balances.values()) for k in ("earned", "clawed_back", "pending", "payable", "paid", "bonuses")}
    return {
        "accrued_per_week": {str(k): v for k, v in accrued.items() if any(v)},
        "clawed_back_per_week": clawed,
        "paid_per_week": paid,
        "batches": dict(sorted(batches.items())),
        "distributors": len(balances),
        "top": [[d, balances[d]["earned"], balances[d]["paid"]] for d in top],
        "totals": totals,
    }


STAGES = ("prospect", "new", "growing", "mature", "declining", "churned")


def loyalty(api: Api, evs: list[Event], days: int) -> dict[str, Any]:
    weeks = week(days) + 1
    stage: dict[str, str] = {}
    by_week: dict[str, list[int]] = {s: [0] * weeks for s in STAGES}
    changes = of(evs, "StageChanged", "MemberJoined")
    i = 0
    for w in range(weeks):
        end = T0 + (w + 1) * 7 * DAY
        while i < len(changes) and changes[i].time < end:
            e = changes[i]
            stage[e.msg.member_id] = e.msg.stage if e.type == "StageChanged" else stage.get(e.msg.member_id, "prospect")
            i += 1
        for s in stage.values():
            by_week[s][w] += 1
    churn = [0] * weeks
    for e in of(evs, "ChurnWarningRaised"):
        churn[min(week(e.day), weeks - 1)] += 1
    points: dict[str, list[int]] = {k: [0] * weeks for k in ("earned", "redeemed", "expired", "reversed")}
    for t, k in (
        ("PointsEarned", "earned"),
        ("PointsRedeemed", "redeemed"),
        ("PointsExpired", "expired"),
        ("PointsReversed", "reversed"),
    ):
        for e in of(evs, t):
            points[k][min(week(e.day), weeks - 1)] += int(e.msg.points)
    rfm: dict[str, tuple[int, int]] = {}
    for e in of(evs, "RfmSegmentChanged"):
        rfm[e.msg.member_id] = (int(e.msg.recency), int(e.msg.frequency))
    grid = [[0] * 5 for _ in range(5)]
    for r, f in rfm.values():
        grid[r - 1][f - 1] += 1
    members = sorted({e.msg.member_id for e in of(evs, "MemberJoined")})
    # `held`: the points in the member's batches (available, plus any batch past its date that the
    # next tick has not booked off yet): the ledger identity's term (services/loyalty/README.md)
    ledger = {k: 0 for k in ("earned", "held", "available", "pending", "redeemed", "expired", "reversed")}
    for mid in members:
        a = api.get("loyalty", f"/members/{mid}")
        ledger["available"] += int(a["points"]["available"])
        ledger["held"] += int(a["points"]["held"])
        ledger["pending"] += int(a["points"]["pending"])
        for k in ("earned", "redeemed", "expired", "reversed"):
            ledger[k] += int(a["totals"][k])
    return {
        "members": len(members),
        "stages_per_week": by_week,
        "churn_warnings_per_week": churn,
        "points_per_week": points,
        "rfm_grid": grid,
        "ledger": ledger,
    }


def gifts(api: Api, evs: list[Event], rules: list[str]) -> dict[str, Any]:
    from services.order.gifts import GIFT_COST_CAP

    skipped: Counter[str] = Counter(e.msg.rule_id for e in of(evs, "GiftRuleSkipped"))
    reviews: Counter[str] = Counter(e.msg.rule_id for e in of(evs, "GiftRuleReviewSuggested"))
    paid = {e.msg.order_id for e in of(evs, "OrderPaid")}
    lines: dict[str, list[tuple[int, int]]] = defaultdict(list)  # main sku → (qty, unit price) of paid lines
    for e in of(evs, "OrderPlaced"):
        if e.msg.order_id in paid:
            for line in e.msg.lines:
                lines[line.sku].append((int(line.qty), int(line.unit_price)))
    out = {}
    for rid in rules:
        r = api.get("order", f"/gift-rules/{rid}")
        perf = r.get("performance") or r
        cost = int(r["main_unit_cost"])
        # R-ORD-4: the most the gifts of the rule's paid orders could have cost, at the service's
        # default cap: 15 % of each main line's gross margin (qty × (unit price − unit cost))
        cap = sum(GIFT_COST_CAP * qty * (price - cost) for qty, price in lines[r["main_sku"]])
        out[rid] = {
            "cap_amount": int(cap),
            "gift_unit_cost": int(r["gift_unit_cost"]),
            "main_unit_cost": int(r["main_unit_cost"]),
            "skipped": skipped[rid],
            "gift_cost": int(perf.get("gift_cost", 0)),
            "recipients": int(perf.get("recipients", 0)),
            "roi": str(perf.get("roi", "")),  # "" while the rule has shipped no gift (no cost)
            "review_suggested": bool(r.get("review_suggested", False)),
            "reviews_suggested": reviews[rid],
        }
    return out


def reconcile(n: dict[str, Any]) -> list[dict[str, Any]]:
    """The four identities of the issue, each with both sides: a row that does not hold is a bug."""
    o, c, p = n["orders"], n["commission"]["totals"], n["loyalty"]["ledger"]
    rows = [
        {
            "check": "GMV = Σ paid − Σ refunded (order.events) = the same over GET /orders/{id}",
            "left": o["gmv"],
            "right": o["http_paid"] - o["http_refunded"],
        }
    ]
    for cid, cp in n["presale"].items():
        m = cp["money"]
        rows.append(
            {
                "check": f"escrow {cid}: received = buckets + released + refunded (GET /campaigns)",
                "left": m["received"],
                "right": sum(cp["buckets"].values()) + m["released"] + m["refunded"],
            }
        )
    rows.append(
        {
            "check": "commission: earned − clawed back = pending + payable + paid (Σ GET /distributors/{id})",
            "left": c["earned"] - c["clawed_back"],
            "right": c["pending"] + c["payable"] + c["paid"],
        }
    )
    rows.append(
        {
            "check": "points: earned = available (held) + pending + redeemed + expired + reversed (Σ GET /members/{id})",
            "left": p["earned"],
            "right": p["held"] + p["pending"] + p["redeemed"] + p["expired"] + p["reversed"],
        }
    )
    for r in rows:
        r["holds"] = r["left"] == r["right"]
    return rows


# --- the page -------------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None}, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def plots(n: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(title, data URI, caption) per plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[tuple[str, str, str]] = []

    def add(title: str, fig: Any, caption: str) -> None:
        out.append((title, _png(fig), caption))

    st = n["stock"]
    for sku, s in st["series"].items():
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.plot(st["days"], s["available"], label="available", color="tab:blue")
        ax.plot(st["days"], s["threshold"], label="threshold", color="tab:red", linestyle="--")
        ax.plot(st["days"], s["safety"], label="safety stock", color="tab:orange", linestyle=":")
        m = st["marks"][sku]
        for i, d in enumerate(m["alerts"]):
            ax.axvline(d, color="red", alpha=0.4, label="low-stock alert" if i == 0 else None)
        for i, (_, d, _) in enumerate(m["streams"]):
            ax.axvspan(d, d + 1, color="purple", alpha=0.15, label="live stream" if i == 0 else None)
        for i, (d, q) in enumerate(m["replenishments"]):
            ax.annotate(f"+{q}", (d, 0), color="green", fontsize=7, rotation=90, va="bottom")
            ax.plot([d], [0], marker="^", color="green", label="replenishment suggested" if i == 0 else None)
        ax.set_xlabel("business day")
        ax.set_ylabel("units")
        ax.set_title(f"stock of {sku}")
        ax.legend(fontsize=7, loc="upper right")
        add(
            f"Stock: {sku}",
            fig,
            (
                "Available units at each day's close (GET /skus?as_of=), its R-INV-3 threshold and dynamic "
                "safety stock (R-INV-4); red lines: low-stock alerts, purple: live streams, green: replenishment "
                "suggestions (R-INV-5), from inventory.events."
            ),
        )
    o = n["orders"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3))
    days = list(range(len(next(iter(o["paid_per_day"].values())))))
    bottom = [0] * len(days)
    bottom2 = [0.0] * len(days)
    for ch, v in o["paid_per_day"].items():
        a1.bar(days, v, bottom=bottom, label=ch)
        bottom = [a + b for a, b in zip(bottom, v, strict=True)]
        g = [x / 100 for x in o["gmv_per_day"][ch]]
        a2.bar(days, g, bottom=bottom2, label=ch)
        bottom2 = [a + b for a, b in zip(bottom2, g, strict=True)]
    a1.set_title("paid orders per day by channel")
    a2.set_title("GMV per day by channel (CNY, net of refunds)")
    a1.legend(fontsize=7)
    add(
        "Orders and GMV",
        fig,
        "Folded from order.events: OrderPaid by day and channel; GMV = paid − refunded on the day of each.",
    )
    fig, ax = plt.subplots(figsize=(6, 3))
    reasons = list(o["refunds_by_reason"])
    ax.bar(reasons, [o["refunds_by_reason"][r] / 100 for r in reasons], color="tab:red")
    ax.set_title("refunds by reason (CNY)")
    add("Refunds by reason", fig, "OrderRefunded lines by reason (R-ORD-2a).")
    for cid, c in n["presale"].items():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3))
        a1.plot(c["days"], c["over_time"]["pledged"], label="pledged units")
        a1.axhline(c["moq"], color="red", linestyle="--", label=f"MOQ {c['moq']}")
        a1.axhline(c["cap"], color="gray", linestyle=":", label=f"80 % cap {c['cap']}")
        for d, kind, level, _rule in c["risk"]:
            if kind == "Raised":
                a1.axvline(d, color={"red": "red", "yellow": "gold", "green": "green"}.get(level, "gray"), alpha=0.5)
        a1.set_title(f"{cid}: pledges ({c['status']})")
        a1.legend(fontsize=7)
        for b in ("production", "risk", "marketing", "operations", "deposits", "released", "refunded"):
            if b in c["over_time"] and any(c["over_time"][b]):
                a2.plot(c["days"], [x / 100 for x in c["over_time"][b]], label=b)
        a2.set_title("escrow buckets, released and refunded (CNY)")
        a2.legend(fontsize=7)
        add(
            f"Presale {cid}",
            fig,
            (
                "GET /campaigns/{id}?as_of= at each day's close: pledges against MOQ and the 80 % intake cap "
                "(R-PRE-4, R-PRE-7), the buckets (R-PRE-5), releases against milestones (R-PRE-6) and refunds; "
                "vertical lines: risk signals raised (R-PRE-9; red, yellow, green)."
            ),
        )
    cm = n["commission"]
    fig, (a1, a3, a2) = plt.subplots(1, 3, figsize=(15, 3))
    batch_rows = sorted(cm["batches"].values())
    a3.bar([b[0] for b in batch_rows], [b[2] / 100 for b in batch_rows], label="gross")
    a3.bar([b[0] for b in batch_rows], [b[3] / 100 for b in batch_rows], label="deductions")
    a3.plot([b[0] for b in batch_rows], [b[4] / 100 for b in batch_rows], "k_", markersize=12, label="net paid")
    a3.set_xlabel("day settled")
    a3.set_title(f"payout batches ({len(batch_rows)}, CNY)")
    a3.legend(fontsize=7)
    weeks = list(range(len(cm["paid_per_week"])))
    for lvl, v in cm["accrued_per_week"].items():
        a1.plot(weeks, [x / 100 for x in v], marker="o", label=f"accrued level {lvl}")
    a1.plot(weeks, [x / 100 for x in cm["clawed_back_per_week"]], marker="x", label="clawed back")
    a1.plot(weeks, [x / 100 for x in cm["paid_per_week"]], marker="s", label="paid out")
    a1.set_xlabel("week")
    a1.set_title("commission per week (CNY)")
    a1.legend(fontsize=7)
    names = [t[0] for t in cm["top"]]
    a2.barh(names[::-1], [t[1] / 100 for t in cm["top"]][::-1], label="earned")
    a2.barh(names[::-1], [t[2] / 100 for t in cm["top"]][::-1], label="paid")
    a2.set_title("top distributors (CNY)")
    a2.legend(fontsize=7)
    add(
        "Commission",
        fig,
        (
            "commission.events: CommissionAccrued lines per level, CommissionClawedBack and "
            "PayoutBatchSettled per week (R-COM-2..4); each payout batch: gross, deductions carried and "
            "net paid (R-COM-3); top distributors from GET /distributors/{id}."
        ),
    )
    ly = n["loyalty"]
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(13, 3))
    weeks = list(range(len(ly["churn_warnings_per_week"])))
    bottom = [0] * len(weeks)
    for s, v in ly["stages_per_week"].items():
        a1.bar(weeks, v, bottom=bottom, label=s)
        bottom = [a + b for a, b in zip(bottom, v, strict=True)]
    a1.plot(weeks, ly["churn_warnings_per_week"], color="black", marker="o", label="churn warnings")
    a1.set_title("members by stage per week")
    a1.legend(fontsize=6)
    for k, v in ly["points_per_week"].items():
        a2.plot(weeks, v, marker=".", label=k)
    a2.set_title("points per week")
    a2.legend(fontsize=7)
    a3.imshow(ly["rfm_grid"], origin="lower", cmap="Blues")
    for r in range(5):
        for f in range(5):
            a3.text(f, r, str(ly["rfm_grid"][r][f]), ha="center", va="center", fontsize=7)
    a3.set_xticks(range(5), [str(i) for i in range(1, 6)])
    a3.set_yticks(range(5), [str(i) for i in range(1, 6)])
    a3.set_xlabel("frequency score")
    a3.set_ylabel("recency score")
    a3.set_title("RFM grid")
    add(
        "Members and points",
        fig,
        (
            "loyalty.events: stage of every member at each week's end (R-LOY-3) with ChurnWarningRaised, "
            "points earned / redeemed / expired / reversed (R-LOY-2), members by their last RFM scores "
            "(R-LOY-6)."
        ),
    )
    g = n["gifts"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3))
    rules = list(g)
    x = list(range(len(rules)))
    a1.bar([i - 0.2 for i in x], [g[r]["cap_amount"] / 100 for r in rules], width=0.4, label="15 % cap amount")
    a1.bar([i + 0.2 for i in x], [g[r]["gift_cost"] / 100 for r in rules], width=0.4, label="gift cost shipped")
    for i, r in enumerate(rules):
        a1.annotate(f"{g[r]['skipped']} skipped", (i + 0.2, g[r]["gift_cost"] / 100), fontsize=6, ha="center", va="bottom")
    a1.set_xticks(x, rules)
    a1.set_title("gift cost against the 15 % cap (CNY, R-ORD-4)")
    a1.legend(fontsize=7)
    a1.tick_params(axis="x", labelsize=7)
    a2.bar(rules, [float(g[r]["roi"] or 0) for r in rules])
    for i, r in enumerate(rules):
        if not g[r]["roi"]:  # the service's "": no gift shipped yet, so no cost to divide by
            a2.annotate("no gift cost yet", (i, 0), fontsize=6, ha="center", va="bottom")
    a2.axhline(1.2, color="red", linestyle="--", label="review below 1.2")
    a2.axhline(1.5, color="green", linestyle=":", label="healthy 1.5")
    a2.set_title("gift ROI per rule (R-ORD-6)")
    a2.legend(fontsize=7)
    a2.tick_params(axis="x", labelsize=7)
    add(
        "Gift rules",
        fig,
        (
            "GET /gift-rules/{id}: cost of the gifts shipped against the 15 % cap amount (15 % of the gross "
            "margin of the rule's paid main lines, from order.events), orders skipped by the cap "
            "(GiftRuleSkipped), ROI with the review line."
        ),
    )
    return out


CHECK_SCRIPT = """
window.addEventListener('error', function (e) { document.title = 'script-error'; });
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  var p = document.createElement('p'); p.id = 'image-check';
  p.textContent = 'images ' + ok + '/' + imgs.length + (ok === imgs.length ? ' loaded' : ' BROKEN');
  document.body.appendChild(p);
});
"""


def write(out: Path, n: dict[str, Any], title: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "numbers.json").write_text(json.dumps(n, sort_keys=True, indent=1) + "\n")
    rec = "".join(
        f"<tr><td>{html.escape(r['check'])}</td><td>{r['left']:,}</td><td>{r['right']:,}</td>"
        + ("<td class=ok>holds</td></tr>" if r["holds"] else "<td class=bad>DOES NOT HOLD</td></tr>")
        for r in n["reconciliation"]
    )
    o = n["orders"]
    summary = (
        f"{n['days']} business days; {o['placed']} orders placed, {o['paid_orders']} paid; GMV {o['gmv'] / 100:,.2f} CNY "
        f"(paid {o['paid_total'] / 100:,.2f}, refunded {o['refunded_total'] / 100:,.2f}); "
        f"{n['commission']['distributors']} distributors; {n['loyalty']['members']} members; "
        f"events: " + ", ".join(f"{s} {c:,}" for s, c in n["events"].items())
    )
    drawn = plots(n)
    figs = "".join(
        f"<section><h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='{uri}'><p class=cap>{html.escape(cap)}</p></section>"
        for t, uri, cap in drawn
    )
    (out / "plots").mkdir(exist_ok=True)  # each plot also as a file, for a slide or a README
    for t, uri, _ in drawn:
        slug = re.sub(r"[^a-z0-9]+", "-", t.lower()).strip("-")
        (out / "plots" / f"{slug}.png").write_bytes(base64.b64decode(uri.split(",", 1)[1]))
    page = f"""<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:1em auto;color:#222}}img{{max-width:100%}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
.ok{{color:green}}.bad{{color:red;font-weight:bold}}
.cap{{color:#555;font-size:90%}}</style><script>{CHECK_SCRIPT}</script></head><body>
<h1>{html.escape(title)}</h1><p>{html.escape(summary)}</p>
<h2>Reconciliation</h2><table><tr><th>identity</th><th>left</th><th>right</th><th></th></tr>{rec}</table>
{figs}
<p class=cap>Every number is read back from the services (HTTP, ?as_of=) or folded from their event topics;
the simulator's own bookkeeping is not used. numbers.json beside this file holds them all.</p>
</body></html>
"""
    (out / "index.html").write_text(page)
    return out / "index.html"


__all__ = ["OPEN_HOUR", "gather", "write"]
