"""Faults seen in public bug reports of other 1C exchanges, each pinned by its behaviour."""

from __future__ import annotations

import io
import uuid
import zipfile
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from lxml import etree

from tentorium_hub.branches import new_branch
from tentorium_hub.importer import import_file
from tentorium_hub.node import NodeContext
from tentorium_hub.storage import Database
from tentorium_hub.storage import branches as branches_db
from tentorium_hub.storage import catalog as catalog_db

from hubtest import RawExchange, add_commerceml_branch, upload_catalog

MSK = ZoneInfo("Europe/Moscow")
NS = "urn:1C.ru:commerceml_2"
PRICE_TYPE = "b0000000-0000-4000-8000-000000000001"


def _offers_xml(offers: list[tuple[str, str | None, str | None]]) -> bytes:
    """An offers package; each offer is (Ид, price text or None, quantity text or None)."""
    body = []
    for offer_id, price, quantity in offers:
        parts = [f"<Ид>{offer_id}</Ид><Наименование>Товар {offer_id}</Наименование>"]
        if price is not None:
            parts.append(
                f"<Цены><Цена><ИдТипаЦены>{PRICE_TYPE}</ИдТипаЦены>"
                f"<ЦенаЗаЕдиницу>{price}</ЦенаЗаЕдиницу><Валюта>RUB</Валюта></Цена></Цены>"
            )
        if quantity is not None:
            parts.append(f"<Количество>{quantity}</Количество>")
        body.append("<Предложение>" + "".join(parts) + "</Предложение>")
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><КоммерческаяИнформация xmlns="{NS}" '
        'ВерсияСхемы="2.07"><ПакетПредложений СодержитТолькоИзменения="false">'
        f"<ТипыЦен><ТипЦены><Ид>{PRICE_TYPE}</Ид><Наименование>Розничная</Наименование>"
        "<Валюта>RUB</Валюта></ТипЦены></ТипыЦен><Предложения>"
        + "".join(body)
        + "</Предложения></ПакетПредложений></КоммерческаяИнформация>"
    ).encode()


def _goods_xml(goods: list[tuple[str, str]]) -> bytes:
    items = "".join(
        f"<Товар><Ид>{gid}</Ид><Наименование>{name}</Наименование></Товар>" for gid, name in goods
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><КоммерческаяИнформация xmlns="{NS}" '
        f'ВерсияСхемы="2.07"><Каталог СодержитТолькоИзменения="false"><Товары>{items}'
        "</Товары></Каталог></КоммерческаяИнформация>"
    ).encode()


async def _branch(db: Database, code: str = "REG01") -> str:
    branch = new_branch(
        code=code,
        name="Регрессии",
        kind="commerceml",
        exchange_login=code.lower(),
        exchange_password="regression-secret",
    )
    await db.transaction(branches_db.insert_branch, branch)
    return code


async def _import(db: Database, branch: str, tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}-{name}"
    path.write_bytes(data)
    job_id = uuid.uuid4().int % 2**62
    await import_file(db, branch=branch, path=path, job_id=job_id, tz=MSK)


async def _prices(db: Database, branch: str) -> dict[str, Decimal]:
    rows = await db.run(
        lambda c: c.fetch("SELECT offer_id, amount FROM prices WHERE branch_code = $1", branch)
    )
    return {r["offer_id"]: r["amount"] for r in rows}


async def test_price_spellings_store_exact_decimals(db: Database, tmp_path: Path) -> None:
    branch = await _branch(db)
    offers = [
        ("p1", "349,90", None),
        ("p2", "349.90", None),
        ("p3", "349", None),
        ("p4", "1\u00a0249,50", None),
    ]
    await _import(db, branch, tmp_path, "offers.xml", _offers_xml(offers))
    prices = await _prices(db, branch)
    assert prices["p1"] == Decimal("349.90")
    assert prices["p2"] == Decimal("349.90")
    assert prices["p3"] == Decimal("349.00")
    assert prices["p4"] == Decimal("1249.50")
    assert all(isinstance(value, Decimal) for value in prices.values())


async def test_bad_price_keeps_previous_price(db: Database, tmp_path: Path) -> None:
    branch = await _branch(db)
    await _import(
        db,
        branch,
        tmp_path,
        "offers.xml",
        _offers_xml([("p1", "349,90", None), ("p2", "100", None)]),
    )
    await _import(
        db,
        branch,
        tmp_path,
        "offers.xml",
        _offers_xml([("p1", "349,90,1", None), ("p2", "120,00", None)]),
    )
    prices = await _prices(db, branch)
    assert prices["p1"] == Decimal("349.90")
    assert prices["p2"] == Decimal("120.00")


