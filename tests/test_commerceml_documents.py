"""Payments and shipments 1C sends with an order: 3.1 containers, 2.10 subordinate documents."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from connectors.commerceml.model import (
    CatalogItem,
    DocumentKind,
    OrderDocument,
    SubordinateDocument,
    SubordinateKind,
)
from connectors.commerceml.parser import detect_kind, iter_document
from tentorium_hub.errors import CommerceMLError
from tentorium_hub.node import NodeContext

from hubtest import RawExchange, add_commerceml_branch, upload_catalog

FIXTURES = Path(__file__).parent / "fixtures" / "commerceml"
MSK = timezone(timedelta(hours=3), "MSK")
CONTAINER = FIXTURES / "documents_container_3.1.xml"
DELETED_PAYMENT = FIXTURES / "documents_deleted_payment_3.1.xml"
NESTED = FIXTURES / "documents_subordinate_2.10.xml"


def _parse(source: Path | str) -> list[CatalogItem]:
    if isinstance(source, str):
        return list(iter_document(io.BytesIO(source.encode("utf-8")), tz=MSK))
    return list(iter_document(source, tz=MSK))


def _orders(source: Path | str) -> dict[str, OrderDocument]:
    return {item.site_id: item for item in _parse(source) if isinstance(item, OrderDocument)}


def _container(*documents: str, version: str = "3.1") -> str:
    body = "".join(documents)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<КоммерческаяИнформация xmlns="urn:1C.ru:commerceml_3" ВерсияСхемы="{version}">'
        f"<Контейнер>{body}</Контейнер></КоммерческаяИнформация>"
    )


def _order_xml(site_id: str, extra: str = "") -> str:
    return (
        f"<Документ><Ид>{site_id}</Ид><Номер>{site_id}</Номер><Дата>2024-05-07</Дата>"
        f"<ХозОперация>Заказ товара</ХозОперация>{extra}</Документ>"
    )


def _payment_xml(requisites: dict[str, str], *, amount: str = "100.00") -> str:
    values = "".join(
        f"<ЗначениеРеквизита><Наименование>{name}</Наименование><Значение>{value}</Значение>"
        "</ЗначениеРеквизита>"
        for name, value in requisites.items()
    )
    return (
        "<Документ><Ид>PAY-1</Ид><Номер1С>ПП-1</Номер1С><Дата>2024-05-08</Дата>"
        "<Время>10:00:00</Время><ХозОперация>Выплата безналичных денег</ХозОперация>"
        f"<Сумма>{amount}</Сумма><ЗначенияРеквизитов>{values}</ЗначенияРеквизитов></Документ>"
    )


# --------------------------------------------------------------------------------------
# 3.1 Контейнер


def test_container_posted_payment_sets_paid_at() -> None:
    order = _orders(CONTAINER)["2001"]
    assert order.paid_at == datetime(2024, 5, 8, 7, 15, tzinfo=UTC)


def test_container_unflagged_shipment_sets_shipped_at() -> None:
    order = _orders(CONTAINER)["2001"]
    assert order.shipped_at == datetime(2024, 5, 9, 13, 0, tzinfo=UTC)


def test_container_keeps_subordinate_numbers() -> None:
    order = _orders(CONTAINER)["2001"]
    assert [s.number_1c for s in order.subordinates] == ["ПП-000017", "ЭК-000003", "РТ-000055"]
    assert order.subordinates[2].number == "55"


def test_container_subordinate_fields() -> None:
    payment = _orders(CONTAINER)["2001"].subordinates[0]
    assert payment.kind is SubordinateKind.PAYMENT
    assert payment.external_id == "a5000000-0000-4000-8000-000000000001"
    assert payment.operation == "Выплата безналичных денег"
    assert payment.amount == Decimal("1049.70")
    assert payment.posted is True
    assert payment.basis_id == "2001"
    assert payment.effective is True


def test_container_unposted_payment_not_counted() -> None:
    card = _orders(CONTAINER)["2001"].subordinates[1]
    assert card.operation == "Эквайринговая операция"
    assert card.posted is False
    assert card.effective is False


def test_container_unknown_operation_skipped() -> None:
    with capture_logs() as logs:
        order = _orders(CONTAINER)["2001"]
    skipped = [entry for entry in logs if entry["event"] == "commerceml.document_skipped"]
    assert [s.operation for s in order.subordinates if s.operation == "Счет на оплату"] == []
    assert [entry["operation"] for entry in skipped] == ["Счет на оплату"]


def test_container_order_requisite_date_wins() -> None:
    order = _orders(CONTAINER)["2002"]
    assert order.paid_at == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert order.subordinates[0].number_1c == "ПКО-000040"


def test_container_without_order_yields_status_only() -> None:
    order = _orders(CONTAINER)["2003"]
    assert order.number is None
    assert order.total is None
    assert order.paid_at == datetime(2024, 5, 4, 10, 30, tzinfo=UTC)
    assert order.shipped_at is None


def test_container_basis_picks_order() -> None:
    orders = _orders(CONTAINER)
    assert orders["2004"].subordinates == ()
    assert orders["2004"].paid_at is None
    assert [s.number_1c for s in orders["2005"].subordinates] == ["ПП-000018"]
    assert orders["2005"].paid_at == datetime(2024, 5, 5, 21, 0, tzinfo=UTC)


def test_container_orders_in_file_order() -> None:
    orders = [item for item in _parse(CONTAINER) if isinstance(item, OrderDocument)]
    assert [order.site_id for order in orders] == ["2001", "2002", "2003", "2004", "2005"]


def test_container_unmatched_basis_skipped() -> None:
    xml = _container(
        _order_xml("1"),
        _order_xml("2"),
        _payment_xml({}).replace("</Сумма>", "</Сумма><Основание>9</Основание>"),
    )
    with capture_logs() as logs:
        orders = _orders(xml)
    events = [entry["event"] for entry in logs]
    assert orders["1"].subordinates == ()
    assert orders["2"].subordinates == ()
    assert "commerceml.subordinate_unattached" in events


def test_deleted_payment_does_not_mark_paid() -> None:
    order = _orders(DELETED_PAYMENT)["2006"]
    assert order.paid_at is None
    assert order.subordinates[0].deleted is True
    assert order.subordinates[0].posted is True


@pytest.mark.parametrize(
    "requisites",
    [
        pytest.param({"Отменен": "true"}, id="cancelled"),
        pytest.param({"Оплачен": "false"}, id="not-completed"),
        pytest.param({"ПометкаУдаления": "true"}, id="deleted-requisite"),
        pytest.param({"Проведен": "ложь"}, id="unposted-russian"),
    ],
)
def test_ineffective_payment_not_paid(requisites: dict[str, str]) -> None:
    order = _orders(_container(_order_xml("7"), _payment_xml(requisites)))["7"]
    assert order.paid_at is None
    assert order.subordinates[0].effective is False


def test_payment_completed_marks_paid() -> None:
    order = _orders(_container(_order_xml("7"), _payment_xml({"Оплачен": "true"})))["7"]
    assert order.paid_at == datetime(2024, 5, 8, 7, 0, tzinfo=UTC)


def test_payment_bad_amount_names_document() -> None:
    xml = _container(_order_xml("7"), _payment_xml({}, amount="12a"))
    with pytest.raises(CommerceMLError) as caught:
        _parse(xml)
    assert "pay-1" in str(caught.value)
    assert "12a" in caught.value.message_ru


def test_payment_without_id_fails() -> None:
    xml = _container(_order_xml("7"), _payment_xml({}).replace("<Ид>PAY-1</Ид>", ""))
    with pytest.raises(CommerceMLError) as caught:
        _parse(xml)
    assert "без Ид" in caught.value.message_ru


def test_root_payment_document_skipped() -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<КоммерческаяИнформация ВерсияСхемы="2.09">'
        f"{_payment_xml({})}</КоммерческаяИнформация>"
    )
    assert [item for item in _parse(xml) if isinstance(item, OrderDocument)] == []


def test_detect_kind_container_documents() -> None:
    assert detect_kind(CONTAINER, tz=MSK) is DocumentKind.ORDERS


# --------------------------------------------------------------------------------------
# 2.10 ПодчиненныеДокументы


def test_nested_posted_payment_sets_paid_at() -> None:
    order = _orders(NESTED)["3001"]
    assert order.paid_at == datetime(2024, 5, 8, 6, 45, tzinfo=UTC)


def test_nested_unposted_shipment_not_shipped() -> None:
    order = _orders(NESTED)["3001"]
    assert order.shipped_at is None
    assert [s.number for s in order.subordinates] == ["ПКО-000012", "РТ-000031"]


def test_nested_shipment_sets_shipped_at() -> None:
    order = _orders(NESTED)["3002"]
    assert order.shipped_at == datetime(2024, 5, 9, 14, 20, tzinfo=UTC)
    assert order.paid_at is None


def test_nested_refund_skipped() -> None:
    order = _orders(NESTED)["3002"]
    assert [s.kind for s in order.subordinates] == [SubordinateKind.SHIPMENT]


def test_nested_documents_in_container_order_merge() -> None:
    nested = (
        "<ПодчиненныеДокументы><ПодчиненныйДокумент><Ид>S-1</Ид><Дата>2024-05-09</Дата>"
        "<ХозОперация>Отпуск товара</ХозОперация></ПодчиненныйДокумент></ПодчиненныеДокументы>"
    )
    order = _orders(_container(_order_xml("7", nested), _payment_xml({})))["7"]
    kinds = [s.kind for s in order.subordinates]
    assert kinds == [SubordinateKind.SHIPMENT, SubordinateKind.PAYMENT]
    assert order.shipped_at == datetime(2024, 5, 8, 21, 0, tzinfo=UTC)


def test_subordinate_effective_without_flags() -> None:
    document = SubordinateDocument(
        kind=SubordinateKind.PAYMENT, external_id="x", operation="Выплата наличных денег"
    )
    assert document.effective is True


# --------------------------------------------------------------------------------------
# Through /1c/exchange

CREAM = "a1000000-0000-4000-8000-000000000001"


async def _placed_order(node: NodeContext, api: httpx.AsyncClient) -> str:
    """Import the catalog, place an order and let 1C fetch it; return its hub number."""
    login = await add_commerceml_branch(node)
    await upload_catalog(node, login)

    body: dict[str, Any] = {
        "branch": "MSK01",
        "customer": {"id": "D100200", "name": "Иванова Анна"},
        "lines": [{"offer_id": CREAM, "quantity": 3}],
    }
    placed = await api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "doc-1"})
    assert placed.status_code == 201, placed.text
    sale = RawExchange(node, login, "sale")
    await sale.login_and_init()
    await sale.call("query")
    await sale.call("success")
    await sale.aclose()
    return str(placed.json()["number"])


async def _upload_orders(node: NodeContext, document: str) -> str:
    sale = RawExchange(node, "msk01", "sale")
    await sale.login_and_init()
    reply = (await sale.call("file", filename="orders.xml", body=document.encode())).text
    await sale.aclose()
    return reply


def _fixture_for(path: Path, site_id: str, number: str) -> str:
    # The fixture's order Ид is replaced by the number the hub gave the order.
    text = path.read_text("utf-8")
    return text.replace(f"<Ид>{site_id}</Ид>", f"<Ид>{number}</Ид>")


async def test_exchange_container_marks_order_shipped(
    node: NodeContext, api: httpx.AsyncClient
) -> None:
    number = await _placed_order(node, api)
    reply = await _upload_orders(node, _fixture_for(CONTAINER, "2001", number))
    stored = (await api.get(f"/api/v1/orders/{number}")).json()
    assert reply.startswith("success"), reply
    assert stored["status"] == "shipped"
    assert stored["number_1c"] == "ЗК-000201"
    assert [h["status"] for h in stored["history"]] == ["accepted", "delivered", "shipped"]
    assert stored["history"][-1]["note"] == "1C payment ПП-000017, shipment РТ-000055"


async def test_exchange_nested_payment_marks_order_paid(
    node: NodeContext, api: httpx.AsyncClient
) -> None:
    number = await _placed_order(node, api)
    reply = await _upload_orders(node, _fixture_for(NESTED, "3001", number))
    stored = (await api.get(f"/api/v1/orders/{number}")).json()
    assert reply.startswith("success"), reply
    assert stored["status"] == "paid"
    assert stored["history"][-1]["note"] == "1C payment ПКО-000012"


async def test_exchange_deleted_payment_leaves_order_unpaid(
    node: NodeContext, api: httpx.AsyncClient
) -> None:
    number = await _placed_order(node, api)
    reply = await _upload_orders(node, _fixture_for(DELETED_PAYMENT, "2006", number))
    stored = (await api.get(f"/api/v1/orders/{number}")).json()
    assert reply.startswith("success"), reply
    assert stored["status"] == "delivered"
    assert [h["status"] for h in stored["history"]] == ["accepted", "delivered"]


async def test_exchange_payment_without_order_marks_paid(
    node: NodeContext, api: httpx.AsyncClient
) -> None:
    number = await _placed_order(node, api)
    payment = _payment_xml({"Проведен": "true"}).replace(
        "</Сумма>", f"</Сумма><Основание>{number}</Основание>"
    )
    reply = await _upload_orders(node, _container(payment))
    stored = (await api.get(f"/api/v1/orders/{number}")).json()
    assert reply.startswith("success"), reply
    assert stored["status"] == "paid"
