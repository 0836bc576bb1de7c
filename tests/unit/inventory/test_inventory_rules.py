"""Given/when/then on the inventory decider: R-INV-1, R-INV-2, R-INV-3 (live streams included) and R-INV-6a.

*Given* a history of events folded with ``evolve``, *when* a command is decided at business time ``T0``,
*then* exactly these events follow (derived alerts included), and folding them gives the stated stock.
"""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from flexchain.messages import Message
from services.inventory.domain import DEFAULT_LOW_STOCK_FLOOR, Inventory, decide, evolve, new_state
from services.inventory.messages import (
    Allocation,
    CommitReservation,
    EndLiveStream,
    InventoryCommandRejected,
    LiveStreamEnded,
    LiveStreamScheduled,
    LowStockAlertCleared,
    LowStockAlertRaised,
    ReceiveStock,
    RegisterSku,
    ReleaseReservation,
    ReplenishmentSuggested,
    ReservationCommitted,
    ReservationRejected,
    ReservationReleased,
    ReserveStock,
    ReturnStock,
    SafetyStockSet,
    ScheduleLiveStream,
    SetSafetyStock,
    SkuRegistered,
    StockBackInStock,
    StockReceived,
    StockReserved,
    StockReturned,
)

SKU = "mask-01"
NORTH, SOUTH = "wh-north", "wh-south"
T0 = 1_767_225_600_000


# --- given / when / then -----------------------------------------------------------------------


def given(*events: Message, floor: int = DEFAULT_LOW_STOCK_FLOOR) -> Inventory:
    state = new_state()
    evolve(state, SkuRegistered(SKU, "Hydrating face mask", False, floor))
    for e in events:
        evolve(state, e)
    return state


def stocked(north: int = 0, south: int = 0, floor: int = DEFAULT_LOW_STOCK_FLOOR) -> Inventory:
    events: list[Message] = []
    if north:
        events.append(StockReceived(SKU, NORTH, north, "po-1"))
    if south:
        events.append(StockReceived(SKU, SOUTH, south, "po-2"))
    return given(*events, floor=floor)


def run(state: Inventory, cmd: Message) -> list[Message]:
    """Decide (which must not mutate) and fold."""
    before = copy.deepcopy(state)
    events = decide(state, cmd, T0)
    assert state == before, "decide must not change the state"
    for e in events:
        evolve(state, e)
    return events


def then_unchanged(state: Inventory, cmd: Message, expected: list[Message]) -> None:
    before = copy.deepcopy(state)
    assert run(state, cmd) == expected
    assert state == before


def then_rejected(state: Inventory, cmd: Message, *fragments: str) -> None:
    before = copy.deepcopy(state)
    events = run(state, cmd)
    assert len(events) == 1 and isinstance(events[0], InventoryCommandRejected), events
    assert events[0].command == type(cmd).__name__
    for fragment in fragments:
        assert fragment in events[0].reason, (fragment, events[0].reason)
    assert state == before


def stock(state: Inventory, warehouse: str | None = None) -> tuple[int, int, int]:
    """(on hand, reserved, available) of the sku, in one warehouse or in total."""
    item = state.skus[SKU]
    if warehouse is None:
        return item.on_hand, item.reserved, item.available
    wh = item.warehouses[warehouse]
    return wh.on_hand, wh.reserved, wh.available


def of_type(events: list[Message], cls: type[Message]) -> list[Message]:
    return [e for e in events if isinstance(e, cls)]


# --- registration and receipts -----------------------------------------------------------------


def test_register_a_sku_with_the_default_floor_of_50() -> None:
    state = new_state()
    assert run(state, RegisterSku(SKU, "Mask")) == [SkuRegistered(SKU, "Mask", False, 50, T0)]
    assert state.skus[SKU].threshold() == 50


def test_register_a_sku_with_its_own_floor() -> None:
    assert run(new_state(), RegisterSku(SKU, "Mask", True, 5)) == [SkuRegistered(SKU, "Mask", True, 5, T0)]


def test_register_twice_is_rejected() -> None:
    then_rejected(given(), RegisterSku(SKU, "Mask"), "already registered")


