"""Streaming CommerceML reader: shapes of every version, encodings, headers, errors, guards."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest

from connectors.commerceml.model import (
    DELIVERY_LINE_ID,
    CatalogItem,
    DocumentHeader,
    DocumentKind,
    Group,
    Offer,
    OfferError,
    OrderDocument,
    PriceType,
    Product,
    Property,
    StockLevel,
    Unit,
    Warehouse,
)
from connectors.commerceml.parser import detect_kind, iter_document
from tentorium_hub.errors import CommerceMLError

T = TypeVar("T")
Keyed = TypeVar("Keyed", Product, Offer, OrderDocument)

FIXTURES = Path(__file__).parent / "fixtures" / "commerceml"
MSK = timezone(timedelta(hours=3), "MSK")

NAMESPACES = [
    "urn:1C.ru:commerceml_2",
    "urn:1C.ru:commerceml_208",
    "urn:1C.ru:commerceml_3",
]


def _parse(source: bytes | str | Path, **kwargs: str) -> list[CatalogItem]:
    if isinstance(source, str):
        source = source.encode("utf-8")
    if isinstance(source, bytes):
        return list(iter_document(io.BytesIO(source), tz=MSK, **kwargs))
    return list(iter_document(source, tz=MSK, **kwargs))


def _wrap(body: str, *, version: str = "2.07", namespace: str | None = None) -> str:
    xmlns = "" if namespace is None else f' xmlns="{namespace}"'
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<КоммерческаяИнформация{xmlns} ВерсияСхемы="{version}">{body}</КоммерческаяИнформация>'
    )


def _of_type(items: list[CatalogItem], kind: type[T]) -> list[T]:
    return [item for item in items if isinstance(item, kind)]


def _by_id(items: list[Keyed]) -> dict[str, Keyed]:
    return {
        (item.site_id if isinstance(item, OrderDocument) else item.external_id): item
        for item in items
    }


def _catalog_variant(encoding: str, *, bom: bool = False, namespace: str | None = None) -> bytes:
    text = (FIXTURES / "catalog.xml").read_text("utf-8")
    if namespace is not None:
        text = text.replace(
            "<КоммерческаяИнформация ", f'<КоммерческаяИнформация xmlns="{namespace}" ', 1
        )
    text = text.replace('encoding="UTF-8"', f'encoding="{encoding}"', 1)
    data = text.encode("cp1251" if encoding == "windows-1251" else "utf-8")
    return b"\xef\xbb\xbf" + data if bom else data


@pytest.fixture(scope="module")
def catalog() -> list[CatalogItem]:
    return _parse(FIXTURES / "catalog.xml")


@pytest.fixture(scope="module")
def products(catalog: list[CatalogItem]) -> dict[str, Product]:
    return _by_id(_of_type(catalog, Product))


@pytest.fixture(scope="module")
def offers() -> list[CatalogItem]:
    return _parse(FIXTURES / "offers.xml")


@pytest.fixture(scope="module")
def offer_map(offers: list[CatalogItem]) -> dict[str, Offer]:
    return _by_id(_of_type(offers, Offer))


@pytest.fixture(scope="module")
def status_orders() -> dict[str, OrderDocument]:
    return _by_id(_of_type(_parse(FIXTURES / "orders_status_cp1251.xml"), OrderDocument))


# --------------------------------------------------------------------------------------
# Headers and only_changes


def test_iter_document_yields_header_first(catalog: list[CatalogItem]) -> None:
    assert isinstance(catalog[0], DocumentHeader)


def test_iter_document_header_per_section(catalog: list[CatalogItem]) -> None:
    headers = _of_type(catalog, DocumentHeader)
    assert [header.section for header in headers] == [DocumentKind.CLASSIFIER, DocumentKind.CATALOG]


def test_iter_document_header_precedes_goods(catalog: list[CatalogItem]) -> None:
    catalog_header = next(
        index
        for index, item in enumerate(catalog)
        if isinstance(item, DocumentHeader) and item.section is DocumentKind.CATALOG
    )
    first_product = next(index for index, item in enumerate(catalog) if isinstance(item, Product))
    assert catalog_header < first_product


def test_iter_document_header_reads_root(catalog: list[CatalogItem]) -> None:
    header = catalog[0]
    assert isinstance(header, DocumentHeader)
    assert header.schema_version == "2.07"
    assert header.generated_at == datetime(2024, 5, 6, 4, 8, 9, tzinfo=UTC)


def test_iter_document_full_catalog_not_only_changes(catalog: list[CatalogItem]) -> None:
    assert [header.only_changes for header in _of_type(catalog, DocumentHeader)] == [False, False]


def test_iter_document_delta_offers_only_changes(offers: list[CatalogItem]) -> None:
    header = offers[0]
    assert isinstance(header, DocumentHeader)
    assert header.only_changes is True
    assert header.section is DocumentKind.OFFERS


def test_iter_document_section_inherits_only_changes() -> None:
    items = _parse(
        _wrap(
            '<Классификатор СодержитТолькоИзменения="true"><Ид>c</Ид></Классификатор>'
            "<Каталог><Ид>c</Ид><Товары><Товар><Ид>p</Ид></Товар></Товары></Каталог>"
        )
    )
    assert [header.only_changes for header in _of_type(items, DocumentHeader)] == [True, True]


def test_iter_document_section_overrides_only_changes() -> None:
    items = _parse(
        _wrap(
            "<Классификатор><Ид>c</Ид></Классификатор>"
            '<Каталог СодержитТолькоИзменения="true"><Ид>c</Ид></Каталог>'
        )
    )
    assert [header.only_changes for header in _of_type(items, DocumentHeader)] == [False, True]


def test_iter_document_offer_changes_are_delta() -> None:
    items = _parse(
        _wrap(
            "<ИзмененияПакетаПредложений><Предложения><Предложение><Ид>p</Ид>"
            "<Количество>4</Количество></Предложение></Предложения></ИзмененияПакетаПредложений>",
            version="2.10",
        )
    )
    header = items[0]
    assert isinstance(header, DocumentHeader)
    assert header.only_changes is True
    assert _of_type(items, Offer)[0].stock_total == Decimal(4)


def test_iter_document_empty_root_yields_header() -> None:
    items = _parse(_wrap("", version="2.05"))
    assert items == [
        DocumentHeader(schema_version="2.05", generated_at=None, only_changes=False, section=None)
    ]


def test_iter_document_orders_header_section(status_orders: dict[str, OrderDocument]) -> None:
    items = _parse(FIXTURES / "orders_status_cp1251.xml")
    assert _of_type(items, DocumentHeader) == [
        DocumentHeader(
            schema_version="2.05",
            generated_at=datetime(2021, 2, 12, 6, 5, tzinfo=UTC),
            only_changes=False,
            section=DocumentKind.ORDERS,
        )
    ]


def test_iter_document_bad_header_date_is_none() -> None:
    items = _parse(
        _wrap("").replace('ВерсияСхемы="2.07"', 'ВерсияСхемы="2.07" ДатаФормирования="вчера"')
    )
    header = items[0]
    assert isinstance(header, DocumentHeader)
    assert header.generated_at is None


# --------------------------------------------------------------------------------------
# Encodings and namespaces


@pytest.mark.parametrize(
    ("encoding", "bom", "namespace"),
    [
        pytest.param("UTF-8", True, None, id="utf8-bom"),
        pytest.param("windows-1251", False, None, id="cp1251"),
        pytest.param("UTF-8", False, NAMESPACES[0], id="ns-commerceml_2"),
        pytest.param("UTF-8", True, NAMESPACES[1], id="ns-commerceml_208-bom"),
        pytest.param("windows-1251", False, NAMESPACES[2], id="ns-commerceml_3-cp1251"),
    ],
)
def test_iter_document_same_records_any_encoding(
    catalog: list[CatalogItem], encoding: str, bom: bool, namespace: str | None
) -> None:
    assert _parse(_catalog_variant(encoding, bom=bom, namespace=namespace)) == catalog


def test_iter_document_reads_cp1251_text(status_orders: dict[str, OrderDocument]) -> None:
    assert status_orders["132"].number_1c == "ТН-000132"


# --------------------------------------------------------------------------------------
# Classifier


def test_iter_document_groups_parent_first(catalog: list[CatalogItem]) -> None:
    groups = _of_type(catalog, Group)
    assert [(group.external_id, group.parent_id) for group in groups] == [
        ("g-root", None),
        ("g-honey", "g-root"),
        ("g-old", "g-root"),
        ("g-cosm", None),
    ]


def test_iter_document_group_deletion_mark(catalog: list[CatalogItem]) -> None:
    deleted = [group.external_id for group in _of_type(catalog, Group) if group.deleted]
    assert deleted == ["g-old"]


def test_iter_document_property_dictionary(catalog: list[CatalogItem]) -> None:
    color = _of_type(catalog, Property)[0]
    assert color == Property(
        external_id="pr-color",
        name="Цвет",
        values={"v-red": "Красный", "v-gold": "Золотой"},
        value_type="Справочник",
    )


def test_iter_document_price_type(catalog: list[CatalogItem]) -> None:
    assert _of_type(catalog, PriceType) == [PriceType("pt-retail", "Розничная", "RUB")]


def test_iter_document_warehouse(catalog: list[CatalogItem]) -> None:
    assert _of_type(catalog, Warehouse) == [Warehouse("w-main", "Основной склад")]


def test_iter_document_unit(catalog: list[CatalogItem]) -> None:
    assert _of_type(catalog, Unit) == [
        Unit(code="796", name="шт", full_name="Штука", external_id="u-pcs")
    ]


def test_iter_document_order_warehouse_not_a_warehouse() -> None:
    items = _parse(
        _wrap(
            "<Документ><Ид>1</Ид><ХозОперация>Заказ товара</ХозОперация>"
            "<Склады><Склад><Ид>W</Ид><Наименование>Магазин</Наименование></Склад></Склады>"
            "</Документ>",
            version="2.08",
        )
    )
    assert _of_type(items, Warehouse) == []
    assert len(_of_type(items, OrderDocument)) == 1


# --------------------------------------------------------------------------------------
# Catalog goods


def test_iter_document_product_fields(products: dict[str, Product]) -> None:
    honey = products["p-honey"]
    assert honey.sku == "TH-001"
    assert honey.group_ids == ("g-honey",)
    assert honey.unit == "шт"
    assert honey.description == "Натуральный мёд"
    assert honey.barcode == "4600000000017"
    assert honey.pictures == ("import_files/ab/honey_1.jpg", "import_files/ab/honey_2.jpg")
    assert honey.deleted is False


def test_iter_document_product_double_escaped_name(products: dict[str, Product]) -> None:
    assert products["p-honey"].name == 'Мёд "Липовый" 250 г'


def test_iter_document_product_property_values(products: dict[str, Product]) -> None:
    honey = products["p-honey"]
    assert honey.properties == {"pr-color": "V-GOLD", "pr-weight": "250"}
    assert honey.property_values == {"pr-color": ("V-GOLD", "V-RED"), "pr-weight": ("250",)}


def test_iter_document_product_requisites_first_value(products: dict[str, Product]) -> None:
    assert products["p-honey"].requisites == {
        "ВидНоменклатуры": "Товар",
        "ОписаниеФайла": "import_files/ab/honey_1.jpg#Банка",
    }


def test_iter_document_product_picture_captions(products: dict[str, Product]) -> None:
    assert products["p-honey"].picture_captions == {
        "import_files/ab/honey_1.jpg": "Банка",
        "import_files/ab/honey_2.jpg": "Этикетка",
    }


def test_iter_document_product_status_deleted(products: dict[str, Product]) -> None:
    assert products["p-old"].deleted is True


def test_iter_document_product_deletion_mark(products: dict[str, Product]) -> None:
    assert products["p-cream"].deleted is True


def test_iter_document_product_bare_unit_code(products: dict[str, Product]) -> None:
    assert products["p-cream"].unit == "796"


def test_iter_document_product_characteristics(products: dict[str, Product]) -> None:
    assert products["p-balm"].characteristics == {"Объём": "50 мл"}


def test_iter_document_product_absent_fields_none(products: dict[str, Product]) -> None:
    balm = products["p-balm"]
    assert balm.sku is None
    assert balm.unit is None
    assert balm.description is None
    assert balm.barcode is None
    assert balm.group_ids == ()


def test_iter_document_unit_code_attribute_only() -> None:
    items = _parse(
        _wrap(
            "<Каталог><Товары><Товар><Ид>p</Ид><Наименование>x</Наименование>"
            '<БазоваяЕдиница Код="796 " НаименованиеПолное="Штука"><Пересчет><Единица>796</Единица>'
            "</Пересчет></БазоваяЕдиница></Товар></Товары></Каталог>"
        )
    )
    assert _of_type(items, Product)[0].unit == "796"


def test_iter_document_same_id_normalised() -> None:
    items = _parse(
        _wrap(
            "<Каталог><Товары>"
            "<Товар><Ид>5C44EE68-AB12-11E7-80C2-0CC47AB29CD1</Ид></Товар>"
            "<Товар><Ид> 5c44ee68-ab12-11e7-80c2-0cc47ab29cd1 </Ид></Товар>"
            "<Товар><Ид>\u00a05C44ee68-AB12-11e7-80C2-0cc47ab29cd1\n</Ид></Товар>"
            "</Товары></Каталог>"
        )
    )
    ids = [product.external_id for product in _of_type(items, Product)]
    assert ids == ["5c44ee68-ab12-11e7-80c2-0cc47ab29cd1"] * 3


def test_iter_document_product_without_id_rejected() -> None:
    with pytest.raises(CommerceMLError, match="product without Ид"):
        _parse(
            _wrap(
                "<Каталог><Товары><Товар><Наименование>x</Наименование></Товар></Товары></Каталог>"
            )
        )


def test_iter_document_bad_deletion_mark_names_line() -> None:
    xml = _wrap(
        "<Каталог><Товары>\n<Товар><Ид>p</Ид>\n"
        "<ПометкаУдаления>может быть</ПометкаУдаления></Товар></Товары></Каталог>"
    )
    with pytest.raises(CommerceMLError) as caught:
        _parse(xml, filename="import0_1.xml")
    assert "import0_1.xml, line 3" in str(caught.value)
    assert "строка 3" in caught.value.message_ru
    assert "«может быть»" in caught.value.message_ru


# --------------------------------------------------------------------------------------
# Offers


def test_iter_document_variants_are_separate_offers(offer_map: dict[str, Offer]) -> None:
    variants = {key: offer for key, offer in offer_map.items() if offer.product_id == "p"}
    assert sorted(variants) == ["p#c1", "p#c2", "p#c3"]
    assert variants["p#c1"].stock_total == Decimal(1)
    assert variants["p#c2"].stock_total == Decimal(1)
    assert variants["p#c3"].stock_total == Decimal(3)


def test_iter_document_offer_ids_split(offer_map: dict[str, Offer]) -> None:
    tea = offer_map["p#c1"]
    assert tea.product_id == "p"
    assert tea.characteristic_id == "c1"
    assert offer_map["p-attr"].characteristic_id is None


def test_iter_document_offer_prices(offer_map: dict[str, Offer]) -> None:
    prices = offer_map["p#c1"].prices
    assert prices is not None
    assert [(price.price_type_id, price.amount) for price in prices] == [
        ("pt-retail", Decimal("349.90")),
        ("pt-partner", Decimal("1249.50")),
    ]
    assert [price.currency for price in prices] == ["RUB", "руб"]
    assert prices[0].unit == "шт"


def test_iter_document_offer_fields(offer_map: dict[str, Offer]) -> None:
    tea = offer_map["p#c1"]
    assert tea.name == "Чай (зелёный)"
    assert tea.sku == "TEA-1"
    assert tea.characteristics == {"Вкус": "Зелёный"}


def test_iter_document_offer_absent_parts_none(offer_map: dict[str, Offer]) -> None:
    stock_only = offer_map["p#c2"]
    assert stock_only.prices is None
    assert stock_only.stock is None


def test_iter_document_bad_price_yields_offer_error(offers: list[CatalogItem]) -> None:
    errors = _of_type(offers, OfferError)
    assert [error.external_id for error in errors] == ["p-bad"]
    assert "p-bad" not in _by_id(_of_type(offers, Offer))


def test_iter_document_offer_error_names_id_and_value(offers: list[CatalogItem]) -> None:
    error = _of_type(offers, OfferError)[0]
    assert "'p-bad'" in error.message
    assert "'349,90,1'" in error.message
    assert "p-bad" in error.message_ru
    assert "«349,90,1»" in error.message_ru
    assert "offers.xml" in error.message_ru


def test_iter_document_continues_after_offer_error(offers: list[CatalogItem]) -> None:
    kinds = [type(item) for item in offers]
    error_index = kinds.index(OfferError)
    assert Offer in kinds[error_index + 1 :]


def test_iter_document_stock_attribute_shape(offer_map: dict[str, Offer]) -> None:
    offer = offer_map["p-attr"]
    assert offer.stock_total == Decimal(5)
    assert offer.stock == (StockLevel("w-main", Decimal(3)), StockLevel("w-shop", Decimal(2)))


def test_iter_document_stock_balance_shape(offer_map: dict[str, Offer]) -> None:
    offer = offer_map["p-rests"]
    assert offer.stock_total is None
    assert offer.stock == (StockLevel("w-main", Decimal(-2)), StockLevel("w-shop", Decimal(7)))


def test_iter_document_stock_bare_balance_is_total(offer_map: dict[str, Offer]) -> None:
    offer = offer_map["p-total"]
    assert offer.stock_total == Decimal(12)
    assert offer.stock is None


def test_iter_document_offer_deletion_mark(offer_map: dict[str, Offer]) -> None:
    assert offer_map["p-gone"].deleted is True
    assert offer_map["p-attr"].deleted is False


def test_iter_document_offer_bad_stock_yields_error() -> None:
    items = _parse(
        _wrap(
            "<ПакетПредложений><Предложения>"
            '<Предложение><Ид>a</Ид><Склад ИдСклада="w" КоличествоНаСкладе="много"/></Предложение>'
            "<Предложение><Ид>b</Ид><Количество>1</Количество></Предложение>"
            "</Предложения></ПакетПредложений>"
        )
    )
    assert [error.external_id for error in _of_type(items, OfferError)] == ["a"]
    assert [offer.external_id for offer in _of_type(items, Offer)] == ["b"]


def test_iter_document_offer_package_id_not_an_offer(offer_map: dict[str, Offer]) -> None:
    assert "cat-1#" not in offer_map


# --------------------------------------------------------------------------------------
# Order documents


def test_iter_document_status_requisites(status_orders: dict[str, OrderDocument]) -> None:
    order = status_orders["132"]
    assert order.number == "132"
    assert order.number_1c == "ТН-000132"
    assert order.date == datetime(2021, 2, 11, 15, 45, 21, tzinfo=UTC)
    assert order.date_1c == datetime(2021, 2, 10, 21, 0, tzinfo=UTC)
    assert order.posted is True
    assert order.paid_at == datetime(2021, 2, 11, 15, 50, tzinfo=UTC)
    assert order.shipped_at == datetime(2021, 2, 11, 21, 10, tzinfo=UTC)
    assert order.cancelled is False
    assert order.deleted is False
    assert order.status_text == "Закрыт"


def test_iter_document_order_total_grouped(status_orders: dict[str, OrderDocument]) -> None:
    assert status_orders["132"].total == Decimal("1049.80")
    assert status_orders["132"].currency == "руб"


def test_iter_document_status_cancelled(status_orders: dict[str, OrderDocument]) -> None:
    order = status_orders["133"]
    assert order.cancelled is True
    assert order.deleted is True
    assert order.posted is False
    assert order.paid_at is None
    assert order.shipped_at is None
    assert order.total is None


def test_iter_document_order_date_in_date_field(status_orders: dict[str, OrderDocument]) -> None:
    assert status_orders["133"].date == datetime(2021, 2, 12, 6, 11, 4, tzinfo=UTC)


def test_iter_document_order_lines(status_orders: dict[str, OrderDocument]) -> None:
    tea, delivery = status_orders["132"].lines
    assert tea.external_id == "p#c1"
    assert tea.name == 'Чай "Зелёный"'
    assert tea.quantity == Decimal(2)
    assert tea.price == Decimal("349.90")
    assert tea.amount == Decimal("699.80")
    assert tea.discount == Decimal("10.00")
    assert tea.unit == "шт"
    assert tea.is_service is False
    assert delivery.external_id == DELIVERY_LINE_ID
    assert delivery.is_service is True


def test_iter_document_order_requisites_kept(status_orders: dict[str, OrderDocument]) -> None:
    assert status_orders["133"].requisites["Дата оплаты по 1С"] == "T"


def test_iter_document_container_skips_payments() -> None:
    items = _parse(FIXTURES / "orders_container_3.1.xml")
    assert [order.site_id for order in _of_type(items, OrderDocument)] == ["1001"]


def test_iter_document_element_dialect() -> None:
    order = _of_type(_parse(FIXTURES / "orders_container_3.1.xml"), OrderDocument)[0]
    assert order.number_1c == "ТН-000123"
    assert order.date_1c == datetime(2024, 5, 6, 21, 0, tzinfo=UTC)
    assert order.deleted is False
    assert order.posted is True
    assert order.status_text == "К выполнению / В резерве"
    assert order.lines[0].unit == "796"


def test_iter_document_bad_order_total_names_document() -> None:
    xml = _wrap("<Документ><Ид>7</Ид><Сумма>12a</Сумма></Документ>", version="2.05")
    with pytest.raises(CommerceMLError) as caught:
        _parse(xml)
    assert "document '7'" in str(caught.value)
    assert "«12a»" in caught.value.message_ru


# --------------------------------------------------------------------------------------
# Guards and errors


def test_iter_document_rejects_billion_laughs() -> None:
    with pytest.raises(CommerceMLError, match="DOCTYPE"):
        _parse(FIXTURES / "billion_laughs.xml")


def test_iter_document_rejects_external_entity(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    xml = (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE КоммерческаяИнформация [<!ENTITY x SYSTEM "{secret.as_uri()}">]>\n'
        "<КоммерческаяИнформация><Каталог><Товары><Товар><Ид>p</Ид>"
        "<Наименование>&x;</Наименование></Товар></Товары></Каталог></КоммерческаяИнформация>"
    )
    with pytest.raises(CommerceMLError) as caught:
        _parse(xml)
    assert "TOP-SECRET-VALUE" not in str(caught.value)
    assert "TOP-SECRET-VALUE" not in caught.value.message_ru


def test_iter_document_rejects_external_dtd() -> None:
    xml = (
        '<?xml version="1.0"?>\n'
        '<!DOCTYPE КоммерческаяИнформация SYSTEM "http://127.0.0.1:9/commerceml.dtd">\n'
        "<КоммерческаяИнформация/>"
    )
    with pytest.raises(CommerceMLError, match="DOCTYPE"):
        _parse(xml)


def test_iter_document_rejects_doctype_behind_comment() -> None:
    # The byte scan stops at the `<b>` inside the comment; the root check still sees it.
    xml = (
        '<?xml version="1.0"?>\n<!-- <b> -->\n'
        '<!DOCTYPE КоммерческаяИнформация [<!ENTITY a "x">]>\n'
        "<КоммерческаяИнформация>&a;</КоммерческаяИнформация>"
    )
    with pytest.raises(CommerceMLError, match="DOCTYPE"):
        _parse(xml)


def test_iter_document_accepts_doctype_text_in_cdata() -> None:
    items = _parse(
        _wrap(
            "<Каталог><Товары><Товар><Ид>p</Ид>"
            "<Описание><![CDATA[<!DOCTYPE html><p>Мёд</p>]]></Описание>"
            "</Товар></Товары></Каталог>"
        )
    )
    assert _of_type(items, Product)[0].description == "<!DOCTYPE html><p>Мёд</p>"


def test_iter_document_doctype_error_in_russian() -> None:
    with pytest.raises(CommerceMLError) as caught:
        _parse(FIXTURES / "billion_laughs.xml")
    assert "billion_laughs.xml" in caught.value.message_ru
    assert "Выгрузите файл заново" in caught.value.message_ru


def test_iter_document_malformed_names_line_and_column() -> None:
    with pytest.raises(CommerceMLError) as caught:
        _parse(FIXTURES / "malformed.xml")
    error = caught.value
    assert "malformed.xml" in str(error)
    assert "line 7, column" in str(error)
    assert "строке 7, столбце" in error.message_ru
    assert "Выгрузите файл заново" in error.message_ru
    assert error.filename == "malformed.xml"


def test_iter_document_wrong_root_rejected() -> None:
    with pytest.raises(CommerceMLError) as caught:
        _parse(FIXTURES / "wrong_root.xml")
    assert "<html>" in str(caught.value)
    assert "КоммерческаяИнформация" in caught.value.message_ru


def test_iter_document_empty_file_rejected() -> None:
    with pytest.raises(CommerceMLError, match="malformed XML"):
        _parse(b"")


def test_iter_document_wrong_encoding_rejected() -> None:
    data = _catalog_variant("windows-1251").replace(b"windows-1251", b"UTF-8", 1)
    with pytest.raises(CommerceMLError, match="malformed XML"):
        _parse(data)


def test_iter_document_filename_argument_used() -> None:
    with pytest.raises(CommerceMLError) as caught:
        _parse(b"<a>", filename="offers0_1.xml")
    assert caught.value.filename == "offers0_1.xml"


def test_iter_document_leaves_stream_open() -> None:
    stream = io.BytesIO(_wrap("").encode())
    list(iter_document(stream, tz=MSK))
    assert not stream.closed


def test_iter_document_accepts_str_path() -> None:
    items = list(iter_document(str(FIXTURES / "offers.xml"), tz=MSK))
    assert isinstance(items[0], DocumentHeader)


# --------------------------------------------------------------------------------------
# detect_kind


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("catalog.xml", DocumentKind.CATALOG),
        ("offers.xml", DocumentKind.OFFERS),
        ("orders_status_cp1251.xml", DocumentKind.ORDERS),
        ("orders_container_3.1.xml", DocumentKind.ORDERS),
    ],
)
def test_detect_kind_fixtures(name: str, kind: DocumentKind) -> None:
    assert detect_kind(FIXTURES / name, tz=MSK) is kind


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        pytest.param(
            "<Классификатор><Ид>c</Ид></Классификатор>", DocumentKind.CLASSIFIER, id="classifier"
        ),
        pytest.param(
            "<Классификатор><Ид>c</Ид></Классификатор><Каталог><Ид>c</Ид></Каталог>",
            DocumentKind.CLASSIFIER,
            id="classifier-empty-catalog",
        ),
        pytest.param("<Каталог><Ид>c</Ид></Каталог>", DocumentKind.CATALOG, id="empty-catalog"),
        pytest.param(
            "<Контрагенты><Контрагент/></Контрагенты>",
            DocumentKind.COUNTERPARTIES,
            id="counterparties",
        ),
        pytest.param("<ИзмененияПакетаПредложений/>", DocumentKind.OFFERS, id="offer-changes"),
        pytest.param("", DocumentKind.EMPTY, id="empty"),
    ],
)
def test_detect_kind_inline(body: str, kind: DocumentKind) -> None:
    assert detect_kind(io.BytesIO(_wrap(body).encode()), tz=MSK) is kind


def test_detect_kind_restores_stream_position() -> None:
    stream = io.BytesIO((FIXTURES / "offers.xml").read_bytes())
    detect_kind(stream, tz=MSK)
    assert stream.tell() == 0


def test_detect_kind_rejects_doctype() -> None:
    with pytest.raises(CommerceMLError, match="DOCTYPE"):
        detect_kind(FIXTURES / "billion_laughs.xml", tz=MSK)


# --------------------------------------------------------------------------------------
# Memory on a large file


class _GeneratedCatalog(io.RawIOBase):
    """A catalog with `count` goods, produced on the fly so the test needs no disk."""

    def __init__(self, count: int) -> None:
        self._chunks = self._produce(count)
        self._pending = b""

    @staticmethod
    def _produce(count: int) -> Iterator[bytes]:
        yield (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<КоммерческаяИнформация ВерсияСхемы="2.07"><Каталог><Ид>c</Ид><Товары>\n'
        ).encode()
        for number in range(count):
            yield (
                f"<Товар><Ид>{number:08d}-0000-0000-0000-000000000000</Ид>"
                f"<Артикул>A-{number}</Артикул><Наименование>Товар номер {number}</Наименование>"
                '<БазоваяЕдиница Код="796">шт</БазоваяЕдиница><Группы><Ид>g</Ид></Группы>'
                "<ЗначенияРеквизитов><ЗначениеРеквизита><Наименование>ВидНоменклатуры</Наименование>"
                "<Значение>Товар</Значение></ЗначениеРеквизита></ЗначенияРеквизитов></Товар>\n"
            ).encode()
        yield "</Товары></Каталог></КоммерческаяИнформация>".encode()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_iter_document_memory_flat_on_100k_goods() -> None:
    # Without clearing, 90,000 parsed goods would hold well over 100 MB of lxml nodes.
    stream = io.BufferedReader(_GeneratedCatalog(100_000))
    count = 0
    baseline = 0
    for item in iter_document(stream, tz=MSK, filename="import0_1.xml"):
        if isinstance(item, Product):
            count += 1
            if count == 10_000:
                baseline = _resident_bytes()

    assert count == 100_000
    assert _resident_bytes() - baseline < 30 * 1024 * 1024
