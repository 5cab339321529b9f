"""Rows the OData connector reads from and writes to a branch's 1C base, and their JSON codec.

Identifiers are 1C reference GUIDs as lower-case strings; an empty 1C reference (all zeros)
becomes `None`. Times are aware UTC datetimes; quantities and money are `Decimal`. The codec
is free of I/O so that the conformance tests can run it on saved 1C responses.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from connectors.odata.errors import invalid_row_error

# 1C writes an unset reference as the all-zero GUID and an unset date as year 1.
EMPTY_REF = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE = "0001-01-01T00:00:00"
# A GUID already in the form `str(uuid.UUID(...))` returns, as 1C writes references.
CANONICAL_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Field names of a UT 11 base. Standard attributes (Ref_Key, Code, ...) are the same in every
# configuration; the Cyrillic ones can differ between configurations and releases.
SKU_FIELD = "Артикул"
PRODUCT_FIELD = "Номенклатура_Key"
CHARACTERISTIC_FIELD = "Характеристика_Key"
WAREHOUSE_FIELD = "Склад_Key"
PRICE_TYPE_FIELD = "ВидЦены_Key"
PRICE_FIELD = "Цена"
ORDER_STATUS_FIELD = "Статус"
ORDER_LINES_FIELD = "Товары"
PRODUCT_SELECT = (
    "Ref_Key",
    "DataVersion",
    "Code",
    "Description",
    SKU_FIELD,
    "DeletionMark",
    "Parent_Key",
    "IsFolder",
)
PRICE_SELECT = ("Period", PRODUCT_FIELD, CHARACTERISTIC_FIELD, PRICE_TYPE_FIELD, PRICE_FIELD)
ORDER_SELECT = (
    "Ref_Key",
    "Number",
    "Date",
    "Posted",
    "DeletionMark",
    "DataVersion",
    ORDER_STATUS_FIELD,
)

Row = Mapping[str, object]


@dataclass(frozen=True)
class ProductRow:
    """One element of the goods catalog (Catalog_Номенклатура): an item or a group."""

    ref_key: str
    code: str
    name: str
    sku: str | None
    deleted: bool
    parent_id: str | None
    is_folder: bool
    # Opaque version 1C changes on every write of the element; None when 1C sent none.
    data_version: str | None = None


@dataclass(frozen=True)
class StockRow:
    """Goods in stock at one warehouse (ТоварыНаСкладах balance, resource ВНаличии)."""

    product_id: str
    characteristic_id: str | None
    warehouse_id: str
    quantity: Decimal


@dataclass(frozen=True)
class PriceRow:
    """The latest price of one product for one price type (ЦеныНоменклатуры slice)."""

    product_id: str
    characteristic_id: str | None
    price_type_id: str
    amount: Decimal
    period: datetime


@dataclass(frozen=True)
class OrderLineIn:
    """One goods line of an order the hub sends to a branch."""

    product_id: str
    characteristic_id: str | None
    quantity: Decimal
    price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class OrderIn:
    """A customer order as the hub sends it to a branch (Document_ЗаказКлиента)."""

    hub_number: str
    created_at: datetime
    currency: str
    total: Decimal
    customer_name: str
    comment: str | None
    lines: tuple[OrderLineIn, ...]


@dataclass(frozen=True)
class OrderRef:
    """A customer order document as stored in the branch base."""

    ref_key: str
    number: str
    date: datetime | None
    posted: bool
    deletion_mark: bool
    data_version: str | None
    status: str | None
    hub_number: str | None


def parse_json(body: bytes | str) -> object:
    """Parse a 1C JSON body; fractional numbers become `Decimal` without passing through float."""
    return json.loads(body, parse_float=Decimal)


def dump_json(value: object) -> bytes:
    """Serialise a request body to UTF-8 JSON, writing `Decimal` as an exact JSON number."""
    return _encode_json(value).encode("utf-8")


def _encode_json(value: object) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send a non-finite number to 1C: {value!r}")
        return format(value, "f")

    if isinstance(value, Mapping):
        members = (
            f"{json.dumps(str(k), ensure_ascii=False)}:{_encode_json(v)}" for k, v in value.items()
        )
        return "{" + ",".join(members) + "}"

    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode_json(item) for item in value) + "]"

    return json.dumps(value, ensure_ascii=False)


def to_local_text(moment: datetime, tz: ZoneInfo) -> str:
    """Format an aware time as the naive local time 1C expects (`2025-01-31T12:00:00`)."""
    if moment.tzinfo is None:
        raise ValueError(f"a naive datetime is ambiguous at the 1C boundary: {moment!r}")
    return moment.astimezone(tz).replace(tzinfo=None).isoformat(timespec="seconds")


def from_local_text(text: str, tz: ZoneInfo) -> datetime | None:
    """Read a 1C date (naive local time of the branch server) as aware UTC; year 1 is None."""
    if text == EMPTY_DATE:
        return None

    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


class RowReader:
    """Typed access to the fields of one JSON row; a bad field raises `ODataResponseError`."""

    def __init__(self, row: object, entity: str) -> None:
        if not isinstance(row, Mapping):
            raise invalid_row_error(entity, f"expected a JSON object, got {type(row).__name__}")
        self._row: Row = row
        self._entity = entity

    def _get(self, key: str) -> object:
        try:
            return self._row[key]
        except KeyError:
            raise invalid_row_error(self._entity, f"field {key!r} is missing") from None

    def _fail(self, key: str, expected: str, value: object) -> Exception:
        return invalid_row_error(self._entity, f"field {key!r} is not {expected}: {value!r}")

    def text(self, key: str) -> str:
        """Return a string field; 1C pads fixed-length strings with spaces, so strip them."""
        value = self._get(key)
        if not isinstance(value, str):
            raise self._fail(key, "a string", value)
        return value.rstrip(" ")

    def optional_text(self, key: str) -> str | None:
        """Return a string field that may be absent, null or empty (all read as None)."""
        if self._row.get(key) is None:
            return None
        return self.text(key) or None

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._fail(key, "a boolean", value)
        return value

    def ref(self, key: str) -> str | None:
        """Return a reference GUID in canonical lower case; the empty reference or null is None."""
        value = self._row.get(key)
        if value is None or value == EMPTY_REF:
            return None
        if not isinstance(value, str):
            raise self._fail(key, "a GUID string", value)
        if CANONICAL_GUID.fullmatch(value):
            return value  # the common case, without building a UUID object
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise self._fail(key, "a GUID", value) from None

    def required_ref(self, key: str) -> str:
        value = self.ref(key)
        if value is None:
            raise invalid_row_error(self._entity, f"field {key!r} is an empty reference")
        return value

    def number(self, key: str) -> Decimal:
        """Return a numeric field as `Decimal`; 1C writes some numbers as strings."""
        value = self._get(key)
        if isinstance(value, Decimal):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return Decimal(value)
        if isinstance(value, str):
            try:
                return Decimal(value)
            except ArithmeticError:
                pass
        raise self._fail(key, "a number", value)

    def date(self, key: str, tz: ZoneInfo) -> datetime | None:
        text = self.text(key)
        try:
            return from_local_text(text, tz)
        except (ValueError, OverflowError):
            raise self._fail(key, "a 1C date", text) from None


def decode_product(row: object) -> ProductRow:
    """Decode one Catalog_Номенклатура row selected with `PRODUCT_SELECT`."""
    reader = RowReader(row, "product")
    return ProductRow(
        ref_key=reader.required_ref("Ref_Key"),
        code=reader.text("Code"),
        name=reader.text("Description"),
        sku=reader.optional_text(SKU_FIELD),
        deleted=reader.flag("DeletionMark"),
        parent_id=reader.ref("Parent_Key"),
        is_folder=reader.flag("IsFolder"),
        data_version=reader.optional_text("DataVersion"),
    )


def decode_stock(row: object, *, resource: str, warehouse_field: str = WAREHOUSE_FIELD) -> StockRow:
    """Decode one row of a stock register's Balance virtual table; `resource` is the quantity."""
    reader = RowReader(row, "stock")
    return StockRow(
        product_id=reader.required_ref(PRODUCT_FIELD),
        characteristic_id=reader.ref(CHARACTERISTIC_FIELD),
        warehouse_id=reader.required_ref(warehouse_field),
        quantity=reader.number(resource),
    )


