"""Orders through the API and back from 1C over the sale exchange, on a real node."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from lxml import etree

from connectors.commerceml.model import OrderDocument
from connectors.commerceml.writer import render_status_updates
from tentorium_hub.node import NodeContext

from hubtest import RawExchange, add_commerceml_branch, upload_catalog

CREAM = "a1000000-0000-4000-8000-000000000001"
BALM = "a1000000-0000-4000-8000-000000000002"


async def _branch_with_catalog(node: NodeContext) -> str:
    login = await add_commerceml_branch(node)
    await upload_catalog(node, login)
    return login


def _order(**overrides: Any) -> dict[str, Any]:
    body = {
        "branch": "MSK01",
        "customer": {"id": "D100200", "name": "Иванова Анна", "phone": "+7 900 000-00-00"},
        "lines": [{"offer_id": CREAM, "quantity": 2}, {"offer_id": BALM, "quantity": 1}],
        "delivery_cost": "250.00",
    }
    body.update(overrides)
    return body


async def _count(node: NodeContext, table: str) -> int:
    return int(await node.db.run(lambda c: c.fetchval(f"SELECT count(*) FROM {table}")))


async def test_products_list_prices_and_stock(node: NodeContext, api: httpx.AsyncClient) -> None:
    await _branch_with_catalog(node)
    page = (await api.get("/api/v1/products", params={"branch": "MSK01"})).json()
    cream = next(p for p in page["items"] if p["external_id"] == CREAM)
    assert cream["price"] == "349.90"
    assert cream["old_price"] == "1249.50"
    assert cream["stock"] == "7"
    assert cream["group"]["name"] == "Мёд и продукты пчеловодства"


async def test_order_total_and_outbox(node: NodeContext, api: httpx.AsyncClient) -> None:
    await _branch_with_catalog(node)
    response = await api.post("/api/v1/orders", json=_order(), headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["total"] == "1461.80"  # 2 x 349.90 + 512.00 + 250.00 delivery
    assert order["status"] == "accepted"
    assert await _count(node, "outbox") == 1


async def test_same_key_same_body_returns_same_order(
    node: NodeContext, api: httpx.AsyncClient
) -> None:
    await _branch_with_catalog(node)
    first = await api.post("/api/v1/orders", json=_order(), headers={"Idempotency-Key": "k-2"})
    second = await api.post("/api/v1/orders", json=_order(), headers={"Idempotency-Key": "k-2"})
    assert first.status_code == 201
    assert second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert await _count(node, "orders") == 1


async def test_same_key_other_body_is_409(node: NodeContext, api: httpx.AsyncClient) -> None:
    await _branch_with_catalog(node)
    await api.post("/api/v1/orders", json=_order(), headers={"Idempotency-Key": "k-3"})
    other = await api.post(
        "/api/v1/orders", json=_order(comment="другой"), headers={"Idempotency-Key": "k-3"}
    )
    assert other.status_code == 409
    assert "Idempotency-Key" in other.json()["detail"]
    assert await _count(node, "orders") == 1


async def test_missing_idempotency_key_is_400(node: NodeContext, api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/orders", json=_order())
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_missing"


async def test_invalid_json_is_400(node: NodeContext, api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/orders",
        content=b"{not json",
        headers={"Idempotency-Key": "k-4", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_negative_quantity_names_field(node: NodeContext, api: httpx.AsyncClient) -> None:
    body = _order(lines=[{"offer_id": CREAM, "quantity": -1}])
    response = await api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "k-5"})
    problem = response.json()
    assert response.status_code == 422
    assert problem["errors"][0]["field"] == "lines.0.quantity"


async def test_unknown_offer_records_nothing(node: NodeContext, api: httpx.AsyncClient) -> None:
    await _branch_with_catalog(node)
    body = _order(
        lines=[{"offer_id": CREAM, "quantity": 1}, {"offer_id": "no-such", "quantity": 1}]
    )
    response = await api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "k-6"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "lines[1].offer_id"
    assert "no-such" in response.json()["detail"]
    assert await _count(node, "orders") == 0
    assert await _count(node, "outbox") == 0


async def test_english_detail_on_request(node: NodeContext, api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/orders/TH-9999999", headers={"Accept-Language": "en"})
    assert response.status_code == 404
    assert response.json()["detail"].startswith("Order 'TH-9999999' not found")


async def _query_numbers(client: RawExchange) -> list[str]:
    body = (await client.call("query")).content
    root = etree.fromstring(body)
    return [el.text for el in root.iter() if etree.QName(el).localname == "Номер"]


async def test_query_repeats_until_success(node: NodeContext, api: httpx.AsyncClient) -> None:
    await _branch_with_catalog(node)
    placed = (
        await api.post("/api/v1/orders", json=_order(), headers={"Idempotency-Key": "q-1"})
    ).json()
    broken = RawExchange(node, "msk01", "sale")
    await broken.login_and_init()
    first = await _query_numbers(broken)
    await broken.aclose()  # the session breaks before mode=success
    client = RawExchange(node, "msk01", "sale")
    await client.login_and_init()
    again = await _query_numbers(client)
    assert (await client.call("success")).text.startswith("success")
    after_success = await _query_numbers(client)
    await client.aclose()
    assert first == [placed["number"]]
    assert again == [placed["number"]]
    assert after_success == []
    stored = (await api.get(f"/api/v1/orders/{placed['id']}")).json()
    assert stored["status"] == "delivered"


async def test_status_upload_confirms_order(node: NodeContext, api: httpx.AsyncClient) -> None:
    await _branch_with_catalog(node)
    placed = (
        await api.post("/api/v1/orders", json=_order(), headers={"Idempotency-Key": "s-1"})
    ).json()
    client = RawExchange(node, "msk01", "sale")
    await client.login_and_init()
    await client.call("query")
    await client.call("success")
    update = OrderDocument(
        site_id=placed["number"],
        number=placed["number"],
        date=None,
        currency="RUB",
        total=None,
        number_1c="ЦБ-000042",
        date_1c=datetime.now(UTC),
        posted=True,
        status_text="Открыт",
    )
    document = render_status_updates([update], tz=ZoneInfo("Europe/Moscow"))
    reply = (await client.call("file", filename="orders-1.xml", body=document)).text
    await client.aclose()
    stored = (await api.get(f"/api/v1/orders/{placed['number']}")).json()
    assert reply.startswith("success"), reply
    assert stored["status"] == "confirmed"
    assert stored["number_1c"] == "ЦБ-000042"
    assert [h["status"] for h in stored["history"]] == ["accepted", "delivered", "confirmed"]


async def test_availability_per_warehouse(node: NodeContext, api: httpx.AsyncClient) -> None:
    await _branch_with_catalog(node)
    response = await api.get(
        "/api/v1/availability", params=[("branch", "MSK01"), ("offer", CREAM), ("offer", "nope")]
    )
    body = response.json()
    assert response.status_code == 200
    assert body["items"][CREAM]["quantity"] == "7"
    assert body["items"][CREAM]["warehouses"] == [
        {"id": "d0000000-0000-4000-8000-000000000001", "name": "Склад Москва", "quantity": "7"}
    ]
    assert body["unknown_offers"] == ["nope"]


async def test_status_change_queues_notification(node: NodeContext, api: httpx.AsyncClient) -> None:
    await _branch_with_catalog(node)
    headers = {"Idempotency-Key": "n-1"}
    placed = (await api.post("/api/v1/orders", json=_order(), headers=headers)).json()
    client = RawExchange(node, "msk01", "sale")
    await client.login_and_init()
    await client.call("query")
    await client.call("success")
    await client.aclose()
    rows = await node.db.run(
        lambda c: c.fetch("SELECT event, payload FROM notifications ORDER BY id")
    )
    events = [(r["event"], json.loads(r["payload"])["status"]) for r in rows]
    assert ("order.status_changed", "delivered") in events
    assert json.loads(rows[0]["payload"])["order"] == placed["number"]