def test_register_with_a_negative_floor_is_rejected() -> None:
    state = new_state()
    then_rejected(state, RegisterSku(SKU, "Mask", low_stock_floor=-1), "low_stock_floor")
    assert state.skus == {}


def test_r_inv_1_received_stock_is_on_hand_and_available() -> None:
    state = given()
    assert run(state, ReceiveStock(SKU, NORTH, 120, "po-1")) == [StockReceived(SKU, NORTH, 120, "po-1")]
    assert stock(state, NORTH) == (120, 0, 120)
    run(state, ReceiveStock(SKU, SOUTH, 80))
    assert stock(state) == (200, 0, 200)


@pytest.mark.parametrize("qty", [0, -5])
def test_receive_a_non_positive_quantity_is_rejected(qty: int) -> None:
    then_rejected(stocked(100), ReceiveStock(SKU, NORTH, qty), "qty must be a positive")


def test_receive_without_a_warehouse_is_rejected() -> None:
    then_rejected(stocked(100), ReceiveStock(SKU, "", 10), "warehouse is required")


def test_commands_for_an_unknown_sku_are_rejected() -> None:
    state = new_state()
    for cmd in (
        ReceiveStock("ghost", NORTH, 1),
        CommitReservation("ghost", "o-1"),
        ReturnStock("ghost", "o-1", 1, "A"),
        SetSafetyStock("ghost", 5),
    ):
        then_rejected(state, cmd, "unknown sku ghost")


# --- R-INV-1: available = on hand - reserved; never below zero -----------------------------------


def test_r_inv_1_a_reservation_that_fits_holds_stock_and_lowers_available() -> None:
    state = stocked(north=100)
    assert run(state, ReserveStock(SKU, "o-1", 30)) == [StockReserved(SKU, "o-1", 30, [Allocation(NORTH, 30)])]
    assert stock(state) == (100, 30, 70)
    assert state.skus[SKU].reservations == {"o-1": {NORTH: 30}}


def test_r_inv_1_a_reservation_of_exactly_what_is_available_fits() -> None:
    state = stocked(north=60, south=40)
    events = run(state, ReserveStock(SKU, "o-1", 100))
    assert of_type(events, StockReserved) == [StockReserved(SKU, "o-1", 100, [Allocation(NORTH, 60), Allocation(SOUTH, 40)])]
    assert stock(state) == (100, 100, 0)


def test_r_inv_1_a_reservation_that_does_not_fit_is_rejected_and_changes_nothing() -> None:
    state = stocked(north=100)
    run(state, ReserveStock(SKU, "o-1", 80))
    expected = ReservationRejected(SKU, "o-2", 21, 20, "only 20 available, 21 requested")
    then_unchanged(state, ReserveStock(SKU, "o-2", 21), [expected])
    assert stock(state) == (100, 80, 20), "reserved units are not available although still on hand"


@pytest.mark.parametrize("qty", [0, -1])
def test_r_inv_1_a_non_positive_reservation_is_rejected(qty: int) -> None:
    expected = ReservationRejected(SKU, "o-1", qty, 100, "qty must be positive")
    then_unchanged(stocked(100), ReserveStock(SKU, "o-1", qty), [expected])


def test_r_inv_1_an_order_holds_one_reservation_per_sku() -> None:
    state = stocked(north=100)
    run(state, ReserveStock(SKU, "o-1", 10))
    expected = ReservationRejected(SKU, "o-1", 5, 90, "order already holds a reservation")
    then_unchanged(state, ReserveStock(SKU, "o-1", 5), [expected])


def test_r_inv_1_a_reservation_of_an_unknown_sku_is_rejected_with_nothing_available() -> None:
    expected = ReservationRejected("ghost", "o-1", 1, 0, "unknown sku ghost")
    assert decide(new_state(), ReserveStock("ghost", "o-1", 1), T0) == [expected]


def test_r_inv_1_the_preferred_warehouse_takes_the_whole_line_when_it_can() -> None:
    state = stocked(north=200, south=100)
    events = run(state, ReserveStock(SKU, "o-1", 80, preferred_warehouse=SOUTH))
    assert events == [StockReserved(SKU, "o-1", 80, [Allocation(SOUTH, 80)])]
    assert stock(state, SOUTH) == (100, 80, 20)
    assert stock(state, NORTH) == (200, 0, 200)