async def test_variants_sum_into_product_stock(db: Database, tmp_path: Path) -> None:
    branch = await _branch(db)
    await _import(db, branch, tmp_path, "import.xml", _goods_xml([("p", "Крем «Прополис»")]))
    variants = [("p#c1", "100", "1"), ("p#c2", "100", "1"), ("p#c3", "100", "3")]
    await _import(db, branch, tmp_path, "offers.xml", _offers_xml(variants))
    products = await db.run(catalog_db.list_products, branch, after_id=0, limit=10)
    assert len(products) == 1
    assert len(products[0]["variants"]) == 3
    assert products[0]["stock"] == Decimal("5")


async def test_same_id_in_other_case_is_one_product(db: Database, tmp_path: Path) -> None:
    branch = await _branch(db)
    spellings = ["ABC-def-1", "abc-DEF-1", "  abc-def-1 \u00a0"]
    ids = []
    for number, spelling in enumerate(spellings):
        await _import(db, branch, tmp_path, "import.xml", _goods_xml([(spelling, f"Мёд {number}")]))
        rows = await db.run(
            lambda c: c.fetch(
                "SELECT id, external_id, name FROM products WHERE branch_code = $1", branch
            )
        )
        assert len(rows) == 1, rows
        ids.append(rows[0]["id"])
    assert ids[0] == ids[1] == ids[2]
    assert rows[0]["name"] == "Мёд 2"


async def test_zip_in_three_parts_is_reassembled(node: NodeContext) -> None:
    goods = _goods_xml([(f"g{i}", f"Бальзам {i}") for i in range(60)])
    offers = _offers_xml([(f"g{i}", f"{100 + i},50", "2") for i in range(60)])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("import.xml", goods)
        archive.writestr("offers.xml", offers)
    data = buffer.getvalue()
    file_limit = len(data) // 3 + 1
    login = await add_commerceml_branch(node, zip_enabled=True, file_limit=max(file_limit, 1024))
    client = RawExchange(node, login)
    await client.login_and_init()
    chunk = max(file_limit, 1024)
    parts = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    assert len(parts) == 3
    for part in parts:
        assert (await client.call("file", filename="v8_5f1c_2b.zip", body=part)).text.startswith(
            "success"
        )
    first = await client.import_until_done("import.xml")
    second = await client.import_until_done("offers.xml")
    session_dirs = list((node.settings.uploads_dir / "MSK01").iterdir())
    await client.aclose()
    assert first[0] == "success", first
    assert second[0] == "success", second
    extracted = [d / "import.xml" for d in session_dirs if (d / "import.xml").exists()]
    assert extracted[0].read_bytes() == goods
    assert (extracted[0].parent / "offers.xml").read_bytes() == offers
    count = await node.db.run(
        lambda c: c.fetchval("SELECT count(*) FROM prices WHERE branch_code = 'MSK01'")
    )
    assert count == 60


async def test_gift_and_paid_line_stay_apart(node: NodeContext, api: httpx.AsyncClient) -> None:
    login = await add_commerceml_branch(node)
    files = (
        ("import.xml", _goods_xml([("cream", "Крем-мёд")])),
        ("offers.xml", _offers_xml([("cream", "349,90", "10")])),
    )
    await upload_catalog(node, login, files)
    body = {
        "branch": "MSK01",
        "customer": {"name": "Смирнова Анна"},
        "lines": [
            {"offer_id": "cream", "quantity": 1, "gift": True},
            {"offer_id": "cream", "quantity": 2},
        ],
    }
    order = await api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "gift-1"})
    assert order.status_code == 201, order.text
    sale = RawExchange(node, login, "sale")
    await sale.login_and_init()
    document = etree.fromstring((await sale.call("query")).content)
    await sale.aclose()
    lines = [el for el in document.iter() if etree.QName(el).localname == "Товар"]
    amounts = sorted(Decimal(_child(line, "Сумма")) for line in lines)
    total = Decimal(
        _child(
            next(el for el in document.iter() if etree.QName(el).localname == "Документ"), "Сумма"
        )
    )
    assert len(lines) == 2
    assert amounts == [Decimal("0"), Decimal("699.80")]
    assert total == Decimal("699.80")


def _child(element: etree._Element, name: str) -> str:
    for child in element:
        if etree.QName(child).localname == name:
            return child.text or ""
    raise AssertionError(f"no <{name}> in <{etree.QName(element).localname}>")
