"""Given/when/then on inventory's plans: R-INV-4 dynamic safety stock (velocity on business time,
R-X-1), R-INV-5 replenishment and transfer suggestions, R-INV-6 slow movers, R-INV-7 standing stock
after a presale — each derived event once per cause, never again when the state is rebuilt (R-X-2).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from flexchain.messages import Message
from flexchain.testing import Scenario
from services.inventory import stock_math as planning
from services.inventory.messages import (
    ConfigureStockPolicy,
    DailyStockReviewed,
    EndLiveStream,
    InventoryCommandRejected,
    LinkPresaleCampaign,
    LowStockAlertCleared,
    LowStockAlertRaised,
    PresaleCampaignLinked,
    RecordPresaleClose,
    RegularStockPlanned,
    ReplenishmentSuggested,
    ReserveStock,
    SafetyStockSet,
    ScheduleLiveStream,
    SetSafetyStock,
    SlowMovingStockCleared,
    SlowMovingStockDetected,
    StockPolicyConfigured,
    StockTransferSuggested,
)
from services.inventory.state import Inventory
from tests.unit.inventory.builders import (
    D0,
    DAY,
    HOUR,
    NORTH,
    SOUTH,
    T0,
    configure,
    of_type,
    receive,
    register,
    sell_daily,
    ship,
    tick,
    world,
)

MASK, GIFT, SERUM, TOTE = "mask", "eye-gift", "serum", "tote"


def selling_mask() -> Scenario[Inventory]:
    """mask: listed 40 days ago, floor 5, 100 received, 2 units shipped a day over the last 28 days."""
    w = world()
    register(w, MASK, at=T0 - 40 * DAY, floor=5)
    receive(w, MASK, 100, at=T0 - 40 * DAY)
    sell_daily(w, MASK, 2, 28, T0 - 28 * DAY)
    return w


# --- R-INV-4: velocity and safety stock --------------------------------------------------------------


def test_r_inv_4_velocity_is_units_shipped_per_business_day_over_the_28_complete_days_before_today() -> None:
    w = selling_mask()
    assert w.state.skus[MASK].velocity(D0) == Decimal("2")
    ship(w, MASK, 10, T0 + HOUR)  # today's sales count from tomorrow
    assert w.state.skus[MASK].velocity(D0) == Decimal("2")
    assert w.state.skus[MASK].velocity(D0 + 1) == Decimal("2.2857")  # (54 + 10) / 28: the oldest day left the window


def test_r_inv_4_a_sku_younger_than_the_window_is_divided_by_the_days_it_was_listed() -> None:
    w = world()
    register(w, MASK, at=T0 - 4 * DAY + HOUR)
    receive(w, MASK, 100, at=T0 - 4 * DAY + HOUR)
    sell_daily(w, MASK, 3, 4, T0 - 4 * DAY)
    assert w.state.skus[MASK].velocity(D0) == Decimal("3")
    assert world().state.skus == {} and planning.velocity({}, D0, 28, D0) == 0, "listed today: no complete day yet"


def test_r_inv_4_configuring_the_policy_sets_velocity_x_lead_time_x_cover_factor_at_once() -> None:
    w = selling_mask()
    events = configure(w, MASK, 10, "1.5")
    assert events == [
        StockPolicyConfigured(
            sku=MASK,
            lead_time_days=10,
            cover_factor=Decimal("1.5"),
            gift_tier=None,
            forecast_daily_units=None,
            monthly_visitors=0,
            conversion_rate=Decimal("0"),
            velocity_window_days=28,
            slow_mover_window_days=30,
            sell_through_floor=Decimal("0.20"),
        ),
        SafetyStockSet(sku=MASK, units=30, daily_demand=Decimal("2"), basis="velocity"),  # ⌈2 × 10 × 1.5⌉
    ]
    assert w.state.skus[MASK].threshold() == 30


def test_r_inv_4_the_first_tick_of_a_day_recomputes_and_only_a_change_is_an_event() -> None:
    w = selling_mask()
    configure(w, MASK, 10, "1.5")
    ship(w, MASK, 2, T0 + 10 * HOUR)  # day D0 sells as usual
    assert tick(w, T0 + DAY + HOUR) == [DailyStockReviewed(day=D0 + 1, skus=1)], "velocity still 2: nothing to say"
    events = tick(w, T0 + 2 * DAY + HOUR)  # D0 + 1 sold nothing: 54 / 28 per day
    assert events == [
        SafetyStockSet(sku=MASK, units=29, daily_demand=Decimal("1.9286"), basis="velocity"),
        DailyStockReviewed(day=D0 + 2, skus=1),
    ]
    assert tick(w, T0 + 2 * DAY + 5 * HOUR) == [], "a later tick of the same day"
    assert tick(w, T0 + DAY) == [], "a tick of a day already reviewed"
    assert w.state.skus[MASK].safety_stock == 29


def test_r_inv_4_a_sku_without_a_policy_keeps_its_hand_set_safety_stock() -> None:
    w = selling_mask()
    w.when(SetSafetyStock(sku=MASK, units=12))
    assert tick(w, T0 + HOUR) == [DailyStockReviewed(day=D0, skus=1)]
    assert w.state.skus[MASK].safety_stock == 12


def test_r_inv_4_with_a_policy_the_safety_stock_is_not_set_by_hand() -> None:
    w = selling_mask()
    configure(w, MASK, 10)
    events = w.when(SetSafetyStock(sku=MASK, units=12)).events
    assert len(events) == 1 and isinstance(events[0], InventoryCommandRejected)
    assert "follows its stock policy" in events[0].reason
    assert w.state.skus[MASK].safety_stock == 20


def gift_world(per_day: int = 1) -> Scenario[Inventory]:
    w = world()
    register(w, GIFT, at=T0 - 40 * DAY, gift=True, floor=1)
    receive(w, GIFT, 500, at=T0 - 40 * DAY)
    sell_daily(w, GIFT, per_day, 28, T0 - 28 * DAY)
    return w


@pytest.mark.parametrize(
    ("kw", "units", "demand", "basis"),
    [
        ({"gift_tier": 1}, 60, Decimal("2"), "gift_tier_1"),  # core gift: 30 days of cover
        ({"gift_tier": 3}, 14, Decimal("2"), "gift_tier_3"),  # generic gift: 7 days
        ({"gift_tier": 2, "forecast_daily_units": Decimal("3.5")}, 21, Decimal("3.5"), "gift_tier_2_forecast"),  # 3.5×4×1.5
        ({}, 12, Decimal("2"), "velocity"),  # a gift without a tier: like any sku, 2 × 4 × 1.5
    ],
)
def test_r_inv_4_gift_tiers(kw: dict[str, object], units: int, demand: Decimal, basis: str) -> None:
    w = gift_world(per_day=2)
    events = configure(w, GIFT, 4, "1.5", **kw)
    assert of_type(events, SafetyStockSet) == [SafetyStockSet(sku=GIFT, units=units, daily_demand=demand, basis=basis)]


def test_r_inv_4_a_tier_2_gift_follows_a_new_forecast() -> None:
    w = gift_world()
    configure(w, GIFT, 10, gift_tier=2, forecast_daily_units=Decimal("2"))
    assert w.state.skus[GIFT].safety_stock == 20
    events = configure(w, GIFT, 10, gift_tier=2, forecast_daily_units=Decimal("0.25"))
    assert of_type(events, SafetyStockSet) == [
        SafetyStockSet(sku=GIFT, units=3, daily_demand=Decimal("0.25"), basis="gift_tier_2_forecast")
    ]


@pytest.mark.parametrize(
    ("cmd", "fragment"),
    [
        (ConfigureStockPolicy(sku=MASK, lead_time_days=5, gift_tier=1), "not a gift sku"),
        (ConfigureStockPolicy(sku=GIFT, lead_time_days=5, gift_tier=2), "follows a forecast"),
        (ConfigureStockPolicy(sku=GIFT, lead_time_days=5, gift_tier=4), "gift_tier must be 1, 2 or 3"),
        (ConfigureStockPolicy(sku=MASK, lead_time_days=-1), "lead_time_days"),
        (ConfigureStockPolicy(sku=MASK, lead_time_days=366), "lead_time_days"),
        (ConfigureStockPolicy(sku=MASK, lead_time_days=5, cover_factor=Decimal("-0.5")), "cover_factor"),
        (ConfigureStockPolicy(sku=MASK, lead_time_days=5, cover_factor=Decimal("NaN")), "cover_factor"),
        (ConfigureStockPolicy(sku=MASK, lead_time_days=5, monthly_visitors=-1), "monthly_visitors"),
        (ConfigureStockPolicy(sku=MASK, lead_time_days=5, conversion_rate=Decimal("1.01")), "conversion_rate"),
        (ConfigureStockPolicy(sku=MASK, lead_time_days=5, velocity_window_days=0), "windows"),
        (ConfigureStockPolicy(sku=MASK, lead_time_days=5, slow_mover_window_days=400), "windows"),
        (ConfigureStockPolicy(sku=MASK, lead_time_days=5, sell_through_floor=Decimal("2")), "sell_through_floor"),
        (ConfigureStockPolicy(sku=GIFT, lead_time_days=5, forecast_daily_units=Decimal("-1")), "forecast_daily_units"),
        (ConfigureStockPolicy(sku="ghost", lead_time_days=5), "unknown sku ghost"),
    ],
)
def test_r_inv_4_an_invalid_policy_is_refused_and_changes_nothing(cmd: ConfigureStockPolicy, fragment: str) -> None:
    w = world()
    register(w, MASK)
    register(w, GIFT, gift=True)
    before = w.rebuilt()
    events = w.when(cmd).events
    assert len(events) == 1 and isinstance(events[0], InventoryCommandRejected), events
    assert fragment in events[0].reason
    assert w.state == before


def test_r_inv_4_a_tick_that_raises_the_safety_stock_above_available_raises_the_alert() -> None:
    w = selling_mask()  # available 44, velocity 2
    configure(w, MASK, 20)  # safety 40
    ship(w, MASK, 6, T0 + 10 * HOUR)  # available 38 < 40: alert 1 now
    receive(w, MASK, 10, at=T0 + 11 * HOUR)  # available 48 > 40: cleared
    ship(w, MASK, 30, T0 + 12 * HOUR)  # available 18 < 40: alert 2 (same day)
    receive(w, MASK, 40, at=T0 + 13 * HOUR)  # available 58: cleared
    events = tick(w, T0 + DAY + HOUR)  # velocity (54 + 36) / 28 → safety ⌈90 / 28 × 20⌉ = 65 > 58
    assert events == [
        SafetyStockSet(sku=MASK, units=65, daily_demand=Decimal("3.2143"), basis="velocity"),
        LowStockAlertRaised(sku=MASK, available=58, threshold=65, crossing=3),
        ReplenishmentSuggested(
            sku=MASK, crossing=3, available=58, threshold=65, daily_demand=Decimal("3.2143"), lead_time_days=20, qty=72
        ),  # 65 − 58 + ⌈90 / 28 × 20⌉
        DailyStockReviewed(day=D0 + 1, skus=1),
    ]


def test_r_inv_3c_the_live_stream_share_still_counts_next_to_a_dynamic_safety_stock() -> None:
    w = selling_mask()
    configure(w, MASK, 10, "1.5")  # safety 30, available 44
    events = w.when(ScheduleLiveStream(sku=MASK, stream_id="live-1", expected_sales=500), T0 + HOUR).events  # 20 % of 500 = 100
    assert of_type(events, LowStockAlertRaised, ReplenishmentSuggested) == [
        LowStockAlertRaised(sku=MASK, available=44, threshold=100, crossing=1),
        ReplenishmentSuggested(
            sku=MASK, crossing=1, available=44, threshold=100, daily_demand=Decimal("2"), lead_time_days=10, qty=76
        ),  # 100 − 44 + 2 × 10
    ]
    assert w.state.skus[MASK].threshold() == 100
    events = w.when(EndLiveStream(sku=MASK, stream_id="live-1"), T0 + 2 * HOUR).events
    assert of_type(events, LowStockAlertCleared) == [LowStockAlertCleared(sku=MASK, available=44, threshold=30, crossing=1)]


def test_r_inv_4_sales_per_day_keep_only_the_longest_window() -> None:
    w = selling_mask()
    sell_daily(w, MASK, 1, 3, T0 + 40 * DAY)
    days = sorted(w.state.skus[MASK].shipped_by_day)
    assert days[0] >= D0 + 42 - 30 and len(days) <= 31


# --- R-INV-5: suggestions with the alert ---------------------------------------------------------------


def test_r_inv_5_the_replenishment_refills_the_threshold_and_covers_the_lead_time() -> None:
    w = selling_mask()
    configure(w, MASK, 10, "1.5")  # threshold 30, available 44
    events = w.when(ReserveStock(sku=MASK, order_id="big", qty=15), T0 + HOUR).events
    assert of_type(events, LowStockAlertRaised, ReplenishmentSuggested, StockTransferSuggested) == [
        LowStockAlertRaised(sku=MASK, available=29, threshold=30, crossing=1),
        ReplenishmentSuggested(
            sku=MASK, crossing=1, available=29, threshold=30, daily_demand=Decimal("2"), lead_time_days=10, qty=21
        ),  # 30 − 29 + ⌈2 × 10⌉
    ]
    assert w.state.skus[MASK].last_replenishment == events[-1]


def two_warehouses() -> Scenario[Inventory]:
    """mask, floor 50: north 40 (below the floor: crossing 1), south 20 (60: cleared)."""
    w = world()
    register(w, MASK)
    receive(w, MASK, 40, NORTH)
    receive(w, MASK, 20, SOUTH)
    assert w.state.skus[MASK].crossings == 1 and not w.state.skus[MASK].alert_active
    return w


def test_r_inv_5_surplus_moves_toward_the_warehouse_that_is_short() -> None:
    w = two_warehouses()
    events = w.when(ReserveStock(sku=MASK, order_id="o-1", qty=15, preferred_warehouse=SOUTH)).events  # north 40, south 5
    assert of_type(events, LowStockAlertRaised, ReplenishmentSuggested, StockTransferSuggested) == [
        LowStockAlertRaised(sku=MASK, available=45, threshold=50, crossing=2),
        ReplenishmentSuggested(
            sku=MASK, crossing=2, available=45, threshold=50, daily_demand=Decimal("0"), lead_time_days=0, qty=5
        ),
        StockTransferSuggested(
            sku=MASK, crossing=2, from_warehouse=NORTH, to_warehouse=SOUTH, qty=15
        ),  # share ⌈50 / 2⌉ = 25: north has 15 above it
    ]
    assert w.state.skus[MASK].last_transfers == [
        StockTransferSuggested(sku=MASK, crossing=2, from_warehouse=NORTH, to_warehouse=SOUTH, qty=15)
    ]


def test_r_inv_5_no_transfer_without_a_surplus_or_a_second_warehouse() -> None:
    w = two_warehouses()
    events = w.when(ReserveStock(sku=MASK, order_id="o-1", qty=30)).events  # north 10, south 20: nobody above 25
    assert of_type(events, StockTransferSuggested) == [] and of_type(events, ReplenishmentSuggested)
    single = world()
    register(single, MASK)
    receive(single, MASK, 60)
    assert of_type(single.when(ReserveStock(sku=MASK, order_id="o-1", qty=20)).events, StockTransferSuggested) == []


def test_r_inv_5_transfers_serve_the_lowest_first_from_the_largest_surplus() -> None:
    assert planning.transfers({"n": 60, "s": 5, "w": 10}, 80) == [("n", "s", 22), ("n", "w", 11)]  # share 27
    assert planning.transfers({"a": 30, "b": 30, "c": 0}, 60) == [("a", "c", 10), ("b", "c", 10)]
    assert planning.transfers({"a": 10}, 60) == []


def test_r_inv_5_suggestions_come_once_per_crossing_and_again_with_the_next_one() -> None:
    w = two_warehouses()
    w.when(ReserveStock(sku=MASK, order_id="o-1", qty=15, preferred_warehouse=SOUTH))
    for i in range(2, 5):
        assert (
            of_type(
                w.when(ReserveStock(sku=MASK, order_id=f"o-{i}", qty=1)).events, ReplenishmentSuggested, StockTransferSuggested
            )
            == []
        )
    receive(w, MASK, 100, NORTH)  # cleared
    events = w.when(ReserveStock(sku=MASK, order_id="o-9", qty=100)).events
    assert [e.crossing for e in of_type(events, ReplenishmentSuggested)] == [3]
    assert w.state.skus[MASK].last_replenishment is not None and w.state.skus[MASK].last_replenishment.crossing == 3
    assert w.rebuilt() == w.state


# --- R-INV-6: slow movers ------------------------------------------------------------------------


def slow_serum(listed_days_ago: int = 40, received: int = 100) -> Scenario[Inventory]:
    w = world()
    register(w, SERUM, at=T0 - listed_days_ago * DAY, floor=0)
    if received:
        receive(w, SERUM, received, at=T0 - listed_days_ago * DAY)
    return w


def test_r_inv_6_a_sku_selling_through_below_20_percent_is_detected_once_per_episode() -> None:
    w = slow_serum()
    ship(w, SERUM, 1, T0 - 35 * DAY)  # outside the 30-day window
    events = tick(w, T0 + HOUR)
    assert events == [
        SlowMovingStockDetected(
            sku=SERUM, episode=1, sell_through=Decimal("0"), shipped=0, on_hand=99, window_days=30, floor=Decimal("0.20"), day=D0
        ),
        DailyStockReviewed(day=D0, skus=1),
    ]
    assert tick(w, T0 + DAY + HOUR) == [DailyStockReviewed(day=D0 + 1, skus=1)], "same episode: nothing new"
    ship(w, SERUM, 25, T0 + DAY + 2 * HOUR)  # 25 / (25 + 74) = 25 % ≥ 20 %
    assert tick(w, T0 + 2 * DAY + HOUR) == [
        SlowMovingStockCleared(sku=SERUM, episode=1, sell_through=Decimal("0.2525"), shipped=25, on_hand=74, day=D0 + 2),
        DailyStockReviewed(day=D0 + 2, skus=1),
    ]
    assert not w.state.skus[SERUM].slow_moving
    events = tick(w, T0 + 32 * DAY + HOUR)  # the sale of day D0 + 1 left the window
    assert of_type(events, SlowMovingStockDetected) == [
        SlowMovingStockDetected(
            sku=SERUM,
            episode=2,
            sell_through=Decimal("0"),
            shipped=0,
            on_hand=74,
            window_days=30,
            floor=Decimal("0.20"),
            day=D0 + 32,
        )
    ]
    assert w.rebuilt() == w.state


def test_r_inv_6_exactly_the_floor_is_not_slow() -> None:
    w = slow_serum()
    ship(w, SERUM, 20, T0 - 5 * DAY)  # 20 / (20 + 80)
    assert of_type(tick(w, T0 + HOUR), SlowMovingStockDetected) == []
    assert planning.sell_through(20, 80) == Fraction(1, 5)


def test_r_inv_6_a_sku_with_nothing_on_hand_is_not_flagged_and_running_out_ends_an_episode() -> None:
    assert of_type(tick(slow_serum(received=0), T0 + HOUR), SlowMovingStockDetected) == []
    w = slow_serum(received=5)
    assert of_type(tick(w, T0 + HOUR), SlowMovingStockDetected) != []
    ship(w, SERUM, 5, T0 + 2 * HOUR)
    assert of_type(tick(w, T0 + DAY + HOUR), SlowMovingStockCleared) == [
        SlowMovingStockCleared(sku=SERUM, episode=1, sell_through=Decimal("1"), shipped=5, on_hand=0, day=D0 + 1)
    ]


def test_r_inv_6_a_sku_listed_less_than_a_window_ago_is_not_flagged_yet() -> None:
    w = slow_serum(listed_days_ago=10)
    assert of_type(tick(w, T0 + HOUR), SlowMovingStockDetected) == []
    assert of_type(tick(w, T0 + 19 * DAY + HOUR), SlowMovingStockDetected) == [], "29 days listed"
    assert [e.day for e in of_type(tick(w, T0 + 20 * DAY + HOUR), SlowMovingStockDetected)] == [D0 + 20]


def test_r_inv_6_the_window_and_the_floor_follow_the_sku_policy() -> None:
    w = slow_serum()
    ship(w, SERUM, 30, T0 - 5 * DAY)  # 30 / 100: fine by the default floor
    configure(w, SERUM, 0, sell_through_floor=Decimal("0.5"), slow_mover_window_days=7)
    assert of_type(tick(w, T0 + HOUR), SlowMovingStockDetected) == [
        SlowMovingStockDetected(
            sku=SERUM, episode=1, sell_through=Decimal("0.3"), shipped=30, on_hand=70, window_days=7, floor=Decimal("0.5"), day=D0
        )
    ]


# --- R-INV-7: standing stock after a presale ----------------------------------------------------------


def test_r_inv_7_500_presold_5000_visitors_at_1_percent_keep_250_units() -> None:
    assert planning.standing_stock(500, 5000, Decimal("0.01")) == 250


@pytest.mark.parametrize(
    ("presold", "visitors", "rate", "units"),
    [(333, 0, "0", 100), (0, 1, "0.001", 1), (10, 0, "0", 3), (0, 0, "0", 0), (1000, 20000, "0.035", 1700)],
)
def test_r_inv_7_standing_stock_rounds_up(presold: int, visitors: int, rate: str, units: int) -> None:
    assert planning.standing_stock(presold, visitors, Decimal(rate)) == units


def presale_tote(registered: bool = True) -> Scenario[Inventory]:
    w = world()
    if registered:
        register(w, TOTE, floor=5)
        receive(w, TOTE, 100)
        configure(w, TOTE, 0, monthly_visitors=5000, conversion_rate=Decimal("0.01"))
    assert w.when(LinkPresaleCampaign(sku=TOTE, campaign_id="camp-1")).events == [
        PresaleCampaignLinked(sku=TOTE, campaign_id="camp-1")
    ]
    return w


def test_r_inv_7_a_successful_close_plans_the_regular_stock_and_asks_for_it() -> None:
    w = presale_tote()
    events = w.when(
        RecordPresaleClose(campaign_id="camp-1", outcome="succeeded", pledged_units=500, closed_at=T0 + DAY), T0 + DAY
    ).events
    assert events == [
        RegularStockPlanned(
            sku=TOTE,
            campaign_id="camp-1",
            presold_units=500,
            monthly_visitors=5000,
            conversion_rate=Decimal("0.01"),
            standing_units=250,
        ),
        LowStockAlertRaised(
            sku=TOTE, available=100, threshold=250, crossing=1
        ),  # the standing stock is the floor under the safety stock
        ReplenishmentSuggested(
            sku=TOTE, crossing=1, available=100, threshold=250, daily_demand=Decimal("0"), lead_time_days=0, qty=150
        ),
    ]
    assert w.state.skus[TOTE].threshold() == 250 and w.state.skus[TOTE].effective_safety_stock() == 250
    assert (
        w.when(
            RecordPresaleClose(campaign_id="camp-1", outcome="succeeded", pledged_units=500, closed_at=T0 + DAY), T0 + DAY
        ).events
        == []
    ), "planned once"
    assert w.when(LinkPresaleCampaign(sku=TOTE, campaign_id="camp-1")).events == [
        PresaleCampaignLinked(sku=TOTE, campaign_id="camp-1")
    ]
    assert w.rebuilt() == w.state


def test_r_inv_7_other_partitions_and_failed_campaigns_plan_nothing() -> None:
    w = presale_tote()
    assert (
        w.when(RecordPresaleClose(campaign_id="camp-elsewhere", outcome="succeeded", pledged_units=500, closed_at=T0)).events
        == []
    )
    assert w.when(RecordPresaleClose(campaign_id="camp-1", outcome="failed", pledged_units=12, closed_at=T0)).events == []
    assert w.when(LinkPresaleCampaign(sku=TOTE, campaign_id="camp-1")).events == [], "a re-delivered link"


def test_r_inv_7_a_plan_for_a_sku_not_registered_yet_applies_when_it_is() -> None:
    w = presale_tote(registered=False)
    events = w.when(RecordPresaleClose(campaign_id="camp-1", outcome="succeeded", pledged_units=500, closed_at=T0)).events
    assert events == [
        RegularStockPlanned(
            sku=TOTE,
            campaign_id="camp-1",
            presold_units=500,
            monthly_visitors=0,
            conversion_rate=Decimal("0"),
            standing_units=150,
        )
    ]  # no visitors known
    register(w, TOTE)
    assert w.state.skus[TOTE].standing_stock == 150 and w.state.skus[TOTE].threshold() == 150
    assert w.state.pending_standing == {} and w.rebuilt() == w.state


def test_r_inv_7_the_standing_stock_floors_the_dynamic_safety_stock() -> None:
    w = presale_tote()
    w.when(RecordPresaleClose(campaign_id="camp-1", outcome="succeeded", pledged_units=500, closed_at=T0))
    configure(w, TOTE, 10, monthly_visitors=5000, conversion_rate=Decimal("0.01"))  # velocity 0: safety 0
    assert w.state.skus[TOTE].safety_stock == 0 and w.state.skus[TOTE].threshold() == 250


# --- R-X-2: a long run, then the log folded again ----------------------------------------------------


def test_r_x_2_the_fold_of_the_log_is_the_live_state_and_a_second_pass_of_the_ticks_emits_nothing() -> None:
    w = selling_mask()
    configure(w, MASK, 10, "1.5")
    register(w, SERUM, at=T0 - 40 * DAY, floor=0)
    receive(w, SERUM, 100, at=T0 - 40 * DAY)
    derived: list[Message] = []
    for day in range(0, 40):
        if day % 3 == 0:
            ship(w, MASK, 1 + day % 5, T0 + day * DAY + 2 * HOUR)
        derived += tick(w, T0 + day * DAY + HOUR)
        tick(w, T0 + day * DAY + 3 * HOUR)
    assert of_type(derived, SafetyStockSet) and of_type(derived, SlowMovingStockDetected)
    assert w.rebuilt() == w.state
    for day in range(0, 40):  # the same ticks again (a redelivery after a crash)
        assert tick(w, T0 + day * DAY + HOUR) == []