def test_r_inv_1_a_preferred_warehouse_too_small_falls_back_to_the_fullest_first() -> None:
    state = stocked(north=200, south=100)
    events = run(state, ReserveStock(SKU, "o-1", 250, preferred_warehouse=SOUTH))
    assert of_type(events, StockReserved) == [StockReserved(SKU, "o-1", 250, [Allocation(NORTH, 200), Allocation(SOUTH, 50)])]


def test_r_inv_1_an_unknown_preferred_warehouse_falls_back_to_the_fullest() -> None:
    state = stocked(north=100, south=300)
    events = run(state, ReserveStock(SKU, "o-1", 10, preferred_warehouse="wh-west"))
    assert events == [StockReserved(SKU, "o-1", 10, [Allocation(SOUTH, 10)])]


def test_r_inv_1_without_a_preference_the_fullest_warehouse_serves_ties_by_name() -> None:
    state = stocked(north=100, south=100)
    assert run(state, ReserveStock(SKU, "o-1", 10)) == [StockReserved(SKU, "o-1", 10, [Allocation(NORTH, 10)])]
    assert run(state, ReserveStock(SKU, "o-2", 10)) == [StockReserved(SKU, "o-2", 10, [Allocation(SOUTH, 10)])]


def test_r_inv_1_a_line_may_be_split_over_warehouses() -> None:
    state = stocked(north=70, south=60)
    events = run(state, ReserveStock(SKU, "o-1", 100))
    assert of_type(events, StockReserved)[0] == StockReserved(SKU, "o-1", 100, [Allocation(NORTH, 70), Allocation(SOUTH, 30)])
    assert stock(state, NORTH) == (70, 70, 0)
    assert stock(state, SOUTH) == (60, 30, 30)


# --- R-INV-2: release, commit, return ---------------------------------------------------------------


def test_r_inv_2_a_cancel_releases_the_whole_reservation() -> None:
    state = stocked(north=70, south=60)
    run(state, ReserveStock(SKU, "o-1", 100))
    events = run(state, ReleaseReservation(SKU, "o-1", "order cancelled: changed my mind"))
    assert of_type(events, ReservationReleased) == [
        ReservationReleased(SKU, "o-1", [Allocation(NORTH, 70), Allocation(SOUTH, 30)], "order cancelled: changed my mind")
    ]
    assert stock(state) == (130, 0, 130)
    assert state.skus[SKU].reservations == {}


def test_r_inv_2_a_partial_release_gives_back_only_that_many_units() -> None:
    state = stocked(north=100)
    run(state, ReserveStock(SKU, "o-1", 10))
    events = run(state, ReleaseReservation(SKU, "o-1", "order refunded", qty=3))
    assert events == [ReservationReleased(SKU, "o-1", [Allocation(NORTH, 3)], "order refunded")]
    assert stock(state) == (100, 7, 93)
    assert state.skus[SKU].reservations == {"o-1": {NORTH: 7}}


def test_r_inv_2_a_release_never_gives_back_more_than_is_held() -> None:
    state = stocked(north=100)
    run(state, ReserveStock(SKU, "o-1", 10))
    events = run(state, ReleaseReservation(SKU, "o-1", "order refunded", qty=50))
    assert events == [ReservationReleased(SKU, "o-1", [Allocation(NORTH, 10)], "order refunded")]
    assert stock(state) == (100, 0, 100)


@pytest.mark.parametrize(
    "cmd",
    [
        ReleaseReservation(SKU, "never-reserved", "order rejected"),
        ReleaseReservation(SKU, "o-1", "order refunded", qty=0),
        ReleaseReservation("ghost", "o-1", "order rejected"),
    ],
)
def test_r_inv_2_releasing_nothing_is_a_silent_no_op(cmd: ReleaseReservation) -> None:
    state = stocked(north=100)
    run(state, ReserveStock(SKU, "o-1", 10))
    then_unchanged(state, cmd, [])


def test_r_inv_2_a_second_release_of_the_same_order_is_a_no_op() -> None:
    state = stocked(north=100)
    run(state, ReserveStock(SKU, "o-1", 10))
    run(state, ReleaseReservation(SKU, "o-1", "order cancelled"))
    then_unchanged(state, ReleaseReservation(SKU, "o-1", "order cancelled"), [])


