"""`/1c/exchange` at the protocol level: real HTTP, real PostgreSQL, bad inputs included."""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from tentorium_hub.node import NodeContext

from hubtest import FIXTURES, RawExchange, add_commerceml_branch, basic

IMPORT = (FIXTURES / "exchange" / "import.xml").read_bytes()
OFFERS = (FIXTURES / "exchange" / "offers.xml").read_bytes()


async def _product_count(ctx: NodeContext, branch: str = "MSK01") -> int:
    return int(
        await ctx.db.run(
            lambda c: c.fetchval("SELECT count(*) FROM products WHERE branch_code = $1", branch)
        )
    )


async def test_checkauth_twice_both_succeed(node: NodeContext) -> None:
    login = await add_commerceml_branch(node)
    client = RawExchange(node, login)
    first = (await client.call("checkauth")).text.splitlines()
    second = (await client.call("checkauth")).text.splitlines()
    await client.aclose()
    assert first[0] == "success"
    assert second[0] == "success"
    assert first[1] == second[1] == "TH_EXCHANGE"
    assert second[3].startswith("sessid=")
    assert second[4].startswith("timestamp=")


async def test_checkauth_wrong_password_fails_in_russian(node: NodeContext) -> None:
    login = await add_commerceml_branch(node)
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"http://127.0.0.1:{node.http_port}/1c/exchange",
            params={"type": "catalog", "mode": "checkauth"},
            headers={"Authorization": basic(login, "wrong-password")},
        )
    lines = response.text.splitlines()
    assert response.status_code == 200
    assert lines[0] == "failure"
    assert "Неверный логин или пароль" in lines[1]


async def test_request_without_session_fails(node: NodeContext) -> None:
    await add_commerceml_branch(node)
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"http://127.0.0.1:{node.http_port}/1c/exchange",
            params={"type": "catalog", "mode": "init"},
        )
    assert response.text.splitlines()[0] == "failure"


async def test_init_reports_zip_and_file_limit(node: NodeContext) -> None:
    login = await add_commerceml_branch(node, zip_enabled=True, file_limit=8192)
    client = RawExchange(node, login)
    lines = await client.login_and_init()
    await client.aclose()
    assert lines == ["zip=yes", "file_limit=8192"]


async def test_catalog_import_in_chunks(node: NodeContext) -> None:
    login = await add_commerceml_branch(node, file_limit=1024)
    client = RawExchange(node, login)
    await client.login_and_init()
    await client.upload("import.xml", IMPORT, 1024)
    result = await client.import_until_done("import.xml")
    await client.login_and_init()
    await client.upload("offers.xml", OFFERS, 1024)
    offers_result = await client.import_until_done("offers.xml")
    await client.aclose()
    assert result[0] == "success", result
    assert offers_result[0] == "success", offers_result
    assert await _product_count(node) == 2
    prices = await node.db.run(
        lambda c: c.fetch("SELECT amount FROM prices WHERE branch_code = 'MSK01' ORDER BY amount")
    )
    assert [p["amount"] for p in prices] == [
        Decimal("349.90"),
        Decimal("512.00"),
        Decimal("1249.50"),
    ]


async def test_windows_path_is_normalised(node: NodeContext) -> None:
    login = await add_commerceml_branch(node)
    client = RawExchange(node, login)
    await client.login_and_init()
    reply = await client.call("file", filename="C:\\v8_8789_c.xml", body=IMPORT)
    result = await client.import_until_done("v8_8789_c.xml")
    await client.aclose()
    assert reply.text.startswith("success")
    assert result[0] == "success", result


async def test_path_traversal_is_rejected(node: NodeContext) -> None:
    login = await add_commerceml_branch(node)
    client = RawExchange(node, login)
    await client.login_and_init()
    reply = (await client.call("file", filename="../../etc/evil.xml", body=b"x")).text
    await client.aclose()
    assert reply.splitlines()[0] == "failure"
    assert not (node.settings.uploads_dir.parent / "etc").exists()


async def test_malformed_xml_keeps_previous_catalog(node: NodeContext) -> None:
    login = await add_commerceml_branch(node)
    client = RawExchange(node, login)
    await client.login_and_init()
    await client.upload("import.xml", IMPORT, 1 << 20)
    assert (await client.import_until_done("import.xml"))[0] == "success"
    await client.login_and_init()
    broken = IMPORT.replace(b"TM-002", b"TM-002</Unclosed>")[: len(IMPORT) - 40]
    await client.upload("import.xml", broken, 1 << 20)
    result = await client.import_until_done("import.xml")
    await client.aclose()
    assert result[0] == "failure"
    assert "import.xml" in result[1]
    assert await _product_count(node) == 2


