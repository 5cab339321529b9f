"""Tests of the CommerceML catalog generator used by the demo, the tests and the benchmarks."""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from connectors.emulator.catalog import (
    IMPORT_FILENAME,
    OFFERS_FILENAME,
    GeneratedCatalog,
    generate_catalog,
    picture_paths,
    write_catalog,
)

NS = "urn:1C.ru:commerceml_2"
BOM = b"\xef\xbb\xbf"
MOSCOW = ZoneInfo("Europe/Moscow")


def q(name: str, namespace: str | None = NS) -> str:
    return name if namespace is None else f"{{{namespace}}}{name}"


def root_of(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def texts(root: etree._Element, path: str) -> list[str]:
    return [element.text or "" for element in root.iterfind(path)]


def product_ids(catalog: GeneratedCatalog) -> list[str]:
    return texts(root_of(catalog.import_xml), f".//{q('Товар')}/{q('Ид')}")


def offer_elements(catalog: GeneratedCatalog) -> list[etree._Element]:
    return list(root_of(catalog.offers_xml).iter(q("Предложение")))


@pytest.fixture(scope="module")
def catalog() -> GeneratedCatalog:
    return generate_catalog(products=200, seed=7, variants_every=10, warehouses=3)


def test_catalog_files_are_well_formed(catalog: GeneratedCatalog) -> None:
    import_root = root_of(catalog.import_xml)
    offers_root = root_of(catalog.offers_xml)

    assert import_root.tag == q("КоммерческаяИнформация")
    assert offers_root.tag == q("КоммерческаяИнформация")
    assert import_root.get("ВерсияСхемы") == "2.07"
    assert offers_root.get("ВерсияСхемы") == "2.07"


def test_catalog_starts_with_bom_and_declaration(catalog: GeneratedCatalog) -> None:
    declaration = b'<?xml version="1.0" encoding="UTF-8"?>'

    assert catalog.import_xml.startswith(BOM + declaration)
    assert catalog.offers_xml.startswith(BOM + declaration)


def test_catalog_same_seed_same_bytes() -> None:
    first = generate_catalog(products=60, seed=3)
    second = generate_catalog(products=60, seed=3)

    assert first.import_xml == second.import_xml
    assert first.offers_xml == second.offers_xml


def test_catalog_other_seed_other_ids() -> None:
    first = generate_catalog(products=20, seed=1)
    second = generate_catalog(products=20, seed=2)

    assert set(product_ids(first)).isdisjoint(product_ids(second))


def test_catalog_ids_stable_across_sizes() -> None:
    small = generate_catalog(products=30, seed=5)
    large = generate_catalog(products=120, seed=5)
    offer_names = f".//{q('Предложение')}/{q('Наименование')}"

    small_offers = texts(root_of(small.offers_xml), offer_names)
    large_offers = texts(root_of(large.offers_xml), offer_names)

    assert product_ids(large)[:30] == product_ids(small)
    assert large_offers[: len(small_offers)] == small_offers


def test_catalog_ids_are_unique_guids(catalog: GeneratedCatalog) -> None:
    ids = product_ids(catalog)
    guid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

    assert len(set(ids)) == len(ids)
    assert all(guid.match(value) for value in ids)


def test_catalog_counts_match(catalog: GeneratedCatalog) -> None:
    import_root = root_of(catalog.import_xml)
    offers_root = root_of(catalog.offers_xml)

    assert len(list(import_root.iter(q("Товар")))) == catalog.products == 200
    assert len(offer_elements(catalog)) == catalog.offers
    assert catalog.offers == 200 + 200 // 10  # each variant product has two offers, not one
    assert len(list(import_root.iter(q("Группа")))) == catalog.groups
    assert len(list(offers_root.iter(q("ТипЦены")))) == catalog.price_types == 2
    assert len(offers_root.findall(f".//{q('Склады')}/{q('Склад')}")) == catalog.warehouses == 3


def test_catalog_groups_form_two_levels(catalog: GeneratedCatalog) -> None:
    classifier_groups = root_of(catalog.import_xml).find(f"{q('Классификатор')}/{q('Группы')}")
    assert classifier_groups is not None
    top_level = classifier_groups.findall(q("Группа"))
    nested = [group.findall(f"{q('Группы')}/{q('Группа')}") for group in top_level]

    assert len(top_level) >= 2
    assert all(children for children in nested)
    assert all(child.find(q("Группы")) is None for children in nested for child in children)


def test_catalog_products_reference_leaf_groups(catalog: GeneratedCatalog) -> None:
    root = root_of(catalog.import_xml)
    leaf_ids = set(
        texts(root, f".//{q('Группы')}/{q('Группа')}/{q('Группы')}/{q('Группа')}/{q('Ид')}")
    )
    used = texts(root, f".//{q('Товар')}/{q('Группы')}/{q('Ид')}")

    assert set(used) <= leaf_ids


def test_catalog_variants_present(catalog: GeneratedCatalog) -> None:
    ids = set(product_ids(catalog))
    variants = [o for o in offer_elements(catalog) if "#" in (o.findtext(q("Ид")) or "")]
    volumes = Counter(
        o.findtext(f"{q('ХарактеристикиТовара')}/{q('ХарактеристикаТовара')}/{q('Значение')}")
        for o in variants
    )
    axes = {
        o.findtext(f"{q('ХарактеристикиТовара')}/{q('ХарактеристикаТовара')}/{q('Наименование')}")
        for o in variants
    }

    assert len(variants) == 2 * (200 // 10)
    assert volumes == Counter({"100 мл": 20, "250 мл": 20})
    assert axes == {"Объём"}
    assert all((o.findtext(q("Ид")) or "").split("#")[0] in ids for o in variants)


def test_catalog_no_variants_when_disabled() -> None:
    catalog = generate_catalog(products=50, variants_every=0)

    assert catalog.offers == 50
    assert all("#" not in (o.findtext(q("Ид")) or "") for o in offer_elements(catalog))
    assert not list(root_of(catalog.offers_xml).iter(q("ХарактеристикиТовара")))


def test_catalog_prices_are_decimal_clean_strings(catalog: GeneratedCatalog) -> None:
    prices = texts(root_of(catalog.offers_xml), f".//{q('Цена')}/{q('ЦенаЗаЕдиницу')}")

    assert prices
    assert all(re.fullmatch(r"[1-9]\d*\.\d{2}", price) for price in prices)
    assert all(Decimal(price).quantize(Decimal("0.01")) == Decimal(price) for price in prices)


def test_catalog_old_price_above_retail(catalog: GeneratedCatalog) -> None:
    offers_root = root_of(catalog.offers_xml)
    type_ids = {
        t.findtext(q("Наименование")): t.findtext(q("Ид")) for t in offers_root.iter(q("ТипЦены"))
    }
    pairs = []
    for offer in offer_elements(catalog):
        by_type = {
            price.findtext(q("ИдТипаЦены")): Decimal(price.findtext(q("ЦенаЗаЕдиницу")) or "")
            for price in offer.iter(q("Цена"))
        }
        if type_ids["Старая цена"] in by_type:
            pairs.append((by_type[type_ids["Розничная"]], by_type[type_ids["Старая цена"]]))

    assert set(type_ids) == {"Розничная", "Старая цена"}
    assert pairs
    assert all(old > retail for retail, old in pairs)


def test_catalog_price_types_in_rubles(catalog: GeneratedCatalog) -> None:
    offers_root = root_of(catalog.offers_xml)

    assert texts(offers_root, f".//{q('ТипЦены')}/{q('Валюта')}") == ["RUB", "RUB"]
    assert set(texts(offers_root, f".//{q('Цена')}/{q('Валюта')}")) == {"RUB"}


def test_catalog_stock_total_is_sum_of_warehouses(catalog: GeneratedCatalog) -> None:
    warehouse_ids = set(
        texts(root_of(catalog.offers_xml), f".//{q('Склады')}/{q('Склад')}/{q('Ид')}")
    )
    for offer in offer_elements(catalog):
        stores = offer.findall(q("Склад"))
        total = int(offer.findtext(q("Количество")) or "-1")

        assert {store.get("ИдСклада") for store in stores} == warehouse_ids
        assert total == sum(int(store.get("КоличествоНаСкладе") or "") for store in stores)


def test_catalog_base_unit_is_piece(catalog: GeneratedCatalog) -> None:
    units = list(root_of(catalog.import_xml).iter(q("БазоваяЕдиница")))

    assert len(units) == 200
    assert {unit.get("Код") for unit in units} == {"796"}
    assert {unit.get("НаименованиеПолное") for unit in units} == {"Штука"}
    assert {unit.text for unit in units} == {"шт"}


def test_catalog_products_have_sku_and_barcode(catalog: GeneratedCatalog) -> None:
    root = root_of(catalog.import_xml)
    skus = texts(root, f".//{q('Товар')}/{q('Артикул')}")
    barcodes = texts(root, f".//{q('Товар')}/{q('Штрихкод')}")

    assert len(set(skus)) == 200
    assert all(re.fullmatch(r"460\d{10}", code) for code in barcodes)


def test_catalog_full_snapshot_flag(catalog: GeneratedCatalog) -> None:
    catalog_section = root_of(catalog.import_xml).find(q("Каталог"))
    package = root_of(catalog.offers_xml).find(q("ПакетПредложений"))

    assert catalog_section is not None
    assert package is not None
    assert catalog_section.get("СодержитТолькоИзменения") == "false"
    assert package.get("СодержитТолькоИзменения") == "false"


def test_catalog_goods_names_are_in_russian(catalog: GeneratedCatalog) -> None:
    names = texts(root_of(catalog.import_xml), f".//{q('Товар')}/{q('Наименование')}")

    assert all(re.search(r"[а-яё]", name) for name in names)
    assert len(set(names)) > 50


def test_catalog_generated_at_in_branch_time() -> None:
    catalog = generate_catalog(products=1, generated_at=datetime(2024, 5, 1, 21, 30, tzinfo=UTC))

    assert root_of(catalog.import_xml).get("ДатаФормирования") == "2024-05-02T00:30:00"


def test_catalog_schema_205_has_no_namespace() -> None:
    catalog = generate_catalog(products=3, schema_version="2.05")
    root = root_of(catalog.import_xml)

    assert root.tag == "КоммерческаяИнформация"
    assert root.get("ВерсияСхемы") == "2.05"


def test_catalog_rejects_unsupported_schema() -> None:
    with pytest.raises(ValueError, match=r"2\.10"):
        generate_catalog(products=1, schema_version="2.10")


def test_catalog_rejects_negative_products() -> None:
    with pytest.raises(ValueError, match="products"):
        generate_catalog(products=-1)


def test_catalog_pictures_referenced_and_valid() -> None:
    catalog = generate_catalog(products=25, pictures_every=10)
    referenced = texts(root_of(catalog.import_xml), f".//{q('Товар')}/{q('Картинка')}")

    assert sorted(referenced) == sorted(catalog.pictures)
    assert len(referenced) == 3  # products 0, 10 and 20
    assert all(re.fullmatch(r"import_files/[0-9a-f]{2}/[0-9a-f_]+\.png", p) for p in referenced)
    assert all(data.startswith(b"\x89PNG\r\n\x1a\n") for data in catalog.pictures.values())


def test_catalog_parses_with_commerceml_parser(catalog: GeneratedCatalog) -> None:
    from connectors.commerceml.model import Group, Offer, PriceType, Product, Warehouse
    from connectors.commerceml.parser import iter_document

    import_items = list(iter_document(io.BytesIO(catalog.import_xml), tz=MOSCOW))
    offer_items = list(iter_document(io.BytesIO(catalog.offers_xml), tz=MOSCOW))
    offers = [item for item in offer_items if isinstance(item, Offer)]

    assert sum(isinstance(item, Product) for item in import_items) == catalog.products
    assert sum(isinstance(item, Group) for item in import_items) == catalog.groups
    assert len(offers) == catalog.offers
    assert sum(isinstance(item, PriceType) for item in offer_items) == 2
    assert sum(isinstance(item, Warehouse) for item in offer_items) == 3
    assert all(offer.prices and offer.stock_total is not None for offer in offers)
    assert all(isinstance(price.amount, Decimal) for o in offers for price in o.prices or ())


def test_write_catalog_matches_generate(tmp_path: Path) -> None:
    paths = write_catalog(tmp_path, products=40, seed=9, pictures_every=7)
    expected = generate_catalog(products=40, seed=9, pictures_every=7)

    assert [path.name for path in paths] == [IMPORT_FILENAME, OFFERS_FILENAME]
    assert paths[0].read_bytes() == expected.import_xml
    assert paths[1].read_bytes() == expected.offers_xml
    assert [p.relative_to(tmp_path).as_posix() for p in picture_paths(tmp_path)] == sorted(
        expected.pictures
    )


def test_write_catalog_streams_20000_products(tmp_path: Path) -> None:
    import_path, offers_path = write_catalog(tmp_path, products=20_000, seed=1)
    goods = sum(1 for _ in etree.iterparse(str(import_path), tag=q("Товар")))
    offers = sum(1 for _ in etree.iterparse(str(offers_path), tag=q("Предложение")))
    closing = "</КоммерческаяИнформация>".encode()

    assert goods == 20_000
    assert offers == 20_000 + 20_000 // 10
    assert import_path.read_bytes().rstrip().endswith(closing)
    assert offers_path.read_bytes().rstrip().endswith(closing)
