"""Builders of CommerceML order documents: the `mode=query` response and 1C's status feedback.

`render_orders` writes the hub's response to `type=sale&mode=query` (site orders for 1C).
`render_status_updates` writes what 1C uploads back about those orders; the hub's 1C
emulator uses it, and its output reads back through `iter_document` unchanged.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Literal

from lxml import etree

from .model import DELIVERY_LINE_ID, OrderDocument, OrderLine

__all__ = [
    "Customer",
    "ExportOrder",
    "ExportProfile",
    "render_orders",
    "render_status_updates",
]

_ORDER_OPERATION = "Заказ товара"
_SELLER_ROLE = "Продавец"
_BUYER_ROLE = "Покупатель"
_DELIVERY_NAME = "Доставка заказа"
_DELIVERY_COST = "Стоимость доставки"
_LINE_DISCOUNT_NAME = "Скидка на товар"
_ORDER_DISCOUNT_NAME = "Скидка на заказ"
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
DeliveryStyle = Literal["line", "requisite"]
DiscountStyle = Literal["lines", "document"]


@dataclass(frozen=True)
class ExportProfile:
    """Settings of the site order documents that one branch's 1C reads.

    - `style`: "requisites" writes flags as ЗначенияРеквизитов only; "elements" (2.09+) also
      writes ПометкаУдаления as an element of Документ, as the 1C-Bitrix module reads it.
      With a 3.x `schema_version` each Документ is wrapped in a Контейнер in either style.
    - `delivery`: "line" adds a Услуга line with Ид `delivery_item_id`, which is
      ORDER_DELIVERY or the Ид of the 1C service item the branch maps delivery to.
      "requisite" writes the cost as the requisite Стоимость доставки, and only the
      document Сумма includes it.
    - `discounts`: "lines" writes a Скидки element on each discounted line, and the line's
      Сумма already has the discount taken off. "document" writes lines at full price and
      one Скидки element on the document, for 1C bases that book only order discounts.
    """

    schema_version: str = "2.05"
    encoding: str = "utf-8"
    style: Dialect = "requisites"
    delivery: DeliveryStyle = "line"
    delivery_item_id: str = DELIVERY_LINE_ID
    discounts: DiscountStyle = "lines"

    def __post_init__(self) -> None:
        if self.style not in ("requisites", "elements"):
            raise ValueError(f"invalid style {self.style!r}: expected 'requisites' or 'elements'")
        if self.delivery not in ("line", "requisite"):
            raise ValueError(f"invalid delivery {self.delivery!r}: expected 'line' or 'requisite'")
        if self.discounts not in ("lines", "document"):
            raise ValueError(
                f"invalid discounts {self.discounts!r}: expected 'lines' or 'document'"
            )
        if not self.delivery_item_id.strip():
            raise ValueError("delivery_item_id is empty: give the Ид of the delivery service")


DEFAULT_PROFILE = ExportProfile()


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
    profile: ExportProfile = DEFAULT_PROFILE,
    generated_at: datetime | None = None,
) -> bytes:
    """Render the `mode=query` response: one Документ "Заказ товара" per order.

    Dates are written in the branch's local time (`tz`). A positive `delivery_cost` becomes
    a Услуга line or a requisite, and discounts go on the lines or the document, as
    `profile` says. Lines are written one Товар each, in order, so a free gift and a paid
    line of the same product stay apart. An empty `orders` gives the root element only.
    `generated_at` (default: now) fills ДатаФормирования.
    Raises ValueError when the written amounts do not sum exactly to the total, when
    delivery is both a line and a `delivery_cost`, or when a datetime is naive.
    """
    root = _root(profile.schema_version, generated_at, tz)
    wrap = profile.schema_version.startswith("3")
    for order in orders:
        _append_document(root, _order_element(root, order, tz, profile), wrap=wrap)
    return _serialize(root, profile.encoding)


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
        _append_document(root, _status_element(root, update, tz, dialect), wrap=wrap)
    return _serialize(root, encoding)


# --------------------------------------------------------------------------------------
# Site orders (mode=query)


def _order_element(
    root: etree._Element, order: ExportOrder, tz: tzinfo, profile: ExportProfile
) -> etree._Element:
    lines = _lines_with_delivery(order, profile)
    if profile.discounts == "document":
        lines = tuple(_at_full_price(line) for line in lines)
    order_discount = sum((line.discount for line in order.lines), Decimal(0))
    _check_total(order, lines, profile, order_discount)

    document = _new(root, "Документ")
    _sub(document, "Ид", order.site_id)
    if profile.style == "elements":
        _sub(document, "ПометкаУдаления", "false")
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
    if profile.discounts == "document" and order_discount:
        _discount_element(document, _ORDER_DISCOUNT_NAME, order_discount)

    goods = _sub(document, "Товары")
    for line in lines:
        _line_element(goods, line)

    _requisites_element(document, _order_requisites(order, tz, profile))
    return document


def _lines_with_delivery(order: ExportOrder, profile: ExportProfile) -> tuple[OrderLine, ...]:
    if order.delivery_cost < 0:
        raise ValueError(f"order {order.site_id!r}: negative delivery cost {order.delivery_cost}")
    if order.delivery_cost == 0 or profile.delivery == "requisite":
        return order.lines
    delivery_ids = {DELIVERY_LINE_ID, profile.delivery_item_id}
    if any(line.external_id in delivery_ids for line in order.lines):
        raise ValueError(
            f"order {order.site_id!r}: delivery given both as a {profile.delivery_item_id} "
            "line and as delivery_cost"
        )

    delivery = OrderLine(
        external_id=profile.delivery_item_id,
        name=_DELIVERY_NAME,
        quantity=Decimal(1),
        price=order.delivery_cost,
        amount=order.delivery_cost,
        is_service=True,
    )
    return (*order.lines, delivery)


def _at_full_price(line: OrderLine) -> OrderLine:
    """Move a line's discount back into its Сумма, for a profile with document discounts."""
    if not line.discount:
        return line
    return replace(line, amount=line.amount + line.discount, discount=Decimal(0))


