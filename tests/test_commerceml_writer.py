"""Order documents for 1C: the `mode=query` answer and 1C's status feedback, read back."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Literal

import pytest
from lxml import etree

from connectors.commerceml.model import (
    DELIVERY_LINE_ID,
    DocumentHeader,
    OrderDocument,
    OrderLine,
)
from connectors.commerceml.parser import iter_document
from connectors.commerceml.writer import (
    Customer,
    ExportOrder,
    ExportProfile,
    render_orders,
    render_status_updates,
)

NOVOSIBIRSK = timezone(timedelta(hours=7), "NOVT")
GENERATED = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)

CUSTOMER = Customer(
    id="customer-17",
    name="Тестов Тест",
    phone="+7 (000) 000-00-00",
    email="test@example.invalid",
    address="Новосибирск, Тестовая, дом № 0",
)
TEA = OrderLine(
    external_id="p1#c1",
    name="Чай «Зелёный»",
    quantity=Decimal(2),
    price=Decimal("349.90"),
    amount=Decimal("699.80"),
    unit="шт",
)
GIFT = OrderLine(
    external_id="p1#c1",
    name="Чай «Зелёный» (подарок)",
    quantity=Decimal(1),
    price=Decimal(0),
    amount=Decimal(0),
    unit="шт",
)
ORDER = ExportOrder(
    site_id="100234",
    number="100234",
    created_at=datetime(2024, 3, 1, 9, 30, 15, tzinfo=UTC),
    currency="RUB",
    total=Decimal("1049.80"),
    customer=CUSTOMER,
    lines=(TEA, GIFT),
    comment="Позвонить за час",
    delivery_cost=Decimal("350.00"),
    requisites={"Метод оплаты": "Картой на сайте", "Заказ оплачен": "true"},
)


def _xml(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def _local(elem: etree._Element) -> str:
    return etree.QName(elem).localname


def _find_all(elem: etree._Element, path: str) -> list[etree._Element]:
    """Children by a `/`-separated path of local names, namespace-agnostic."""
    found = [elem]
    for name in path.split("/"):
        found = [child for parent in found for child in parent if _local(child) == name]
    return found


def _text(elem: etree._Element, path: str) -> str | None:
    found = _find_all(elem, path)
    return found[0].text if found else None


def _requisites(elem: etree._Element) -> dict[str, str]:
    return {
        _text(entry, "Наименование") or "": _text(entry, "Значение") or ""
        for entry in _find_all(elem, "ЗначенияРеквизитов/ЗначениеРеквизита")
    }


def _render(*orders: ExportOrder, **profile: str) -> bytes:
    chosen = ExportProfile(**profile)  # type: ignore[arg-type]
    return render_orders(list(orders), tz=NOVOSIBIRSK, generated_at=GENERATED, profile=chosen)


def _read_back(data: bytes) -> list[OrderDocument]:
    items = list(iter_document(io.BytesIO(data), tz=NOVOSIBIRSK))
    return [item for item in items if isinstance(item, OrderDocument)]


@pytest.fixture(scope="module")
def document() -> etree._Element:
    return _find_all(_xml(_render(ORDER)), "Документ")[0]


# --------------------------------------------------------------------------------------
# render_orders


def test_render_orders_root_attributes() -> None:
    root = _xml(_render(ORDER))
    assert _local(root) == "КоммерческаяИнформация"
    assert root.get("ВерсияСхемы") == "2.05"
    assert root.get("ДатаФормирования") == "2024-03-01T17:00:00"
    assert etree.QName(root).namespace is None


def test_render_orders_document_head(document: etree._Element) -> None:
    assert _text(document, "Ид") == "100234"
    assert _text(document, "Номер") == "100234"
    assert _text(document, "ХозОперация") == "Заказ товара"
    assert _text(document, "Роль") == "Продавец"
    assert _text(document, "Валюта") == "RUB"
    assert _text(document, "Курс") == "1"
    assert _text(document, "Сумма") == "1049.80"
    assert _text(document, "Комментарий") == "Позвонить за час"


def test_render_orders_local_date_and_time(document: etree._Element) -> None:
    assert _text(document, "Дата") == "2024-03-01"
    assert _text(document, "Время") == "16:30:15"


def test_render_orders_customer(document: etree._Element) -> None:
    counterparty = _find_all(document, "Контрагенты/Контрагент")[0]
    assert _text(counterparty, "Ид") == "customer-17"
    assert _text(counterparty, "Наименование") == "Тестов Тест"
    assert _text(counterparty, "Роль") == "Покупатель"
    assert _text(counterparty, "АдресРегистрации/Представление") == CUSTOMER.address
    contacts = {
        _text(contact, "Тип"): _text(contact, "Значение")
        for contact in _find_all(counterparty, "Контакты/Контакт")
    }
    assert contacts == {
        "Электронная почта": "test@example.invalid",
        "Телефон рабочий": "+7 (000) 000-00-00",
    }


def test_render_orders_customer_without_contacts() -> None:
    bare = replace(ORDER, customer=Customer("c", "Покупатель", None, None, None))
    counterparty = _find_all(_xml(_render(bare)), "Документ/Контрагенты/Контрагент")[0]
    assert _find_all(counterparty, "Контакты") == []
    assert _find_all(counterparty, "АдресРегистрации") == []


def test_render_orders_gift_and_paid_lines_apart(document: etree._Element) -> None:
    lines = _find_all(document, "Товары/Товар")
    assert [_text(line, "Ид") for line in lines] == ["p1#c1", "p1#c1", DELIVERY_LINE_ID]
    assert [_text(line, "ЦенаЗаЕдиницу") for line in lines] == ["349.90", "0", "350.00"]
    assert [_text(line, "Сумма") for line in lines] == ["699.80", "0", "350.00"]


def test_render_orders_delivery_is_service(document: etree._Element) -> None:
    delivery = _find_all(document, "Товары/Товар")[-1]
    assert _text(delivery, "Наименование") == "Доставка заказа"
    assert _text(delivery, "Количество") == "1"
    assert _requisites(delivery) == {"ВидНоменклатуры": "Услуга", "ТипНоменклатуры": "Услуга"}


def test_render_orders_goods_type(document: etree._Element) -> None:
    tea = _find_all(document, "Товары/Товар")[0]
    assert _requisites(tea) == {"ВидНоменклатуры": "Товар", "ТипНоменклатуры": "Товар"}


def test_render_orders_default_unit_is_piece(document: etree._Element) -> None:
    delivery_unit = _find_all(document, "Товары/Товар/БазоваяЕдиница")[-1]
    assert delivery_unit.text == "шт"
    assert delivery_unit.get("Код") == "796"


def test_render_orders_given_unit_written(document: etree._Element) -> None:
    tea_unit = _find_all(document, "Товары/Товар/БазоваяЕдиница")[0]
    assert tea_unit.text == "шт"


def test_render_orders_no_delivery_line_when_free() -> None:
    free = replace(ORDER, delivery_cost=Decimal(0), total=Decimal("699.80"))
    lines = _find_all(_xml(_render(free)), "Документ/Товары/Товар")
    assert DELIVERY_LINE_ID not in [_text(line, "Ид") for line in lines]


def test_render_orders_discount() -> None:
    discounted = replace(TEA, discount=Decimal("20.00"))
    order = replace(ORDER, lines=(discounted,))
    line = _find_all(_xml(_render(order)), "Документ/Товары/Товар")[0]
    assert _text(line, "Скидки/Скидка/Сумма") == "20.00"
    assert _text(line, "Скидки/Скидка/УчтеноВСумме") == "true"


def test_render_orders_no_discount_element_without_discount(document: etree._Element) -> None:
    assert _find_all(document, "Товары/Товар/Скидки") == []


def test_render_orders_document_requisites(document: etree._Element) -> None:
    requisites = _requisites(document)
    assert requisites["Статус заказа"] == "[N] Принят"
    assert requisites["Метод оплаты"] == "Картой на сайте"
    assert requisites["Заказ оплачен"] == "true"
    assert requisites["Отменен"] == "false"
    assert requisites["Дата изменения статуса"] == "2024-03-01 16:30:15"


def test_render_orders_total_mismatch_raises() -> None:
    with pytest.raises(ValueError, match=r"sum to 1049\.80, but the total is 1049\.81"):
        _render(replace(ORDER, total=Decimal("1049.81")))


def test_render_orders_total_ignores_delivery_raises() -> None:
    with pytest.raises(ValueError, match=r"but the total is 699\.80"):
        _render(replace(ORDER, total=Decimal("699.80")))


def test_render_orders_total_equal_with_other_scale() -> None:
    assert _render(replace(ORDER, total=Decimal("1049.8000")))


def test_render_orders_delivery_twice_raises() -> None:
    delivery = OrderLine(DELIVERY_LINE_ID, "Доставка", Decimal(1), Decimal(350), Decimal(350))
    with pytest.raises(ValueError, match="delivery given both"):
        _render(replace(ORDER, lines=(TEA, delivery)))


def test_render_orders_naive_datetime_raises() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        _render(replace(ORDER, created_at=datetime(2024, 3, 1, 9, 30)))


def test_render_orders_empty_is_root_only() -> None:
    root = _xml(_render())
    assert len(root) == 0
    assert root.get("ВерсияСхемы") == "2.05"


def test_render_orders_empty_reads_back_as_header_only() -> None:
    items = list(iter_document(io.BytesIO(_render()), tz=NOVOSIBIRSK))
    assert [type(item) for item in items] == [DocumentHeader]


def test_render_orders_declares_utf8() -> None:
    assert _render(ORDER).startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<')


def test_render_orders_windows_1251() -> None:
    data = _render(ORDER, encoding="windows-1251")
    assert data.startswith(b'<?xml version="1.0" encoding="windows-1251"?>')
    assert "Доставка заказа".encode("cp1251") in data


@pytest.mark.parametrize(
    ("version", "namespace"),
    [("2.05", None), ("2.08", "urn:1C.ru:commerceml_2"), ("3.1", "urn:1C.ru:commerceml_3")],
)
def test_render_orders_namespace_by_version(version: str, namespace: str | None) -> None:
    root = _xml(_render(ORDER, schema_version=version))
    assert etree.QName(root).namespace == namespace
    assert {etree.QName(child).namespace for child in root.iter()} == {namespace}


@pytest.mark.parametrize("encoding", ["utf-8", "windows-1251"])
def test_render_orders_reads_back(encoding: str) -> None:
    (parsed,) = _read_back(_render(ORDER, encoding=encoding))
    assert parsed.site_id == "100234"
    assert parsed.total == ORDER.total
    assert parsed.date == ORDER.created_at
    assert parsed.status_text == "[N] Принят"
    assert [line.name for line in parsed.lines] == [TEA.name, GIFT.name, "Доставка заказа"]
    assert [line.amount for line in parsed.lines] == [TEA.amount, GIFT.amount, Decimal("350.00")]
    assert sum(line.amount for line in parsed.lines) == parsed.total


# --------------------------------------------------------------------------------------
# render_orders with a branch's export profile

DISCOUNTED_TEA = replace(TEA, amount=Decimal("679.80"), discount=Decimal(20))
DISCOUNTED = replace(ORDER, lines=(DISCOUNTED_TEA,), total=Decimal("1029.80"))


def _document(order: ExportOrder, **profile: str) -> etree._Element:
    root = _xml(_render(order, **profile))
    return (_find_all(root, "Документ") or _find_all(root, "Контейнер/Документ"))[0]


def test_profile_elements_style_marks_deletion() -> None:
    document = _document(ORDER, style="elements", schema_version="2.10")
    assert _text(document, "ПометкаУдаления") == "false"


def test_profile_requisites_style_has_no_element() -> None:
    assert _find_all(_document(ORDER), "ПометкаУдаления") == []


def test_profile_31_wraps_each_order_in_container() -> None:
    root = _xml(_render(ORDER, replace(ORDER, site_id="100235"), schema_version="3.1"))
    assert [_local(child) for child in root] == ["Контейнер", "Контейнер"]
    assert [_text(c, "Документ/Ид") for c in root] == ["100234", "100235"]


def test_profile_31_reads_back() -> None:
    (parsed,) = _read_back(_render(ORDER, schema_version="3.1", style="elements"))
    assert parsed.site_id == "100234"
    assert parsed.total == ORDER.total


def test_profile_delivery_item_id() -> None:
    lines = _find_all(_document(ORDER, delivery_item_id="svc-42"), "Товары/Товар")
    assert [_text(line, "Ид") for line in lines] == ["p1#c1", "p1#c1", "svc-42"]


def test_profile_delivery_as_requisite() -> None:
    document = _document(ORDER, delivery="requisite")
    lines = _find_all(document, "Товары/Товар")
    assert [_text(line, "Ид") for line in lines] == ["p1#c1", "p1#c1"]
    assert _requisites(document)["Стоимость доставки"] == "350.00"
    assert _text(document, "Сумма") == "1049.80"


def test_profile_delivery_requisite_total_checked() -> None:
    with pytest.raises(ValueError, match=r"sum to 1049\.80, but the total is 699\.80"):
        _render(replace(ORDER, total=Decimal("699.80")), delivery="requisite")


def test_profile_line_discounts_sum_to_total() -> None:
    document = _document(DISCOUNTED)
    amounts = [Decimal(_text(line, "Сумма") or "") for line in _find_all(document, "Товары/Товар")]
    assert sum(amounts) == DISCOUNTED.total
    assert _find_all(document, "Скидки") == []
    assert _text(document, "Товары/Товар/Скидки/Скидка/Сумма") == "20"


def test_profile_document_discount() -> None:
    document = _document(DISCOUNTED, discounts="document")
    lines = _find_all(document, "Товары/Товар")
    amounts = [Decimal(_text(line, "Сумма") or "") for line in lines]
    discount = Decimal(_text(document, "Скидки/Скидка/Сумма") or "")
    assert amounts == [Decimal("699.80"), Decimal("350.00")]
    assert _find_all(document, "Товары/Товар/Скидки") == []
    assert discount == Decimal(20)
    assert _text(document, "Скидки/Скидка/УчтеноВСумме") == "true"
    assert sum(amounts) - discount == DISCOUNTED.total


def test_profile_document_discount_total_checked() -> None:
    with pytest.raises(ValueError, match=r"lines, delivery and the order discount sum to 1029\.80"):
        _render(replace(DISCOUNTED, total=Decimal("1049.80")), discounts="document")


@pytest.mark.parametrize(
    ("field", "value"),
    [("style", "xml"), ("delivery", "free"), ("discounts", "none"), ("delivery_item_id", " ")],
)
def test_profile_invalid_value_raises(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        ExportProfile(**{field: value})  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# render_status_updates

UPDATE = OrderDocument(
    site_id="100234",
    number="100234",
    date=datetime(2024, 3, 1, 9, 30, 15, tzinfo=UTC),
    currency="RUB",
    total=Decimal("1049.80"),
    number_1c="ТН-000045",
    date_1c=datetime(2024, 3, 1, 17, 0, tzinfo=UTC),  # local midnight: 1C writes a date only
    posted=True,
    paid_at=datetime(2024, 3, 2, 5, 15, tzinfo=UTC),
    shipped_at=None,
    cancelled=False,
    deleted=False,
    status_text="К выполнению / В резерве",
    requisites={"Финальный статус": "false"},
    lines=(TEA, GIFT),
)
CANCELLED = replace(
    UPDATE,
    site_id="100235",
    number="100235",
    posted=False,
    paid_at=None,
    cancelled=True,
    deleted=True,
    status_text="Отменен",
    lines=(),
)

Dialect = Literal["requisites", "elements"]
DIALECTS: list[tuple[Dialect, str]] = [
    ("requisites", "2.05"),
    ("elements", "2.09"),
    ("elements", "3.1"),
]


def _status(*updates: OrderDocument, dialect: Dialect, version: str) -> bytes:
    return render_status_updates(
        list(updates),
        tz=NOVOSIBIRSK,
        dialect=dialect,
        schema_version=version,
        generated_at=GENERATED,
    )


@pytest.mark.parametrize(("dialect", "version"), DIALECTS)
def test_render_status_updates_round_trip(dialect: Dialect, version: str) -> None:
    parsed = _read_back(_status(UPDATE, CANCELLED, dialect=dialect, version=version))

    assert len(parsed) == 2
    for original, back in zip((UPDATE, CANCELLED), parsed, strict=True):
        assert replace(back, requisites={}) == replace(original, requisites={})
        assert original.requisites.items() <= back.requisites.items()


def test_render_status_updates_requisite_dialect_fields() -> None:
    document = _find_all(_xml(_status(UPDATE, dialect="requisites", version="2.05")), "Документ")[0]
    requisites = _requisites(document)
    assert requisites["Номер по 1С"] == "ТН-000045"
    assert requisites["Дата по 1С"] == "2024-03-02"
    assert requisites["Проведен"] == "true"
    assert requisites["ПометкаУдаления"] == "false"
    assert requisites["Дата оплаты по 1С"] == "2024-03-02T12:15:00"
    assert requisites["Дата отгрузки по 1С"] == "T"
    assert _find_all(document, "Номер1С") == []


def test_render_status_updates_element_dialect_fields() -> None:
    document = _find_all(_xml(_status(UPDATE, dialect="elements", version="2.09")), "Документ")[0]
    assert _text(document, "Номер1С") == "ТН-000045"
    assert _text(document, "Дата1С") == "2024-03-02"
    assert _text(document, "ПометкаУдаления") == "false"
    assert "Номер по 1С" not in _requisites(document)


def test_render_status_updates_container_for_3x() -> None:
    root = _xml(_status(UPDATE, CANCELLED, dialect="elements", version="3.1"))
    assert [_local(child) for child in root] == ["Контейнер", "Контейнер"]
    assert len(_find_all(root, "Контейнер/Документ")) == 2


def test_render_status_updates_custom_requisite_cannot_override() -> None:
    forged = replace(UPDATE, requisites={"Отменен": "true"})
    document = _find_all(_xml(_status(forged, dialect="requisites", version="2.05")), "Документ")[0]
    assert _requisites(document)["Отменен"] == "false"


def test_render_status_updates_rejects_unknown_dialect() -> None:
    with pytest.raises(ValueError, match="invalid dialect"):
        render_status_updates([UPDATE], tz=NOVOSIBIRSK, dialect="xml")  # type: ignore[arg-type]
