"""Counterparty files (Контрагенты): parsing, and storage per branch through /1c/exchange."""

from __future__ import annotations

import io
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from connectors.commerceml.model import Counterparty, DocumentKind
from connectors.commerceml.parser import detect_kind, iter_document
from tentorium_hub.errors import CommerceMLError
from tentorium_hub.node import NodeContext
from tentorium_hub.storage import counterparties as counterparties_db

from hubtest import RawExchange, add_commerceml_branch

FIXTURES = Path(__file__).parent / "fixtures" / "commerceml"
FILE = FIXTURES / "contragents___test.xml"
SAMPLE = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "samples"
    / "commerceml"
    / "ArgentCrusade__commerceml"
    / "contractors-example.xml"
)
MSK = timezone(timedelta(hours=3), "MSK")
FIRST = "c1000000-0000-4000-8000-000000000001"
SECOND = "c1000000-0000-4000-8000-000000000002"
THIRD = "c1000000-0000-4000-8000-000000000003"


def _counterparties(source: Path | bytes) -> dict[str, Counterparty]:
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    items = iter_document(stream, tz=MSK)
    return {item.external_id: item for item in items if isinstance(item, Counterparty)}


def _file(*counterparties: str) -> bytes:
    body = "".join(counterparties)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<КоммерческаяИнформация xmlns="urn:1C.ru:commerceml_3" ВерсияСхемы="3.1">'
        f"<Контрагенты>{body}</Контрагенты></КоммерческаяИнформация>"
    ).encode()


def _counterparty_xml(external_id: str, name: str) -> str:
    return f"<Контрагент><Ид>{external_id}</Ид><Наименование>{name}</Наименование></Контрагент>"


# --------------------------------------------------------------------------------------
# Parser


def test_counterparty_legal_details() -> None:
    first = _counterparties(FILE)[FIRST]
    assert first.name == "Пчелка ООО"
    assert first.full_name == 'ООО "Пчелка"'
    assert first.inn == "7700000001"
    assert first.kpp == "770001001"
    assert first.deleted is False


def test_counterparty_full_name_and_empty_inn() -> None:
    second = _counterparties(FILE)[SECOND]
    assert second.full_name == "Тестов Тест Тестович"
    assert second.inn is None
    assert second.kpp is None


def test_counterparty_deletion_mark() -> None:
    assert _counterparties(FILE)[THIRD].deleted is True


def test_counterparty_id_normalised() -> None:
    assert list(_counterparties(FILE)) == [FIRST, SECOND, THIRD]


def test_counterparty_raw_keeps_repeated_children() -> None:
    raw = _counterparties(FILE)[FIRST].raw
    contacts = raw["Контакты"]
    assert isinstance(contacts, dict)
    assert contacts["Контакт"] == [
        {"Тип": "Электронная почта", "Значение": "office@example.invalid"},
        {"Тип": "Телефон рабочий", "Значение": "+7 (000) 000-00-01"},
    ]
    assert raw["РеквизитыЮрЛица"] == {
        "ОфициальноеНаименование": 'ООО "Пчелка"',
        "ИНН": "7700000001",
        "КПП": "770001001",
    }


def test_counterparty_raw_keeps_attributes_and_text() -> None:
    xml = _file(
        '<Контрагент Статус="Новый"><Ид>c-1</Ид><Наименование>А</Наименование>'
        '<Валюта Код="643">RUB</Валюта></Контрагент>'
    )
    raw = _counterparties(xml)["c-1"].raw
    assert raw["@Статус"] == "Новый"
    assert raw["Валюта"] == {"@Код": "643", "#text": "RUB"}


def test_counterparty_without_id_fails() -> None:
    with pytest.raises(CommerceMLError) as caught:
        _counterparties(_file("<Контрагент><Наименование>Без Ид</Наименование></Контрагент>"))
    assert "контрагент без Ид" in caught.value.message_ru


def test_counterparty_inside_order_not_yielded() -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<КоммерческаяИнформация ВерсияСхемы="2.05">'
        "<Документ><Ид>1</Ид><ХозОперация>Заказ товара</ХозОперация>"
        f"<Контрагенты>{_counterparty_xml('buyer', 'Покупатель')}</Контрагенты>"
        "</Документ></КоммерческаяИнформация>"
    ).encode()
    assert _counterparties(xml) == {}