def decode_price(row: object, *, tz: ZoneInfo) -> PriceRow:
    """Decode one row of the price register's SliceLast virtual table."""
    reader = RowReader(row, "price")
    period = reader.date("Period", tz)
    if period is None:
        raise invalid_row_error("price", "field 'Period' is the empty date")

    return PriceRow(
        product_id=reader.required_ref(PRODUCT_FIELD),
        characteristic_id=reader.ref(CHARACTERISTIC_FIELD),
        price_type_id=reader.required_ref(PRICE_TYPE_FIELD),
        amount=reader.number(PRICE_FIELD),
        period=period,
    )


def decode_order(row: object, *, tz: ZoneInfo, number_field: str) -> OrderRef:
    """Decode a customer order document; `number_field` stores the hub's order number."""
    reader = RowReader(row, "order")
    return OrderRef(
        ref_key=reader.required_ref("Ref_Key"),
        number=reader.text("Number"),
        date=reader.date("Date", tz),
        posted=reader.flag("Posted"),
        deletion_mark=reader.flag("DeletionMark"),
        data_version=reader.optional_text("DataVersion"),
        status=reader.optional_text(ORDER_STATUS_FIELD),
        hub_number=reader.optional_text(number_field),
    )


def pick_order(orders: list[OrderRef]) -> OrderRef:
    """Choose among documents that carry the same hub number (a manager copied one).

    A document marked for deletion still counts as created, but a live one wins, then a
    posted one, then the lowest 1C number.
    """
    return min(orders, key=lambda order: (order.deletion_mark, not order.posted, order.number))


def encode_order(
    order: OrderIn,
    *,
    tz: ZoneInfo,
    number_field: str,
    extra_fields: Mapping[str, object],
    lines_field: str = ORDER_LINES_FIELD,
) -> dict[str, object]:
    """Build the JSON body that creates a customer order document (Document_ЗаказКлиента).

    `extra_fields` carries the branch's own references (organisation, warehouse, partner,
    currency...) that 1C needs before it can post the order; hub fields override them.
    `lines_field` is the goods table part, which configurations name differently.
    """
    lines = [
        {
            "LineNumber": str(index),
            PRODUCT_FIELD: line.product_id,
            CHARACTERISTIC_FIELD: line.characteristic_id or EMPTY_REF,
            "Количество": line.quantity,
            "КоличествоУпаковок": line.quantity,
            PRICE_FIELD: line.price,
            "Сумма": line.amount,
        }
        for index, line in enumerate(order.lines, start=1)
    ]
    return {
        **extra_fields,
        "Date": to_local_text(order.created_at, tz),
        number_field: order.hub_number,
        "СуммаДокумента": order.total,
        "Комментарий": order_comment(order),
        lines_field: lines,
    }


def order_comment(order: OrderIn) -> str:
    """Write the order's comment for the branch manager, who reads Russian."""
    text = (
        f"Заказ интернет-магазина № {order.hub_number}. Покупатель: {order.customer_name}. "
        f"Сумма: {format(order.total, 'f')} {order.currency}."
    )
    if order.comment:
        text += f" Комментарий покупателя: {order.comment}"
    return text
