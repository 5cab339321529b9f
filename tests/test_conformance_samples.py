"""Real CommerceML files from public projects parse cleanly, with their documented counts.

The files are read in place from the shared samples folder beside the checkout (described
by its SOURCES.md); they are never copied into the project.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest

from connectors.commerceml import (
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
    Warehouse,
    detect_kind,
    iter_document,
    safe_extract_zip,
)
from connectors.commerceml.model import Counterparty

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples" / "commerceml"
MOSCOW = ZoneInfo("Europe/Moscow")
T = TypeVar("T")

_ABSENT = f"shared samples folder {SAMPLES} is absent; conformance tests need it"


def _sample_files() -> list[str]:
    if not SAMPLES.is_dir():
        return []
    return sorted(str(path.relative_to(SAMPLES)) for path in SAMPLES.rglob("*.xml"))


def _sample_archives() -> list[str]:
    if not SAMPLES.is_dir():
        return []
    return sorted(path.name for path in (SAMPLES / "_assembled").glob("*.zip"))


def _require(relative: str) -> Path:
    path = SAMPLES / relative
    if not path.exists():
        pytest.skip(_ABSENT if not SAMPLES.is_dir() else f"sample {relative} is absent")
    return path


def _read(relative: str | Path) -> list[CatalogItem]:
    path = relative if isinstance(relative, Path) else _require(relative)
    return list(iter_document(path, tz=MOSCOW))


def _of_type(items: Iterable[CatalogItem], kind: type[T]) -> list[T]:
    return [item for item in items if isinstance(item, kind)]


# --------------------------------------------------------------------------------------
# Every file


@pytest.mark.parametrize(
    "relative", _sample_files() or [pytest.param("", marks=pytest.mark.skip(reason=_ABSENT))]
)
def test_sample_parses(relative: str) -> None:
    items = _read(relative)
    assert isinstance(items[0], DocumentHeader)
    assert _of_type(items, OfferError) == []


@pytest.mark.parametrize(
    "relative", _sample_files() or [pytest.param("", marks=pytest.mark.skip(reason=_ABSENT))]
)
def test_sample_detect_kind_matches_records(relative: str) -> None:
    path = _require(relative)
    items = _read(path)
    kind = detect_kind(path, tz=MOSCOW)
    expected = {
        DocumentKind.CATALOG: Product,
        DocumentKind.OFFERS: Offer,
        DocumentKind.ORDERS: OrderDocument,
        DocumentKind.CLASSIFIER: Group,
        DocumentKind.COUNTERPARTIES: Counterparty,
    }
    if kind in expected:
        assert _of_type(items, expected[kind])
    else:
        assert _of_type(items, DocumentHeader) == items


@pytest.mark.parametrize(
    "archive", _sample_archives() or [pytest.param("", marks=pytest.mark.skip(reason=_ABSENT))]
)
def test_sample_archive_extracts_and_parses(archive: str, tmp_path: Path) -> None:
    source = _require(f"_assembled/{archive}")
    dest = tmp_path / "upload"

    written = safe_extract_zip(source, dest, max_total_bytes=64 * 1024 * 1024, max_ratio=100)

    xml_files = [path for path in written if path.suffix == ".xml"]
    assert xml_files
    for relative in xml_files:
        items = _read(dest / relative)
        assert isinstance(items[0], DocumentHeader)
        assert _of_type(items, OfferError) == []


def test_sample_archive_matches_loose_files(tmp_path: Path) -> None:
    source = _require("_assembled/v8_style_catalog_2.07.zip")
    written = safe_extract_zip(source, tmp_path, max_total_bytes=64 * 1024 * 1024, max_ratio=100)

    assert written == [PurePosixPath("import0_1.xml"), PurePosixPath("offers0_1.xml")]
    for relative in written:
        loose = _read(f"dobromyslov__commerceml-parser/{relative}")
        assert _read(tmp_path / relative) == loose


# --------------------------------------------------------------------------------------
# Facts from SOURCES.md


def test_dobromyslov_import_products() -> None:
    items = _read("dobromyslov__commerceml-parser/import0_1.xml")
    products = _of_type(items, Product)
    # SOURCES.md says "35 Товар (one with Статус="Удален")"; the file holds 35 active goods
    # plus the deleted one.
    assert len([product for product in products if not product.deleted]) == 35
    assert len([product for product in products if product.deleted]) == 1
    assert len(_of_type(items, Group)) == 1
    assert [header.only_changes for header in _of_type(items, DocumentHeader)] == [False, False]


def test_dobromyslov_offers_stock_rows() -> None:
    items = _read("dobromyslov__commerceml-parser/offers0_1.xml")
    offers = _of_type(items, Offer)
    assert len(offers) == 44
    assert {len(offer.stock or ()) for offer in offers} == {3}
    assert all(
        offer.stock_total == sum(row.quantity for row in offer.stock or ()) for offer in offers
    )
    assert len(_of_type(items, Warehouse)) == 3
    assert {len(offer.prices or ()) for offer in offers} == {1}


def test_gillbeits_classifier_counts() -> None:
    items = _read("gillbeits__commerceml/import___b815e2db-7a65-4265-9241-5f0c4f0565a7.xml")
    assert len(_of_type(items, Group)) == 97
    assert len(_of_type(items, Property)) == 1908
    assert len(_of_type(items, PriceType)) == 1
    assert len(_of_type(items, Warehouse)) == 1
    assert _of_type(items, Product) == []
    assert all(header.only_changes for header in _of_type(items, DocumentHeader))


def test_gillbeits_classifier_group_tree() -> None:
    groups = _of_type(
        _read("gillbeits__commerceml/import___b815e2db-7a65-4265-9241-5f0c4f0565a7.xml"), Group
    )
    seen: set[str] = set()
    for group in groups:
        assert group.parent_id is None or group.parent_id in seen
        seen.add(group.external_id)


@pytest.mark.parametrize(
    "relative",
    [
        "gillbeits__commerceml/offers___7f304edc-2527-4d3d-b058-6e4ee53de2e0.xml",
        "gillbeits__commerceml/prices___d66a6b51-ce9c-4e7a-8c7c-25079721107f.xml",
        "gillbeits__commerceml/rests___1af6e7b8-a026-4690-9752-1c9d64cb914d.xml",
    ],
)
def test_gillbeits_package_has_978_offers(relative: str) -> None:
    assert len(_of_type(_read(relative), Offer)) == 978


def test_gillbeits_offer_list_has_no_prices_or_stock() -> None:
    offers = _of_type(
        _read("gillbeits__commerceml/offers___7f304edc-2527-4d3d-b058-6e4ee53de2e0.xml"), Offer
    )
    assert {offer.prices for offer in offers} == {None}
    assert {offer.stock for offer in offers} == {None}
    assert all(offer.name for offer in offers)


def test_gillbeits_prices_one_each() -> None:
    offers = _of_type(
        _read("gillbeits__commerceml/prices___d66a6b51-ce9c-4e7a-8c7c-25079721107f.xml"), Offer
    )
    assert {len(offer.prices or ()) for offer in offers} == {1}
    assert {price.currency for offer in offers for price in offer.prices or ()} == {"RUB"}
    assert {offer.stock for offer in offers} == {None}


def test_gillbeits_rests_one_row_each() -> None:
    offers = _of_type(
        _read("gillbeits__commerceml/rests___1af6e7b8-a026-4690-9752-1c9d64cb914d.xml"), Offer
    )
    assert {len(offer.stock or ()) for offer in offers} == {1}
    assert {offer.prices for offer in offers} == {None}


def test_irpsv_orders_three_documents() -> None:
    orders = {
        order.site_id: order
        for order in _of_type(_read("irpsv__commerceml/orders.xml"), OrderDocument)
    }
    assert sorted(orders) == ["36", "92", "93"]
    assert orders["36"].status_text == "[N] Принят"
    assert DELIVERY_LINE_ID in [line.external_id for line in orders["36"].lines]
    assert orders["92"].number_1c == "MM92"
    assert orders["92"].posted is True
    assert orders["93"].status_text == "Открыт"


def test_irpsv_official_catalog() -> None:
    items = _read("irpsv__commerceml/import.xml")
    products = _of_type(items, Product)
    assert len(products) == 4
    assert all("#" in product.external_id for product in products)
    assert all(product.characteristics for product in products)


def test_irpsv_official_offers() -> None:
    items = _read("irpsv__commerceml/offers.xml")
    offers = _of_type(items, Offer)
    assert len(_of_type(items, PriceType)) == 4
    assert len(offers) == 2
    assert sum(len(offer.prices or ()) for offer in offers) == 8
    assert all(offer.characteristic_id for offer in offers)


def test_ready_script_delta_catalog() -> None:
    items = _read("irpsv__commerceml/ready-script/import.xml")
    assert all(header.only_changes for header in _of_type(items, DocumentHeader))
    assert len(_of_type(items, Group)) == 4
    assert len(_of_type(items, Product)) == 1


def test_ready_script_offer_characteristics() -> None:
    offers = _of_type(_read("irpsv__commerceml/ready-script/offers.xml"), Offer)
    assert len(offers) == 2
    assert [offer.characteristics for offer in offers if offer.characteristic_id] == [
        {"Размер": "39", "Цвет": "Красный"}
    ]
    assert {price.currency for offer in offers for price in offer.prices or ()} == {"руб"}


@pytest.mark.parametrize(
    "relative",
    [
        "irpsv__commerceml/orders.xml",
        "carono__yii2-1c-exchange/from.xml",
        "carono__yii2-1c-exchange/to.xml",
        "dobromyslov__commerceml-parser/bitrix-query-response-full.xml",
    ],
)
def test_site_orders_lines_sum_to_total(relative: str) -> None:
    for order in _of_type(_read(relative), OrderDocument):
        if order.total is not None:
            assert sum((line.amount for line in order.lines), Decimal(0)) == order.total


def test_carono_cp1251_orders() -> None:
    (order,) = _of_type(_read("carono__yii2-1c-exchange/from.xml"), OrderDocument)
    assert order.status_text == "[N] Принят"
    assert 'Телевизор "JVC"' in [line.name for line in order.lines]


def test_carono_delivered_order() -> None:
    (order,) = _of_type(_read("carono__yii2-1c-exchange/to.xml"), OrderDocument)
    assert order.status_text == "[F] Доставлен"
    assert order.requisites["Заказ оплачен"] == "true"


def test_bitrix_query_response_counts() -> None:
    orders = _of_type(
        _read("dobromyslov__commerceml-parser/bitrix-query-response-full.xml"), OrderDocument
    )
    assert len(orders) == 2
    assert sum(len(order.lines) for order in orders) == 8


def test_bitrix_empty_query_response() -> None:
    path = _require("dobromyslov__commerceml-parser/bitrix-query-response-empty.xml")
    assert detect_kind(path, tz=MOSCOW) is DocumentKind.EMPTY
    assert [type(item) for item in _read(path)] == [DocumentHeader]


def test_argentcrusade_groups() -> None:
    assert len(_of_type(_read("ArgentCrusade__commerceml/group-example.xml"), Group)) == 12


def test_argentcrusade_product_3_1() -> None:
    (product,) = _of_type(_read("ArgentCrusade__commerceml/products-example.xml"), Product)
    assert product.unit == "796"
    assert len(product.pictures) == 5
    assert set(product.picture_captions) == set(product.pictures)


def test_argentcrusade_remainders() -> None:
    offers = _of_type(_read("ArgentCrusade__commerceml/remainders-example.xml"), Offer)
    assert len(offers) == 2
    assert [len(offer.stock or ()) for offer in offers] == [7, 7]


def test_argentcrusade_counterparties_kind() -> None:
    path = _require("ArgentCrusade__commerceml/contractors-example.xml")
    assert detect_kind(path, tz=MOSCOW) is DocumentKind.COUNTERPARTIES
