"""What inventory's read routes answer (`services/inventory/api.py`), as models with a real example each.

Quantities are whole units (ints); rates and decimal figures are exact decimal strings ("0.2500").
"""

from __future__ import annotations

from pydantic import Field

from flexchain.answers import Answer, ReplaySummary


class SafetyStockView(Answer):
    """The sku's safety stock (R-INV-4) and the standing stock under it after a presale (R-INV-7)."""

    EXAMPLE = {"units": 0, "basis": "manual", "standing_stock": 0, "effective": 0}

    units: int = Field(description="the safety stock, set by hand or computed from the stock policy (R-INV-4)")
    basis: str = Field(
        description="how `units` was set: `manual` (by hand), or from the policy (R-INV-4): `velocity`, "
        "`gift_tier_1`, `gift_tier_2_forecast`, `gift_tier_3` (`policy` before the first daily review)"
    )
    standing_stock: int = Field(description="R-INV-7: the floor a successful presale left under the safety stock")
    effective: int = Field(description="the safety stock that counts in the threshold: max(units, standing_stock)")


class VelocityView(Answer):
    """R-INV-4: the daily sales velocity over the complete business days before today."""

    EXAMPLE = {"units_per_day": "0.2500", "window_days": 28, "as_of_day": 20783}

    units_per_day: str = Field(description="units shipped per day over the window, 4 places")
    window_days: int
    as_of_day: int = Field(description="today's business day (days since the epoch, UTC); the window ends the day before")


class SellThroughView(Answer):
    """R-INV-6: sell-through over the slow-mover window, against the sku's floor."""

    EXAMPLE = {
        "rate": "0.0100",
        "shipped": 2,
        "window_days": 30,
        "floor": "0.20",
        "slow_moving": False,
        "episodes": 0,
    }

    rate: str = Field(description="shipped in the window / (shipped in the window + on hand), 4 places")
    shipped: int = Field(description="units shipped in the window")
    window_days: int
    floor: str = Field(description="below it the sku is a slow mover (R-INV-6)")
    slow_moving: bool = Field(description="inside a slow-mover episode now")
    episodes: int = Field(description="slow-mover episodes so far (the number of the current or last one)")


class StockPolicyView(Answer):
    """R-INV-4, R-INV-6, R-INV-7: the sku's configured planning figures, every default filled in."""

    EXAMPLE = {
        "lead_time_days": 5,
        "cover_factor": "1.5",
        "gift_tier": None,
        "forecast_daily_units": None,
        "monthly_visitors": 40000,
        "conversion_rate": "0.02",
        "velocity_window_days": 28,
        "slow_mover_window_days": 30,
        "sell_through_floor": "0.20",
    }

    lead_time_days: int = Field(description="supplier lead time (R-INV-4, R-INV-5)")
    cover_factor: str = Field(description="R-INV-4: safety stock = velocity × lead time × cover factor")
    gift_tier: int | None = Field(description="R-INV-4: 1 core (30 days of cover), 2 seasonal (forecast), 3 generic (7 days)")
    forecast_daily_units: str | None = Field(description="the daily demand a tier-2 gift plans with (R-INV-4)")
    monthly_visitors: int = Field(description="R-INV-7: standing stock after a presale")
    conversion_rate: str = Field(description="R-INV-7: standing stock after a presale")
    velocity_window_days: int
    slow_mover_window_days: int
    sell_through_floor: str = Field(description="R-INV-6")


class ReplenishmentView(Answer):
    """R-INV-5: the supplier order suggested with a low-stock alert (a `ReplenishmentSuggested` event):
    qty = threshold − available + ⌈daily demand × lead time⌉."""

    EXAMPLE = {
        "sku": "mask-86d57a",
        "crossing": 1,
        "available": 45,
        "threshold": 50,
        "daily_demand": "0.0000",
        "lead_time_days": 0,
        "qty": 5,
    }

    sku: str
    crossing: int = Field(description="the low-stock alert (R-INV-3 crossing number) it came with")
    available: int
    threshold: int
    daily_demand: str
    lead_time_days: int
    qty: int


class TransferView(Answer):
    """R-INV-5: a move of surplus between warehouses suggested with a low-stock alert (a
    `StockTransferSuggested` event)."""

    EXAMPLE = {
        "sku": "mask-86d57a",
        "crossing": 1,
        "from_warehouse": "guangzhou",
        "to_warehouse": "shanghai",
        "qty": 20,
    }

    sku: str
    crossing: int = Field(description="the low-stock alert (R-INV-3 crossing number) it came with")
    from_warehouse: str
    to_warehouse: str
    qty: int


class SuggestionsView(Answer):
    """R-INV-5: what the sku's last low-stock alert suggested."""

    EXAMPLE = {
        "crossing": 1,
        "replenishment": ReplenishmentView.EXAMPLE,
        "transfers": [TransferView.EXAMPLE],
    }

    crossing: int = Field(description="R-INV-3: how many times available fell below the threshold (0: never)")
    replenishment: ReplenishmentView | None = Field(description="the last alert's replenishment suggestion")
    transfers: list[TransferView] = Field(description="the last alert's transfer suggestions")


