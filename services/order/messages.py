"""Order's commands (on `order.commands`) and events (on `order.events`), keyed by order id."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar

from flexchain.messages import Message

CHANNELS = ("live", "short_video", "article", "mini_program")  # R-ORD-1
REFUND_REASONS = ("no_reason", "defect", "damaged", "late")  # R-ORD-2a: what a member may give
PRESALE_REFUND_REASON = "campaign_failed"  # a refund the presale service issues (R-PRE-7)


class OrderMessage(Message):
    KEY: ClassVar[str] = "order_id"
    SERVICE: ClassVar[str] = "order"


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One line: `unit_price` in cents (fen)."""

    sku: str
    qty: int
    unit_price: int


@dataclass(frozen=True, slots=True)
class RefundLine:
    """Units of one line to refund, and why."""

    sku: str
    qty: int
    reason: str


@dataclass(frozen=True, slots=True)
class RefundedLine:
    """Units of one line refunded, the amount in cents, and whether goods come back."""

    sku: str
    qty: int
    reason: str
    amount: int
    goods_returned: bool


# --- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceOrder(OrderMessage):
    """A member orders lines through a channel (R-ORD-1)."""

    order_id: str
    member_id: str
    channel: str
    lines: list[OrderLine]
    distributor_id: str | None = None
    campaign_id: str | None = None
    group_id: str | None = None  # a three-person group of a presale campaign (R-PRE-3)


@dataclass(frozen=True, slots=True)
class RecordLineReservation(OrderMessage):
    """Inventory's answer for one line (routed from `inventory.events`)."""

    order_id: str
    sku: str
    reserved: bool
    reason: str


@dataclass(frozen=True, slots=True)
class PayOrder(OrderMessage):
    """Payment received for a confirmed order; `amount` in cents must equal the order total."""

    order_id: str
    amount: int
    payment_ref: str


@dataclass(frozen=True, slots=True)
class ShipOrder(OrderMessage):
    """The order left the warehouse."""

    order_id: str
    tracking: str


@dataclass(frozen=True, slots=True)
class ConfirmDelivery(OrderMessage):
    """The member received the order; the 7-day no-reason return window starts."""

    order_id: str


@dataclass(frozen=True, slots=True)
class CancelOrder(OrderMessage):
    """Cancel before shipping (R-ORD-2)."""

    order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RefundOrder(OrderMessage):
    """Refund some or all lines, each with a reason (R-ORD-2, R-ORD-2a)."""

    order_id: str
    refund_id: str
    lines: list[RefundLine]


@dataclass(frozen=True, slots=True)
class CheckOrderTimers(OrderMessage):
    """Business time reached `time` on this partition: cancel unpaid holds, close return windows.

    Sent to every partition (its key is empty) by the order router for each clock tick."""

    KEY: ClassVar[str] = ""
    time: int


@dataclass(frozen=True, slots=True)
class RecordPresaleAnswer(OrderMessage):
    """The presale service's answer to a campaign order: the phase price, or a refusal (routed)."""

    order_id: str
    accepted: bool
    unit_price: int
    phase: str
    reason: str


@dataclass(frozen=True, slots=True)
class RecordMemberDiscount(OrderMessage):
    """The loyalty service's tier discount for the member, in force when the order was placed (routed)."""

    order_id: str
    tier: str
    discount_rate: Decimal


@dataclass(frozen=True, slots=True)
class RecordPresaleRefund(OrderMessage):
    """The presale service refunded this order from escrow (a failed campaign, R-PRE-7) (routed)."""

    order_id: str
    refund_id: str
    amount: int
    reason: str


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderPlaced(OrderMessage):
    """An order was placed; its lines await stock reservations. `total` in cents."""

    order_id: str
    member_id: str
    channel: str
    lines: list[OrderLine]
    distributor_id: str | None
    campaign_id: str | None
    total: int
    placed_at: int
    awaiting: list[str] = field(default_factory=list)
    group_id: str | None = None


