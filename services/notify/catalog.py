"""The derived events a person should hear about, and a short text for each in Chinese and English.

Pure: no I/O. A template is a ``str.format`` string over the event's payload fields; ``!d`` turns a
business time (ms since the epoch) into its UTC date. Every type here is an event of its service
(``EVENTS`` in ``services/<service>/messages.py``); the unit tests format each template with a body
built from the type's schema, so a renamed field fails there and not at a merchant's webhook.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Notice:
    """One notifiable event type: the service that emits it, the rule behind it, its two texts."""

    service: str
    rule: str
    zh: str
    en: str


NOTIFIABLE: dict[str, Notice] = {
    # inventory
    "LowStockAlertRaised": Notice(
        "inventory",
        "R-INV-3",
        "库存预警：{sku} 可用库存 {available}，低于阈值 {threshold}。",
        "Low stock: {sku} has {available} available, below its threshold of {threshold}.",
    ),
    "ReplenishmentSuggested": Notice(
        "inventory",
        "R-INV-5",
        "建议补货：{sku} 订购 {qty} 件（可用 {available}，阈值 {threshold}，交期 {lead_time_days} 天）。",
        "Reorder {qty} units of {sku} (available {available}, threshold {threshold}, lead time {lead_time_days} days).",
    ),
    "StockTransferSuggested": Notice(
        "inventory",
        "R-INV-5",
        "建议调拨：将 {qty} 件 {sku} 从 {from_warehouse} 调往 {to_warehouse}。",
        "Move {qty} units of {sku} from {from_warehouse} to {to_warehouse}.",
    ),
    "SlowMovingStockDetected": Notice(
        "inventory",
        "R-INV-6",
        "滞销预警：{sku} 近 {window_days} 天售罄率 {sell_through}，在库 {on_hand} 件。",
        "Slow mover: {sku} sold through {sell_through} over {window_days} days, {on_hand} on hand.",
    ),
    "StockBecameAvailable": Notice(
        "inventory",
        "R-INV-6a",
        "到货通知：{sku} 已恢复供应，可用 {available} 件。",
        "Back in stock: {sku} has {available} available again.",
    ),
    # presale
    "RiskSignalRaised": Notice(
        "presale",
        "R-PRE-9",
        "预售风险（{level}）：活动 {campaign_id}，{detail}",
        "Presale risk ({level}) on campaign {campaign_id}: {detail}",
    ),
    "BuyerNoticeRequired": Notice(
        "presale",
        "R-PRE-9",
        "预售活动 {campaign_id}：{milestone} 已延误 {days_late} 天，请通知买家。",
        "Campaign {campaign_id}: {milestone} is {days_late} days late; the buyers must be told.",
    ),
    "SupplierPenaltyIncurred": Notice(
        "presale",
        "R-PRE-9",
        "预售活动 {campaign_id}：供应商 {milestone} 延误 {days_late} 天，应支付违约金。",
        "Campaign {campaign_id}: the supplier is {days_late} days late on {milestone}; a penalty is due.",
    ),
    # commission
    "QualificationExpiryWarned": Notice(
        "commission",
        "R-COM-6",
        "分销商 {distributor_id} 的资质将在 {days_left} 天后（{qualified_until!d}）到期。",
        "Distributor {distributor_id}'s qualification ends in {days_left} days ({qualified_until!d}).",
    ),
    "QualificationExpired": Notice(
        "commission",
        "R-COM-6",
        "分销商 {distributor_id} 的资质已于 {qualified_until!d} 到期，续期前不再计佣。",
        "Distributor {distributor_id}'s qualification ended on {qualified_until!d}: no commission accrues until renewed.",
    ),
    # loyalty
    "ChurnWarningRaised": Notice(
        "loyalty",
        "R-LOY-3",
        "流失预警：会员 {member_id} 已 {gap_days} 天未购买（平时约每 {usual_interval_days} 天一次）。",
        "Churn warning: member {member_id} has not bought for {gap_days} days (usually every {usual_interval_days}).",
    ),
    "ReplenishmentReminderRaised": Notice(
        "loyalty",
        "R-LOY-4",
        "补货提醒：会员 {member_id} 的 {sku} 预计在 {run_out_at!d} 用完。",
        "Replenishment reminder: member {member_id} runs out of {sku} around {run_out_at!d}.",
    ),
    # order
    "GiftRuleReviewSuggested": Notice(
        "order",
        "R-ORD-6",
        "赠品规则 {rule_id}：ROI {roi} 低于 {threshold}，建议复核。",
        "Gift rule {rule_id}: ROI {roi} is below {threshold}; review it.",
    ),
}

# A notifiable event renamed (issue 17: events say what happened): records written before carry the
# old name, and a webhook configured before may list it — both mean the type of today's name.
FORMERLY: dict[str, str] = {
    "StockBackInStock": "StockBecameAvailable",  # formerly
    "SupplierPenaltyDue": "SupplierPenaltyIncurred",  # formerly
}


def current_name(event_type: str) -> str:
    """The type's name today (a former name of a renamed type → its new name)."""
    return FORMERLY.get(event_type, event_type)


LANGUAGES = ("zh", "en")


class _Formatter(string.Formatter):
    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion == "d":  # a business time in ms → its UTC date
            return datetime.fromtimestamp(int(value) / 1000, UTC).strftime("%Y-%m-%d")
        return super().convert_field(value, conversion)


_FORMAT = _Formatter()


def texts(event_type: str, body: dict[str, Any]) -> dict[str, str]:
    """The short human texts of one event, ``{"zh": …, "en": …}``; KeyError for a type not in NOTIFIABLE."""
    notice = NOTIFIABLE[event_type]
    return {"zh": _FORMAT.format(notice.zh, **body), "en": _FORMAT.format(notice.en, **body)}
