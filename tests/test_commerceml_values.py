"""Scalar value parsing: money, quantities, dates, flags and ids as 1C writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.commerceml.values import (
    normalize_id,
    parse_bool,
    parse_datetime,
    parse_money,
    parse_quantity,
)

# A fixed offset keeps the expected values independent of historical zone changes
# (Moscow itself was UTC+4 until October 2014).
MOSCOW = timezone(timedelta(hours=3), "MSK")
NOVOSIBIRSK = ZoneInfo("Asia/Novosibirsk")  # UTC+7 since July 2016


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("349,90", Decimal("349.90"), id="comma"),
        pytest.param("349.90", Decimal("349.90"), id="dot"),
        pytest.param("349", Decimal("349"), id="integer"),
        pytest.param("1 249,50", Decimal("1249.50"), id="space-group"),
        pytest.param("1\u00a0249,50", Decimal("1249.50"), id="nbsp-group"),
        pytest.param("1\u202f249,50", Decimal("1249.50"), id="narrow-nbsp-group"),
        pytest.param("1\u2009249.50", Decimal("1249.50"), id="thin-space-group"),
        pytest.param("12 345 678,9", Decimal("12345678.9"), id="two-groups"),
        pytest.param("  231.7400 ", Decimal("231.7400"), id="padded-four-places"),
        pytest.param("0", Decimal("0"), id="zero"),
    ],
)
def test_parse_money_accepts(text: str, expected: Decimal) -> None:
    assert parse_money(text) == expected


def test_parse_money_integer_equals_two_places() -> None:
    assert parse_money("349") == Decimal("349.00")


def test_parse_money_keeps_exact_digits() -> None:
    assert str(parse_money("231.7400")) == "231.7400"


def test_parse_money_returns_decimal() -> None:
    assert type(parse_money("349,90")) is Decimal


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("349,90,1", id="two-separators"),
        pytest.param("1,249.50", id="mixed-separators"),
        pytest.param("12a", id="letter"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("NaN", id="nan"),
        pytest.param("Infinity", id="infinity"),
        pytest.param("-Infinity", id="minus-infinity"),
        pytest.param("1e5", id="exponent"),
        pytest.param("1E+2", id="exponent-upper"),
        pytest.param("-5", id="negative"),
        pytest.param("12 34", id="bad-group"),
        pytest.param("1  249", id="double-space"),
        pytest.param(".5", id="no-integer-part"),
        pytest.param("5.", id="no-fraction-digits"),
        pytest.param("١٢٣", id="arabic-indic-digits"),
        pytest.param("+5", id="plus-sign"),
        pytest.param("9" * 80, id="too-long"),
    ],
)
def test_parse_money_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid amount"):
        parse_money(text)


def test_parse_money_error_names_value() -> None:
    with pytest.raises(ValueError) as caught:
        parse_money("349,90,1")
    assert "'349,90,1'" in str(caught.value)


_TWO_PLACES = st.decimals(
    min_value=Decimal("0"),
    max_value=Decimal("999999999999.99"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)


def _group_thousands(plain: str, separator: str) -> str:
    integer, _, fraction = plain.partition(".")
    groups: list[str] = []
    while len(integer) > 3:
        groups.insert(0, integer[-3:])
        integer = integer[:-3]
    groups.insert(0, integer)
    return f"{separator.join(groups)},{fraction}"


@given(amount=_TWO_PLACES)
def test_parse_money_round_trips_dot_form(amount: Decimal) -> None:
    assert parse_money(format(amount, "f")) == amount


@given(amount=_TWO_PLACES)
def test_parse_money_round_trips_comma_form(amount: Decimal) -> None:
    assert parse_money(format(amount, "f").replace(".", ",")) == amount


@given(amount=_TWO_PLACES, separator=st.sampled_from([" ", "\u00a0", "\u202f", "\u2009"]))
def test_parse_money_round_trips_grouped_form(amount: Decimal, separator: str) -> None:
    assert parse_money(_group_thousands(format(amount, "f"), separator)) == amount


def test_parse_quantity_accepts_negative_balance() -> None:
    assert parse_quantity("-2") == Decimal("-2")


def test_parse_quantity_accepts_grouped_fraction() -> None:
    assert parse_quantity("1 000,5") == Decimal("1000.5")


@pytest.mark.parametrize("text", ["--2", "2-", "NaN", "", "1e3"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "2014-06-01T00:36:33", datetime(2014, 5, 31, 21, 36, 33, tzinfo=UTC), id="iso"
        ),
        pytest.param(
            "2014-06-01T0:36:33", datetime(2014, 5, 31, 21, 36, 33, tzinfo=UTC), id="one-digit-hour"
        ),
        pytest.param("2014-06-01T10:36", datetime(2014, 6, 1, 7, 36, tzinfo=UTC), id="no-seconds"),
        pytest.param(
            "2007-10-30 15:19:27", datetime(2007, 10, 30, 12, 19, 27, tzinfo=UTC), id="iso-space"
        ),
        pytest.param(
            "11.02.2021 18:45:21", datetime(2021, 2, 11, 15, 45, 21, tzinfo=UTC), id="russian"
        ),
        pytest.param(
            "09.04.2014 0:46:38",
            datetime(2014, 4, 8, 21, 46, 38, tzinfo=UTC),
            id="russian-one-digit-hour",
        ),
        pytest.param(
            "11.02.2021 18:45", datetime(2021, 2, 11, 15, 45, tzinfo=UTC), id="russian-no-seconds"
        ),
        pytest.param("11.02.2021", datetime(2021, 2, 10, 21, 0, tzinfo=UTC), id="russian-date"),
        pytest.param("2021-02-11", datetime(2021, 2, 10, 21, 0, tzinfo=UTC), id="iso-date"),
        pytest.param("2021-02-11T", datetime(2021, 2, 10, 21, 0, tzinfo=UTC), id="iso-date-bare-t"),
        pytest.param(
            "2022-10-31UTC02:25:50",
            datetime(2022, 10, 31, 2, 25, 50, tzinfo=UTC),
            id="utc-separator",
        ),
        pytest.param(
            "2021-02-11T10:00:00+05:00", datetime(2021, 2, 11, 5, 0, tzinfo=UTC), id="offset"
        ),
        pytest.param("2021-02-11T10:00:00Z", datetime(2021, 2, 11, 10, 0, tzinfo=UTC), id="zulu"),
        pytest.param(
            "2021-02-11T10:00:00.250",
            datetime(2021, 2, 11, 7, 0, 0, 250000, tzinfo=UTC),
            id="fraction",
        ),
    ],
)
def test_parse_datetime_accepts(text: str, expected: datetime) -> None:
    assert parse_datetime(text, MOSCOW) == expected


def test_parse_datetime_returns_aware_utc() -> None:
    parsed = parse_datetime("2021-02-11T10:00:00", NOVOSIBIRSK)
    assert parsed is not None
    assert parsed.tzinfo is UTC


def test_parse_datetime_applies_branch_zone() -> None:
    assert parse_datetime("2021-02-11T10:00:00", NOVOSIBIRSK) == datetime(
        2021, 2, 11, 3, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("  ", id="blank"),
        pytest.param("T", id="placeholder"),
        pytest.param(" T ", id="padded-placeholder"),
        pytest.param("0001-01-01T00:00:00", id="empty-date-iso"),
        pytest.param("01.01.0001 0:00:00", id="empty-date-russian"),
    ],
)
def test_parse_datetime_empty_is_none(text: str | None) -> None:
    assert parse_datetime(text, MOSCOW) is None


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("yesterday", id="word"),
        pytest.param("2021-02-30", id="impossible-day"),
        pytest.param("2021-13-01T00:00:00", id="impossible-month"),
        pytest.param("2021-02-11T25:00:00", id="impossible-hour"),
        pytest.param("11/02/2021", id="slashes"),
        pytest.param("2021-02-11X10:00", id="bad-separator"),
        pytest.param("2021-02-11T10:00:00+99:00", id="bad-offset"),
    ],
)
def test_parse_datetime_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid date"):
        parse_datetime(text, MOSCOW)


def test_parse_datetime_error_names_value() -> None:
    with pytest.raises(ValueError) as caught:
        parse_datetime("2021-02-30", MOSCOW)
    assert "'2021-02-30'" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("истина", True),
        ("Истина", True),
        ("да", True),
        ("ДА", True),
        ("1", True),
        (" true ", True),
        ("false", False),
        ("False", False),
        ("ложь", False),
        ("ЛОЖЬ", False),
        ("нет", False),
        ("0", False),
    ],
)
def test_parse_bool_accepts(text: str, expected: bool) -> None:
    assert parse_bool(text) is expected


@pytest.mark.parametrize("text", [None, "", "  "])
def test_parse_bool_absent_is_false(text: str | None) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["yes", "2", "truth", "неизвестно"])
def test_parse_bool_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=f"invalid flag '{text}'"):
        parse_bool(text)


@pytest.mark.parametrize(
    "text",
    [
        "5C44EE68-1234-11E7-80C2-0CC47AB29CD1",
        " 5c44ee68-1234-11e7-80c2-0cc47ab29cd1 ",
        "\u00a05C44ee68-1234-11e7-80C2-0cc47ab29cd1\u00a0",
        "\ufeff5c44ee68-1234-11e7-80c2-0cc47ab29cd1\t\n",
    ],
)
def test_normalize_id_strips_and_lowers(text: str) -> None:
    assert normalize_id(text) == "5c44ee68-1234-11e7-80c2-0cc47ab29cd1"


def test_normalize_id_keeps_characteristic_separator() -> None:
    assert normalize_id(" P#C1 ") == "p#c1"
