"""Order states, the transitions between them and the order maths; no I/O here."""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")


class OrderStatus(enum.StrEnum):
    """Stage of an order on its way from the shop to the branch's 1C and the customer."""

    ACCEPTED = "accepted"  # recorded by the hub, delivery to the branch pending
    DELIVERED = "delivered"  # the branch's 1C received the document
    CONFIRMED = "confirmed"  # 1C registered it under its own number (posted)
    PAID = "paid"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"
    NEEDS_ATTENTION = "needs_attention"  # delivery failed permanently; an operator must act


# Forward progress only: a late or repeated status document from 1C never moves an order
# back.  CANCELLED is final; NEEDS_ATTENTION is left by a successful delivery.
_RANK = {
    OrderStatus.ACCEPTED: 0,
    OrderStatus.NEEDS_ATTENTION: 0,
    OrderStatus.DELIVERED: 1,
    OrderStatus.CONFIRMED: 2,
    OrderStatus.PAID: 3,
    OrderStatus.SHIPPED: 4,
}


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    """Tell whether an order in `current` may move to `new`."""
    if current == new or current == OrderStatus.CANCELLED:
        return False
    if new in (OrderStatus.CANCELLED, OrderStatus.NEEDS_ATTENTION):
        return current not in (OrderStatus.SHIPPED,)
    return _RANK[new] > _RANK[current]


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Status report of an order from a branch's 1C, in either dialect or over OData."""

    number_1c: str | None = None
    posted: bool | None = None
    paid: bool = False
    shipped: bool = False
    cancelled: bool = False
    deleted: bool = False
    status_text: str | None = None


def status_from_report(report: StatusReport) -> OrderStatus:
    """Map a 1C status report onto the hub's order status.

    Cancelled or marked for deletion wins, then shipped, then paid. A 1C number or a
    posted document means confirmed. Anything else still means 1C has the order.
    """
    if report.cancelled or report.deleted:
        return OrderStatus.CANCELLED
    if report.shipped:
        return OrderStatus.SHIPPED
    if report.paid:
        return OrderStatus.PAID
    if report.posted or report.number_1c:
        return OrderStatus.CONFIRMED
    return OrderStatus.DELIVERED


@dataclass(frozen=True, slots=True)
class PricedLine:
    """An order line with the price the branch's catalog gave it."""

    offer_id: str
    product_id: str
    characteristic_id: str | None
    name: str
    quantity: Decimal
    price: Decimal
    gift: bool = False
    discount: Decimal = Decimal("0")  # taken off this line's amount

    @property
    def gross(self) -> Decimal:
        return (self.price * self.quantity).quantize(CENT, rounding=ROUND_HALF_UP)

    @property
    def amount(self) -> Decimal:
        """What the customer pays for the line, discount taken off."""
        return self.gross - self.discount


def allocate_discount(amounts: list[Decimal], discount: Decimal) -> list[Decimal]:
    """Split an order discount over line amounts in proportion, to the kopeck.

    Largest-remainder rounding: every share is rounded down to the cent. The cents left
    over go to the lines with the largest remainders, earlier lines first on ties. So the
    shares sum exactly to `discount`, and no line's share exceeds its amount.
    Raises ValueError when the discount is negative or larger than the amounts' sum.
    """
    total = sum(amounts, Decimal("0"))
    if discount < 0 or discount > total:
        raise ValueError(f"discount {discount} must be between 0 and the lines' sum {total}")
    if discount == 0:
        return [Decimal("0") for _ in amounts]
    exact = [amount * discount / total for amount in amounts]
    shares = [value.quantize(CENT, rounding=ROUND_DOWN) for value in exact]
    left_cents = int((discount - sum(shares, Decimal("0"))) / CENT)
    order = sorted(range(len(amounts)), key=lambda i: (-(exact[i] - shares[i]), i))
    for index in order[:left_cents]:
        shares[index] += CENT
    return shares


def order_total(lines: list[PricedLine], delivery_cost: Decimal) -> Decimal:
    """Sum of line amounts plus delivery, in the currency's minor units."""
    total = sum((line.amount for line in lines), Decimal("0")) + delivery_cost
    return total.quantize(CENT, rounding=ROUND_HALF_UP)


def request_fingerprint(body: dict[str, Any]) -> bytes:
    """Hash a request body so a reused idempotency key with another body is detected.

    Keys are sorted so the same JSON object in another key order hashes the same.
    """
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


def format_order_number(sequence_value: int) -> str:
    """Hub order number as shops and 1C show it, e.g. TH-0000042."""
    return f"TH-{sequence_value:07d}"
