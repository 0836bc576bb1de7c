"""Inventory's read side: its read model (`InventoryView`: nothing from other services) and the pure
queries the read routes of `api.py` answer, built from the folded state; the answer models are in
`answers.py`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flexchain.messages import Enveloped, Message, to_record
from services.inventory import stock_math
from services.inventory.state import Sku


class InventoryView:
    """Inventory needs nothing from other services for its queries: its own state is `rt.own`."""

    topics: list[str] = []

    def fold(self, item: Enveloped) -> None:
        pass


def _record(m: Message | None) -> dict[str, Any] | None:
    return None if m is None else to_record(m)  # decimals as exact strings


def _policy(p: stock_math.StockPolicy | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "lead_time_days": p.lead_time_days,
        "cover_factor": str(p.cover_factor),
        "gift_tier": p.gift_tier,
        "forecast_daily_units": None if p.forecast_daily_units is None else str(p.forecast_daily_units),
        "monthly_visitors": p.monthly_visitors,
        "conversion_rate": str(p.conversion_rate),
        "velocity_window_days": p.velocity_window_days,
        "slow_mover_window_days": p.slow_mover_window_days,
        "sell_through_floor": str(p.sell_through_floor),
    }


def suggestions(item: Sku) -> dict[str, Any]:
    return {
        "crossing": item.crossings,
        "replenishment": _record(item.last_replenishment),
        "transfers": [_record(t) for t in item.last_transfers],
    }


def sku_view(item: Sku, now: int = 0) -> dict[str, Any]:
    """The sku as of business time `now` (the velocity counts the complete days before it)."""
    today = stock_math.day_of(now)
    policy = item.policy or stock_math.DEFAULT_POLICY
    shipped = stock_math.shipped_in(item.shipped_by_day, today, policy.slow_mover_window_days)
    return {
        "sku": item.sku,
        "name": item.name,
        "is_gift": item.is_gift,
        "on_hand": item.on_hand,
        "reserved": item.reserved,
        "available": item.available,
        "clearance": sum(w.clearance for w in item.warehouses.values()),
        "threshold": item.threshold(),
        "low_stock_alert": item.alert_active,
        "safety_stock": {
            "units": item.safety_stock,
            "basis": item.safety_basis or ("policy" if item.policy is not None else "manual"),
            "standing_stock": item.standing_stock,
            "effective": item.effective_safety_stock(),
        },
        "velocity": {"units_per_day": str(item.velocity(today)), "window_days": policy.velocity_window_days, "as_of_day": today},
        "sell_through": {
            "rate": str(stock_math.as_decimal(stock_math.sell_through(shipped, item.on_hand))),
            "shipped": shipped,
            "window_days": policy.slow_mover_window_days,
            "floor": str(policy.sell_through_floor),
            "slow_moving": item.slow_moving,
            "episodes": item.slow_episodes,
        },
        "policy": _policy(item.policy),
        "live_streams": dict(sorted(item.streams.items())),
        "suggestions": suggestions(item),
        "gifts_written_off": item.written_off,
        "warehouses": {
            name: {"on_hand": w.on_hand, "reserved": w.reserved, "available": w.available, "clearance": w.clearance}
            for name, w in sorted(item.warehouses.items())
        },
        # R-INV-2: on hand = received − shipped + returned_a, clearance = returned_b, per warehouse
        "counters": {
            name: {"received": w.received, "shipped": w.shipped, "returned_a": w.returned_a, "returned_b": w.returned_b}
            for name, w in sorted(item.warehouses.items())
        },
        "reservations": {order: dict(held) for order, held in item.reservations.items()},
    }


def low_stock(skus: Iterable[Sku]) -> list[dict[str, Any]]:
    """R-INV-5: the skus below their threshold, with what their alert suggested."""
    low = sorted((s for s in skus if s.alert_active), key=lambda s: s.sku)
    return [{"sku": s.sku, "available": s.available, "threshold": s.threshold(), **suggestions(s)} for s in low]


def slow_movers(skus: Iterable[Sku]) -> list[dict[str, Any]]:
    """R-INV-6: the skus inside a slow-mover episode."""
    slow = sorted((s for s in skus if s.slow_moving), key=lambda s: s.sku)
    return [{"sku": s.sku, "on_hand": s.on_hand, "episode": s.slow_episodes} for s in slow]