def _check_total(
    order: ExportOrder,
    lines: tuple[OrderLine, ...],
    profile: ExportProfile,
    order_discount: Decimal,
) -> None:
    written = sum((line.amount for line in lines), Decimal(0))
    what = "lines and delivery"
    if profile.delivery == "requisite":
        written += order.delivery_cost
    if profile.discounts == "document":
        written -= order_discount
        what = "lines, delivery and the order discount"
    if written != order.total:
        raise ValueError(
            f"order {order.site_id!r}: {what} sum to {written}, but the total is {order.total}"
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
        _discount_element(item, _LINE_DISCOUNT_NAME, line.discount)

    kind = _SERVICE_TYPE if line.is_service else _GOODS_TYPE
    _requisites_element(item, [("ВидНоменклатуры", kind), ("ТипНоменклатуры", kind)])


def _discount_element(parent: etree._Element, name: str, amount: Decimal) -> None:
    # The Сумма next to it already has the discount taken off, hence УчтеноВСумме = true.
    discount = _sub(_sub(parent, "Скидки"), "Скидка")
    _sub(discount, "Наименование", name)
    _sub(discount, "Сумма", _decimal(amount))
    _sub(discount, "УчтеноВСумме", "true")


def _order_requisites(
    order: ExportOrder, tz: tzinfo, profile: ExportProfile
) -> list[tuple[str, str]]:
    standard = {
        "Заказ оплачен": "false",
        "Доставка разрешена": "false",
        "Отменен": "false",
        "Финальный статус": "false",
        "Статус заказа": order.status_text,
        "Дата изменения статуса": _local(order.created_at, tz).strftime("%Y-%m-%d %H:%M:%S"),
    }
    if profile.delivery == "requisite" and order.delivery_cost:
        standard[_DELIVERY_COST] = _decimal(order.delivery_cost)
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


def _append_document(root: etree._Element, document: etree._Element, *, wrap: bool) -> None:
    """Add `document` to `root`, inside its own Контейнер when `wrap` (CommerceML 3.x)."""
    if wrap:
        _sub(root, "Контейнер").append(document)
    else:
        root.append(document)


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
