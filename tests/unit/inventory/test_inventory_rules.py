"""Given/when/then on the inventory decider: R-INV-1, R-INV-2, R-INV-3 (live streams included) and R-INV-6a.

*Given* a history of events folded with ``evolve``, *when* a command is decided at business time ``T0``,
*then* exactly these events follow (derived alerts included), and folding them gives the stated stock.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from flexchain.messages import Message
from flexchain.testing import Scenario
from services.inventory.app import SERVICE as INVENTORY
from services.inventory.domain import DEFAULT_LOW_STOCK_FLOOR
from services.inventory.messages import (
    Allocation,
    CommitReservation,
    EndLiveStream,
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
from services.inventory.state import Inventory

SKU = "mask-01"
NORTH, SOUTH = "wh-north", "wh-south"
T0 = 1_767_225_600_000


# --- given / when / then -----------------------------------------------------------------------


def given(*events: Message, floor: int = DEFAULT_LOW_STOCK_FLOOR) -> Scenario[Inventory]:
    """The mask registered, then these events."""
    return Scenario(INVENTORY, at=T0).given(
        SkuRegistered(sku=SKU, name="Hydrating face mask", is_gift=False, low_stock_floor=floor), *events
    )


def stocked(north: int = 0, south: int = 0, floor: int = DEFAULT_LOW_STOCK_FLOOR) -> Scenario[Inventory]:
    events: list[Message] = []
    if north:
        events.append(StockReceived(sku=SKU, warehouse=NORTH, qty=north, reference="po-1"))
    if south:
        events.append(StockReceived(sku=SKU, warehouse=SOUTH, qty=south, reference="po-2"))
    return given(*events, floor=floor)


def stock(sc: Scenario[Inventory], warehouse: str | None = None) -> tuple[int, int, int]:
    """(on hand, reserved, available) of the sku, in one warehouse or in total."""
    item = sc.state.skus[SKU]
    if warehouse is None:
        return item.on_hand, item.reserved, item.available
    wh = item.warehouses[warehouse]
    return wh.on_hand, wh.reserved, wh.available


def of_type(events: list[Message], cls: type[Message]) -> list[Message]:
    return [e for e in events if isinstance(e, cls)]


# --- registration and receipts -----------------------------------------------------------------


def test_register_a_sku_with_the_default_floor_of_50() -> None:
    sc = Scenario(INVENTORY, at=T0)
    sc.when(RegisterSku(sku=SKU, name="Mask")).then(
        SkuRegistered(sku=SKU, name="Mask", is_gift=False, low_stock_floor=50, registered_at=T0)
    )
    assert sc.state.skus[SKU].threshold() == 50


def test_register_a_sku_with_its_own_floor() -> None:
    assert Scenario(INVENTORY, at=T0).when(RegisterSku(sku=SKU, name="Mask", is_gift=True, low_stock_floor=5)).events == [
        SkuRegistered(sku=SKU, name="Mask", is_gift=True, low_stock_floor=5, registered_at=T0)
    ]


def test_register_twice_is_rejected() -> None:
    given().when(RegisterSku(sku=SKU, name="Mask")).refused("already registered")


def test_register_with_a_negative_floor_is_rejected() -> None:
    sc = Scenario(INVENTORY, at=T0)
    sc.when(RegisterSku(sku=SKU, name="Mask", low_stock_floor=-1)).refused("low_stock_floor")
    assert sc.state.skus == {}


def test_r_inv_1_received_stock_is_on_hand_and_available() -> None:
    sc = given()
    sc.when(ReceiveStock(sku=SKU, warehouse=NORTH, qty=120, reference="po-1")).then(
        StockReceived(sku=SKU, warehouse=NORTH, qty=120, reference="po-1")
    )
    assert stock(sc, NORTH) == (120, 0, 120)
    sc.when(ReceiveStock(sku=SKU, warehouse=SOUTH, qty=80))
    assert stock(sc) == (200, 0, 200)


@pytest.mark.parametrize("qty", [0, -5])
def test_receive_a_non_positive_quantity_is_rejected(qty: int) -> None:
    stocked(100).when(ReceiveStock(sku=SKU, warehouse=NORTH, qty=qty)).refused("qty must be a positive")


def test_receive_without_a_warehouse_is_rejected() -> None:
    stocked(100).when(ReceiveStock(sku=SKU, warehouse="", qty=10)).refused("warehouse is required")


def test_commands_for_an_unknown_sku_are_rejected() -> None:
    sc = Scenario(INVENTORY, at=T0)
    for cmd in (
        ReceiveStock(sku="ghost", warehouse=NORTH, qty=1),
        CommitReservation(sku="ghost", order_id="o-1"),
        ReturnStock(sku="ghost", order_id="o-1", qty=1, grade="A"),
        SetSafetyStock(sku="ghost", units=5),
    ):
        sc.when(cmd).refused("unknown sku ghost")


# --- R-INV-1: available = on hand - reserved; never below zero -----------------------------------


def test_r_inv_1_a_reservation_that_fits_holds_stock_and_lowers_available() -> None:
    sc = stocked(north=100)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=30)).then(
        StockReserved(sku=SKU, order_id="o-1", qty=30, allocations=[Allocation(warehouse=NORTH, qty=30)])
    )
    assert stock(sc) == (100, 30, 70)
    assert sc.state.skus[SKU].reservations == {"o-1": {NORTH: 30}}


def test_r_inv_1_a_reservation_of_exactly_what_is_available_fits() -> None:
    sc = stocked(north=60, south=40)
    events = sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=100)).events
    assert of_type(events, StockReserved) == [
        StockReserved(
            sku=SKU,
            order_id="o-1",
            qty=100,
            allocations=[Allocation(warehouse=NORTH, qty=60), Allocation(warehouse=SOUTH, qty=40)],
        )
    ]
    assert stock(sc) == (100, 100, 0)


def test_r_inv_1_a_reservation_that_does_not_fit_is_rejected_and_changes_nothing() -> None:
    sc = stocked(north=100)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=80))
    expected = ReservationRejected(sku=SKU, order_id="o-2", qty=21, available=20, reason="only 20 available, 21 requested")
    sc.when(ReserveStock(sku=SKU, order_id="o-2", qty=21)).then(expected).unchanged()
    assert stock(sc) == (100, 80, 20), "reserved units are not available although still on hand"


@pytest.mark.parametrize("qty", [0, -1])
def test_r_inv_1_a_non_positive_reservation_is_rejected(qty: int) -> None:
    expected = ReservationRejected(sku=SKU, order_id="o-1", qty=qty, available=100, reason="qty must be positive")
    stocked(100).when(ReserveStock(sku=SKU, order_id="o-1", qty=qty)).then(expected).unchanged()


def test_r_inv_1_an_order_holds_one_reservation_per_sku() -> None:
    sc = stocked(north=100)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=10))
    expected = ReservationRejected(sku=SKU, order_id="o-1", qty=5, available=90, reason="order already holds a reservation")
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=5)).then(expected).unchanged()


def test_r_inv_1_a_reservation_of_an_unknown_sku_is_rejected_with_nothing_available() -> None:
    expected = ReservationRejected(sku="ghost", order_id="o-1", qty=1, available=0, reason="unknown sku ghost")
    Scenario(INVENTORY, at=T0).when(ReserveStock(sku="ghost", order_id="o-1", qty=1)).then(expected)


def test_r_inv_1_the_preferred_warehouse_takes_the_whole_line_when_it_can() -> None:
    sc = stocked(north=200, south=100)
    events = sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=80, preferred_warehouse=SOUTH)).events
    assert events == [StockReserved(sku=SKU, order_id="o-1", qty=80, allocations=[Allocation(warehouse=SOUTH, qty=80)])]
    assert stock(sc, SOUTH) == (100, 80, 20)
    assert stock(sc, NORTH) == (200, 0, 200)


def test_r_inv_1_a_preferred_warehouse_too_small_falls_back_to_the_fullest_first() -> None:
    sc = stocked(north=200, south=100)
    events = sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=250, preferred_warehouse=SOUTH)).events
    assert of_type(events, StockReserved) == [
        StockReserved(
            sku=SKU,
            order_id="o-1",
            qty=250,
            allocations=[Allocation(warehouse=NORTH, qty=200), Allocation(warehouse=SOUTH, qty=50)],
        )
    ]


def test_r_inv_1_an_unknown_preferred_warehouse_falls_back_to_the_fullest() -> None:
    sc = stocked(north=100, south=300)
    events = sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=10, preferred_warehouse="wh-west")).events
    assert events == [StockReserved(sku=SKU, order_id="o-1", qty=10, allocations=[Allocation(warehouse=SOUTH, qty=10)])]


def test_r_inv_1_without_a_preference_the_fullest_warehouse_serves_ties_by_name() -> None:
    sc = stocked(north=100, south=100)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=10)).then(
        StockReserved(sku=SKU, order_id="o-1", qty=10, allocations=[Allocation(warehouse=NORTH, qty=10)])
    )
    sc.when(ReserveStock(sku=SKU, order_id="o-2", qty=10)).then(
        StockReserved(sku=SKU, order_id="o-2", qty=10, allocations=[Allocation(warehouse=SOUTH, qty=10)])
    )


def test_r_inv_1_a_line_may_be_split_over_warehouses() -> None:
    sc = stocked(north=70, south=60)
    events = sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=100)).events
    assert of_type(events, StockReserved)[0] == StockReserved(
        sku=SKU, order_id="o-1", qty=100, allocations=[Allocation(warehouse=NORTH, qty=70), Allocation(warehouse=SOUTH, qty=30)]
    )
    assert stock(sc, NORTH) == (70, 70, 0)
    assert stock(sc, SOUTH) == (60, 30, 30)


# --- R-INV-2: release, commit, return ---------------------------------------------------------------


def test_r_inv_2_a_cancel_releases_the_whole_reservation() -> None:
    sc = stocked(north=70, south=60)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=100))
    events = sc.when(ReleaseReservation(sku=SKU, order_id="o-1", reason="order cancelled: changed my mind")).events
    assert of_type(events, ReservationReleased) == [
        ReservationReleased(
            sku=SKU,
            order_id="o-1",
            allocations=[Allocation(warehouse=NORTH, qty=70), Allocation(warehouse=SOUTH, qty=30)],
            reason="order cancelled: changed my mind",
        )
    ]
    assert stock(sc) == (130, 0, 130)
    assert sc.state.skus[SKU].reservations == {}


def test_r_inv_2_a_partial_release_gives_back_only_that_many_units() -> None:
    sc = stocked(north=100)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=10))
    events = sc.when(ReleaseReservation(sku=SKU, order_id="o-1", reason="order refunded", qty=3)).events
    assert events == [
        ReservationReleased(sku=SKU, order_id="o-1", allocations=[Allocation(warehouse=NORTH, qty=3)], reason="order refunded")
    ]
    assert stock(sc) == (100, 7, 93)
    assert sc.state.skus[SKU].reservations == {"o-1": {NORTH: 7}}


def test_r_inv_2_a_release_never_gives_back_more_than_is_held() -> None:
    sc = stocked(north=100)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=10))
    events = sc.when(ReleaseReservation(sku=SKU, order_id="o-1", reason="order refunded", qty=50)).events
    assert events == [
        ReservationReleased(sku=SKU, order_id="o-1", allocations=[Allocation(warehouse=NORTH, qty=10)], reason="order refunded")
    ]
    assert stock(sc) == (100, 0, 100)


@pytest.mark.parametrize(
    "cmd",
    [
        ReleaseReservation(sku=SKU, order_id="never-reserved", reason="order rejected"),
        ReleaseReservation(sku=SKU, order_id="o-1", reason="order refunded", qty=0),
        ReleaseReservation(sku="ghost", order_id="o-1", reason="order rejected"),
    ],
)
def test_r_inv_2_releasing_nothing_is_a_silent_no_op(cmd: ReleaseReservation) -> None:
    sc = stocked(north=100)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=10))
    sc.when(cmd).then().unchanged()


def test_r_inv_2_a_second_release_of_the_same_order_is_a_no_op() -> None:
    sc = stocked(north=100)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=10))
    sc.when(ReleaseReservation(sku=SKU, order_id="o-1", reason="order cancelled"))
    sc.when(ReleaseReservation(sku=SKU, order_id="o-1", reason="order cancelled")).then().unchanged()


def test_r_inv_2_shipping_commits_the_reservation_out_of_on_hand() -> None:
    sc = stocked(north=70, south=60)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=100))
    events = sc.when(CommitReservation(sku=SKU, order_id="o-1")).events
    assert events == [
        ReservationCommitted(
            sku=SKU,
            order_id="o-1",
            allocations=[Allocation(warehouse=NORTH, qty=70), Allocation(warehouse=SOUTH, qty=30)],
            committed_at=T0,
        )
    ]
    assert stock(sc) == (30, 0, 30), "available does not move: the units were already held"
    assert sc.state.skus[SKU].reservations == {}


def test_r_inv_2_committing_without_a_reservation_is_rejected() -> None:
    sc = stocked(north=100)
    sc.when(CommitReservation(sku=SKU, order_id="o-1")).refused("holds no reservation")
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=10))
    sc.when(CommitReservation(sku=SKU, order_id="o-1"))
    sc.when(CommitReservation(sku=SKU, order_id="o-1")).refused("holds no reservation")


def test_r_inv_2_grade_a_returns_go_back_to_on_hand_stock() -> None:
    sc = stocked(north=100, south=100)
    events = sc.when(ReturnStock(sku=SKU, order_id="o-1", qty=2, grade="A", warehouse=SOUTH)).events
    assert events == [StockReturned(sku=SKU, order_id="o-1", warehouse=SOUTH, qty=2, grade="A")]
    assert stock(sc, SOUTH) == (102, 0, 102)
    assert sc.state.skus[SKU].warehouses[SOUTH].clearance == 0


def test_r_inv_2_grade_b_returns_go_to_the_clearance_bucket_not_to_available() -> None:
    sc = stocked(north=100)
    events = sc.when(ReturnStock(sku=SKU, order_id="o-1", qty=3, grade="B")).events
    assert events == [StockReturned(sku=SKU, order_id="o-1", warehouse=NORTH, qty=3, grade="B")]
    assert stock(sc) == (100, 0, 100)
    assert sc.state.skus[SKU].warehouses[NORTH].clearance == 3


def test_r_inv_2_a_return_without_a_warehouse_goes_to_the_first_one_stocked() -> None:
    sc = stocked(north=10, south=100)
    sc.when(ReturnStock(sku=SKU, order_id="o-1", qty=1, grade="A")).then(
        StockReturned(sku=SKU, order_id="o-1", warehouse=NORTH, qty=1, grade="A")
    )


def test_r_inv_2_a_return_to_a_new_warehouse_opens_it() -> None:
    sc = stocked(north=100)
    sc.when(ReturnStock(sku=SKU, order_id="o-1", qty=1, grade="A", warehouse="wh-west"))
    assert stock(sc, "wh-west") == (1, 0, 1)


@pytest.mark.parametrize(
    ("cmd", "fragment"),
    [
        (ReturnStock(sku=SKU, order_id="o-1", qty=1, grade="C"), "grade must be one of"),
        (ReturnStock(sku=SKU, order_id="o-1", qty=0, grade="A"), "qty must be positive"),
        (ReturnStock(sku=SKU, order_id="o-1", qty=-2, grade="B"), "qty must be positive"),
    ],
)
def test_r_inv_2_an_invalid_return_is_rejected(cmd: ReturnStock, fragment: str) -> None:
    stocked(north=100).when(cmd).refused(fragment)


def test_r_inv_2_a_return_with_no_warehouse_anywhere_goes_to_the_returns_warehouse() -> None:
    sc = given()  # nothing came back is lost: the goods are counted where they are
    assert sc.when(ReturnStock(sku=SKU, order_id="o-1", qty=1, grade="A")).events[0] == StockReturned(
        sku=SKU, order_id="o-1", warehouse="returns", qty=1, grade="A"
    )
    assert stock(sc, "returns") == (1, 0, 1)


def test_r_inv_2_returns_go_back_to_the_warehouses_the_order_shipped_from() -> None:
    sc = stocked(north=10, south=100)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=30))  # the fullest warehouse first: 30 from south
    sc.when(ReserveStock(sku=SKU, order_id="o-2", qty=75))  # 70 from south, 5 from north
    sc.when(CommitReservation(sku=SKU, order_id="o-1"))
    sc.when(CommitReservation(sku=SKU, order_id="o-2"))
    sc.when(ReturnStock(sku=SKU, order_id="o-1", qty=2, grade="A")).then(
        StockReturned(sku=SKU, order_id="o-1", warehouse=SOUTH, qty=2, grade="A")
    )
    back = sc.when(
        ReturnStock(sku=SKU, order_id="o-2", qty=73, grade="B")
    ).events  # the most-shipped warehouse first, then the rest
    assert back == [
        StockReturned(sku=SKU, order_id="o-2", warehouse=SOUTH, qty=70, grade="B"),
        StockReturned(sku=SKU, order_id="o-2", warehouse=NORTH, qty=3, grade="B"),
    ]
    # more than shipped (a return the saga would not send): the rest goes to the first warehouse
    over = sc.when(ReturnStock(sku=SKU, order_id="o-2", qty=3, grade="A")).events
    assert over == [
        StockReturned(sku=SKU, order_id="o-2", warehouse=NORTH, qty=2, grade="A"),
        StockReturned(sku=SKU, order_id="o-2", warehouse=NORTH, qty=1, grade="A"),
    ]
    for name, wh in sc.state.skus[SKU].warehouses.items():  # R-INV-2 per warehouse
        assert wh.on_hand == wh.received - wh.shipped + wh.returned_a, name


def test_r_inv_2_goods_of_a_presale_order_come_back_even_for_a_sku_not_stocked() -> None:
    sc = Scenario(INVENTORY, at=T0)
    out = sc.when(ReturnStock(sku="tee", order_id="o-9", qty=2, grade="B", campaign_id="camp-1")).events
    assert [type(e).__name__ for e in out] == ["SkuRegistered", "StockReturned"]
    assert sc.state.skus["tee"].warehouses["returns"].clearance == 2 and sc.state.skus["tee"].low_stock_floor == 0
    Scenario(INVENTORY, at=T0).when(ReturnStock(sku="tee", order_id="o-9", qty=2, grade="B")).refused(
        "unknown sku"
    )  # not a presale order: refused


# --- R-INV-3: threshold, one alert per crossing ------------------------------------------------------


def threshold(sc: Scenario[Inventory]) -> int:
    return sc.state.skus[SKU].threshold()


def test_r_inv_3_the_threshold_defaults_to_the_floor_of_50() -> None:
    assert threshold(given()) == 50


def test_r_inv_3_the_threshold_is_the_largest_of_floor_safety_stock_and_20_percent_of_a_stream() -> None:
    sc = given()
    sc.when(SetSafetyStock(sku=SKU, units=40))
    assert threshold(sc) == 50, "the floor wins"
    sc.when(SetSafetyStock(sku=SKU, units=70))
    assert threshold(sc) == 70, "the safety stock wins"
    sc.when(ScheduleLiveStream(sku=SKU, stream_id="stream-1", expected_sales=500))
    assert threshold(sc) == 100, "20 % of 500 expected sales wins"
    sc.when(ScheduleLiveStream(sku=SKU, stream_id="stream-2", expected_sales=333))
    assert threshold(sc) == 100, "the largest stream counts"
    sc.when(EndLiveStream(sku=SKU, stream_id="stream-1"))
    assert threshold(sc) == 70, "20 % of 333 = 66.6 → 67 < safety stock 70"
    sc.when(SetSafetyStock(sku=SKU, units=0))
    assert threshold(sc) == 67, "20 % of 333 rounds up"
    sc.when(EndLiveStream(sku=SKU, stream_id="stream-2"))
    assert threshold(sc) == 50


def test_r_inv_3_the_floor_is_configurable_per_sku() -> None:
    sc = stocked(north=30, floor=20)
    assert threshold(sc) == 20
    assert of_type(sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=10)).events, LowStockAlertRaised) == []
    events = sc.when(ReserveStock(sku=SKU, order_id="o-2", qty=1)).events
    assert of_type(events, LowStockAlertRaised) == [LowStockAlertRaised(sku=SKU, available=19, threshold=20, crossing=1)]


def test_r_inv_3_falling_to_exactly_the_threshold_is_not_below_it() -> None:
    sc = stocked(north=60)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=10)).then(
        StockReserved(sku=SKU, order_id="o-1", qty=10, allocations=[Allocation(warehouse=NORTH, qty=10)])
    )


def test_r_inv_3_falling_below_the_threshold_raises_one_alert() -> None:
    sc = stocked(north=60)
    events = sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=11)).events
    assert events == [
        StockReserved(sku=SKU, order_id="o-1", qty=11, allocations=[Allocation(warehouse=NORTH, qty=11)]),
        LowStockAlertRaised(sku=SKU, available=49, threshold=50, crossing=1),
        ReplenishmentSuggested(
            sku=SKU, crossing=1, available=49, threshold=50, daily_demand=Decimal("0"), lead_time_days=0, qty=1
        ),  # R-INV-5: with every alert
    ]
    assert sc.state.skus[SKU].alert_active


def test_r_inv_3_further_orders_below_the_threshold_raise_no_new_alert() -> None:
    sc = stocked(north=60)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=11))
    for i in range(2, 6):
        events = sc.when(ReserveStock(sku=SKU, order_id=f"o-{i}", qty=5)).events
        assert of_type(events, LowStockAlertRaised) == []


def test_r_inv_3_recovering_only_to_the_threshold_does_not_clear_the_alert() -> None:
    sc = stocked(north=60)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=20))  # available 40: alert 1
    events = sc.when(ReceiveStock(sku=SKU, warehouse=NORTH, qty=10)).events  # available 50 = threshold
    assert of_type(events, LowStockAlertCleared) == []
    assert sc.state.skus[SKU].alert_active
    events = sc.when(ReserveStock(sku=SKU, order_id="o-2", qty=1)).events  # below again, same crossing
    assert of_type(events, LowStockAlertRaised) == []


def test_r_inv_3_recovering_above_clears_and_the_next_crossing_raises_a_new_alert() -> None:
    sc = stocked(north=60)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=20))  # available 40: alert 1
    events = sc.when(ReceiveStock(sku=SKU, warehouse=NORTH, qty=11, reference="po-9")).events  # available 51 > 50
    assert events == [
        StockReceived(sku=SKU, warehouse=NORTH, qty=11, reference="po-9"),
        LowStockAlertCleared(sku=SKU, available=51, threshold=50, crossing=1),
    ]
    assert not sc.state.skus[SKU].alert_active
    events = sc.when(ReserveStock(sku=SKU, order_id="o-2", qty=2)).events  # available 49
    assert of_type(events, LowStockAlertRaised) == [LowStockAlertRaised(sku=SKU, available=49, threshold=50, crossing=2)]


def test_r_inv_3_a_release_or_a_grade_a_return_can_clear_the_alert() -> None:
    sc = stocked(north=60)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=20))
    events = sc.when(ReleaseReservation(sku=SKU, order_id="o-1", reason="order cancelled")).events
    assert of_type(events, LowStockAlertCleared) == [LowStockAlertCleared(sku=SKU, available=60, threshold=50, crossing=1)]
    sc.when(ReserveStock(sku=SKU, order_id="o-2", qty=20))  # available 40: alert 2
    assert of_type(sc.when(ReturnStock(sku=SKU, order_id="o-0", qty=5, grade="B")).events, LowStockAlertCleared) == [], (
        "clearance only"
    )
    assert of_type(sc.when(ReturnStock(sku=SKU, order_id="o-0", qty=5, grade="A")).events, LowStockAlertCleared) == [], (
        "45 is still low"
    )
    events = sc.when(ReturnStock(sku=SKU, order_id="o-0", qty=6, grade="A")).events
    assert of_type(events, LowStockAlertCleared) == [LowStockAlertCleared(sku=SKU, available=51, threshold=50, crossing=2)]


def test_r_inv_3_raising_the_safety_stock_above_available_raises_the_alert_itself() -> None:
    sc = stocked(north=80)
    events = sc.when(SetSafetyStock(sku=SKU, units=100)).events
    assert events == [
        SafetyStockSet(sku=SKU, units=100),
        LowStockAlertRaised(sku=SKU, available=80, threshold=100, crossing=1),
        ReplenishmentSuggested(
            sku=SKU, crossing=1, available=80, threshold=100, daily_demand=Decimal("0"), lead_time_days=0, qty=20
        ),
    ]
    events = sc.when(SetSafetyStock(sku=SKU, units=70)).events
    assert events == [SafetyStockSet(sku=SKU, units=70), LowStockAlertCleared(sku=SKU, available=80, threshold=70, crossing=1)]


def test_r_inv_3_a_scheduled_live_stream_raises_the_threshold_and_its_end_lowers_it() -> None:
    sc = stocked(north=150)
    events = sc.when(ScheduleLiveStream(sku=SKU, stream_id="stream-1", expected_sales=1000)).events  # threshold 200
    assert events == [
        LiveStreamScheduled(sku=SKU, stream_id="stream-1", expected_sales=1000),
        LowStockAlertRaised(sku=SKU, available=150, threshold=200, crossing=1),
        ReplenishmentSuggested(
            sku=SKU, crossing=1, available=150, threshold=200, daily_demand=Decimal("0"), lead_time_days=0, qty=50
        ),
    ]
    events = sc.when(EndLiveStream(sku=SKU, stream_id="stream-1")).events
    assert events == [
        LiveStreamEnded(sku=SKU, stream_id="stream-1"),
        LowStockAlertCleared(sku=SKU, available=150, threshold=50, crossing=1),
    ]


def test_r_inv_3_ending_a_stream_that_is_not_scheduled_is_rejected() -> None:
    stocked(north=100).when(EndLiveStream(sku=SKU, stream_id="stream-x")).refused("no live stream stream-x")


@pytest.mark.parametrize(
    ("cmd", "fragment"),
    [
        (SetSafetyStock(sku=SKU, units=-1), "units must be >= 0"),
        (ScheduleLiveStream(sku=SKU, stream_id="s", expected_sales=-1), "expected_sales"),
    ],
)
def test_r_inv_3_negative_thresholds_are_rejected(cmd: Message, fragment: str) -> None:
    stocked(north=100).when(cmd).refused(fragment)


def test_r_inv_3_a_rejected_reservation_raises_no_alert() -> None:
    sc = stocked(north=60)
    events = sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=61)).events
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
        log.extend(live.when(cmd).events)
    assert [e.crossing for e in of_type(log, LowStockAlertRaised)] == [1, 2]
    assert given(*log).state == live.state


# --- R-INV-6a: back in stock ---------------------------------------------------------------------------


def sold_out() -> Scenario[Inventory]:
    sc = stocked(north=10)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=10))
    assert stock(sc)[2] == 0
    return sc


def test_r_inv_6a_a_sold_out_sku_that_gets_stock_again_is_back_in_stock() -> None:
    sc = sold_out()
    events = sc.when(ReceiveStock(sku=SKU, warehouse=SOUTH, qty=5, reference="po-2")).events
    assert of_type(events, StockBecameAvailable) == [StockBecameAvailable(sku=SKU, available=5)]


def test_r_inv_6a_a_release_or_a_grade_a_return_also_brings_it_back() -> None:
    sc = sold_out()
    assert of_type(
        sc.when(ReleaseReservation(sku=SKU, order_id="o-1", reason="order cancelled", qty=4)).events, StockBecameAvailable
    ) == [StockBecameAvailable(sku=SKU, available=4)]
    sc.when(ReserveStock(sku=SKU, order_id="o-2", qty=4))
    assert of_type(sc.when(ReturnStock(sku=SKU, order_id="o-0", qty=1, grade="A")).events, StockBecameAvailable) == [
        StockBecameAvailable(sku=SKU, available=1)
    ]


def test_r_inv_6a_a_grade_b_return_does_not_bring_it_back() -> None:
    assert of_type(sold_out().when(ReturnStock(sku=SKU, order_id="o-0", qty=1, grade="B")).events, StockBecameAvailable) == []


def test_r_inv_6a_the_first_receipt_of_a_new_sku_is_not_back_in_stock() -> None:
    assert of_type(given().when(ReceiveStock(sku=SKU, warehouse=NORTH, qty=100)).events, StockBecameAvailable) == []


def test_r_inv_6a_more_stock_for_a_sku_still_in_stock_is_not_back_in_stock() -> None:
    sc = stocked(north=10)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=9))
    assert of_type(sc.when(ReceiveStock(sku=SKU, warehouse=NORTH, qty=100)).events, StockBecameAvailable) == []


def test_r_inv_6a_each_run_out_gives_its_own_back_in_stock() -> None:
    sc = sold_out()
    assert of_type(sc.when(ReceiveStock(sku=SKU, warehouse=NORTH, qty=3)).events, StockBecameAvailable) == [
        StockBecameAvailable(sku=SKU, available=3)
    ]
    sc.when(ReserveStock(sku=SKU, order_id="o-2", qty=3))
    assert of_type(sc.when(ReceiveStock(sku=SKU, warehouse=NORTH, qty=7)).events, StockBecameAvailable) == [
        StockBecameAvailable(sku=SKU, available=7)
    ]


def test_an_event_sent_as_a_command_is_rejected() -> None:
    stocked(north=100).when(StockReceived(sku=SKU, warehouse=NORTH, qty=5, reference="po")).refused(
        "StockReceived is not an inventory command"
    )


# --- R-INV-2: the books of a warehouse ---------------------------------------------------------------


def test_r_inv_2_on_hand_is_received_minus_shipped_plus_grade_a_returns_per_warehouse() -> None:
    sc = stocked(north=70, south=60)
    sc.when(ReserveStock(sku=SKU, order_id="o-1", qty=100))  # north 70, south 30
    sc.when(CommitReservation(sku=SKU, order_id="o-1"))
    sc.when(ReturnStock(sku=SKU, order_id="o-1", qty=4, grade="A", warehouse=SOUTH))
    sc.when(ReturnStock(sku=SKU, order_id="o-1", qty=3, grade="B", warehouse=SOUTH))
    books = {
        name: (w.on_hand, w.received, w.shipped, w.returned_a, w.returned_b, w.clearance)
        for name, w in sc.state.skus[SKU].warehouses.items()
    }
    assert books == {NORTH: (0, 70, 70, 0, 0, 0), SOUTH: (34, 60, 30, 4, 3, 3)}