def test_counterparty_file_kind() -> None:
    assert detect_kind(FILE, tz=MSK) is DocumentKind.COUNTERPARTIES


def test_counterparty_sample_read_in_place() -> None:
    if not SAMPLE.is_file():
        pytest.skip(f"sample {SAMPLE} is absent; it lives in the shared samples folder")
    counterparties = list(_counterparties(SAMPLE).values())
    assert len(counterparties) == 4
    assert counterparties[1].inn == "000000000001"
    assert counterparties[1].full_name == 'ТОО "Алтай"'


# --------------------------------------------------------------------------------------
# Through /1c/exchange


async def _exchange(node: NodeContext, login: str, name: str, data: bytes) -> list[str]:
    """Upload and import one file in the sale flow of a 3.1 module (mode=file, mode=import)."""
    client = RawExchange(node, login, "sale")
    reply = (await client.call("checkauth")).text.splitlines()
    client.cookie = f"{reply[1]}={reply[2]}"
    await client.call("init", version="3.1")
    await client.upload(name, data, 1 << 20)
    result = await client.import_until_done(name)
    await client.aclose()
    return result


async def _stored(node: NodeContext, external_id: str) -> dict[str, Any] | None:
    return await node.db.run(counterparties_db.get_counterparty, "MSK01", external_id)


async def _row_count(node: NodeContext) -> int:
    return int(
        await node.db.run(
            lambda c: c.fetchval("SELECT count(*) FROM counterparties WHERE branch_code = 'MSK01'")
        )
    )


async def test_exchange_stores_counterparties(node: NodeContext) -> None:
    login = await add_commerceml_branch(node)
    result = await _exchange(node, login, FILE.name, FILE.read_bytes())
    first = await _stored(node, FIRST)
    assert result[0] == "success", result
    assert "counterparties: 3" in result[1]
    assert await _row_count(node) == 3
    assert first is not None
    assert first["name"] == "Пчелка ООО"
    assert first["full_name"] == 'ООО "Пчелка"'
    assert first["inn"] == "7700000001"
    assert first["kpp"] == "770001001"
    assert first["raw"]["Роль"] == "Покупатель"


async def test_exchange_keeps_deleted_counterparty(node: NodeContext) -> None:
    login = await add_commerceml_branch(node)
    await _exchange(node, login, FILE.name, FILE.read_bytes())
    third = await _stored(node, THIRD)
    assert third is not None
    assert third["deleted"] is True


async def test_exchange_upserts_never_deletes(node: NodeContext) -> None:
    login = await add_commerceml_branch(node)
    await _exchange(node, login, FILE.name, FILE.read_bytes())
    update = _file(_counterparty_xml(FIRST, "Пчелка и Ко"))
    result = await _exchange(node, login, "contragents___update.xml", update)
    first = await _stored(node, FIRST)
    assert result[0] == "success", result
    assert await _row_count(node) == 3
    assert first is not None
    assert first["name"] == "Пчелка и Ко"
    assert first["inn"] is None


async def test_exchange_failed_file_keeps_rows(node: NodeContext) -> None:
    login = await add_commerceml_branch(node)
    await _exchange(node, login, FILE.name, FILE.read_bytes())
    broken = _file(
        _counterparty_xml(FIRST, "Переименован"),
        "<Контрагент><Наименование>Без Ид</Наименование></Контрагент>",
    )
    result = await _exchange(node, login, "contragents___broken.xml", broken)
    first = await _stored(node, FIRST)
    assert result[0] == "failure", result
    assert first is not None
    assert first["name"] == "Пчелка ООО"
    assert await _row_count(node) == 3


async def test_exchange_counterparties_per_branch(node: NodeContext) -> None:
    login = await add_commerceml_branch(node)
    other = await add_commerceml_branch(node, "SPB01")
    await _exchange(node, login, FILE.name, FILE.read_bytes())
    await _exchange(node, other, "contragents___spb.xml", _file(_counterparty_xml(FIRST, "СПб")))
    moscow = await _stored(node, FIRST)
    petersburg = await node.db.run(counterparties_db.get_counterparty, "SPB01", FIRST)
    assert moscow is not None
    assert petersburg is not None
    assert moscow["name"] == "Пчелка ООО"
    assert petersburg["name"] == "СПб"