@dataclass(frozen=True, slots=True)
class OrderLineReserved(OrderMessage):
    """Stock for one line is held."""

    order_id: str
    sku: str


@dataclass(frozen=True, slots=True)
class OrderLineRejected(OrderMessage):
    """Stock for one line could not be held."""

    order_id: str
    sku: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderConfirmed(OrderMessage):
    """Every answer is in; payment of `total` (final unit prices in `lines`) is due by `pay_by` (ms)."""

    order_id: str
    pay_by: int
    total: int
    lines: list[OrderLine]


@dataclass(frozen=True, slots=True)
class OrderPresaleAnswered(OrderMessage):
    """The campaign's answer: its phase price per unit (cents), or why the pledge was refused."""

    order_id: str
    accepted: bool
    unit_price: int
    phase: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderDiscountApplied(OrderMessage):
    """The member's tier discount in force when the order was placed (R-LOY-1)."""

    order_id: str
    tier: str
    discount_rate: Decimal


@dataclass(frozen=True, slots=True)
class OrderRejected(OrderMessage):
    """At least one line could not be reserved; `release_skus` lines that were reserved go back."""

    order_id: str
    reason: str
    release_skus: list[str]


@dataclass(frozen=True, slots=True)
class OrderPaid(OrderMessage):
    """Payment received (cents) for `lines` at their final unit prices."""

    order_id: str
    amount: int
    payment_ref: str
    paid_at: int
    member_id: str
    distributor_id: str | None
    campaign_id: str | None
    lines: list[OrderLine]


@dataclass(frozen=True, slots=True)
class OrderShipped(OrderMessage):
    """Goods left the warehouse; reservations are committed."""

    order_id: str
    tracking: str
    skus: list[str]
    campaign_id: str | None = None


@dataclass(frozen=True, slots=True)
class OrderDelivered(OrderMessage):
    """The member received the goods; no-reason returns are open until `return_window_ends`."""

    order_id: str
    delivered_at: int
    return_window_ends: int


@dataclass(frozen=True, slots=True)
class OrderCompleted(OrderMessage):
    """The return window closed: points and commissions of the order are final."""

    order_id: str
    completed_at: int
    member_id: str
    distributor_id: str | None
    campaign_id: str | None


@dataclass(frozen=True, slots=True)
class OrderCancelled(OrderMessage):
    """Cancelled before shipping; held stock goes back; `refund_amount` cents if it was paid."""

    order_id: str
    reason: str
    release_skus: list[str]
    refund_amount: int
    member_id: str
    distributor_id: str | None
    campaign_id: str | None


@dataclass(frozen=True, slots=True)
class OrderRefunded(OrderMessage):
    """Lines refunded; `amount` in cents; `fully_refunded` when nothing paid remains."""

    order_id: str
    refund_id: str
    lines: list[RefundedLine]
    amount: int
    fully_refunded: bool
    member_id: str
    distributor_id: str | None
    campaign_id: str | None


@dataclass(frozen=True, slots=True)
class OrderCommandRejected(OrderMessage):
    """A command was refused with a reason; nothing changed."""

    order_id: str
    command: str
    reason: str


COMMANDS: tuple[type[Message], ...] = (
    PlaceOrder,
    RecordLineReservation,
    PayOrder,
    ShipOrder,
    ConfirmDelivery,
    CancelOrder,
    RefundOrder,
    CheckOrderTimers,
    RecordPresaleAnswer,
    RecordMemberDiscount,
    RecordPresaleRefund,
)
EVENTS: tuple[type[Message], ...] = (
    OrderPlaced,
    OrderLineReserved,
    OrderLineRejected,
    OrderConfirmed,
    OrderPresaleAnswered,
    OrderDiscountApplied,
    OrderRejected,
    OrderPaid,
    OrderShipped,
    OrderDelivered,
    OrderCompleted,
    OrderCancelled,
    OrderRefunded,
    OrderCommandRejected,
)
MESSAGES: list[type[Message]] = [*COMMANDS, *EVENTS]
