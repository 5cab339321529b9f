"""Order discounts: spread to the kopeck so the lines of the 1C document sum to its total."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from tentorium_hub.branches import new_branch
from tentorium_hub.domain.orders import allocate_discount
from tentorium_hub.errors import ValidationError
from tentorium_hub.node import NodeContext

from hubtest import RawExchange, add_commerceml_branch, upload_catalog

CREAM = "a1000000-0000-4000-8000-000000000001"
BALM = "a1000000-0000-4000-8000-000000000002"
cents = st.integers(min_value=1, max_value=10_000_000).map(lambda n: Decimal(n) / 100)


@given(amounts=st.lists(cents, min_size=1, max_size=12), share=st.fractions(0, 1))
def test_allocation_sums_exactly(amounts: list[Decimal], share: object) -> None:
    total = sum(amounts, Decimal(0))
    discount = (total * Decimal(share.numerator) / share.denominator).quantize(Decimal("0.01"))  # type: ignore[attr-defined]
    discount = min(discount, total)
    shares = allocate_discount(amounts, discount)
    assert sum(shares, Decimal(0)) == discount
    assert all(Decimal(0) <= s <= a for s, a in zip(shares, amounts, strict=True))
    assert all(s == s.quantize(Decimal("0.01")) for s in shares)


def test_allocation_splits_remainder_cents() -> None:
    assert allocate_discount([Decimal("10.00")] * 3, Decimal("1.00")) == [
        Decimal("0.34"),
        Decimal("0.33"),
        Decimal("0.33"),
    ]


def test_allocation_rejects_discount_above_sum() -> None:
    with pytest.raises(ValueError, match="between 0"):
        allocate_discount([Decimal("5.00")], Decimal("5.01"))


def test_export_version_is_checked() -> None:
    with pytest.raises(ValidationError, match=r"2\.99"):
        new_branch(
            code="X",
            name="X",
            kind="commerceml",
            exchange_login="x",
            exchange_password="password-1",
            export_schema_version="2.99",
        )


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


async def test_discounted_document_sums_to_total(node: NodeContext, api: httpx.AsyncClient) -> None:
    login = await add_commerceml_branch(node)
    await node.db.run(
        lambda c: c.execute(
            "UPDATE branches SET export_encoding = 'windows-1251' WHERE code = 'MSK01'"
        )
    )
    await upload_catalog(node, login)
    body = {
        "branch": "MSK01",
        "customer": {"name": "Лебедева Елена"},
        "discount": "100.00",
        "delivery_cost": "250.00",
        "lines": [
            {"offer_id": CREAM, "quantity": 3},
            {"offer_id": BALM, "quantity": 1},
            {"offer_id": BALM, "quantity": 1, "gift": True},
        ],
    }
    placed = await api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "disc-1"})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    sale = RawExchange(node, login, "sale")
    await sale.login_and_init()
    reply = await sale.call("query")
    await sale.aclose()
    document = etree.fromstring(reply.content)
    doc = next(el for el in document.iter() if _local(el) == "Документ")
    goods = [el for el in doc.iter() if _local(el) == "Товар"]
    line_sums = [Decimal(next(c.text for c in g if _local(c) == "Сумма")) for g in goods]
    doc_total = Decimal(next(c.text for c in doc if _local(c) == "Сумма"))
    assert order["total"] == "1711.70"  # 3 x 349.90 + 512.00 - 100.00 + 250.00 delivery
    assert sum(line_sums, Decimal(0)) == doc_total == Decimal("1711.70")
    assert b"windows-1251" in reply.content[:100]
    assert "windows-1251" in reply.headers["content-type"]


async def test_discount_above_lines_is_422(node: NodeContext, api: httpx.AsyncClient) -> None:
    login = await add_commerceml_branch(node)
    await upload_catalog(node, login)
    body = {
        "branch": "MSK01",
        "customer": {"name": "Попова Ирина"},
        "discount": "5000.00",
        "lines": [{"offer_id": CREAM, "quantity": 1}],
    }
    response = await api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "disc-2"})
    assert response.status_code == 422
    assert response.json()["code"] == "discount_too_large"
    assert response.json()["errors"][0]["field"] == "discount"
