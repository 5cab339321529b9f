"""The OData connector against the 1C OData emulator over real loopback HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
import trio

from connectors.emulator.odata_server import (
    PRICE_PERIODS,
    UNF,
    FaultKind,
    ODataBranchEmulator,
    serve_branches,
)
from connectors.odata import (
    ODataAccessError,
    ODataClient,
    ODataError,
    ODataNotFoundError,
    ODataResponseError,
    ODataTransportError,
)

from odata_helpers import PASSWORD, TZ, USERNAME, open_client, sample_order, serve_emulator

PRODUCTS = 20
GROUPS = 3


@pytest.fixture
async def emulator(nursery: trio.Nursery) -> ODataBranchEmulator:
    return await serve_emulator(nursery, "b001", products=PRODUCTS, seed=7)


@pytest.fixture
async def client(emulator: ODataBranchEmulator) -> AsyncIterator[ODataClient]:
    async with open_client(emulator) as odata:
        yield odata


@pytest.fixture
async def raw_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(auth=(USERNAME, PASSWORD)) as http:
        yield http


def local_to_utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ).astimezone(UTC)


# --- Reading ---------------------------------------------------------------------------------


async def test_emulator_products_match_catalog(emulator: ODataBranchEmulator) -> None:
    async with open_client(emulator, page_size=7) as odata:
        products = await odata.fetch_products()

    assert {product.ref_key for product in products} == {
        row["Ref_Key"] for row in emulator.data.catalog
    }
    assert len(products) == PRODUCTS + GROUPS


async def test_emulator_products_have_groups(client: ODataClient) -> None:
    products = await client.fetch_products()

    folders = {product.ref_key for product in products if product.is_folder}
    goods = [product for product in products if not product.is_folder]
    assert len(folders) == GROUPS
    assert all(product.parent_id in folders for product in goods)
    assert any(product.deleted for product in goods)


async def test_emulator_stock_matches_balances(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    stock = await client.fetch_stock()

    expected = {
        (product, None if characteristic.startswith("00000000-") else characteristic, warehouse): (
            balance["ВНаличии"]
        )
        for (product, characteristic, warehouse), balance in emulator.data.stock.items()
    }
    received = {
        (row.product_id, row.characteristic_id, row.warehouse_id): row.quantity for row in stock
    }
    assert received == expected


async def test_emulator_stock_uses_known_warehouses(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    stock = await client.fetch_stock(at=datetime(2025, 3, 1, tzinfo=UTC))

    assert stock
    assert {row.warehouse_id for row in stock} <= set(emulator.data.warehouses)


async def test_emulator_prices_latest_for_type(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    retail = emulator.data.price_types["Розничная"]

    prices = await client.fetch_prices(price_type_id=retail)

    assert prices
    assert {price.price_type_id for price in prices} == {retail}
    assert {price.period for price in prices} == {local_to_utc(PRICE_PERIODS[1])}


async def test_emulator_prices_at_earlier_date(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    older, newer = (local_to_utc(period) for period in PRICE_PERIODS)
    between = older + (newer - older) / 2

    prices = await client.fetch_prices(at=between)

    assert {price.period for price in prices} == {local_to_utc(PRICE_PERIODS[0])}
    assert {price.price_type_id for price in prices} == set(emulator.data.price_types.values())


async def test_emulator_prices_have_kopecks(client: ODataClient) -> None:
    prices = await client.fetch_prices()

    assert all(isinstance(price.amount, Decimal) for price in prices)
    assert all(price.amount.as_tuple().exponent == -2 for price in prices)


# --- Orders ----------------------------------------------------------------------------------


async def test_emulator_create_order_assigns_number(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    created = await client.create_order(sample_order(emulator))

    assert re.fullmatch(r"МС00-\d{6}", created.number)
    assert created.posted is False
    assert created.hub_number == "WEB-000042"
    assert created.date == datetime(2025, 3, 10, 4, 0, tzinfo=UTC)
    assert emulator.creations["WEB-000042"] == 1


async def test_emulator_create_order_stores_lines(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    order = sample_order(emulator)

    created = await client.create_order(order)

    document = emulator.orders[created.ref_key]
    assert document["СуммаДокумента"] == Decimal("1230.90")
    assert document["Товары"][0]["Номенклатура_Key"] == order.lines[0].product_id
    assert document["Товары"][0]["Цена"] == Decimal("410.30")
    assert document["Date"] == "2025-03-10T11:00:00"


async def test_emulator_post_order(client: ODataClient, emulator: ODataBranchEmulator) -> None:
    created = await client.create_order(sample_order(emulator))

    await client.post_document(created.ref_key)
    posted = await client.get_order(created.ref_key)

    assert posted.posted is True
    assert posted.data_version != created.data_version
    assert created.ref_key in emulator.posted


async def test_emulator_create_order_twice_one_document(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    first = await client.create_order(sample_order(emulator))
    second = await client.create_order(sample_order(emulator))

    assert second.ref_key == first.ref_key
    assert emulator.creations["WEB-000042"] == 1
    assert len(emulator.orders) == 1


async def test_emulator_lost_201_makes_no_duplicate(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    emulator.faults.inject(FaultKind.DROP, method="POST", after_handling=True)

    created = await client.create_order(sample_order(emulator))

    assert emulator.creations["WEB-000042"] == 1
    assert list(emulator.orders) == [created.ref_key]


async def test_emulator_slow_201_makes_no_duplicate(emulator: ODataBranchEmulator) -> None:
    emulator.faults.inject(FaultKind.HANG, method="POST", after_handling=True, seconds=5.0)
    async with open_client(emulator, timeout_s=0.3) as odata:
        created = await odata.create_order(sample_order(emulator))

    assert emulator.creations["WEB-000042"] == 1
    assert list(emulator.orders) == [created.ref_key]


async def test_emulator_get_unknown_order_is_not_found(client: ODataClient) -> None:
    with pytest.raises(ODataNotFoundError) as caught:
        await client.get_order("11111111-2222-3333-4444-555555555555")

    assert caught.value.code == "9"


# --- Injected faults -------------------------------------------------------------------------


async def test_emulator_server_error_retried(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    emulator.faults.inject(FaultKind.SERVER_ERROR, times=2)

    products = await client.fetch_products()

    assert len(products) == PRODUCTS + GROUPS
    assert emulator.faults.faults == []


async def test_emulator_html_200_is_response_error(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    emulator.faults.inject(FaultKind.HTML_200, times=3)

    with pytest.raises(ODataResponseError) as caught:
        await client.fetch_stock()

    assert caught.value.retryable is True
    assert "publication" in str(caught.value)


async def test_emulator_odata_error_code(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    emulator.faults.inject(FaultKind.ODATA_ERROR, status=400, code="14")

    with pytest.raises(ODataError) as caught:
        await client.fetch_prices()

    assert caught.value.code == "14"
    assert caught.value.retryable is False


async def test_emulator_access_code_is_permanent(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    emulator.faults.inject(FaultKind.ODATA_ERROR, status=403, code="20")

    with pytest.raises(ODataAccessError):
        await client.fetch_products()

    assert emulator.faults.faults == []


async def test_emulator_hang_is_timeout(emulator: ODataBranchEmulator) -> None:
    emulator.faults.inject(FaultKind.HANG, times=2, seconds=10.0)
    async with open_client(emulator, timeout_s=0.3, max_attempts=2) as odata:
        with pytest.raises(ODataTransportError) as caught:
            await odata.fetch_products()

    assert caught.value.retryable is True
    assert "timed out" in str(caught.value)


async def test_emulator_drop_is_transport_error(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    emulator.faults.inject(FaultKind.DROP, times=3)

    with pytest.raises(ODataTransportError) as caught:
        await client.fetch_products()

    assert caught.value.retryable is True


async def test_emulator_down_is_retryable(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    emulator.faults.down = True

    with pytest.raises(ODataError) as caught:
        await client.fetch_products()

    assert caught.value.status == 503
    assert caught.value.retryable is True


async def test_emulator_wrong_password_is_access_error(emulator: ODataBranchEmulator) -> None:
    async with open_client(emulator, password="wrong") as odata:
        with pytest.raises(ODataAccessError) as caught:
            await odata.fetch_products()

    assert caught.value.status == 401


async def test_emulator_unpublished_entity_is_code_8(emulator: ODataBranchEmulator) -> None:
    async with open_client(emulator, catalog_entity="Catalog_Контрагенты") as odata:
        with pytest.raises(ODataNotFoundError) as caught:
            await odata.fetch_products()

    assert caught.value.code == "8"
    assert "OData composition" in str(caught.value)


# --- Raw protocol ----------------------------------------------------------------------------


async def test_emulator_service_document(
    emulator: ODataBranchEmulator, raw_http: httpx.AsyncClient
) -> None:
    response = await raw_http.get(emulator.base_url)

    names = {entity["name"] for entity in response.json()["value"]}
    assert response.status_code == 200
    assert "Catalog_Номенклатура" in names
    assert "Document_ЗаказКлиента" in names


async def test_emulator_single_item_shape(
    emulator: ODataBranchEmulator, raw_http: httpx.AsyncClient
) -> None:
    ref = emulator.data.catalog[5]["Ref_Key"]

    response = await raw_http.get(
        f"{emulator.base_url}Catalog_Номенклатура(guid'{ref}')?$format=json"
    )

    document = response.json()
    assert response.status_code == 200
    assert document["odata.metadata"].endswith("#Catalog_Номенклатура/@Element")
    assert document["Ref_Key"] == ref
    assert "value" not in document


async def test_emulator_bad_key_is_code_6(
    emulator: ODataBranchEmulator, raw_http: httpx.AsyncClient
) -> None:
    response = await raw_http.get(
        f"{emulator.base_url}Catalog_Номенклатура(guid'xyz')?$format=json"
    )

    assert response.status_code == 400
    assert response.json()["odata.error"]["code"] == "6"


async def test_emulator_bad_filter_guid_is_code_14(
    emulator: ODataBranchEmulator, raw_http: httpx.AsyncClient
) -> None:
    params = {"$format": "json", "$filter": "Ref_Key eq guid'zz'"}

    response = await raw_http.get(f"{emulator.base_url}Catalog_Номенклатура", params=params)

    assert response.status_code == 400
    assert response.json()["odata.error"]["code"] == "14"


async def test_emulator_filter_deletion_mark(
    emulator: ODataBranchEmulator, raw_http: httpx.AsyncClient
) -> None:
    params = {"$format": "json", "$filter": "DeletionMark eq true", "$select": "Ref_Key"}

    response = await raw_http.get(f"{emulator.base_url}Catalog_Номенклатура", params=params)

    rows = response.json()["value"]
    expected = {row["Ref_Key"] for row in emulator.data.catalog if row["DeletionMark"]}
    assert {row["Ref_Key"] for row in rows} == expected
    assert all(list(row) == ["Ref_Key"] for row in rows)


async def test_emulator_create_returns_location(
    emulator: ODataBranchEmulator, raw_http: httpx.AsyncClient
) -> None:
    body = {"НомерПоДаннымКлиента": "RAW-1", "Date": "2025-03-10T11:00:00", "Товары": []}

    response = await raw_http.post(
        f"{emulator.base_url}Document_ЗаказКлиента?$format=json", json=body
    )

    ref = response.json()["Ref_Key"]
    assert response.status_code == 201
    assert httpx.URL(response.headers["Location"]).path.endswith(
        f"Document_ЗаказКлиента(guid'{ref}')"
    )


async def test_emulator_patch_checks_data_version(
    emulator: ODataBranchEmulator, raw_http: httpx.AsyncClient
) -> None:
    created = await raw_http.post(
        f"{emulator.base_url}Document_ЗаказКлиента?$format=json",
        json={"НомерПоДаннымКлиента": "RAW-2"},
    )
    url = (
        f"{emulator.base_url}Document_ЗаказКлиента(guid'{created.json()['Ref_Key']}')?$format=json"
    )
    change = {"Комментарий": "Изменено"}

    stale = await raw_http.patch(url, json=change, headers={"If-Match": "AAAAAAAAAAA="})
    fresh = await raw_http.patch(
        url, json=change, headers={"If-Match": created.json()["DataVersion"]}
    )

    assert stale.status_code == 412
    assert fresh.status_code == 200
    assert fresh.json()["Комментарий"] == "Изменено"
    assert fresh.json()["DataVersion"] != created.json()["DataVersion"]


async def test_emulator_posting_adds_to_ship(
    client: ODataClient, emulator: ODataBranchEmulator, raw_http: httpx.AsyncClient
) -> None:
    order = sample_order(emulator)
    created = await client.create_order(order)
    params = {"$format": "json", "$select": "Номенклатура_Key,КОтгрузкеBalance"}
    balance = "AccumulationRegister_ТоварыНаСкладах/Balance(Dimensions='Номенклатура')"
    balance_url = emulator.base_url + balance

    await client.post_document(created.ref_key)
    response = await raw_http.get(balance_url, params=params)

    rows = {row["Номенклатура_Key"]: row["КОтгрузкеBalance"] for row in response.json()["value"]}
    assert rows[order.lines[0].product_id] == 3


async def test_emulator_same_seed_same_catalog() -> None:
    first = ODataBranchEmulator(branch_code="b002", tz=TZ, seed=3)
    second = ODataBranchEmulator(branch_code="b002", tz=TZ, seed=3)
    other = ODataBranchEmulator(branch_code="b003", tz=TZ, seed=3)

    assert first.data.catalog == second.data.catalog
    assert first.data.catalog != other.data.catalog


async def test_serve_branches_routes_by_code(nursery: trio.Nursery) -> None:
    branches = [
        ODataBranchEmulator(branch_code=f"b{index:03d}", tz=TZ, products=5) for index in (1, 2)
    ]
    origin = await nursery.start(serve_branches, branches)

    results = []
    for branch in branches:
        async with open_client(branch) as odata:
            results.append({product.ref_key for product in await odata.fetch_products()})

    assert all(branch.base_url.startswith(origin) for branch in branches)
    assert results[0] == {row["Ref_Key"] for row in branches[0].data.catalog}
    assert results[1] == {row["Ref_Key"] for row in branches[1].data.catalog}


# --- Configurations and change tracking ------------------------------------------------------


async def test_emulator_hidden_entity_is_code_8(
    nursery: trio.Nursery, raw_http: httpx.AsyncClient
) -> None:
    branch = await serve_emulator(nursery, "b003", hidden=("Document_ЗаказКлиента",))

    listed = await raw_http.get(branch.base_url)
    response = await raw_http.get(f"{branch.base_url}Document_ЗаказКлиента?$format=json")

    names = {entity["name"] for entity in listed.json()["value"]}
    assert "Document_ЗаказКлиента" not in names
    assert response.status_code == 404
    assert response.json()["odata.error"]["code"] == "8"


async def test_emulator_unf_balance_uses_its_names(
    nursery: trio.Nursery, raw_http: httpx.AsyncClient
) -> None:
    branch = await serve_emulator(nursery, "b004", configuration=UNF)
    balance = (
        "AccumulationRegister_ЗапасыНаСкладах/Balance("
        "Dimensions='Номенклатура,Характеристика,СтруктурнаяЕдиница')"
    )

    response = await raw_http.get(branch.base_url + balance, params={"$format": "json"})

    rows = response.json()["value"]
    assert response.status_code == 200
    assert rows
    assert set(rows[0]) == {
        "Номенклатура_Key",
        "Характеристика_Key",
        "СтруктурнаяЕдиница_Key",
        "КоличествоBalance",
    }


async def test_emulator_filter_date_ge(
    emulator: ODataBranchEmulator, raw_http: httpx.AsyncClient
) -> None:
    url = f"{emulator.base_url}Document_ЗаказКлиента?$format=json"
    for number, date in (("R-1", "2025-03-01T10:00:00"), ("R-2", "2025-03-05T10:00:00")):
        await raw_http.post(url, json={"НомерПоДаннымКлиента": number, "Date": date})
    params = {
        "$format": "json",
        "$filter": "Date ge datetime'2025-03-03T00:00:00'",
        "$select": "НомерПоДаннымКлиента",
    }

    response = await raw_http.get(f"{emulator.base_url}Document_ЗаказКлиента", params=params)

    assert [row["НомерПоДаннымКлиента"] for row in response.json()["value"]] == ["R-2"]


async def test_emulator_touch_product_bumps_version(emulator: ODataBranchEmulator) -> None:
    row = emulator.data.catalog[4]
    before = row["DataVersion"]

    emulator.touch_product(row["Ref_Key"], Description="Мёд новый")

    assert row["Description"] == "Мёд новый"
    assert row["DataVersion"] != before


async def test_emulator_counts_requests_per_entity(
    client: ODataClient, emulator: ODataBranchEmulator
) -> None:
    emulator.faults.down = True

    with pytest.raises(ODataError):
        await client.fetch_prices()

    assert emulator.requests["InformationRegister_ЦеныНоменклатуры"] == 3
