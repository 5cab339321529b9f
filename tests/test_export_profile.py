"""A branch's order export profile: chosen through the API and CLI, obeyed by `mode=query`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import trio
from lxml import etree

from tentorium_hub.branches import changed_branch, new_branch
from tentorium_hub.cli import main as cli_main
from tentorium_hub.errors import ValidationError
from tentorium_hub.node import NodeContext
from tentorium_hub.storage import branches as branches_db

from hubtest import PASSWORD, RawExchange, upload_catalog

CREAM = "a1000000-0000-4000-8000-000000000001"
BALM = "a1000000-0000-4000-8000-000000000002"
ORDER = {
    "branch": "EKB01",
    "customer": {"name": "Лебедева Елена"},
    "discount": "100.00",
    "delivery_cost": "250.00",
    "lines": [{"offer_id": CREAM, "quantity": 3}, {"offer_id": BALM, "quantity": 1}],
}
# 3 x 349.90 + 512.00 = 1561.70 of goods, less 100.00 discount, plus 250.00 delivery.
TOTAL = Decimal("1711.70")


def _branch(**export: str) -> object:
    return new_branch(
        code="X",
        name="X",
        kind="commerceml",
        exchange_login="x",
        exchange_password="password-1",
        **export,  # type: ignore[arg-type]
    )


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "style"), [("2.05", "requisites"), ("2.08", "requisites"), ("2.10", "elements")]
)
def test_default_style_follows_version(version: str, style: str) -> None:
    branch = _branch(export_schema_version=version)
    assert branch.export_style == style  # type: ignore[attr-defined]


def test_elements_style_before_209_rejected() -> None:
    with pytest.raises(ValidationError, match=r"2\.09 or later") as caught:
        _branch(export_schema_version="2.05", export_style="elements")
    assert caught.value.field == "export_style"


@pytest.mark.parametrize(
    ("field", "value"),
    [("export_delivery", "free"), ("export_discounts", "none"), ("export_delivery_id", "  ")],
)
def test_invalid_export_option_names_field(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _branch(**{field: value})
    assert caught.value.field == field


def test_version_change_resets_style() -> None:
    branch = _branch(export_schema_version="3.1")
    changed = changed_branch(branch, {"export_schema_version": "2.05"})  # type: ignore[arg-type]
    assert changed.export_style == "requisites"


# -- end to end -----------------------------------------------------------------------


async def _add_branch(api: httpx.AsyncClient, **export: str) -> None:
    body = {
        "code": "EKB01",
        "name": "Филиал Екатеринбург",
        "kind": "commerceml",
        "time_zone": "Asia/Yekaterinburg",
        "exchange_login": "ekb01",
        "exchange_password": PASSWORD,
        "zip_enabled": False,
        **export,
    }
    response = await api.post("/api/v1/branches", json=body)
    assert response.status_code == 201, response.text


async def _query(node: NodeContext) -> etree._Element:
    """Log in as 1C for a new sale session and return the root of the `query` reply."""
    sale = RawExchange(node, "ekb01", "sale")
    await sale.login_and_init()
    reply = await sale.call("query")
    await sale.aclose()
    assert reply.status_code == 200, reply.text
    return etree.fromstring(reply.content)


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _children(element: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in element if _local(child) == name]


def _text(element: etree._Element, *path: str) -> str | None:
    for name in path:
        found = _children(element, name)
        if not found:
            return None
        element = found[0]
    return element.text


def _requisites(document: etree._Element) -> dict[str, str | None]:
    (container,) = _children(document, "ЗначенияРеквизитов")
    return {_text(e, "Наименование") or "": _text(e, "Значение") for e in container}


async def _place_order(api: httpx.AsyncClient) -> None:
    placed = await api.post("/api/v1/orders", json=ORDER, headers={"Idempotency-Key": "prof-1"})
    assert placed.status_code == 201, placed.text
    assert Decimal(placed.json()["total"]) == TOTAL


async def test_query_follows_31_profile(node: NodeContext, api: httpx.AsyncClient) -> None:
    await _add_branch(
        api,
        export_schema_version="3.1",
        export_delivery="requisite",
        export_discounts="document",
    )
    await upload_catalog(node, "ekb01")
    await _place_order(api)

    root = await _query(node)
    (container,) = _children(root, "Контейнер")
    (document,) = _children(container, "Документ")
    goods = _children(_children(document, "Товары")[0], "Товар")
    amounts = [Decimal(_text(line, "Сумма") or "") for line in goods]
    discount = Decimal(_text(document, "Скидки", "Скидка", "Сумма") or "")

    assert root.get("ВерсияСхемы") == "3.1"
    assert _text(document, "ПометкаУдаления") == "false"
    assert [_text(line, "Ид") for line in goods] == [CREAM, BALM]
    assert amounts == [Decimal("1049.70"), Decimal("512.00")]
    assert discount == Decimal("100.00")
    assert _requisites(document)["Стоимость доставки"] == "250.00"
    assert Decimal(_text(document, "Сумма") or "") == TOTAL
    assert sum(amounts) - discount + Decimal("250.00") == TOTAL


async def test_profile_change_applies_to_next_query(
    node: NodeContext, api: httpx.AsyncClient
) -> None:
    await _add_branch(api, export_schema_version="3.1")
    await upload_catalog(node, "ekb01")
    await _place_order(api)

    response = await api.patch(
        "/api/v1/branches/EKB01",
        json={"export_schema_version": "2.05", "export_delivery_id": "svc-delivery"},
    )
    assert response.status_code == 200, response.text
    settings = response.json()
    root = await _query(node)
    (document,) = _children(root, "Документ")
    goods = _children(_children(document, "Товары")[0], "Товар")
    amounts = [Decimal(_text(line, "Сумма") or "") for line in goods]

    assert settings["export_style"] == "requisites"
    assert "exchange_password_hash" not in settings
    assert root.get("ВерсияСхемы") == "2.05"
    assert _children(root, "Контейнер") == []
    assert _children(document, "ПометкаУдаления") == []
    assert [_text(line, "Ид") for line in goods] == [CREAM, BALM, "svc-delivery"]
    assert sum(amounts) == TOTAL
    assert _text(goods[0], "Скидки", "Скидка", "УчтеноВСумме") == "true"


async def test_patch_invalid_style_is_422(node: NodeContext, api: httpx.AsyncClient) -> None:
    await _add_branch(api)
    response = await api.patch(
        "/api/v1/branches/EKB01",
        json={"export_style": "elements"},
        headers={"Accept-Language": "en"},
    )
    stored = await node.db.run(branches_db.get_branch, "EKB01")

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "export_style"
    assert "2.09" in response.json()["errors"][0]["message"]
    assert stored.export_style == "requisites"


async def test_patch_unknown_branch_is_404(api: httpx.AsyncClient) -> None:
    response = await api.patch("/api/v1/branches/NOPE", json={"export_discounts": "document"})
    assert response.status_code == 404
    assert response.json()["code"] == "branch_not_found"


async def test_patch_unknown_field_is_422(node: NodeContext, api: httpx.AsyncClient) -> None:
    await _add_branch(api)
    response = await api.patch("/api/v1/branches/EKB01", json={"kind": "odata"})
    assert response.status_code == 422


async def _cli_update(database_url: str, data_dir: Path, *options: str) -> int:
    """Run `tentorium-hub branches update --code EKB01 OPTIONS` against the test database."""
    argv = ["--data-dir", str(data_dir), "branches", "update", "--code", "EKB01", *options]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", database_url)
        return await trio.to_thread.run_sync(cli_main, argv)


async def test_cli_update_changes_profile(
    node: NodeContext,
    api: httpx.AsyncClient,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _add_branch(api)
    code = await _cli_update(
        database_url, tmp_path, "--export-version", "2.10", "--export-discounts", "document"
    )
    stored = await node.db.run(branches_db.get_branch, "EKB01")

    assert code == 0
    assert "style=elements" in capsys.readouterr().out
    assert stored.export_schema_version == "2.10"
    assert stored.export_style == "elements"
    assert stored.export_discounts == "document"
    assert stored.export_delivery == "line"


async def test_cli_error_names_options(
    node: NodeContext,
    api: httpx.AsyncClient,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _add_branch(api)
    code = await _cli_update(database_url, tmp_path, "--export-style", "elements")
    error = capsys.readouterr().err

    assert code == 1
    assert "--export-style 'elements' needs CommerceML 2.09" in error
    assert "set --export-version to 2.09" in error
    assert "export_style" not in error
