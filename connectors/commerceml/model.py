"""Plain records the CommerceML parser yields and the order writer consumes.

1C names are given next to each English name. Identifiers from 1C (`Ид`) are kept as
normalised text: surrounding white space stripped and letters lower-cased, because 1C
GUIDs are case-insensitive and some exports pad them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TypeAlias


class DocumentKind(enum.StrEnum):
    """Kind of a CommerceML file, decided from the elements it contains, not from its name."""

    CLASSIFIER = "classifier"  # Классификатор without Каталог goods
    CATALOG = "catalog"  # Каталог (goods), possibly with a Классификатор
    OFFERS = "offers"  # ПакетПредложений / ИзмененияПакетаПредложений
    ORDERS = "orders"  # Документ or Контейнер elements
    COUNTERPARTIES = "counterparties"  # Контрагенты
    EMPTY = "empty"  # root element only


# Ид of the extra order line that carries the delivery cost (a service, ТипНоменклатуры Услуга).
DELIVERY_LINE_ID = "ORDER_DELIVERY"


@dataclass(frozen=True, slots=True)
class DocumentHeader:
    """Root facts of a file (КоммерческаяИнформация), always the first item yielded.

    The parser yields one header at the start of every catalog section (Классификатор,
    Каталог, ПакетПредложений, ИзмененияПакетаПредложений), before that section's records.
    A file without such a section gets one header before its first record. The latest
    header's `only_changes` applies to the records that follow it.
    """

    schema_version: str
    generated_at: datetime | None
    only_changes: bool  # СодержитТолькоИзменения: a delta, never deactivate by absence
    section: DocumentKind | None = None  # the section this header opens; None: whole file


@dataclass(frozen=True, slots=True)
class Group:
    """Группа: a node of the goods tree."""

    external_id: str
    name: str
    parent_id: str | None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class PriceType:
    """ТипЦены."""

    external_id: str
    name: str
    currency: str | None
    deleted: bool = False  # ПометкаУдаления


@dataclass(frozen=True, slots=True)
class Warehouse:
    """Склад."""

    external_id: str
    name: str
    deleted: bool = False  # ПометкаУдаления


@dataclass(frozen=True, slots=True)
class Unit:
    """ЕдиницаИзмерения from a classifier: maps the code that 3.1 goods carry to a name."""

    code: str  # Код, e.g. "796"
    name: str | None = None  # НаименованиеКраткое, e.g. "шт"
    full_name: str | None = None  # НаименованиеПолное
    external_id: str | None = None  # Ид


@dataclass(frozen=True, slots=True)
class Property:
    """Свойство: a product attribute definition, with its dictionary values if any."""

    external_id: str
    name: str
    values: dict[str, str] = field(default_factory=dict)  # ИдЗначения -> Значение
    value_type: str | None = None  # ТипЗначений: Строка, Число, Справочник...
    deleted: bool = False  # ПометкаУдаления


@dataclass(frozen=True, slots=True)
class Product:
    """Товар from a Каталог."""

    external_id: str
    name: str
    sku: str | None = None  # Артикул
    group_ids: tuple[str, ...] = ()
    unit: str | None = None  # БазоваяЕдиница, the short name or the code
    description: str | None = None
    barcode: str | None = None
    deleted: bool = False  # Статус="Удален" or ПометкаУдаления
    properties: dict[str, str] = field(default_factory=dict)  # property id or name -> value
    requisites: dict[str, str] = field(default_factory=dict)  # ЗначенияРеквизитов
    pictures: tuple[str, ...] = ()  # relative paths such as import_files/ab/x.jpg
    # Every value of a multi-valued property, in file order; `properties` has the first.
    # Values are raw text: look dictionary values up in Property.values via normalize_id.
    property_values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    characteristics: dict[str, str] = field(default_factory=dict)  # ХарактеристикиТовара
    picture_captions: dict[str, str] = field(default_factory=dict)  # ОписаниеФайла path -> text


@dataclass(frozen=True, slots=True)
class Price:
    """Цена of an offer."""

    price_type_id: str
    amount: Decimal
    currency: str | None = None
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class StockLevel:
    """Quantity of an offer in one warehouse."""

    warehouse_id: str
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class Offer:
    """Предложение: a sellable product or product characteristic (`product#characteristic`).

    `prices`, `stock_total` and `stock` are None when the file does not carry that part,
    so a prices-only file never wipes stock and the other way round.
    """

    external_id: str  # full Ид, e.g. "<product>#<characteristic>"
    product_id: str
    characteristic_id: str | None
    name: str | None = None
    sku: str | None = None
    prices: tuple[Price, ...] | None = None
    stock_total: Decimal | None = None  # Количество
    stock: tuple[StockLevel, ...] | None = None  # Склад / Остатки
    characteristics: dict[str, str] = field(default_factory=dict)  # ХарактеристикиТовара
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class OfferError:
    """One offer rejected by the parser; the rest of the file still imports."""

    external_id: str
    message: str
    message_ru: str


@dataclass(frozen=True, slots=True)
class OrderLine:
    """Товар line of an order document."""

    external_id: str  # goods Ид (or product#characteristic), or ORDER_DELIVERY
    name: str
    quantity: Decimal
    price: Decimal
    amount: Decimal
    unit: str | None = None
    discount: Decimal = Decimal("0")
    is_service: bool = False  # ТипНоменклатуры = Услуга


class SubordinateKind(enum.StrEnum):
    """Kind of a document that 1C entered on the basis of an order, by what it records."""

    PAYMENT = "payment"
    SHIPMENT = "shipment"


@dataclass(frozen=True, slots=True)
class SubordinateDocument:
    """A payment or shipment of an order, as 1C sends it with the order.

    CommerceML 2.10 nests it in the order (ПодчиненныеДокументы/ПодчиненныйДокумент); 3.1
    puts it beside the order in one Контейнер. It counts towards the order's paid or
    shipped state only when `effective`.
    """

    kind: SubordinateKind
    external_id: str  # Ид
    operation: str  # ХозОперация as 1C wrote it, e.g. "Выплата безналичных денег"
    number: str | None = None  # Номер
    number_1c: str | None = None  # Номер1С or the requisite Номер по 1С
    date: datetime | None = None  # Дата and Время, in UTC
    amount: Decimal | None = None  # Сумма
    posted: bool | None = None  # Проведен; None when 1C sent no such flag
    deleted: bool = False  # ПометкаУдаления
    cancelled: bool = False  # Отменен
    completed: bool | None = None  # requisite Оплачен (payment) or Отгружен (shipment)
    basis_id: str | None = None  # Основание: Ид or number of the order it was entered on

    @property
    def effective(self) -> bool:
        """True unless 1C sent it unposted, marked for deletion, cancelled or not completed."""
        return (
            self.posted is not False
            and not self.deleted
            and not self.cancelled
            and self.completed is not False
        )


@dataclass(frozen=True, slots=True)
class OrderDocument:
    """Документ with ХозОперация "Заказ товара", in either direction.

    Status fields come from 1C (Номер по 1С / Номер1С, Проведен, dates of payment and
    shipment, Отменен, ПометкаУдаления); a None date means "not yet". `paid_at` and
    `shipped_at` come from the requisites Дата оплаты по 1С and Дата отгрузки по 1С; when
    a requisite is absent or empty, the latest effective payment or shipment in
    `subordinates` gives the date.
    """

    site_id: str  # Ид: the hub's order number when 1C sends the status of a site order
    number: str | None
    date: datetime | None
    currency: str | None
    total: Decimal | None
    number_1c: str | None = None
    date_1c: datetime | None = None
    posted: bool | None = None  # Проведен
    paid_at: datetime | None = None
    shipped_at: datetime | None = None
    cancelled: bool = False
    deleted: bool = False
    status_text: str | None = None  # Статус заказа, 1C's own text
    requisites: dict[str, str] = field(default_factory=dict)
    lines: tuple[OrderLine, ...] = ()
    subordinates: tuple[SubordinateDocument, ...] = ()  # payments and shipments, all kept


# Text of an element without children or attributes, else a dict of its children by local
# name, where a name that occurs more than once maps to a list. Attributes are kept under
# "@name" and the element's own text beside them under "#text".
XmlValue: TypeAlias = "str | dict[str, XmlValue] | list[XmlValue]"


@dataclass(frozen=True, slots=True)
class Counterparty:
    """Контрагент from a counterparties file (Контрагенты at the root, `contragents___*.xml`)."""

    external_id: str  # Ид
    name: str  # Наименование
    full_name: str | None = None  # ОфициальноеНаименование or ПолноеНаименование
    inn: str | None = None  # ИНН, taxpayer number
    kpp: str | None = None  # КПП, tax registration reason code of an organisation
    deleted: bool = False  # ПометкаУдаления
    raw: dict[str, XmlValue] = field(default_factory=dict)  # every child element


CatalogItem = (
    DocumentHeader
    | Group
    | PriceType
    | Warehouse
    | Unit
    | Property
    | Product
    | Offer
    | OfferError
    | OrderDocument
    | Counterparty
)
