"""Given/when/then on the inventory decider: R-INV-1, R-INV-2, R-INV-3 (R-INV-3c live streams) and R-INV-6a.

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
    StockBecameAvailable,
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
    evolve(state, SkuRegistered(sku=SKU, name="Hydrating face mask", is_gift=False, low_stock_floor=floor))
    for e in events:
        evolve(state, e)
    return state


def stocked(north: int = 0, south: int = 0, floor: int = DEFAULT_LOW_STOCK_FLOOR) -> Inventory:
    events: list[Message] = []
    if north:
        events.append(StockReceived(sku=SKU, warehouse=NORTH, qty=north, reference="po-1"))
    if south:
        events.append(StockReceived(sku=SKU, warehouse=SOUTH, qty=south, reference="po-2"))
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
    assert run(state, RegisterSku(sku=SKU, name="Mask")) == [
        SkuRegistered(sku=SKU, name="Mask", is_gift=False, low_stock_floor=50, registered_at=T0)
    ]
    assert state.skus[SKU].threshold() == 50


def test_register_a_sku_with_its_own_floor() -> None:
    assert run(new_state(), RegisterSku(sku=SKU, name="Mask", is_gift=True, low_stock_floor=5)) == [
        SkuRegistered(sku=SKU, name="Mask", is_gift=True, low_stock_floor=5, registered_at=T0)
    ]


def test_register_twice_is_rejected() -> None:
    then_rejected(given(), RegisterSku(sku=SKU, name="Mask"), "already registered")


def test_register_with_a_negative_floor_is_rejected() -> None:
    state = new_state()
    then_rejected(state, RegisterSku(sku=SKU, name="Mask", low_stock_floor=-1), "low_stock_floor")
    assert state.skus == {}


def test_r_inv_1_received_stock_is_on_hand_and_available() -> None:
    state = given()
    assert run(state, ReceiveStock(sku=SKU, warehouse=NORTH, qty=120, reference="po-1")) == [
        StockReceived(sku=SKU, warehouse=NORTH, qty=120, reference="po-1")
    ]
    assert stock(state, NORTH) == (120, 0, 120)
    run(state, ReceiveStock(sku=SKU, warehouse=SOUTH, qty=80))
    assert stock(state) == (200, 0, 200)


@pytest.mark.parametrize("qty", [0, -5])
def test_receive_a_non_positive_quantity_is_rejected(qty: int) -> None:
    then_rejected(stocked(100), ReceiveStock(sku=SKU, warehouse=NORTH, qty=qty), "qty must be a positive")


def test_receive_without_a_warehouse_is_rejected() -> None:
    then_rejected(stocked(100), ReceiveStock(sku=SKU, warehouse="", qty=10), "warehouse is required")


def test_commands_for_an_unknown_sku_are_rejected() -> None:
    state = new_state()
    for cmd in (
        ReceiveStock(sku="ghost", warehouse=NORTH, qty=1),
        CommitReservation(sku="ghost", order_id="o-1"),
        ReturnStock(sku="ghost", order_id="o-1", qty=1, grade="A"),
        SetSafetyStock(sku="ghost", units=5),
    ):
        then_rejected(state, cmd, "unknown sku ghost")


# --- R-INV-1: available = on hand - reserved; never below zero -----------------------------------


def test_r_inv_1_a_reservation_that_fits_holds_stock_and_lowers_available() -> None:
    state = stocked(north=100)
    assert run(state, ReserveStock(sku=SKU, order_id="o-1", qty=30)) == [
        StockReserved(sku=SKU, order_id="o-1", qty=30, allocations=[Allocation(warehouse=NORTH, qty=30)])
    ]
    assert stock(state) == (100, 30, 70)
    assert state.skus[SKU].reservations == {"o-1": {NORTH: 30}}


def test_r_inv_1_a_reservation_of_exactly_what_is_available_fits() -> None:
    state = stocked(north=60, south=40)
    events = run(state, ReserveStock(sku=SKU, order_id="o-1", qty=100))
    assert of_type(events, StockReserved) == [
        StockReserved(
            sku=SKU,
            order_id="o-1",
            qty=100,
            allocations=[Allocation(warehouse=NORTH, qty=60), Allocation(warehouse=SOUTH, qty=40)],
        )
    ]
    assert stock(state) == (100, 100, 0)


def test_r_inv_1_a_reservation_that_does_not_fit_is_rejected_and_changes_nothing() -> None:
    state = stocked(north=100)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=80))
    expected = ReservationRejected(sku=SKU, order_id="o-2", qty=21, available=20, reason="only 20 available, 21 requested")
    then_unchanged(state, ReserveStock(sku=SKU, order_id="o-2", qty=21), [expected])
    assert stock(state) == (100, 80, 20), "reserved units are not available although still on hand"


@pytest.mark.parametrize("qty", [0, -1])
def test_r_inv_1_a_non_positive_reservation_is_rejected(qty: int) -> None:
    expected = ReservationRejected(sku=SKU, order_id="o-1", qty=qty, available=100, reason="qty must be positive")
    then_unchanged(stocked(100), ReserveStock(sku=SKU, order_id="o-1", qty=qty), [expected])


def test_r_inv_1_an_order_holds_one_reservation_per_sku() -> None:
    state = stocked(north=100)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=10))
    expected = ReservationRejected(sku=SKU, order_id="o-1", qty=5, available=90, reason="order already holds a reservation")
    then_unchanged(state, ReserveStock(sku=SKU, order_id="o-1", qty=5), [expected])


def test_r_inv_1_a_reservation_of_an_unknown_sku_is_rejected_with_nothing_available() -> None:
    expected = ReservationRejected(sku="ghost", order_id="o-1", qty=1, available=0, reason="unknown sku ghost")
    assert decide(new_state(), ReserveStock(sku="ghost", order_id="o-1", qty=1), T0) == [expected]


def test_r_inv_1_the_preferred_warehouse_takes_the_whole_line_when_it_can() -> None:
    state = stocked(north=200, south=100)
    events = run(state, ReserveStock(sku=SKU, order_id="o-1", qty=80, preferred_warehouse=SOUTH))
    assert events == [StockReserved(sku=SKU, order_id="o-1", qty=80, allocations=[Allocation(warehouse=SOUTH, qty=80)])]
    assert stock(state, SOUTH) == (100, 80, 20)
    assert stock(state, NORTH) == (200, 0, 200)


def test_r_inv_1_a_preferred_warehouse_too_small_falls_back_to_the_fullest_first() -> None:
    state = stocked(north=200, south=100)
    events = run(state, ReserveStock(sku=SKU, order_id="o-1", qty=250, preferred_warehouse=SOUTH))
    assert of_type(events, StockReserved) == [
        StockReserved(
            sku=SKU,
            order_id="o-1",
            qty=250,
            allocations=[Allocation(warehouse=NORTH, qty=200), Allocation(warehouse=SOUTH, qty=50)],
        )
    ]


def test_r_inv_1_an_unknown_preferred_warehouse_falls_back_to_the_fullest() -> None:
    state = stocked(north=100, south=300)
    events = run(state, ReserveStock(sku=SKU, order_id="o-1", qty=10, preferred_warehouse="wh-west"))
    assert events == [StockReserved(sku=SKU, order_id="o-1", qty=10, allocations=[Allocation(warehouse=SOUTH, qty=10)])]


def test_r_inv_1_without_a_preference_the_fullest_warehouse_serves_ties_by_name() -> None:
    state = stocked(north=100, south=100)
    assert run(state, ReserveStock(sku=SKU, order_id="o-1", qty=10)) == [
        StockReserved(sku=SKU, order_id="o-1", qty=10, allocations=[Allocation(warehouse=NORTH, qty=10)])
    ]
    assert run(state, ReserveStock(sku=SKU, order_id="o-2", qty=10)) == [
        StockReserved(sku=SKU, order_id="o-2", qty=10, allocations=[Allocation(warehouse=SOUTH, qty=10)])
    ]


def test_r_inv_1_a_line_may_be_split_over_warehouses() -> None:
    state = stocked(north=70, south=60)
    events = run(state, ReserveStock(sku=SKU, order_id="o-1", qty=100))
    assert of_type(events, StockReserved)[0] == StockReserved(
        sku=SKU, order_id="o-1", qty=100, allocations=[Allocation(warehouse=NORTH, qty=70), Allocation(warehouse=SOUTH, qty=30)]
    )
    assert stock(state, NORTH) == (70, 70, 0)
    assert stock(state, SOUTH) == (60, 30, 30)


# --- R-INV-2: release, commit, return ---------------------------------------------------------------


def test_r_inv_2_a_cancel_releases_the_whole_reservation() -> None:
    state = stocked(north=70, south=60)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=100))
    events = run(state, ReleaseReservation(sku=SKU, order_id="o-1", reason="order cancelled: changed my mind"))
    assert of_type(events, ReservationReleased) == [
        ReservationReleased(
            sku=SKU,
            order_id="o-1",
            allocations=[Allocation(warehouse=NORTH, qty=70), Allocation(warehouse=SOUTH, qty=30)],
            reason="order cancelled: changed my mind",
        )
    ]
    assert stock(state) == (130, 0, 130)
    assert state.skus[SKU].reservations == {}


def test_r_inv_2_a_partial_release_gives_back_only_that_many_units() -> None:
    state = stocked(north=100)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=10))
    events = run(state, ReleaseReservation(sku=SKU, order_id="o-1", reason="order refunded", qty=3))
    assert events == [
        ReservationReleased(sku=SKU, order_id="o-1", allocations=[Allocation(warehouse=NORTH, qty=3)], reason="order refunded")
    ]
    assert stock(state) == (100, 7, 93)
    assert state.skus[SKU].reservations == {"o-1": {NORTH: 7}}


def test_r_inv_2_a_release_never_gives_back_more_than_is_held() -> None:
    state = stocked(north=100)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=10))
    events = run(state, ReleaseReservation(sku=SKU, order_id="o-1", reason="order refunded", qty=50))
    assert events == [
        ReservationReleased(sku=SKU, order_id="o-1", allocations=[Allocation(warehouse=NORTH, qty=10)], reason="order refunded")
    ]
    assert stock(state) == (100, 0, 100)


@pytest.mark.parametrize(
    "cmd",
    [
        ReleaseReservation(sku=SKU, order_id="never-reserved", reason="order rejected"),
        ReleaseReservation(sku=SKU, order_id="o-1", reason="order refunded", qty=0),
        ReleaseReservation(sku="ghost", order_id="o-1", reason="order rejected"),
    ],
)
def test_r_inv_2_releasing_nothing_is_a_silent_no_op(cmd: ReleaseReservation) -> None:
    state = stocked(north=100)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=10))
    then_unchanged(state, cmd, [])


def test_r_inv_2_a_second_release_of_the_same_order_is_a_no_op() -> None:
    state = stocked(north=100)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=10))
    run(state, ReleaseReservation(sku=SKU, order_id="o-1", reason="order cancelled"))
    then_unchanged(state, ReleaseReservation(sku=SKU, order_id="o-1", reason="order cancelled"), [])


def test_r_inv_2_shipping_commits_the_reservation_out_of_on_hand() -> None:
    state = stocked(north=70, south=60)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=100))
    events = run(state, CommitReservation(sku=SKU, order_id="o-1"))
    assert events == [
        ReservationCommitted(
            sku=SKU,
            order_id="o-1",
            allocations=[Allocation(warehouse=NORTH, qty=70), Allocation(warehouse=SOUTH, qty=30)],
            committed_at=T0,
        )
    ]
    assert stock(state) == (30, 0, 30), "available does not move: the units were already held"
    assert state.skus[SKU].reservations == {}


def test_r_inv_2_committing_without_a_reservation_is_rejected() -> None:
    state = stocked(north=100)
    then_rejected(state, CommitReservation(sku=SKU, order_id="o-1"), "holds no reservation")
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=10))
    run(state, CommitReservation(sku=SKU, order_id="o-1"))
    then_rejected(state, CommitReservation(sku=SKU, order_id="o-1"), "holds no reservation")


def test_r_inv_2_grade_a_returns_go_back_to_on_hand_stock() -> None:
    state = stocked(north=100, south=100)
    events = run(state, ReturnStock(sku=SKU, order_id="o-1", qty=2, grade="A", warehouse=SOUTH))
    assert events == [StockReturned(sku=SKU, order_id="o-1", warehouse=SOUTH, qty=2, grade="A")]
    assert stock(state, SOUTH) == (102, 0, 102)
    assert state.skus[SKU].warehouses[SOUTH].clearance == 0


def test_r_inv_2_grade_b_returns_go_to_the_clearance_bucket_not_to_available() -> None:
    state = stocked(north=100)
    events = run(state, ReturnStock(sku=SKU, order_id="o-1", qty=3, grade="B"))
    assert events == [StockReturned(sku=SKU, order_id="o-1", warehouse=NORTH, qty=3, grade="B")]
    assert stock(state) == (100, 0, 100)
    assert state.skus[SKU].warehouses[NORTH].clearance == 3


def test_r_inv_2_a_return_without_a_warehouse_goes_to_the_first_one_stocked() -> None:
    state = stocked(north=10, south=100)
    assert run(state, ReturnStock(sku=SKU, order_id="o-1", qty=1, grade="A")) == [
        StockReturned(sku=SKU, order_id="o-1", warehouse=NORTH, qty=1, grade="A")
    ]


def test_r_inv_2_a_return_to_a_new_warehouse_opens_it() -> None:
    state = stocked(north=100)
    run(state, ReturnStock(sku=SKU, order_id="o-1", qty=1, grade="A", warehouse="wh-west"))
    assert stock(state, "wh-west") == (1, 0, 1)


@pytest.mark.parametrize(
    ("cmd", "fragment"),
    [
        (ReturnStock(sku=SKU, order_id="o-1", qty=1, grade="C"), "grade must be one of"),
        (ReturnStock(sku=SKU, order_id="o-1", qty=0, grade="A"), "qty must be positive"),
        (ReturnStock(sku=SKU, order_id="o-1", qty=-2, grade="B"), "qty must be positive"),
    ],
)
def test_r_inv_2_an_invalid_return_is_rejected(cmd: ReturnStock, fragment: str) -> None:
    then_rejected(stocked(north=100), cmd, fragment)


def test_r_inv_2_a_return_with_no_warehouse_anywhere_goes_to_the_returns_warehouse() -> None:
    state = given()  # nothing came back is lost: the goods are counted where they are
    assert run(state, ReturnStock(sku=SKU, order_id="o-1", qty=1, grade="A"))[0] == StockReturned(
        sku=SKU, order_id="o-1", warehouse="returns", qty=1, grade="A"
    )
    assert stock(state, "returns") == (1, 0, 1)


def test_r_inv_2_returns_go_back_to_the_warehouses_the_order_shipped_from() -> None:
    state = stocked(north=10, south=100)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=30))  # the fullest warehouse first: 30 from south
    run(state, ReserveStock(sku=SKU, order_id="o-2", qty=75))  # 70 from south, 5 from north
    run(state, CommitReservation(sku=SKU, order_id="o-1"))
    run(state, CommitReservation(sku=SKU, order_id="o-2"))
    assert run(state, ReturnStock(sku=SKU, order_id="o-1", qty=2, grade="A")) == [
        StockReturned(sku=SKU, order_id="o-1", warehouse=SOUTH, qty=2, grade="A")
    ]
    back = run(state, ReturnStock(sku=SKU, order_id="o-2", qty=73, grade="B"))  # the most-shipped warehouse first, then the rest
    assert back == [
        StockReturned(sku=SKU, order_id="o-2", warehouse=SOUTH, qty=70, grade="B"),
        StockReturned(sku=SKU, order_id="o-2", warehouse=NORTH, qty=3, grade="B"),
    ]
    # more than shipped (a return the saga would not send): the rest goes to the first warehouse
    over = run(state, ReturnStock(sku=SKU, order_id="o-2", qty=3, grade="A"))
    assert over == [
        StockReturned(sku=SKU, order_id="o-2", warehouse=NORTH, qty=2, grade="A"),
        StockReturned(sku=SKU, order_id="o-2", warehouse=NORTH, qty=1, grade="A"),
    ]
    for name, wh in state.skus[SKU].warehouses.items():  # R-INV-2 per warehouse
        assert wh.on_hand == wh.received - wh.shipped + wh.returned_a, name


def test_r_inv_2_goods_of_a_presale_order_come_back_even_for_a_sku_not_stocked() -> None:
    state = new_state()
    out = run(state, ReturnStock(sku="tee", order_id="o-9", qty=2, grade="B", campaign_id="camp-1"))
    assert [type(e).__name__ for e in out] == ["SkuRegistered", "StockReturned"]
    assert state.skus["tee"].warehouses["returns"].clearance == 2 and state.skus["tee"].low_stock_floor == 0
    then_rejected(
        new_state(), ReturnStock(sku="tee", order_id="o-9", qty=2, grade="B"), "unknown sku"
    )  # not a presale order: refused


# --- R-INV-3: threshold, one alert per crossing ------------------------------------------------------


def threshold(state: Inventory) -> int:
    return state.skus[SKU].threshold()


def test_r_inv_3_the_threshold_defaults_to_the_floor_of_50() -> None:
    assert threshold(given()) == 50


def test_r_inv_3_the_threshold_is_the_largest_of_floor_safety_stock_and_20_percent_of_a_stream() -> None:
    state = given()
    run(state, SetSafetyStock(sku=SKU, units=40))
    assert threshold(state) == 50, "the floor wins"
    run(state, SetSafetyStock(sku=SKU, units=70))
    assert threshold(state) == 70, "the safety stock wins"
    run(state, ScheduleLiveStream(sku=SKU, stream_id="stream-1", expected_sales=500))
    assert threshold(state) == 100, "20 % of 500 expected sales wins"
    run(state, ScheduleLiveStream(sku=SKU, stream_id="stream-2", expected_sales=333))
    assert threshold(state) == 100, "the largest stream counts"
    run(state, EndLiveStream(sku=SKU, stream_id="stream-1"))
    assert threshold(state) == 70, "20 % of 333 = 66.6 → 67 < safety stock 70"
    run(state, SetSafetyStock(sku=SKU, units=0))
    assert threshold(state) == 67, "20 % of 333 rounds up"
    run(state, EndLiveStream(sku=SKU, stream_id="stream-2"))
    assert threshold(state) == 50


def test_r_inv_3_the_floor_is_configurable_per_sku() -> None:
    state = stocked(north=30, floor=20)
    assert threshold(state) == 20
    assert of_type(run(state, ReserveStock(sku=SKU, order_id="o-1", qty=10)), LowStockAlertRaised) == []
    events = run(state, ReserveStock(sku=SKU, order_id="o-2", qty=1))
    assert of_type(events, LowStockAlertRaised) == [LowStockAlertRaised(sku=SKU, available=19, threshold=20, crossing=1)]


def test_r_inv_3_falling_to_exactly_the_threshold_is_not_below_it() -> None:
    state = stocked(north=60)
    assert run(state, ReserveStock(sku=SKU, order_id="o-1", qty=10)) == [
        StockReserved(sku=SKU, order_id="o-1", qty=10, allocations=[Allocation(warehouse=NORTH, qty=10)])
    ]


def test_r_inv_3_falling_below_the_threshold_raises_one_alert() -> None:
    state = stocked(north=60)
    events = run(state, ReserveStock(sku=SKU, order_id="o-1", qty=11))
    assert events == [
        StockReserved(sku=SKU, order_id="o-1", qty=11, allocations=[Allocation(warehouse=NORTH, qty=11)]),
        LowStockAlertRaised(sku=SKU, available=49, threshold=50, crossing=1),
        ReplenishmentSuggested(
            sku=SKU, crossing=1, available=49, threshold=50, daily_demand=Decimal("0"), lead_time_days=0, qty=1
        ),  # R-INV-5: with every alert
    ]
    assert state.skus[SKU].alert_active


def test_r_inv_3_further_orders_below_the_threshold_raise_no_new_alert() -> None:
    state = stocked(north=60)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=11))
    for i in range(2, 6):
        events = run(state, ReserveStock(sku=SKU, order_id=f"o-{i}", qty=5))
        assert of_type(events, LowStockAlertRaised) == []


def test_r_inv_3_recovering_only_to_the_threshold_does_not_clear_the_alert() -> None:
    state = stocked(north=60)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=20))  # available 40: alert 1
    events = run(state, ReceiveStock(sku=SKU, warehouse=NORTH, qty=10))  # available 50 = threshold
    assert of_type(events, LowStockAlertCleared) == []
    assert state.skus[SKU].alert_active
    events = run(state, ReserveStock(sku=SKU, order_id="o-2", qty=1))  # below again, same crossing
    assert of_type(events, LowStockAlertRaised) == []


def test_r_inv_3_recovering_above_clears_and_the_next_crossing_raises_a_new_alert() -> None:
    state = stocked(north=60)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=20))  # available 40: alert 1
    events = run(state, ReceiveStock(sku=SKU, warehouse=NORTH, qty=11, reference="po-9"))  # available 51 > 50
    assert events == [
        StockReceived(sku=SKU, warehouse=NORTH, qty=11, reference="po-9"),
        LowStockAlertCleared(sku=SKU, available=51, threshold=50, crossing=1),
    ]
    assert not state.skus[SKU].alert_active
    events = run(state, ReserveStock(sku=SKU, order_id="o-2", qty=2))  # available 49
    assert of_type(events, LowStockAlertRaised) == [LowStockAlertRaised(sku=SKU, available=49, threshold=50, crossing=2)]


def test_r_inv_3_a_release_or_a_grade_a_return_can_clear_the_alert() -> None:
    state = stocked(north=60)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=20))
    events = run(state, ReleaseReservation(sku=SKU, order_id="o-1", reason="order cancelled"))
    assert of_type(events, LowStockAlertCleared) == [LowStockAlertCleared(sku=SKU, available=60, threshold=50, crossing=1)]
    run(state, ReserveStock(sku=SKU, order_id="o-2", qty=20))  # available 40: alert 2
    assert of_type(run(state, ReturnStock(sku=SKU, order_id="o-0", qty=5, grade="B")), LowStockAlertCleared) == [], (
        "clearance only"
    )
    assert of_type(run(state, ReturnStock(sku=SKU, order_id="o-0", qty=5, grade="A")), LowStockAlertCleared) == [], (
        "45 is still low"
    )
    events = run(state, ReturnStock(sku=SKU, order_id="o-0", qty=6, grade="A"))
    assert of_type(events, LowStockAlertCleared) == [LowStockAlertCleared(sku=SKU, available=51, threshold=50, crossing=2)]


def test_r_inv_3_raising_the_safety_stock_above_available_raises_the_alert_itself() -> None:
    state = stocked(north=80)
    events = run(state, SetSafetyStock(sku=SKU, units=100))
    assert events == [
        SafetyStockSet(sku=SKU, units=100),
        LowStockAlertRaised(sku=SKU, available=80, threshold=100, crossing=1),
        ReplenishmentSuggested(
            sku=SKU, crossing=1, available=80, threshold=100, daily_demand=Decimal("0"), lead_time_days=0, qty=20
        ),
    ]
    events = run(state, SetSafetyStock(sku=SKU, units=70))
    assert events == [SafetyStockSet(sku=SKU, units=70), LowStockAlertCleared(sku=SKU, available=80, threshold=70, crossing=1)]


def test_r_inv_3_a_scheduled_live_stream_raises_the_threshold_and_its_end_lowers_it() -> None:
    state = stocked(north=150)
    events = run(state, ScheduleLiveStream(sku=SKU, stream_id="stream-1", expected_sales=1000))  # threshold 200
    assert events == [
        LiveStreamScheduled(sku=SKU, stream_id="stream-1", expected_sales=1000),
        LowStockAlertRaised(sku=SKU, available=150, threshold=200, crossing=1),
        ReplenishmentSuggested(
            sku=SKU, crossing=1, available=150, threshold=200, daily_demand=Decimal("0"), lead_time_days=0, qty=50
        ),
    ]
    events = run(state, EndLiveStream(sku=SKU, stream_id="stream-1"))
    assert events == [
        LiveStreamEnded(sku=SKU, stream_id="stream-1"),
        LowStockAlertCleared(sku=SKU, available=150, threshold=50, crossing=1),
    ]


def test_r_inv_3_ending_a_stream_that_is_not_scheduled_is_rejected() -> None:
    then_rejected(stocked(north=100), EndLiveStream(sku=SKU, stream_id="stream-x"), "no live stream stream-x")


@pytest.mark.parametrize(
    ("cmd", "fragment"),
    [
        (SetSafetyStock(sku=SKU, units=-1), "units must be >= 0"),
        (ScheduleLiveStream(sku=SKU, stream_id="s", expected_sales=-1), "expected_sales"),
    ],
)
def test_r_inv_3_negative_thresholds_are_rejected(cmd: Message, fragment: str) -> None:
    then_rejected(stocked(north=100), cmd, fragment)


def test_r_inv_3_a_rejected_reservation_raises_no_alert() -> None:
    state = stocked(north=60)
    events = run(state, ReserveStock(sku=SKU, order_id="o-1", qty=61))
    assert [type(e) for e in events] == [ReservationRejected]


def test_r_inv_3_rebuilding_from_the_log_raises_nothing_again() -> None:
    """R-X-2: alerts are events decided once; folding the log only sets the flags."""
    live = stocked(north=60)
    log: list[Message] = [StockReceived(sku=SKU, warehouse=NORTH, qty=60, reference="po-1")]
    for cmd in (
        ReserveStock(sku=SKU, order_id="o-1", qty=20),
        ReceiveStock(sku=SKU, warehouse=NORTH, qty=20),
        ReserveStock(sku=SKU, order_id="o-2", qty=30),
    ):
        log.extend(run(live, cmd))
    assert [e.crossing for e in of_type(log, LowStockAlertRaised)] == [1, 2]
    assert given(*log) == live


# --- R-INV-6a: back in stock ---------------------------------------------------------------------------


def sold_out() -> Inventory:
    state = stocked(north=10)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=10))
    assert stock(state)[2] == 0
    return state


def test_r_inv_6a_a_sold_out_sku_that_gets_stock_again_is_back_in_stock() -> None:
    state = sold_out()
    events = run(state, ReceiveStock(sku=SKU, warehouse=SOUTH, qty=5, reference="po-2"))
    assert of_type(events, StockBecameAvailable) == [StockBecameAvailable(sku=SKU, available=5)]


def test_r_inv_6a_a_release_or_a_grade_a_return_also_brings_it_back() -> None:
    state = sold_out()
    assert of_type(
        run(state, ReleaseReservation(sku=SKU, order_id="o-1", reason="order cancelled", qty=4)), StockBecameAvailable
    ) == [StockBecameAvailable(sku=SKU, available=4)]
    run(state, ReserveStock(sku=SKU, order_id="o-2", qty=4))
    assert of_type(run(state, ReturnStock(sku=SKU, order_id="o-0", qty=1, grade="A")), StockBecameAvailable) == [
        StockBecameAvailable(sku=SKU, available=1)
    ]


def test_r_inv_6a_a_grade_b_return_does_not_bring_it_back() -> None:
    assert of_type(run(sold_out(), ReturnStock(sku=SKU, order_id="o-0", qty=1, grade="B")), StockBecameAvailable) == []


def test_r_inv_6a_the_first_receipt_of_a_new_sku_is_not_back_in_stock() -> None:
    assert of_type(run(given(), ReceiveStock(sku=SKU, warehouse=NORTH, qty=100)), StockBecameAvailable) == []


def test_r_inv_6a_more_stock_for_a_sku_still_in_stock_is_not_back_in_stock() -> None:
    state = stocked(north=10)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=9))
    assert of_type(run(state, ReceiveStock(sku=SKU, warehouse=NORTH, qty=100)), StockBecameAvailable) == []


def test_r_inv_6a_each_run_out_gives_its_own_back_in_stock() -> None:
    state = sold_out()
    assert of_type(run(state, ReceiveStock(sku=SKU, warehouse=NORTH, qty=3)), StockBecameAvailable) == [
        StockBecameAvailable(sku=SKU, available=3)
    ]
    run(state, ReserveStock(sku=SKU, order_id="o-2", qty=3))
    assert of_type(run(state, ReceiveStock(sku=SKU, warehouse=NORTH, qty=7)), StockBecameAvailable) == [
        StockBecameAvailable(sku=SKU, available=7)
    ]


def test_an_event_sent_as_a_command_is_rejected() -> None:
    then_rejected(
        stocked(north=100),
        StockReceived(sku=SKU, warehouse=NORTH, qty=5, reference="po"),
        "StockReceived is not an inventory command",
    )


# --- R-INV-2: the books of a warehouse ---------------------------------------------------------------


def test_r_inv_2_on_hand_is_received_minus_shipped_plus_grade_a_returns_per_warehouse() -> None:
    state = stocked(north=70, south=60)
    run(state, ReserveStock(sku=SKU, order_id="o-1", qty=100))  # north 70, south 30
    run(state, CommitReservation(sku=SKU, order_id="o-1"))
    run(state, ReturnStock(sku=SKU, order_id="o-1", qty=4, grade="A", warehouse=SOUTH))
    run(state, ReturnStock(sku=SKU, order_id="o-1", qty=3, grade="B", warehouse=SOUTH))
    books = {
        name: (w.on_hand, w.received, w.shipped, w.returned_a, w.returned_b, w.clearance)
        for name, w in state.skus[SKU].warehouses.items()
    }
    assert books == {NORTH: (0, 70, 70, 0, 0, 0), SOUTH: (34, 60, 30, 4, 3, 3)}