def test_r_inv_2_shipping_commits_the_reservation_out_of_on_hand() -> None:
    state = stocked(north=70, south=60)
    run(state, ReserveStock(SKU, "o-1", 100))
    events = run(state, CommitReservation(SKU, "o-1"))
    assert events == [ReservationCommitted(SKU, "o-1", [Allocation(NORTH, 70), Allocation(SOUTH, 30)], T0)]
    assert stock(state) == (30, 0, 30), "available does not move: the units were already held"
    assert state.skus[SKU].reservations == {}


def test_r_inv_2_committing_without_a_reservation_is_rejected() -> None:
    state = stocked(north=100)
    then_rejected(state, CommitReservation(SKU, "o-1"), "holds no reservation")
    run(state, ReserveStock(SKU, "o-1", 10))
    run(state, CommitReservation(SKU, "o-1"))
    then_rejected(state, CommitReservation(SKU, "o-1"), "holds no reservation")


def test_r_inv_2_grade_a_returns_go_back_to_on_hand_stock() -> None:
    state = stocked(north=100, south=100)
    events = run(state, ReturnStock(SKU, "o-1", 2, "A", SOUTH))
    assert events == [StockReturned(SKU, "o-1", SOUTH, 2, "A")]
    assert stock(state, SOUTH) == (102, 0, 102)
    assert state.skus[SKU].warehouses[SOUTH].clearance == 0


def test_r_inv_2_grade_b_returns_go_to_the_clearance_bucket_not_to_available() -> None:
    state = stocked(north=100)
    events = run(state, ReturnStock(SKU, "o-1", 3, "B"))
    assert events == [StockReturned(SKU, "o-1", NORTH, 3, "B")]
    assert stock(state) == (100, 0, 100)
    assert state.skus[SKU].warehouses[NORTH].clearance == 3


def test_r_inv_2_a_return_without_a_warehouse_goes_to_the_first_one_stocked() -> None:
    state = stocked(north=10, south=100)
    assert run(state, ReturnStock(SKU, "o-1", 1, "A")) == [StockReturned(SKU, "o-1", NORTH, 1, "A")]


def test_r_inv_2_a_return_to_a_new_warehouse_opens_it() -> None:
    state = stocked(north=100)
    run(state, ReturnStock(SKU, "o-1", 1, "A", "wh-west"))
    assert stock(state, "wh-west") == (1, 0, 1)


@pytest.mark.parametrize(
    ("cmd", "fragment"),
    [
        (ReturnStock(SKU, "o-1", 1, "C"), "grade must be one of"),
        (ReturnStock(SKU, "o-1", 0, "A"), "qty must be positive"),
        (ReturnStock(SKU, "o-1", -2, "B"), "qty must be positive"),
    ],
)
def test_r_inv_2_an_invalid_return_is_rejected(cmd: ReturnStock, fragment: str) -> None:
    then_rejected(stocked(north=100), cmd, fragment)


def test_r_inv_2_a_return_with_no_warehouse_anywhere_goes_to_the_returns_warehouse() -> None:
    state = given()  # nothing came back is lost: the goods are counted where they are
    assert run(state, ReturnStock(SKU, "o-1", 1, "A"))[0] == StockReturned(SKU, "o-1", "returns", 1, "A")
    assert stock(state, "returns") == (1, 0, 1)


def test_r_inv_2_returns_go_back_to_the_warehouses_the_order_shipped_from() -> None:
    state = stocked(north=10, south=100)
    run(state, ReserveStock(SKU, "o-1", 30))  # the fullest warehouse first: 30 from south
    run(state, ReserveStock(SKU, "o-2", 75))  # 70 from south, 5 from north
    run(state, CommitReservation(SKU, "o-1"))
    run(state, CommitReservation(SKU, "o-2"))
    assert run(state, ReturnStock(SKU, "o-1", 2, "A")) == [StockReturned(SKU, "o-1", SOUTH, 2, "A")]
    back = run(state, ReturnStock(SKU, "o-2", 73, "B"))  # the most-shipped warehouse first, then the rest
    assert back == [StockReturned(SKU, "o-2", SOUTH, 70, "B"), StockReturned(SKU, "o-2", NORTH, 3, "B")]
    # more than shipped (a return the saga would not send): the rest goes to the first warehouse
    over = run(state, ReturnStock(SKU, "o-2", 3, "A"))
    assert over == [StockReturned(SKU, "o-2", NORTH, 2, "A"), StockReturned(SKU, "o-2", NORTH, 1, "A")]
    for name, wh in state.skus[SKU].warehouses.items():  # R-INV-2 per warehouse
        assert wh.on_hand == wh.received - wh.shipped + wh.returned_a, name


