"""Builders of CommerceML order documents: the `mode=query` response and 1C's status feedback.

`render_orders` writes the hub's response to `type=sale&mode=query` (site orders for 1C).
`render_status_updates` writes what 1C uploads back about those orders; the hub's 1C
emulator uses it, and its output reads back through `iter_document` unchanged.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Literal

from lxml import etree

from .model import DELIVERY_LINE_ID, OrderDocument, OrderLine

__all__ = [
    "Customer",
    "ExportOrder",
    "render_orders",
    "render_status_updates",
]

_ORDER_OPERATION = "Заказ товара"
_SELLER_ROLE = "Продавец"
_BUYER_ROLE = "Покупатель"
_DELIVERY_NAME = "Доставка заказа"
_GOODS_TYPE = "Товар"
_SERVICE_TYPE = "Услуга"

# 1C's empty date after its date format is applied; "Дата оплаты по 1С" = T means "not paid".
_EMPTY_DATE = "T"

# OKEI code 796 ("штука"), the unit 1C assumes for a line that names none.
_PIECE_UNIT = {"Код": "796", "НаименованиеПолное": "Штука", "МеждународноеСокращение": "PCE"}
_PIECE_SHORT_NAME = "шт"

# Labels written in the XML declaration; 1C and Bitrix spell them this way.
_DECLARED_ENCODINGS = {"utf-8": "UTF-8", "cp1251": "windows-1251"}

Dialect = Literal["requisites", "elements"]


@dataclass(frozen=True)
class Customer:
    """The buyer of a site order (Контрагент with Роль Покупатель)."""

    id: str
    name: str
    phone: str | None
    email: str | None
    address: str | None


@dataclass(frozen=True)
class ExportOrder:
    """A site order as the hub offers it to 1C in the `mode=query` response.

    `created_at` is aware UTC. `total` must equal the sum of the line amounts plus
    `delivery_cost`. `requisites` are written after the standard ones and replace a
    standard requisite of the same name (e.g. "Заказ оплачен" = "true", "Метод оплаты").
    """

    site_id: str
    number: str
    created_at: datetime
    currency: str
    total: Decimal
    customer: Customer
    lines: tuple[OrderLine, ...]
    comment: str | None = None
    delivery_cost: Decimal = Decimal(0)
    status_text: str = "[N] Принят"
    requisites: dict[str, str] = field(default_factory=dict)


def render_orders(
    orders: Sequence[ExportOrder],
    *,
    tz: tzinfo,
    schema_version: str = "2.05",
    encoding: str = "utf-8",
    generated_at: datetime | None = None,
) -> bytes:
    """Render the `mode=query` response: one Документ "Заказ товара" per order.

    Dates are written in the branch's local time (`tz`). A positive `delivery_cost` becomes
    an extra ORDER_DELIVERY line of type Услуга. Lines are written one Товар each, in order,
    so a free gift and a paid line of the same product stay apart. An empty `orders` gives
    the root element only. `generated_at` (default: now) fills ДатаФормирования.
    Raises ValueError when the line amounts plus delivery do not sum exactly to the total,
    when ORDER_DELIVERY is both a line and a `delivery_cost`, or when a datetime is naive.
    """
    root = _root(schema_version, generated_at, tz)
    for order in orders:
        root.append(_order_element(root, order, tz))
    return _serialize(root, encoding)


def render_status_updates(
    updates: Sequence[OrderDocument],
    *,
    tz: tzinfo,
    dialect: Dialect = "requisites",
    schema_version: str = "2.05",
    encoding: str = "utf-8",
    generated_at: datetime | None = None,
) -> bytes:
    """Render what 1C uploads about site orders (status feedback), in either dialect.

    "requisites" (2.03-2.08, UT 11 standard exchange): Номер по 1С, Дата по 1С, Проведен,
    ПометкаУдаления as ЗначенияРеквизитов. "elements" (2.09+): Номер1С, Дата1С and
    ПометкаУдаления as elements of Документ; with a 3.x `schema_version` every document
    is wrapped in a Контейнер. In both, Дата оплаты по 1С and Дата отгрузки по 1С are
    requisites (`T` when None, as 1C writes an empty date), and so are Отменен, Проведен
    (elements dialect) and Статус заказа. `requisites` of the update are written after
    those and never replace them.
    The 1C date (Дата по 1С / Дата1С) is written as a date only, as 1C does, so its time of
    day does not survive a round trip.
    """
    if dialect not in ("requisites", "elements"):
        raise ValueError(f"invalid dialect {dialect!r}: expected 'requisites' or 'elements'")

    root = _root(schema_version, generated_at, tz)
    wrap = dialect == "elements" and schema_version.startswith("3")
    for update in updates:
        document = _status_element(root, update, tz, dialect)
        if wrap:
            container = _sub(root, "Контейнер")
            container.append(document)
        else:
            root.append(document)
    return _serialize(root, encoding)


# --------------------------------------------------------------------------------------
# Site orders (mode=query)


def _order_element(root: etree._Element, order: ExportOrder, tz: tzinfo) -> etree._Element:
    lines = _lines_with_delivery(order)
    _check_total(order, lines)

    document = _new(root, "Документ")
    _sub(document, "Ид", order.site_id)
    _sub(document, "Номер", order.number)
    _write_date_and_time(document, order.created_at, tz)
    _sub(document, "ХозОперация", _ORDER_OPERATION)
    _sub(document, "Роль", _SELLER_ROLE)
    _sub(document, "Валюта", order.currency)
    _sub(document, "Курс", "1")
    _sub(document, "Сумма", _decimal(order.total))
    _customer_element(document, order.customer)
    if order.comment:
        _sub(document, "Комментарий", order.comment)

    goods = _sub(document, "Товары")
    for line in lines:
        _line_element(goods, line)

    _requisites_element(document, _order_requisites(order, tz))
    return document


def _lines_with_delivery(order: ExportOrder) -> tuple[OrderLine, ...]:
    if order.delivery_cost < 0:
        raise ValueError(f"order {order.site_id!r}: negative delivery cost {order.delivery_cost}")
    if order.delivery_cost == 0:
        return order.lines
    if any(line.external_id == DELIVERY_LINE_ID for line in order.lines):
        raise ValueError(
            f"order {order.site_id!r}: delivery given both as a {DELIVERY_LINE_ID} line "
            "and as delivery_cost"
        )

    delivery = OrderLine(
        external_id=DELIVERY_LINE_ID,
        name=_DELIVERY_NAME,
        quantity=Decimal(1),
        price=order.delivery_cost,
        amount=order.delivery_cost,
        is_service=True,
    )
    return (*order.lines, delivery)


def _check_total(order: ExportOrder, lines: tuple[OrderLine, ...]) -> None:
    line_sum = sum((line.amount for line in lines), Decimal(0))
    if line_sum != order.total:
        raise ValueError(
            f"order {order.site_id!r}: lines and delivery sum to {line_sum}, "
            f"but the total is {order.total}"
        )


def _customer_element(document: etree._Element, customer: Customer) -> None:
    counterparty = _sub(_sub(document, "Контрагенты"), "Контрагент")
    _sub(counterparty, "Ид", customer.id)
    _sub(counterparty, "Наименование", customer.name)
    _sub(counterparty, "ПолноеНаименование", customer.name)
    _sub(counterparty, "Роль", _BUYER_ROLE)
    if customer.address:
        address = _sub(counterparty, "АдресРегистрации")
        _sub(address, "Представление", customer.address)

    contacts = [
        ("Электронная почта", customer.email),
        ("Телефон рабочий", customer.phone),
    ]
    present = [(kind, value) for kind, value in contacts if value]
    if not present:
        return
    container = _sub(counterparty, "Контакты")
    for kind, value in present:
        contact = _sub(container, "Контакт")
        _sub(contact, "Тип", kind)
        _sub(contact, "Значение", value)


def _line_element(goods: etree._Element, line: OrderLine) -> None:
    item = _sub(goods, "Товар")
    _sub(item, "Ид", line.external_id)
    _sub(item, "Наименование", line.name)
    if line.unit is None:
        _sub(item, "БазоваяЕдиница", _PIECE_SHORT_NAME).attrib.update(_PIECE_UNIT)
    else:
        _sub(item, "БазоваяЕдиница", line.unit)
    _sub(item, "ЦенаЗаЕдиницу", _decimal(line.price))
    _sub(item, "Количество", _decimal(line.quantity))
    _sub(item, "Сумма", _decimal(line.amount))

    if line.discount:
        # The line amount already has the discount taken off, hence УчтеноВСумме = true.
        discount = _sub(_sub(item, "Скидки"), "Скидка")
        _sub(discount, "Наименование", "Скидка на товар")
        _sub(discount, "Сумма", _decimal(line.discount))
        _sub(discount, "УчтеноВСумме", "true")

    kind = _SERVICE_TYPE if line.is_service else _GOODS_TYPE
    _requisites_element(item, [("ВидНоменклатуры", kind), ("ТипНоменклатуры", kind)])


def _order_requisites(order: ExportOrder, tz: tzinfo) -> list[tuple[str, str]]:
    standard = {
        "Заказ оплачен": "false",
        "Доставка разрешена": "false",
        "Отменен": "false",
        "Финальный статус": "false",
        "Статус заказа": order.status_text,
        "Дата изменения статуса": _local(order.created_at, tz).strftime("%Y-%m-%d %H:%M:%S"),
    }
    merged = {**standard, **order.requisites}
    return list(merged.items())


# --------------------------------------------------------------------------------------
# Status feedback (1C -> site)


def _status_element(
    root: etree._Element, update: OrderDocument, tz: tzinfo, dialect: Dialect
) -> etree._Element:
    document = _new(root, "Документ")
    _sub(document, "Ид", update.site_id)
    if dialect == "elements":
        _sub(document, "ПометкаУдаления", _flag(update.deleted))
    _sub(document, "Номер", update.number or update.site_id)
    if dialect == "elements" and update.number_1c:
        _sub(document, "Номер1С", update.number_1c)
    if update.date is not None:
        _write_date_and_time(document, update.date, tz)
    if dialect == "elements" and update.date_1c is not None:
        _sub(document, "Дата1С", _local(update.date_1c, tz).strftime("%Y-%m-%d"))

    _sub(document, "ХозОперация", _ORDER_OPERATION)
    _sub(document, "Роль", _SELLER_ROLE)
    if update.currency:
        _sub(document, "Валюта", update.currency)
    if update.total is not None:
        _sub(document, "Сумма", _decimal(update.total))
    if update.lines:
        goods = _sub(document, "Товары")
        for line in update.lines:
            _line_element(goods, line)

    _requisites_element(document, _status_requisites(update, tz, dialect))
    return document


def _status_requisites(
    update: OrderDocument, tz: tzinfo, dialect: Dialect
) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    if dialect == "requisites":
        if update.number_1c:
            pairs.append(("Номер по 1С", update.number_1c))
        if update.date_1c is not None:
            pairs.append(("Дата по 1С", _local(update.date_1c, tz).strftime("%Y-%m-%d")))
        pairs.append(("ПометкаУдаления", _flag(update.deleted)))
    if update.posted is not None:
        pairs.append(("Проведен", _flag(update.posted)))

    pairs.append(("Дата оплаты по 1С", _status_date(update.paid_at, tz)))
    pairs.append(("Дата отгрузки по 1С", _status_date(update.shipped_at, tz)))
    pairs.append(("Отменен", _flag(update.cancelled)))
    if update.status_text:
        pairs.append(("Статус заказа", update.status_text))

    written = {name for name, _ in pairs}
    pairs.extend((name, value) for name, value in update.requisites.items() if name not in written)
    return pairs


def _status_date(value: datetime | None, tz: tzinfo) -> str:
    if value is None:
        return _EMPTY_DATE
    return _local(value, tz).strftime("%Y-%m-%dT%H:%M:%S")


# --------------------------------------------------------------------------------------
# XML helpers


def _namespace(schema_version: str) -> str | None:
    """Namespace 1C producers use for a schema version; 2.03-2.05 files have none."""
    major, _, minor = schema_version.partition(".")
    if major == "3":
        return "urn:1C.ru:commerceml_3"
    if major == "2" and minor.isdigit() and int(minor) >= 7:
        return "urn:1C.ru:commerceml_2"
    return None


def _root(schema_version: str, generated_at: datetime | None, tz: tzinfo) -> etree._Element:
    namespace = _namespace(schema_version)
    stamp = _local(generated_at or datetime.now(UTC), tz)
    tag = (
        "КоммерческаяИнформация" if namespace is None else f"{{{namespace}}}КоммерческаяИнформация"
    )
    root = etree.Element(tag, nsmap=None if namespace is None else {None: namespace})
    root.set("ВерсияСхемы", schema_version)
    root.set("ДатаФормирования", stamp.strftime("%Y-%m-%dT%H:%M:%S"))
    return root


def _qualified(parent: etree._Element, name: str) -> str:
    # Children share the root's namespace (CommerceML has elementFormDefault="qualified").
    namespace = etree.QName(parent).namespace
    return name if namespace is None else f"{{{namespace}}}{name}"


def _new(root: etree._Element, name: str) -> etree._Element:
    return etree.Element(_qualified(root, name))


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, _qualified(parent, name))
    if text is not None:
        child.text = text
    return child


def _requisites_element(parent: etree._Element, pairs: Iterable[tuple[str, str]]) -> None:
    container = _sub(parent, "ЗначенияРеквизитов")
    for name, value in pairs:
        entry = _sub(container, "ЗначениеРеквизита")
        _sub(entry, "Наименование", name)
        _sub(entry, "Значение", value)


def _write_date_and_time(document: etree._Element, moment: datetime, tz: tzinfo) -> None:
    local = _local(moment, tz)
    _sub(document, "Дата", local.strftime("%Y-%m-%d"))
    _sub(document, "Время", local.strftime("%H:%M:%S"))


def _local(moment: datetime, tz: tzinfo) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()!r}: the hub keeps aware UTC times")
    return moment.astimezone(tz)


def _decimal(value: Decimal) -> str:
    """Plain decimal text: no exponent, `.` as separator, the value's own decimal places."""
    if not value.is_finite():
        raise ValueError(f"invalid amount {value!r}: not a finite number")
    return format(value, "f")


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _serialize(root: etree._Element, encoding: str) -> bytes:
    canonical = codecs.lookup(encoding).name
    label = _DECLARED_ENCODINGS.get(canonical, encoding)
    declaration = f'<?xml version="1.0" encoding="{label}"?>\n'.encode("ascii")
    body = etree.tostring(root, encoding=label, xml_declaration=False, pretty_print=True)
    return declaration + body