class WarehouseView(Answer):
    """R-INV-1: one warehouse's stock of the sku."""

    EXAMPLE = {"on_hand": 118, "reserved": 3, "available": 115, "clearance": 2}

    on_hand: int
    reserved: int
    available: int = Field(description="on hand − reserved (R-INV-1)")
    clearance: int = Field(description="grade-B returns, not for sale (R-INV-2)")


class WarehouseCounters(Answer):
    """R-INV-2: one warehouse's running counts: on hand = received − shipped + returned_a, clearance =
    returned_b."""

    EXAMPLE = {"received": 120, "shipped": 2, "returned_a": 0, "returned_b": 2}

    received: int
    shipped: int
    returned_a: int = Field(description="units returned resellable (grade A), back on hand")
    returned_b: int = Field(description="units returned not resellable (grade B), to clearance")


class SkuView(Answer):
    """A sku and its stock (R-INV-1/2), threshold and alert (R-INV-3), plans (R-INV-4..7)."""

    EXAMPLE = {
        "sku": "mask-86d57a",
        "name": "Hydrating face mask",
        "is_gift": False,
        "on_hand": 198,
        "reserved": 3,
        "available": 195,
        "clearance": 2,
        "threshold": 50,
        "low_stock_alert": False,
        "safety_stock": {"units": 0, "basis": "manual", "standing_stock": 0, "effective": 0},
        "velocity": {"units_per_day": "0.2500", "window_days": 28, "as_of_day": 20783},
        "sell_through": {
            "rate": "0.0100",
            "shipped": 2,
            "window_days": 30,
            "floor": "0.20",
            "slow_moving": False,
            "episodes": 0,
        },
        "policy": None,
        "live_streams": {},
        "suggestions": {
            "crossing": 1,
            "replenishment": {
                "sku": "mask-86d57a",
                "crossing": 1,
                "available": 45,
                "threshold": 50,
                "daily_demand": "0.0000",
                "lead_time_days": 0,
                "qty": 5,
            },
            "transfers": [
                {"sku": "mask-86d57a", "crossing": 1, "from_warehouse": "guangzhou", "to_warehouse": "shanghai", "qty": 20}
            ],
        },
        "gifts_written_off": 0,
        "warehouses": {
            "guangzhou": {"on_hand": 80, "reserved": 0, "available": 80, "clearance": 0},
            "shanghai": {"on_hand": 118, "reserved": 3, "available": 115, "clearance": 2},
        },
        "counters": {
            "guangzhou": {"received": 80, "shipped": 0, "returned_a": 0, "returned_b": 0},
            "shanghai": {"received": 120, "shipped": 2, "returned_a": 0, "returned_b": 2},
        },
        "reservations": {"B-86d57a": {"shanghai": 3}},
    }

    sku: str
    name: str
    is_gift: bool
    on_hand: int = Field(description="R-INV-1: summed over the warehouses")
    reserved: int
    available: int = Field(description="on hand − reserved (R-INV-1)")
    clearance: int = Field(description="grade-B returns over the warehouses (R-INV-2)")
    threshold: int = Field(
        description="R-INV-3: max(low-stock floor, effective safety stock, 20 % of the largest scheduled live stream)"
    )
    low_stock_alert: bool = Field(description="R-INV-3: available is below the threshold (an alert is active)")
    safety_stock: SafetyStockView
    velocity: VelocityView
    sell_through: SellThroughView
    policy: StockPolicyView | None = Field(description="R-INV-4: the configured stock policy; null: none (defaults apply)")
    live_streams: dict[str, int] = Field(description="scheduled live streams: stream id → expected sales (R-INV-3)")
    suggestions: SuggestionsView
    gifts_written_off: int = Field(description="units of this gift sku written off with refunded main lines")
    warehouses: dict[str, WarehouseView] = Field(description="per warehouse name")
    counters: dict[str, WarehouseCounters] = Field(description="per warehouse name (R-INV-2)")
    reservations: dict[str, dict[str, int]] = Field(description="per order id: warehouse → units held (R-INV-2)")
    as_of: ReplaySummary | None = Field(default=None, description="only on an `?as_of=` answer (R-X-4)")


class LowStockSuggestion(Answer):
    """R-INV-5: a sku below its threshold now, with what its alert suggested."""

    EXAMPLE = {
        "sku": "mask-86d57a",
        "available": 45,
        "threshold": 50,
        "crossing": 1,
        "replenishment": ReplenishmentView.EXAMPLE,
        "transfers": [TransferView.EXAMPLE],
    }

    sku: str
    available: int
    threshold: int
    crossing: int = Field(description="R-INV-3: the number of the active alert's crossing")
    replenishment: ReplenishmentView | None = Field(description="the alert's replenishment suggestion")
    transfers: list[TransferView] = Field(description="the alert's transfer suggestions")


class SlowMover(Answer):
    """R-INV-6: a sku inside a slow-mover episode."""

    EXAMPLE = {"sku": "serum-86d57a", "on_hand": 30, "episode": 1}

    sku: str
    on_hand: int
    episode: int = Field(description="the number of the current slow-mover episode")