def test_r_inv_2_goods_of_a_presale_order_come_back_even_for_a_sku_not_stocked() -> None:
    state = new_state()
    out = run(state, ReturnStock("tee", "o-9", 2, "B", campaign_id="camp-1"))
    assert [type(e).__name__ for e in out] == ["SkuRegistered", "StockReturned"]
    assert state.skus["tee"].warehouses["returns"].clearance == 2 and state.skus["tee"].low_stock_floor == 0
    then_rejected(new_state(), ReturnStock("tee", "o-9", 2, "B"), "unknown sku")  # not a presale order: refused


# --- R-INV-3: threshold, one alert per crossing ------------------------------------------------------


def threshold(state: Inventory) -> int:
    return state.skus[SKU].threshold()


def test_r_inv_3_the_threshold_defaults_to_the_floor_of_50() -> None:
    assert threshold(given()) == 50


def test_r_inv_3_the_threshold_is_the_largest_of_floor_safety_stock_and_20_percent_of_a_stream() -> None:
    state = given()
    run(state, SetSafetyStock(SKU, 40))
    assert threshold(state) == 50, "the floor wins"
    run(state, SetSafetyStock(SKU, 70))
    assert threshold(state) == 70, "the safety stock wins"
    run(state, ScheduleLiveStream(SKU, "stream-1", 500))
    assert threshold(state) == 100, "20 % of 500 expected sales wins"
    run(state, ScheduleLiveStream(SKU, "stream-2", 333))
    assert threshold(state) == 100, "the largest stream counts"
    run(state, EndLiveStream(SKU, "stream-1"))
    assert threshold(state) == 70, "20 % of 333 = 66.6 → 67 < safety stock 70"
    run(state, SetSafetyStock(SKU, 0))
    assert threshold(state) == 67, "20 % of 333 rounds up"
    run(state, EndLiveStream(SKU, "stream-2"))
    assert threshold(state) == 50


def test_r_inv_3_the_floor_is_configurable_per_sku() -> None:
    state = stocked(north=30, floor=20)
    assert threshold(state) == 20
    assert of_type(run(state, ReserveStock(SKU, "o-1", 10)), LowStockAlertRaised) == []
    events = run(state, ReserveStock(SKU, "o-2", 1))
    assert of_type(events, LowStockAlertRaised) == [LowStockAlertRaised(SKU, 19, 20, 1)]


def test_r_inv_3_falling_to_exactly_the_threshold_is_not_below_it() -> None:
    state = stocked(north=60)
    assert run(state, ReserveStock(SKU, "o-1", 10)) == [StockReserved(SKU, "o-1", 10, [Allocation(NORTH, 10)])]


def test_r_inv_3_falling_below_the_threshold_raises_one_alert() -> None:
    state = stocked(north=60)
    events = run(state, ReserveStock(SKU, "o-1", 11))
    assert events == [
        StockReserved(SKU, "o-1", 11, [Allocation(NORTH, 11)]),
        LowStockAlertRaised(SKU, 49, 50, 1),
        ReplenishmentSuggested(SKU, 1, 49, 50, Decimal("0"), 0, 1),  # R-INV-5: with every alert
    ]
    assert state.skus[SKU].alert_active


def test_r_inv_3_further_orders_below_the_threshold_raise_no_new_alert() -> None:
    state = stocked(north=60)
    run(state, ReserveStock(SKU, "o-1", 11))
    for i in range(2, 6):
        events = run(state, ReserveStock(SKU, f"o-{i}", 5))
        assert of_type(events, LowStockAlertRaised) == []


