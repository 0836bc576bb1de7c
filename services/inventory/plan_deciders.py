"""Inventory's plans (pure deciders): R-INV-4 the stock policy and the dynamic safety stock, the
daily review of R-INV-4 and R-INV-6 (slow movers), R-INV-7 the standing stock after a presale.
The arithmetic is in `stock_math.py`; the alert these changes may raise is `signals.with_signals`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexchain.messages import Message
from services.inventory import stock_math
from services.inventory.messages import (
    ConfigureStockPolicy,
    DailyStockReviewed,
    PresaleCampaignLinked,
    RegularStockPlanned,
    SafetyStockSet,
    SlowMovingStockCleared,
    SlowMovingStockDetected,
    StockPolicyConfigured,
)
from services.inventory.signals import reject, with_signals
from services.inventory.state import Inventory, Sku, policy_of
from services.inventory.stock_math import StockPolicy

PRESALE_SUCCEEDED = "succeeded"  # presale's CampaignClosed.outcome of a campaign that will produce


# --- R-INV-4: the stock policy -------------------------------------------------------------------------


def _policy_problem(item: Sku, cmd: ConfigureStockPolicy) -> str | None:
    def bad_window(days: int | None) -> bool:
        return days is not None and not 1 <= days <= stock_math.MAX_WINDOW_DAYS

    if not 0 <= cmd.lead_time_days <= stock_math.MAX_LEAD_TIME_DAYS:
        return f"lead_time_days must be between 0 and {stock_math.MAX_LEAD_TIME_DAYS}"
    if not cmd.cover_factor.is_finite() or cmd.cover_factor < 0:
        return "cover_factor must be >= 0"
    if cmd.monthly_visitors < 0:
        return "monthly_visitors must be >= 0"
    if not cmd.conversion_rate.is_finite() or not 0 <= cmd.conversion_rate <= 1:
        return "conversion_rate must be between 0 and 1"
    if bad_window(cmd.velocity_window_days) or bad_window(cmd.slow_mover_window_days):
        return f"windows must be between 1 and {stock_math.MAX_WINDOW_DAYS} days"
    floor = cmd.sell_through_floor
    if floor is not None and (not floor.is_finite() or not 0 <= floor <= 1):
        return "sell_through_floor must be between 0 and 1"
    forecast = cmd.forecast_daily_units
    if forecast is not None and (not forecast.is_finite() or forecast < 0):
        return "forecast_daily_units must be >= 0"
    if cmd.gift_tier is not None:
        if not item.is_gift:
            return f"{item.sku} is not a gift sku: gift tiers apply to gifts only (R-INV-4)"
        if cmd.gift_tier not in stock_math.GIFT_TIERS:
            return "gift_tier must be 1, 2 or 3"
        if cmd.gift_tier == 2 and forecast is None:
            return "a tier-2 (seasonal) gift follows a forecast: give forecast_daily_units (R-INV-4)"
    return None


def configure(item: Sku, cmd: Any, now: int) -> list[Message]:
    problem = _policy_problem(item, cmd)
    if problem:
        return reject(cmd, problem)
    d = stock_math.DEFAULT_POLICY
    configured = StockPolicyConfigured(
        sku=item.sku,
        lead_time_days=cmd.lead_time_days,
        cover_factor=Decimal(cmd.cover_factor),
        gift_tier=cmd.gift_tier,
        forecast_daily_units=None if cmd.forecast_daily_units is None else Decimal(cmd.forecast_daily_units),
        monthly_visitors=cmd.monthly_visitors,
        conversion_rate=Decimal(cmd.conversion_rate),
        velocity_window_days=cmd.velocity_window_days or d.velocity_window_days,
        slow_mover_window_days=cmd.slow_mover_window_days or d.slow_mover_window_days,
        sell_through_floor=d.sell_through_floor if cmd.sell_through_floor is None else Decimal(cmd.sell_through_floor),
    )
    out: list[Message] = [configured]
    changed = _safety_change(item, policy_of(configured), stock_math.day_of(now))
    if changed is not None:
        out.append(changed)
    return out


def _safety_change(item: Sku, policy: StockPolicy, today: int) -> SafetyStockSet | None:
    """R-INV-4: the safety stock the policy gives today, as an event if it differs from the current one."""
    measured = stock_math.velocity(item.shipped_by_day, today, policy.velocity_window_days, item.registered_day)
    units, demand, basis = stock_math.safety_stock(policy, item.is_gift, measured)
    if units == item.safety_stock:
        return None  # only a change is an event: nothing repeats
    return SafetyStockSet(sku=item.sku, units=units, daily_demand=stock_math.as_decimal(demand), basis=basis)


# --- the daily review: R-INV-4 safety stock, R-INV-6 slow movers -------------------------------------


def review(state: Inventory, cmd: Any, now: int) -> list[Message]:
    """The first tick of a business day reviews every sku of the partition once; later ticks of
    the day, and ticks of days already reviewed, change nothing."""
    time = cmd.time
    today = stock_math.day_of(time)
    if not state.skus or (state.reviewed_day is not None and today <= state.reviewed_day):
        return []
    out: list[Message] = []
    for item in state.skus.values():
        changed = _safety_change(item, item.policy, today) if item.policy is not None else None
        if changed is not None:
            out.extend(with_signals(item, [changed], time))
        out.extend(_slow_mover(item, today))
    out.append(DailyStockReviewed(day=today, skus=len(state.skus)))
    return out


def _slow_mover(item: Sku, today: int) -> list[Message]:
    """R-INV-6: sell-through below the floor over the window starts an episode (one event); at or
    above the floor, or nothing on hand, ends it. A sku listed less than a window ago, or with
    nothing on hand, is never flagged."""
    policy = item.policy or stock_math.DEFAULT_POLICY
    window = policy.slow_mover_window_days
    on_hand = item.on_hand
    shipped = stock_math.shipped_in(item.shipped_by_day, today, window)
    rate = stock_math.sell_through(shipped, on_hand)
    slow = on_hand > 0 and rate < policy.sell_through_floor
    if slow and not item.slow_moving:
        listed = item.registered_day
        if listed is not None and today - listed < window:
            return []
        episode = item.slow_episodes + 1
        floor = policy.sell_through_floor
        detected = SlowMovingStockDetected(
            sku=item.sku,
            episode=episode,
            sell_through=stock_math.as_decimal(rate),
            shipped=shipped,
            on_hand=on_hand,
            window_days=window,
            floor=floor,
            day=today,
        )
        return [detected]
    if item.slow_moving and not slow:
        return [
            SlowMovingStockCleared(
                sku=item.sku,
                episode=item.slow_episodes,
                sell_through=stock_math.as_decimal(rate),
                shipped=shipped,
                on_hand=on_hand,
                day=today,
            )
        ]
    return []


# --- R-INV-7: standing stock after a presale -----------------------------------------------------------


def link(state: Inventory, cmd: Any, now: int) -> list[Message]:
    if not cmd.sku or not cmd.campaign_id or state.campaigns.get(cmd.campaign_id) == cmd.sku:
        return []  # a re-delivered link changes nothing
    return [PresaleCampaignLinked(sku=cmd.sku, campaign_id=cmd.campaign_id)]


def presale_closed(state: Inventory, cmd: Any, now: int) -> list[Message]:
    """On the partition that holds the campaign's sku: a successful close plans the regular stock.
    The link is dropped by the plan, so a repeated close plans nothing."""
    sku = state.campaigns.get(cmd.campaign_id)
    if sku is None or cmd.outcome != PRESALE_SUCCEEDED:
        return []
    item = state.skus.get(sku)
    policy = (item.policy if item is not None else None) or stock_math.DEFAULT_POLICY
    units = stock_math.standing_stock(cmd.pledged_units, policy.monthly_visitors, policy.conversion_rate)
    plan = RegularStockPlanned(
        sku=sku,
        campaign_id=cmd.campaign_id,
        presold_units=cmd.pledged_units,
        monthly_visitors=policy.monthly_visitors,
        conversion_rate=policy.conversion_rate,
        standing_units=units,
    )
    if item is None:
        return [plan]  # kept for the sku: it applies when the sku is registered
    return with_signals(item, [plan], now)