async def test_external_entity_is_rejected(node: NodeContext, tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    login = await add_commerceml_branch(node)
    client = RawExchange(node, login)
    await client.login_and_init()
    evil = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<КоммерческаяИнформация ВерсияСхемы="2.04"><Каталог><Товары><Товар><Ид>1</Ид>'
        "<Наименование>&x;</Наименование></Товар></Товары></Каталог></КоммерческаяИнформация>"
    )
    await client.upload("import.xml", evil.encode(), 1 << 20)
    result = await client.import_until_done("import.xml")
    await client.aclose()
    assert result[0] == "failure"
    names = await node.db.run(lambda c: c.fetch("SELECT name FROM products"))
    assert all("TOP-SECRET" not in r["name"] for r in names)


async def test_zip_upload_is_unpacked_and_imported(node: NodeContext) -> None:
    login = await add_commerceml_branch(node, zip_enabled=True, file_limit=2048)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("import.xml", IMPORT)
        archive.writestr("offers.xml", OFFERS)
    client = RawExchange(node, login)
    await client.login_and_init()
    await client.upload("v8_1065_3a.zip", buffer.getvalue(), 2048)
    first = await client.import_until_done("import.xml")
    second = await client.import_until_done("offers.xml")
    await client.aclose()
    assert first[0] == "success", first
    assert second[0] == "success", second
    assert await _product_count(node) == 2


async def test_zip_slip_is_rejected(node: NodeContext) -> None:
    login = await add_commerceml_branch(node, zip_enabled=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../escape.xml", IMPORT)
    client = RawExchange(node, login)
    await client.login_and_init()
    await client.upload("v8_0001_01.zip", buffer.getvalue(), 1 << 20)
    result = (await client.call("import", filename="escape.xml")).text.splitlines()
    await client.aclose()
    assert result[0] == "failure"
    assert not (node.settings.uploads_dir.parent / "escape.xml").exists()


async def test_oversized_upload_is_rejected(node: NodeContext) -> None:
    node.settings.exchange_max_upload_bytes = 4096
    login = await add_commerceml_branch(node)
    client = RawExchange(node, login)
    await client.login_and_init()
    reply = (await client.call("file", filename="import.xml", body=b"x" * 5000)).text
    await client.aclose()
    assert reply.splitlines()[0] == "failure"
    assert "байт" in reply


async def test_unknown_mode_fails_with_keyword(node: NodeContext) -> None:
    login = await add_commerceml_branch(node)
    client = RawExchange(node, login)
    await client.login_and_init()
    reply = (await client.call("explode")).text.splitlines()
    await client.aclose()
    assert reply[0] == "failure"


async def test_dropped_upload_leaves_file_unchanged(node: NodeContext) -> None:
    await add_commerceml_branch(node)
    service = node.exchange
    session = await service.open_local_session("MSK01", "catalog")

    async def body(*parts: bytes, drop: bool = False) -> AsyncIterator[bytes]:
        for part in parts:
            yield part
        if drop:
            raise ConnectionResetError("client went away mid-body")

    await service.receive_file(session, "import.xml", body(IMPORT[:1000]), "ru")
    with pytest.raises(ConnectionResetError):
        await service.receive_file(
            session, "import.xml", body(IMPORT[1000:2000], IMPORT[2000:3000], drop=True), "ru"
        )
    target = service.session_dir(session) / "import.xml"
    kept = target.read_bytes()
    await service.receive_file(session, "import.xml", body(IMPORT[1000:]), "ru")
    assert kept == IMPORT[:1000]
    assert target.read_bytes() == IMPORT
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".part")]


async def test_clean_up_removes_stale_sessions(node: NodeContext) -> None:
    await add_commerceml_branch(node)
    service = node.exchange
    stale = await service.open_local_session("MSK01", "catalog")
    fresh = await service.open_local_session("MSK01", "catalog")
    old = time.time() - node.settings.exchange_session_ttl_s - 60
    os.utime(service.session_dir(stale), (old, old))
    await node.db.run(
        lambda c: c.execute(
            "UPDATE exchange_sessions SET last_seen_at = now() - interval '2 days' WHERE id = $1",
            stale.id,
        )
    )
    await service.clean_up()
    sessions = await node.db.run(lambda c: c.fetch("SELECT id FROM exchange_sessions"))
    assert not service.session_dir(stale).exists()
    assert service.session_dir(fresh).exists()
    assert [r["id"] for r in sessions] == [fresh.id]