def test_r_inv_3_recovering_only_to_the_threshold_does_not_clear_the_alert() -> None:
    state = stocked(north=60)
    run(state, ReserveStock(SKU, "o-1", 20))  # available 40: alert 1
    events = run(state, ReceiveStock(SKU, NORTH, 10))  # available 50 = threshold
    assert of_type(events, LowStockAlertCleared) == []
    assert state.skus[SKU].alert_active
    events = run(state, ReserveStock(SKU, "o-2", 1))  # below again, same crossing
    assert of_type(events, LowStockAlertRaised) == []


def test_r_inv_3_recovering_above_clears_and_the_next_crossing_raises_a_new_alert() -> None:
    state = stocked(north=60)
    run(state, ReserveStock(SKU, "o-1", 20))  # available 40: alert 1
    events = run(state, ReceiveStock(SKU, NORTH, 11, "po-9"))  # available 51 > 50
    assert events == [StockReceived(SKU, NORTH, 11, "po-9"), LowStockAlertCleared(SKU, 51, 50, 1)]
    assert not state.skus[SKU].alert_active
    events = run(state, ReserveStock(SKU, "o-2", 2))  # available 49
    assert of_type(events, LowStockAlertRaised) == [LowStockAlertRaised(SKU, 49, 50, 2)]


def test_r_inv_3_a_release_or_a_grade_a_return_can_clear_the_alert() -> None:
    state = stocked(north=60)
    run(state, ReserveStock(SKU, "o-1", 20))
    events = run(state, ReleaseReservation(SKU, "o-1", "order cancelled"))
    assert of_type(events, LowStockAlertCleared) == [LowStockAlertCleared(SKU, 60, 50, 1)]
    run(state, ReserveStock(SKU, "o-2", 20))  # available 40: alert 2
    assert of_type(run(state, ReturnStock(SKU, "o-0", 5, "B")), LowStockAlertCleared) == [], "clearance only"
    assert of_type(run(state, ReturnStock(SKU, "o-0", 5, "A")), LowStockAlertCleared) == [], "45 is still low"
    events = run(state, ReturnStock(SKU, "o-0", 6, "A"))
    assert of_type(events, LowStockAlertCleared) == [LowStockAlertCleared(SKU, 51, 50, 2)]


def test_r_inv_3_raising_the_safety_stock_above_available_raises_the_alert_itself() -> None:
    state = stocked(north=80)
    events = run(state, SetSafetyStock(SKU, 100))
    assert events == [
        SafetyStockSet(SKU, 100),
        LowStockAlertRaised(SKU, 80, 100, 1),
        ReplenishmentSuggested(SKU, 1, 80, 100, Decimal("0"), 0, 20),
    ]
    events = run(state, SetSafetyStock(SKU, 70))
    assert events == [SafetyStockSet(SKU, 70), LowStockAlertCleared(SKU, 80, 70, 1)]


def test_r_inv_3_a_scheduled_live_stream_raises_the_threshold_and_its_end_lowers_it() -> None:
    state = stocked(north=150)
    events = run(state, ScheduleLiveStream(SKU, "stream-1", 1000))  # threshold 200
    assert events == [
        LiveStreamScheduled(SKU, "stream-1", 1000),
        LowStockAlertRaised(SKU, 150, 200, 1),
        ReplenishmentSuggested(SKU, 1, 150, 200, Decimal("0"), 0, 50),
    ]
    events = run(state, EndLiveStream(SKU, "stream-1"))
    assert events == [LiveStreamEnded(SKU, "stream-1"), LowStockAlertCleared(SKU, 150, 50, 1)]


def test_r_inv_3_ending_a_stream_that_is_not_scheduled_is_rejected() -> None:
    then_rejected(stocked(north=100), EndLiveStream(SKU, "stream-x"), "no live stream stream-x")


@pytest.mark.parametrize(
    ("cmd", "fragment"),
    [(SetSafetyStock(SKU, -1), "units must be >= 0"), (ScheduleLiveStream(SKU, "s", -1), "expected_sales")],
)
def test_r_inv_3_negative_thresholds_are_rejected(cmd: Message, fragment: str) -> None:
    then_rejected(stocked(north=100), cmd, fragment)


