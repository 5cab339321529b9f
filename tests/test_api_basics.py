"""The HTTP API over real loopback HTTP against a real node and PostgreSQL."""

from __future__ import annotations

import httpx

from tentorium_hub.node import NodeContext


async def test_healthz_answers_ok(api: httpx.AsyncClient) -> None:
    response = await api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_ready(api: httpx.AsyncClient) -> None:
    response = await api.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


async def test_metrics_exposes_hub_series(api: httpx.AsyncClient) -> None:
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert "hub_mailbox_depth" in response.text


async def test_openapi_lists_order_endpoint(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    assert "/api/v1/orders" in document["paths"]
    assert "OrderCreate" in document["components"]["schemas"]


async def test_products_without_token_is_401(node: NodeContext) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.http_port}") as client:
        response = await client.get("/api/v1/products", params={"branch": "X"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "Bearer" in response.json()["detail"]
