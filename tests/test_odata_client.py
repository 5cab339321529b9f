"""Unit tests of the 1C OData connector against respx-mocked HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from connectors.odata import (
    ODataAccessError,
    ODataClient,
    ODataConfig,
    ODataError,
    ODataNotFoundError,
    ODataResponseError,
    ODataTransportError,
    OrderIn,
    OrderLineIn,
)
from connectors.odata.client import build_url, datetime_literal, guid_literal, string_literal
from connectors.odata.errors import ODATA_ERROR_TEXTS
from tentorium_hub.errors import ConnectorError

# Loopback with a closed port: should respx ever let a request through, it goes nowhere.
BASE = "http://127.0.0.1:9/ut/odata/standard.odata/"
BASE_PATH = "/ut/odata/standard.odata/"
YEKATERINBURG = ZoneInfo("Asia/Yekaterinburg")  # UTC+5, no daylight saving time
PRODUCT_A = "b837edfc-c36d-11e6-aede-5404a6b4b8ed"
PRODUCT_B = "68c21ae9-cd73-11e6-aede-5404a6b4b8ed"
WAREHOUSE = "3aa3cd58-c109-11e6-a7a6-5404a6b4b8ed"
PRICE_TYPE = "f8c956eb-cdad-11e6-aede-5404a6b4b8ed"
ORDER_REF = "b1c89da7-cb6a-11e6-aede-5404a6b4b8ed"
EMPTY_REF = "00000000-0000-0000-0000-000000000000"
ERROR_CODES = [str(code) for code in range(22)]


def make_client(**overrides: Any) -> ODataClient:
    settings: dict[str, Any] = {
        "base_url": BASE,
        "username": "hub",
        "password": "secret",
        "tz": YEKATERINBURG,
        "backoff_base_s": 0.1,
    }
    settings.update(overrides)
    return ODataClient(ODataConfig(**settings))


def json_response(status: int, body: str) -> httpx.Response:
    headers = {"Content-Type": "application/json;charset=utf-8"}
    return httpx.Response(status, content=body.encode("utf-8"), headers=headers)


def collection(rows: list[dict[str, Any]]) -> httpx.Response:
    return json_response(200, json.dumps({"odata.metadata": BASE + "$metadata#X", "value": rows}))


def odata_error(status: int, code: str, message: str = "Ошибка") -> httpx.Response:
    body = {"odata.error": {"code": code, "message": {"lang": "ru", "value": message}}}
    return json_response(status, json.dumps(body, ensure_ascii=False))


def product_row(ref: str, code: str = "00-00000001") -> dict[str, Any]:
    return {
        "Ref_Key": ref,
        "Code": code,
        "Description": "Мёд липовый, 500 г",
        "Артикул": "ТН-1001",
        "DeletionMark": False,
        "Parent_Key": EMPTY_REF,
        "IsFolder": False,
    }


def order_row(hub_number: str = "H-100", date: str = "2025-02-01T10:30:00") -> dict[str, Any]:
    return {
        "Ref_Key": ORDER_REF,
        "Number": "МС00-000123",
        "Date": date,
        "Posted": False,
        "DeletionMark": False,
        "DataVersion": "AAAAAQAAAAA=",
        "Статус": "НеСогласован",
        "НомерПоДаннымКлиента": hub_number,
    }


def sample_order(hub_number: str = "H-100") -> OrderIn:
    line = OrderLineIn(PRODUCT_A, None, Decimal("2"), Decimal("350.25"), Decimal("700.50"))
    return OrderIn(
        hub_number=hub_number,
        created_at=datetime(2025, 2, 1, 5, 30, tzinfo=UTC),
        currency="RUB",
        total=Decimal("700.50"),
        customer_name="Иван Петров",
        comment=None,
        lines=(line,),
    )


def entity_route(respx_mock: respx.MockRouter, method: str, entity: str) -> respx.Route:
    return respx_mock.route(method=method, path__startswith=BASE_PATH + entity)


def request_path(route: respx.Route, index: int = 0) -> str:
    return unquote(route.calls[index].request.url.raw_path.decode("ascii").split("?")[0])


# --- URL building ----------------------------------------------------------------------------


def test_build_url_percent_encodes_cyrillic() -> None:
    url = build_url(BASE, "Catalog_Номенклатура", [("$filter", "Code eq 'Мёд'")])

    assert url.isascii()
    assert url.startswith(BASE + "Catalog_%D0%9D")
    assert "$filter=Code%20eq%20'%D0%9C" in url


def test_build_url_keeps_literal_syntax() -> None:
    resource = f"Document_X({guid_literal(ORDER_REF)})/Post"

    url = build_url(BASE, resource, [])

    assert url == f"{BASE}Document_X(guid'{ORDER_REF}')/Post"


def test_guid_literal_rejects_malformed() -> None:
    with pytest.raises(ValueError):
        guid_literal("not-a-guid")


def test_string_literal_doubles_quote() -> None:
    assert string_literal("O'Brien") == "'O''Brien'"


def test_datetime_literal_uses_branch_local_time() -> None:
    moment = datetime(2025, 1, 31, 9, 0, tzinfo=UTC)

    assert datetime_literal(moment, YEKATERINBURG) == "datetime'2025-01-31T14:00:00'"


def test_datetime_literal_rejects_naive() -> None:
    with pytest.raises(ValueError):
        datetime_literal(datetime(2025, 1, 31, 9, 0), YEKATERINBURG)


def test_config_adds_trailing_slash() -> None:
    config = ODataConfig(base_url=BASE.rstrip("/"), username="u", password="p", tz=YEKATERINBURG)

    assert config.base_url == BASE


def test_config_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError):
        ODataConfig(base_url=BASE, username="u", password="p", tz=YEKATERINBURG, max_attempts=0)


# --- Reading ---------------------------------------------------------------------------------


async def test_fetch_products_sends_select_and_paging(respx_mock: respx.MockRouter) -> None:
    route = entity_route(respx_mock, "GET", "Catalog_Номенклатура")
    route.return_value = collection([product_row(PRODUCT_A)])
    client = make_client(page_size=50)

    await client.fetch_products()

    params = route.calls[0].request.url.params
    assert params["$format"] == "json"
    assert params["$select"] == (
        "Ref_Key,DataVersion,Code,Description,Артикул,DeletionMark,Parent_Key,IsFolder"
    )
    assert params["$orderby"] == "Ref_Key"
    assert params["$top"] == "50"
    assert params["$skip"] == "0"


async def test_fetch_products_sends_basic_auth(respx_mock: respx.MockRouter) -> None:
    route = entity_route(respx_mock, "GET", "Catalog_Номенклатура")
    route.return_value = collection([])

    await make_client().fetch_products()

    expected = httpx.BasicAuth("hub", "secret")._auth_header
    assert route.calls[0].request.headers["Authorization"] == expected


async def test_fetch_products_pages_until_short_page(respx_mock: respx.MockRouter) -> None:
    refs = [f"00000000-0000-0000-0000-00000000000{index}" for index in range(1, 6)]
    pages = [refs[0:2], refs[2:4], refs[4:5]]
    route = entity_route(respx_mock, "GET", "Catalog_Номенклатура")
    route.side_effect = [collection([product_row(ref) for ref in page]) for page in pages]

    products = await make_client(page_size=2).fetch_products()

    assert [product.ref_key for product in products] == refs
    assert route.call_count == 3
    assert [call.request.url.params["$skip"] for call in route.calls] == ["0", "2", "4"]


async def test_fetch_products_stops_when_skip_ignored(respx_mock: respx.MockRouter) -> None:
    page = collection([product_row(PRODUCT_A), product_row(PRODUCT_B)])
    route = entity_route(respx_mock, "GET", "Catalog_Номенклатура")
    route.side_effect = lambda request: page

    products = await make_client(page_size=2).fetch_products()

    assert len(products) == 2
    assert route.call_count == 2


async def test_fetch_products_decodes_empty_parent_and_sku(respx_mock: respx.MockRouter) -> None:
    row = product_row(PRODUCT_A) | {"Артикул": None, "IsFolder": True, "Code": "00001   "}
    entity_route(respx_mock, "GET", "Catalog_Номенклатура").return_value = collection([row])

    [product] = await make_client().fetch_products()

    assert product.parent_id is None
    assert product.sku is None
    assert product.is_folder is True
    assert product.code == "00001"


async def test_fetch_stock_calls_balance_in_local_time(respx_mock: respx.MockRouter) -> None:
    route = entity_route(respx_mock, "GET", "AccumulationRegister_ТоварыНаСкладах")
    route.return_value = collection([])

    await make_client().fetch_stock(at=datetime(2025, 1, 31, 9, 0, tzinfo=UTC))

    expected = (
        BASE_PATH
        + "AccumulationRegister_ТоварыНаСкладах/Balance(Period=datetime'2025-01-31T14:00:00',"
        "Dimensions='Номенклатура,Характеристика,Склад')"
    )
    assert request_path(route) == expected
    assert "ВНаличииBalance" in route.calls[0].request.url.params["$select"]


async def test_fetch_stock_decodes_rows(respx_mock: respx.MockRouter) -> None:
    row = {
        "Номенклатура_Key": PRODUCT_A,
        "Характеристика_Key": EMPTY_REF,
        "Склад_Key": WAREHOUSE,
        "ВНаличииBalance": 12.5,
    }
    route = entity_route(respx_mock, "GET", "AccumulationRegister_ТоварыНаСкладах")
    route.return_value = collection([row])

    [stock] = await make_client().fetch_stock()

    assert stock.product_id == PRODUCT_A
    assert stock.characteristic_id is None
    assert stock.warehouse_id == WAREHOUSE
    assert stock.quantity == Decimal("12.5")


async def test_fetch_prices_filters_price_type(respx_mock: respx.MockRouter) -> None:
    route = entity_route(respx_mock, "GET", "InformationRegister_ЦеныНоменклатуры")
    route.return_value = collection([])

    await make_client().fetch_prices(price_type_id=PRICE_TYPE)

    expected = (
        BASE_PATH + "InformationRegister_ЦеныНоменклатуры/SliceLast("
        f"Condition='ВидЦены_Key eq guid'{PRICE_TYPE}'')"
    )
    assert request_path(route) == expected


async def test_fetch_prices_keeps_decimal_exact(respx_mock: respx.MockRouter) -> None:
    # Written by hand so that the numbers reach the parser exactly as these digits.
    rows = [
        f'{{"Period": "2025-01-09T00:00:00", "Номенклатура_Key": "{product}", '
        f'"Характеристика_Key": "{EMPTY_REF}", "ВидЦены_Key": "{PRICE_TYPE}", "Цена": {amount}}}'
        for product, amount in ((PRODUCT_A, "0.1"), (PRODUCT_B, "12345678901234567.89"))
    ]
    body = '{"value": [' + ", ".join(rows) + "]}"
    route = entity_route(respx_mock, "GET", "InformationRegister_ЦеныНоменклатуры")
    route.return_value = json_response(200, body)

    small, large = await make_client().fetch_prices()

    assert small.amount == Decimal("0.1")
    assert large.amount == Decimal("12345678901234567.89")


async def test_fetch_prices_converts_period_to_utc(respx_mock: respx.MockRouter) -> None:
    row = {
        "Period": "2025-01-09T00:00:00",
        "Номенклатура_Key": PRODUCT_A,
        "Характеристика_Key": EMPTY_REF,
        "ВидЦены_Key": PRICE_TYPE,
        "Цена": 350,
    }
    route = entity_route(respx_mock, "GET", "InformationRegister_ЦеныНоменклатуры")
    route.return_value = collection([row])

    [price] = await make_client(tz=ZoneInfo("Europe/Moscow")).fetch_prices()

    assert price.period == datetime(2025, 1, 8, 21, 0, tzinfo=UTC)
    assert price.amount == Decimal(350)


async def test_get_order_reads_empty_date_as_none(respx_mock: respx.MockRouter) -> None:
    body = json.dumps(order_row(date="0001-01-01T00:00:00"), ensure_ascii=False)
    route = entity_route(respx_mock, "GET", "Document_ЗаказКлиента")
    route.return_value = json_response(200, body)

    order = await make_client().get_order(ORDER_REF)

    assert order.date is None
    assert request_path(route) == f"{BASE_PATH}Document_ЗаказКлиента(guid'{ORDER_REF}')"


async def test_get_order_converts_date_to_utc(respx_mock: respx.MockRouter) -> None:
    body = json.dumps(order_row(date="2025-02-01T10:30:00"), ensure_ascii=False)
    entity_route(respx_mock, "GET", "Document_ЗаказКлиента").return_value = json_response(200, body)

    order = await make_client().get_order(ORDER_REF)

    assert order.date == datetime(2025, 2, 1, 5, 30, tzinfo=UTC)
    assert order.hub_number == "H-100"
    assert order.status == "НеСогласован"


# --- Error classification --------------------------------------------------------------------


def test_error_texts_cover_codes_0_to_21() -> None:
    assert set(ODATA_ERROR_TEXTS) == set(ERROR_CODES)


@pytest.mark.parametrize("code", ERROR_CODES)
async def test_odata_error_code_is_described(respx_mock: respx.MockRouter, code: str) -> None:
    route = entity_route(respx_mock, "GET", "Catalog_Номенклатура")
    route.return_value = odata_error(400, code, "Текст 1С")

    with pytest.raises(ODataError) as caught:
        await make_client().fetch_products()

    assert caught.value.code == code
    assert caught.value.status == 400
    assert caught.value.server_message == "Текст 1С"
    assert ODATA_ERROR_TEXTS[code] in str(caught.value)
    assert caught.value.retryable is False


async def test_code_20_is_access_error(respx_mock: respx.MockRouter) -> None:
    entity_route(respx_mock, "GET", "Catalog_Номенклатура").return_value = odata_error(500, "20")

    with pytest.raises(ODataAccessError) as caught:
        await make_client().fetch_products()

    assert caught.value.retryable is False


async def test_code_8_hints_publication(respx_mock: respx.MockRouter) -> None:
    entity_route(respx_mock, "GET", "Catalog_Номенклатура").return_value = odata_error(404, "8")

    with pytest.raises(ODataNotFoundError) as caught:
        await make_client().fetch_products()

    assert "OData composition" in str(caught.value)


async def test_404_without_code_hints_publication(respx_mock: respx.MockRouter) -> None:
    route = entity_route(respx_mock, "GET", "Catalog_Номенклатура")
    route.return_value = httpx.Response(404, text="Not Found")

    with pytest.raises(ODataNotFoundError) as caught:
        await make_client().fetch_products()

    assert "OData composition" in str(caught.value)


async def test_code_9_has_no_publication_hint(respx_mock: respx.MockRouter) -> None:
    entity_route(respx_mock, "GET", "Document_ЗаказКлиента").return_value = odata_error(404, "9")

    with pytest.raises(ODataNotFoundError) as caught:
        await make_client().get_order(ORDER_REF)

    assert "OData composition" not in str(caught.value)


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failure_is_not_retried(respx_mock: respx.MockRouter, status: int) -> None:
    route = entity_route(respx_mock, "GET", "Catalog_Номенклатура")
    route.return_value = httpx.Response(status, text="Ошибка аутентификации")

    with pytest.raises(ODataAccessError) as caught:
        await make_client().fetch_products()

    assert caught.value.retryable is False
    assert caught.value.status == status
    assert route.call_count == 1


async def test_html_200_is_retryable_publication_error(
    respx_mock: respx.MockRouter, autojump_clock: object
) -> None:
    page = httpx.Response(
        200, text="<html><body>Вход</body></html>", headers={"Content-Type": "text/html"}
    )
    route = entity_route(respx_mock, "GET", "Catalog_Номенклатура")
    route.return_value = page

    with pytest.raises(ODataResponseError) as caught:
        await make_client(max_attempts=2).fetch_products()

    assert caught.value.retryable is True
    assert "publication" in str(caught.value)
    assert "credentials" in str(caught.value)
    assert route.call_count == 2


async def test_html_without_content_type_is_detected(
    respx_mock: respx.MockRouter, autojump_clock: object
) -> None:
    route = entity_route(respx_mock, "GET", "Catalog_Номенклатура")
    route.return_value = httpx.Response(200, content=b"\n<!DOCTYPE html><html></html>")

    with pytest.raises(ODataResponseError) as caught:
        await make_client(max_attempts=1).fetch_products()

    assert "HTML" in str(caught.value)


async def test_server_error_retried_then_succeeds(
    respx_mock: respx.MockRouter, autojump_clock: object
) -> None:
    route = entity_route(respx_mock, "GET", "Catalog_Номенклатура")
    route.side_effect = [
        httpx.Response(500, text="Internal Server Error"),
        httpx.Response(503, text="Service Unavailable"),
        collection([product_row(PRODUCT_A)]),
    ]

    products = await make_client(max_attempts=3).fetch_products()

    assert [product.ref_key for product in products] == [PRODUCT_A]
    assert route.call_count == 3


async def test_server_error_gives_up_after_max_attempts(
    respx_mock: respx.MockRouter, autojump_clock: object
) -> None:
    route = entity_route(respx_mock, "GET", "Catalog_Номенклатура")
    route.return_value = httpx.Response(500, text="Internal Server Error")

    with pytest.raises(ODataError) as caught:
        await make_client(max_attempts=3).fetch_products()

    assert caught.value.retryable is True
    assert caught.value.status == 500
    assert route.call_count == 3


@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (503, True), (501, False), (400, False)]
)
async def test_status_retry_classification(
    respx_mock: respx.MockRouter, autojump_clock: object, status: int, retryable: bool
) -> None:
    route = entity_route(respx_mock, "GET", "Catalog_Номенклатура")
    route.return_value = httpx.Response(status, text="")

    with pytest.raises(ODataError) as caught:
        await make_client(max_attempts=1).fetch_products()

    assert caught.value.retryable is retryable


@pytest.mark.parametrize(
    "exception",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("peer closed connection"),
    ],
    ids=["read-timeout", "connect-timeout", "refused", "dropped"],
)
async def test_transport_failure_is_retryable(
    respx_mock: respx.MockRouter, autojump_clock: object, exception: Exception
) -> None:
    route = entity_route(respx_mock, "GET", "Catalog_Номенклатура")
    route.side_effect = exception

    with pytest.raises(ODataTransportError) as caught:
        await make_client(max_attempts=2).fetch_products()

    assert caught.value.retryable is True
    assert caught.value.status is None
    assert route.call_count == 2


async def test_timeout_message_names_limit(
    respx_mock: respx.MockRouter, autojump_clock: object
) -> None:
    entity_route(respx_mock, "GET", "Catalog_Номенклатура").side_effect = httpx.ReadTimeout("t")

    with pytest.raises(ConnectorError) as caught:
        await make_client(max_attempts=1, timeout_s=2.5).fetch_products()

    assert "timed out after 2.5 s" in str(caught.value)


async def test_invalid_json_is_response_error(
    respx_mock: respx.MockRouter, autojump_clock: object
) -> None:
    route = entity_route(respx_mock, "GET", "Catalog_Номенклатура")
    route.return_value = json_response(200, '{"value": [')

    with pytest.raises(ODataResponseError):
        await make_client(max_attempts=1).fetch_products()


async def test_missing_field_is_permanent(respx_mock: respx.MockRouter) -> None:
    row = product_row(PRODUCT_A)
    del row["Description"]
    entity_route(respx_mock, "GET", "Catalog_Номенклатура").return_value = collection([row])

    with pytest.raises(ODataResponseError) as caught:
        await make_client().fetch_products()

    assert caught.value.retryable is False
    assert "'Description'" in str(caught.value)


# --- Orders ----------------------------------------------------------------------------------


async def test_find_order_filters_by_number(respx_mock: respx.MockRouter) -> None:
    route = entity_route(respx_mock, "GET", "Document_ЗаказКлиента")
    route.return_value = collection([])

    found = await make_client().find_order("H-1'2")

    assert found is None
    assert route.calls[0].request.url.params["$filter"] == "НомерПоДаннымКлиента eq 'H-1''2'"


async def test_find_order_prefers_live_document(respx_mock: respx.MockRouter) -> None:
    deleted = order_row() | {"Ref_Key": PRODUCT_A, "DeletionMark": True}
    live = order_row()
    entity_route(respx_mock, "GET", "Document_ЗаказКлиента").return_value = collection(
        [deleted, live]
    )

    found = await make_client().find_order("H-100")

    assert found is not None
    assert found.ref_key == ORDER_REF


async def test_create_order_found_sends_no_post(respx_mock: respx.MockRouter) -> None:
    lookup = entity_route(respx_mock, "GET", "Document_ЗаказКлиента")
    lookup.return_value = collection([order_row()])
    create = entity_route(respx_mock, "POST", "Document_ЗаказКлиента")

    order = await make_client().create_order(sample_order())

    assert order.ref_key == ORDER_REF
    assert lookup.call_count == 1
    assert create.call_count == 0


async def test_create_order_posts_when_missing(respx_mock: respx.MockRouter) -> None:
    entity_route(respx_mock, "GET", "Document_ЗаказКлиента").return_value = collection([])
    create = entity_route(respx_mock, "POST", "Document_ЗаказКлиента")
    create.return_value = json_response(201, json.dumps(order_row(), ensure_ascii=False))

    order = await make_client().create_order(sample_order())

    assert order.number == "МС00-000123"
    assert create.call_count == 1


async def test_create_order_body_is_exact(respx_mock: respx.MockRouter) -> None:
    entity_route(respx_mock, "GET", "Document_ЗаказКлиента").return_value = collection([])
    create = entity_route(respx_mock, "POST", "Document_ЗаказКлиента")
    create.return_value = json_response(201, json.dumps(order_row(), ensure_ascii=False))

    await make_client().create_order(sample_order())

    raw = create.calls[0].request.content.decode("utf-8")
    body = json.loads(raw, parse_float=Decimal)
    assert '"СуммаДокумента":700.50' in raw
    assert body["Date"] == "2025-02-01T10:30:00"
    assert body["НомерПоДаннымКлиента"] == "H-100"
    assert body["Товары"][0]["Номенклатура_Key"] == PRODUCT_A
    assert body["Товары"][0]["Характеристика_Key"] == EMPTY_REF
    assert body["Товары"][0]["Цена"] == Decimal("350.25")
    assert body["Товары"][0]["LineNumber"] == "1"
    assert "Иван Петров" in body["Комментарий"]


async def test_create_order_merges_extra_fields(respx_mock: respx.MockRouter) -> None:
    entity_route(respx_mock, "GET", "Document_ЗаказКлиента").return_value = collection([])
    create = entity_route(respx_mock, "POST", "Document_ЗаказКлиента")
    create.return_value = json_response(201, json.dumps(order_row(), ensure_ascii=False))
    client = make_client(order_extra_fields={"Склад_Key": WAREHOUSE, "НомерПоДаннымКлиента": "x"})

    await client.create_order(sample_order())

    body = json.loads(create.calls[0].request.content)
    assert body["Склад_Key"] == WAREHOUSE
    assert body["НомерПоДаннымКлиента"] == "H-100"


async def test_create_order_retry_looks_up_again(
    respx_mock: respx.MockRouter, autojump_clock: object
) -> None:
    lookup = entity_route(respx_mock, "GET", "Document_ЗаказКлиента")
    lookup.side_effect = [collection([]), collection([order_row()])]
    create = entity_route(respx_mock, "POST", "Document_ЗаказКлиента")
    create.side_effect = httpx.ReadTimeout("response lost")

    order = await make_client().create_order(sample_order())

    assert order.ref_key == ORDER_REF
    assert create.call_count == 1
    assert lookup.call_count == 2


async def test_create_order_rejected_is_not_retried(respx_mock: respx.MockRouter) -> None:
    entity_route(respx_mock, "GET", "Document_ЗаказКлиента").return_value = collection([])
    create = entity_route(respx_mock, "POST", "Document_ЗаказКлиента")
    create.return_value = odata_error(400, "4", "Неверное значение свойства")

    with pytest.raises(ODataError) as caught:
        await make_client().create_order(sample_order())

    assert caught.value.code == "4"
    assert create.call_count == 1


async def test_post_document_calls_post_action(respx_mock: respx.MockRouter) -> None:
    route = entity_route(respx_mock, "POST", "Document_ЗаказКлиента")
    route.return_value = httpx.Response(200)

    await make_client().post_document(ORDER_REF)

    assert request_path(route) == f"{BASE_PATH}Document_ЗаказКлиента(guid'{ORDER_REF}')/Post"
    assert route.calls[0].request.url.params["PostingModeOperational"] == "false"


async def test_post_document_rejects_bad_guid(respx_mock: respx.MockRouter) -> None:
    route = entity_route(respx_mock, "POST", "Document_ЗаказКлиента")

    with pytest.raises(ValueError):
        await make_client().post_document("12345")

    assert route.call_count == 0


async def test_given_client_is_not_closed(respx_mock: respx.MockRouter) -> None:
    http = httpx.AsyncClient()
    client = ODataClient(
        ODataConfig(base_url=BASE, username="hub", password="secret", tz=YEKATERINBURG), client=http
    )

    await client.aclose()

    assert http.is_closed is False
    await http.aclose()


async def test_html_200_on_create_is_retryable(
    respx_mock: respx.MockRouter, autojump_clock: object
) -> None:
    lookup = entity_route(respx_mock, "GET", "Document_ЗаказКлиента")
    lookup.return_value = collection([])
    create = entity_route(respx_mock, "POST", "Document_ЗаказКлиента")
    create.return_value = httpx.Response(
        200, text="<html><body>Обновление</body></html>", headers={"Content-Type": "text/html"}
    )

    with pytest.raises(ODataResponseError) as caught:
        await make_client(max_attempts=2).create_order(sample_order())

    assert caught.value.retryable is True
    assert "HTML page" in str(caught.value)
    assert create.call_count == 2


async def test_json_200_on_create_is_not_retried(respx_mock: respx.MockRouter) -> None:
    lookup = entity_route(respx_mock, "GET", "Document_ЗаказКлиента")
    lookup.return_value = collection([])
    create = entity_route(respx_mock, "POST", "Document_ЗаказКлиента")
    create.return_value = json_response(200, json.dumps(order_row()))

    with pytest.raises(ODataError) as caught:
        await make_client().create_order(sample_order())

    assert caught.value.retryable is False
    assert create.call_count == 1