def test_r_inv_3_a_rejected_reservation_raises_no_alert() -> None:
    state = stocked(north=60)
    events = run(state, ReserveStock(SKU, "o-1", 61))
    assert [type(e) for e in events] == [ReservationRejected]


def test_r_inv_3_rebuilding_from_the_log_raises_nothing_again() -> None:
    """R-X-2: alerts are events decided once; folding the log only sets the flags."""
    live = stocked(north=60)
    log: list[Message] = [StockReceived(SKU, NORTH, 60, "po-1")]
    for cmd in (ReserveStock(SKU, "o-1", 20), ReceiveStock(SKU, NORTH, 20), ReserveStock(SKU, "o-2", 30)):
        log.extend(run(live, cmd))
    assert [e.crossing for e in of_type(log, LowStockAlertRaised)] == [1, 2]
    assert given(*log) == live


# --- R-INV-6a: back in stock ---------------------------------------------------------------------------


def sold_out() -> Inventory:
    state = stocked(north=10)
    run(state, ReserveStock(SKU, "o-1", 10))
    assert stock(state)[2] == 0
    return state


def test_r_inv_6a_a_sold_out_sku_that_gets_stock_again_is_back_in_stock() -> None:
    state = sold_out()
    events = run(state, ReceiveStock(SKU, SOUTH, 5, "po-2"))
    assert of_type(events, StockBackInStock) == [StockBackInStock(SKU, 5)]


def test_r_inv_6a_a_release_or_a_grade_a_return_also_brings_it_back() -> None:
    state = sold_out()
    assert of_type(run(state, ReleaseReservation(SKU, "o-1", "order cancelled", 4)), StockBackInStock) == [
        StockBackInStock(SKU, 4)
    ]
    run(state, ReserveStock(SKU, "o-2", 4))
    assert of_type(run(state, ReturnStock(SKU, "o-0", 1, "A")), StockBackInStock) == [StockBackInStock(SKU, 1)]


def test_r_inv_6a_a_grade_b_return_does_not_bring_it_back() -> None:
    assert of_type(run(sold_out(), ReturnStock(SKU, "o-0", 1, "B")), StockBackInStock) == []


def test_r_inv_6a_the_first_receipt_of_a_new_sku_is_not_back_in_stock() -> None:
    assert of_type(run(given(), ReceiveStock(SKU, NORTH, 100)), StockBackInStock) == []


def test_r_inv_6a_more_stock_for_a_sku_still_in_stock_is_not_back_in_stock() -> None:
    state = stocked(north=10)
    run(state, ReserveStock(SKU, "o-1", 9))
    assert of_type(run(state, ReceiveStock(SKU, NORTH, 100)), StockBackInStock) == []


def test_r_inv_6a_each_run_out_gives_its_own_back_in_stock() -> None:
    state = sold_out()
    assert of_type(run(state, ReceiveStock(SKU, NORTH, 3)), StockBackInStock) == [StockBackInStock(SKU, 3)]
    run(state, ReserveStock(SKU, "o-2", 3))
    assert of_type(run(state, ReceiveStock(SKU, NORTH, 7)), StockBackInStock) == [StockBackInStock(SKU, 7)]


def test_an_event_sent_as_a_command_is_rejected() -> None:
    then_rejected(stocked(north=100), StockReceived(SKU, NORTH, 5, "po"), "StockReceived is not an inventory command")


# --- R-INV-2: the books of a warehouse ---------------------------------------------------------------


def test_r_inv_2_on_hand_is_received_minus_shipped_plus_grade_a_returns_per_warehouse() -> None:
    state = stocked(north=70, south=60)
    run(state, ReserveStock(SKU, "o-1", 100))  # north 70, south 30
    run(state, CommitReservation(SKU, "o-1"))
    run(state, ReturnStock(SKU, "o-1", 4, "A", SOUTH))
    run(state, ReturnStock(SKU, "o-1", 3, "B", SOUTH))
    books = {
        name: (w.on_hand, w.received, w.shipped, w.returned_a, w.returned_b, w.clearance)
        for name, w in state.skus[SKU].warehouses.items()
    }
    assert books == {NORTH: (0, 70, 70, 0, 0, 0), SOUTH: (34, 60, 30, 4, 3, 3)}
