"""The connector's row decoders on real 1C OData JSON responses, read in place.

The responses come from two small custom 1C 8.3 configurations (2016-2017), so they show
platform-level shapes (standard fields, empty references and dates, string LineNumber, padded
strings), not UT 11 field names. The tests skip when the shared samples are not checked out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.emulator.odata_server import ODataBranchEmulator
from connectors.odata.models import (
    RowReader,
    decode_order,
    decode_product,
    parse_json,
)

SAMPLES = Path(__file__).parents[1].parent / "shared" / "samples" / "odata" / "roman-nevr__Client"
MOSCOW = ZoneInfo("Europe/Moscow")  # UTC+3 since October 2014
CATALOG_COLLECTION = "IncomeJSON__Catalog_Nomenklatura_collection.json"
CATALOG_ELEMENT = "IncomeJSON__Catalog_Nomenklatura_element.json"
UNITS_COLLECTION = "IncomeJSON__Catalog_EdinicyIzmereniya_collection.json"
RECEIPTS_COLLECTION = "IncomeJSON__Document_PrihodnyjOrder_collection.json"
CONTRACTS_COLLECTION = "Contract__Document_Kontrakt_collection.json"
COUNTERPARTY_ELEMENT = "Client__Catalog_Kontragenty_element.json"
DOCUMENT_SAMPLES = (RECEIPTS_COLLECTION, CONTRACTS_COLLECTION)


def load(name: str) -> Any:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(
            f"real 1C OData sample {path} is not available (shared samples not checked out)"
        )
    return parse_json(path.read_bytes())


def walk(value: Any) -> list[Any]:
    """Return every scalar inside a parsed JSON document."""
    if isinstance(value, dict):
        return [item for member in value.values() for item in walk(member)]
    if isinstance(value, list):
        return [item for member in value for item in walk(member)]
    return [value]


@pytest.mark.parametrize(
    "name",
    [
        CATALOG_COLLECTION,
        CATALOG_ELEMENT,
        UNITS_COLLECTION,
        RECEIPTS_COLLECTION,
        CONTRACTS_COLLECTION,
        COUNTERPARTY_ELEMENT,
    ],
)
def test_sample_parses_without_float(name: str) -> None:
    scalars = walk(load(name))

    assert scalars
    assert not any(isinstance(value, float) for value in scalars)


def test_sample_catalog_collection_decodes() -> None:
    rows = load(CATALOG_COLLECTION)["value"]

    products = [decode_product(row) for row in rows]

    assert len(products) == len(rows)
    assert all(product.sku is None for product in products if product.is_folder)
    assert [product.code for product in products] == [row["Code"] for row in rows]


def test_sample_catalog_empty_parent_is_none() -> None:
    rows = load(CATALOG_COLLECTION)["value"]

    products = [decode_product(row) for row in rows]

    top_level = [row["Ref_Key"] for row in rows if row["Parent_Key"].startswith("00000000-")]
    assert top_level
    assert all(product.parent_id is None for product in products if product.ref_key in top_level)


def test_sample_catalog_element_decodes() -> None:
    document = load(CATALOG_ELEMENT)

    product = decode_product(document)

    assert document["odata.metadata"].endswith("/@Element")
    assert product.ref_key == document["Ref_Key"]
    assert product.parent_id == document["Parent_Key"]
    assert product.sku == document["Артикул"]
    assert product.is_folder is False


@pytest.mark.parametrize("name", DOCUMENT_SAMPLES)
def test_sample_documents_decode_as_orders(name: str) -> None:
    rows = load(name)["value"]

    orders = [decode_order(row, tz=MOSCOW, number_field="НомерПоДаннымКлиента") for row in rows]

    assert [order.number for order in orders] == [row["Number"] for row in rows]
    assert [order.posted for order in orders] == [row["Posted"] for row in rows]
    assert all(order.hub_number is None for order in orders)
    assert all(order.status is None for order in orders)


@pytest.mark.parametrize("name", DOCUMENT_SAMPLES)
def test_sample_document_dates_become_utc(name: str) -> None:
    rows = load(name)["value"]

    orders = [decode_order(row, tz=MOSCOW, number_field="НомерПоДаннымКлиента") for row in rows]

    for order, row in zip(orders, rows, strict=True):
        local = datetime.fromisoformat(row["Date"]).replace(tzinfo=MOSCOW)
        assert order.date == local.astimezone(UTC)
        assert order.date is not None and order.date.tzinfo is UTC


def test_sample_empty_date_reads_none() -> None:
    document = load(COUNTERPARTY_ELEMENT)

    reader = RowReader(document, "counterparty")

    assert reader.date("Дата", MOSCOW) is None


def test_sample_padded_string_is_stripped() -> None:
    row = load(RECEIPTS_COLLECTION)["value"][0]

    reader = RowReader(row, "receipt")

    assert row["НомерКонтракта"].strip() == ""
    assert reader.optional_text("НомерКонтракта") is None


def test_sample_table_part_rows_decode() -> None:
    documents = load(CONTRACTS_COLLECTION)["value"]
    lines = [line for document in documents for line in document["Товары"]]

    readers = [RowReader(line, "contract line") for line in lines]

    assert lines
    assert all(isinstance(line["LineNumber"], str) for line in lines)
    assert [reader.number("LineNumber") for reader in readers] == [
        Decimal(index) for index in range(1, len(lines) + 1)
    ]
    assert all(isinstance(reader.number("Количество"), Decimal) for reader in readers)


def test_sample_empty_reference_in_table_part() -> None:
    line = load(RECEIPTS_COLLECTION)["value"][0]["Товары"][0]

    reader = RowReader(line, "receipt line")

    assert reader.ref("Номенклатура_Key") is None
    assert reader.number("Количество") == 0


def test_sample_numeric_string_decodes() -> None:
    rows = load(UNITS_COLLECTION)["value"]

    readers = [RowReader(row, "unit") for row in rows]

    assert [reader.number("Коэффициент") for reader in readers] == [
        Decimal(row["Коэффициент"]) for row in rows
    ]
    assert all(reader.required_ref("Owner_Key") for reader in readers)


def test_emulator_catalog_types_match_sample() -> None:
    sample_item = next(row for row in load(CATALOG_COLLECTION)["value"] if not row["IsFolder"])
    emulator = ODataBranchEmulator(branch_code="conformance", tz=MOSCOW, products=5)
    emulated_item = next(
        row for row in emulator.data.catalog if not row["IsFolder"] and row["Артикул"]
    )

    shared = set(sample_item) & set(emulated_item)

    assert {"Ref_Key", "DataVersion", "DeletionMark", "Code", "Description", "Parent_Key"} <= shared
    for key in shared:
        assert type(emulated_item[key]) is type(sample_item[key]), key


def test_emulator_data_version_matches_sample_form() -> None:
    sample_versions = [row["DataVersion"] for row in load(CATALOG_COLLECTION)["value"]]
    emulator = ODataBranchEmulator(branch_code="conformance", tz=MOSCOW, products=5)

    emulated_versions = [row["DataVersion"] for row in emulator.data.catalog]

    assert {len(version) for version in emulated_versions} == {len(v) for v in sample_versions}
    assert all(version.endswith("AAAAA=") for version in emulated_versions + sample_versions)
