"""The project's 1C emulator against the real `/1c/exchange`: catalogs, pictures, orders."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from connectors.emulator.catalog import picture_paths, write_catalog
from connectors.emulator.commerceml_client import CommerceMLEmulator
from tentorium_hub.node import NodeContext

from hubtest import PASSWORD, add_commerceml_branch


def _emulator(
    node: NodeContext, login: str, http: httpx.AsyncClient, **kwargs: object
) -> CommerceMLEmulator:
    return CommerceMLEmulator(
        base_url=f"http://127.0.0.1:{node.http_port}/1c/exchange",
        login=login,
        password=PASSWORD,
        http=http,
        progress_pause_s=0.05,
        **kwargs,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("zip_enabled", [True, False], ids=["zip", "no-zip"])
async def test_catalog_with_pictures(
    node: NodeContext, api: httpx.AsyncClient, tmp_path: Path, zip_enabled: bool
) -> None:
    login = await add_commerceml_branch(node, zip_enabled=zip_enabled, file_limit=4096)
    files = write_catalog(tmp_path / "export", products=30, seed=11, pictures_every=5)
    pictures = picture_paths(tmp_path / "export")
    async with httpx.AsyncClient(timeout=30) as http:
        results = await _emulator(node, login, http).exchange_catalog(files, pictures=pictures)
    assert [r.status for r in results] == ["success", "success"], results
    page = (await api.get("/api/v1/products", params={"branch": "MSK01", "limit": 100})).json()
    with_pictures = [p for p in page["items"] if p["pictures"]]
    assert len(page["items"]) == 30
    assert len(with_pictures) == len(pictures)
    url = with_pictures[0]["pictures"][0]
    served = await api.get(url)
    name = url.rsplit("/", 1)[1]
    original = next(p for p in pictures if p.name == name)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.content == original.read_bytes()


async def test_picture_path_traversal_is_404(node: NodeContext, api: httpx.AsyncClient) -> None:
    response = await api.get("/pictures/MSK01/..%2F..%2Fpg%2Fpostgresql.conf")
    assert response.status_code == 404


@pytest.mark.parametrize("version", [None, "2.08", "3.1"], ids=["classic", "2.08", "3.1"])
async def test_sale_exchange_confirms_orders(
    node: NodeContext, api: httpx.AsyncClient, tmp_path: Path, version: str | None
) -> None:
    login = await add_commerceml_branch(node)
    files = write_catalog(tmp_path / "export", products=10, seed=5)
    async with httpx.AsyncClient(timeout=30) as http:
        one_c = _emulator(node, login, http, protocol_version=version)
        assert all(r.status == "success" for r in await one_c.exchange_catalog(files))
        page = (await api.get("/api/v1/products", params={"branch": "MSK01"})).json()
        offer = next(v["offer_id"] for p in page["items"] for v in p["variants"] if v["price"])
        numbers = []
        for index in range(3):
            body = {
                "branch": "MSK01",
                "customer": {"name": "Кузнецов Сергей"},
                "lines": [{"offer_id": offer, "quantity": index + 1}],
            }
            created = await api.post(
                "/api/v1/orders", json=body, headers={"Idempotency-Key": f"sale-{index}"}
            )
            numbers.append(created.json()["number"])
        first = await one_c.exchange_sale()
        second = await one_c.exchange_sale(status_dialect="elements")
    statuses = [(await api.get(f"/api/v1/orders/{n}")).json()["status"] for n in numbers]
    assert first.new == 3
    assert first.statuses_sent == 3
    assert second.offered == 0
    assert one_c.duplicates == 0
    assert statuses == ["confirmed"] * 3
