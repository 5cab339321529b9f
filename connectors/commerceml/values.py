"""Lenient parsers for the scalar values found in CommerceML files (numbers, dates, flags, ids).

Every function here is pure: no I/O, no logging. Numbers become `Decimal`, never float.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation

__all__ = [
    "normalize_id",
    "parse_bool",
    "parse_datetime",
    "parse_money",
    "parse_quantity",
]

# Thousands separators seen in numbers typed or formatted in Russian locales: the normal
# space, NBSP (U+00A0), narrow NBSP (U+202F) and thin space (U+2009).
_GROUP_SEPARATORS = " \u00a0\u202f\u2009"

# Digits are ASCII only; `\d` would also accept Arabic-Indic and other Unicode digits.
_NUMBER = re.compile(
    rf"(?P<sign>-)?"
    rf"(?P<integer>[0-9]{{1,3}}(?:[{_GROUP_SEPARATORS}][0-9]{{3}})+|[0-9]+)"
    rf"(?:[.,](?P<fraction>[0-9]+))?"
)

# Longer strings are no number 1C writes (ЧЦ=18 digits at most) and only cost parse time.
_MAX_NUMBER_CHARS = 64

# Characters stripped around ids and values on top of `str.strip()`: the BOM and the
# zero-width space, which `str.isspace()` does not count as white space.
_INVISIBLE = "\ufeff\u200b"

_TRUE = frozenset({"true", "истина", "да", "1"})
_FALSE = frozenset({"false", "ложь", "нет", "0"})

# ISO-like dates: `2014-06-01T00:36:33`, a one-digit hour, a space instead of `T`, the
# `UTC` separator one exporter writes (`2022-10-31UTC02:25:50`), optional fractions of a
# second and an optional offset. A bare trailing `T` is what an empty time formats to.
_ISO = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{1,2})-(?P<day>[0-9]{1,2})"
    r"(?:(?P<sep>T|UTC|\s+)"
    r"(?:(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]+))?)?"
    r"(?P<offset>Z|[+-][0-9]{2}:?[0-9]{2})?)?)?"
)

# Russian locale dates: `11.02.2021 18:45:21`, `09.04.2014 0:46:38`, `11.02.2021`.
_RUSSIAN = re.compile(
    r"(?P<day>[0-9]{1,2})\.(?P<month>[0-9]{1,2})\.(?P<year>[0-9]{4})"
    r"(?:\s+(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2}))?)?"
)

# 1C writes an empty date as year 1 (`0001-01-01T00:00:00`, `01.01.0001 0:00:00`) or, when
# a format string is applied to it, as the bare separator `T`.
_EMPTY_DATE_YEAR = 1
_EMPTY_DATE_TEXTS = frozenset({"", "T"})


def normalize_id(text: str) -> str:
    """Return a 1C identifier (`Ид`) in the hub's form: no surrounding white space, lower case.

    1C GUIDs are case-insensitive and some exports pad them with spaces or NBSP.
    """
    return text.strip().strip(_INVISIBLE).strip().lower()


def parse_money(text: str) -> Decimal:
    """Parse a non-negative amount such as `349,90`, `349.90`, `349` or `1 249,50`.

    The decimal separator may be `,` or `.`; groups of three digits may be separated by a
    space, NBSP, narrow NBSP or thin space. The exact value is kept (no rounding), so
    `349` gives `Decimal('349')`, which compares equal to `Decimal('349.00')`.
    Raises ValueError naming the value for anything else: `349,90,1`, `12a`, empty text,
    `NaN`, `Infinity`, exponent forms and negative amounts.
    """
    value = _parse_number(text, kind="amount")
    if value < 0:
        raise ValueError(f"invalid amount {text!r}: an amount must not be negative")
    return value


def parse_quantity(text: str) -> Decimal:
    """Parse a quantity with the grammar of `parse_money`, where a leading `-` is allowed.

    1C sends a negative balance when a warehouse sold more than it had on record. Such a
    quantity is data, not an error, and the importer decides what to show for it.
    """
    return _parse_number(text, kind="quantity")


def _parse_number(text: str, *, kind: str) -> Decimal:
    stripped = text.strip().strip(_INVISIBLE).strip()
    if not stripped:
        raise ValueError(f"invalid {kind} {text!r}: the value is empty")
    if len(stripped) > _MAX_NUMBER_CHARS:
        raise ValueError(f"invalid {kind} {text!r}: longer than {_MAX_NUMBER_CHARS} characters")

    match = _NUMBER.fullmatch(stripped)
    if match is None:
        raise ValueError(
            f"invalid {kind} {text!r}: expected digits with at most one decimal separator"
        )

    integer = re.sub(f"[{_GROUP_SEPARATORS}]", "", match["integer"])
    literal = f"{match['sign'] or ''}{integer}"
    if match["fraction"] is not None:
        literal = f"{literal}.{match['fraction']}"
    try:
        return Decimal(literal)
    except InvalidOperation as exc:  # unreachable for the grammar above; kept as a guard
        raise ValueError(f"invalid {kind} {text!r}") from exc


def parse_bool(text: str | None) -> bool:
    """Parse a 1C flag: `true/false`, `истина/ложь`, `да/нет`, `1/0`, in any letter case.

    An absent value (None) or blank text is False, because 1C leaves out flags that are
    off. Raises ValueError naming the value for any other text.
    """
    if text is None:
        return False

    folded = text.strip().strip(_INVISIBLE).strip().lower()
    if not folded:
        return False
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ValueError(f"invalid flag {text!r}: expected true/false, истина/ложь, да/нет or 1/0")


def parse_datetime(text: str | None, tz: tzinfo) -> datetime | None:
    """Parse a CommerceML date or date-time and return it as an aware UTC datetime.

    Accepted: ISO (`2014-06-01T00:36:33`, one-digit hour, space or `UTC` as separator,
    with or without seconds, optional offset), Russian (`11.02.2021 18:45:21`,
    `11.02.2021`) and date only (midnight). A value without an offset is local time of the
    branch (`tz`). `2022-10-31UTC02:25:50` is read as UTC, as its separator states.
    None, empty text, the placeholder `T` and 1C's empty date (year 1) give None.
    Raises ValueError naming the value for anything else, including impossible dates.
    """
    if text is None:
        return None

    stripped = text.strip().strip(_INVISIBLE).strip()
    if stripped in _EMPTY_DATE_TEXTS:
        return None

    local = _match_iso(stripped, text) or _match_russian(stripped, text)
    if local is None:
        raise ValueError(
            f"invalid date {text!r}: expected yyyy-mm-ddThh:mm:ss, dd.mm.yyyy hh:mm:ss or a date"
        )
    if local.year == _EMPTY_DATE_YEAR:
        return None
    if local.tzinfo is None:
        local = local.replace(tzinfo=tz)
    return local.astimezone(UTC)


def _match_iso(stripped: str, text: str) -> datetime | None:
    match = _ISO.fullmatch(stripped)
    if match is None:
        return None

    day = _build_date(match["year"], match["month"], match["day"], text)
    clock = _build_time(match["hour"], match["minute"], match["second"], match["fraction"], text)
    result = datetime.combine(day, clock)

    if match["offset"] is not None:
        return result.replace(tzinfo=_parse_offset(match["offset"], text))
    if match["sep"] == "UTC":
        # NOTE: one exporter was seen writing this form; that its clock is UTC is unverified.
        return result.replace(tzinfo=UTC)
    return result


def _match_russian(stripped: str, text: str) -> datetime | None:
    match = _RUSSIAN.fullmatch(stripped)
    if match is None:
        return None

    day = _build_date(match["year"], match["month"], match["day"], text)
    clock = _build_time(match["hour"], match["minute"], match["second"], None, text)
    return datetime.combine(day, clock)


def _build_date(year: str, month: str, day: str, text: str) -> date:
    try:
        return date(int(year), int(month), int(day))
    except ValueError as exc:
        raise ValueError(f"invalid date {text!r}: {exc}") from exc


def _build_time(
    hour: str | None, minute: str | None, second: str | None, fraction: str | None, text: str
) -> time:
    if hour is None or minute is None:
        return time()

    # Microseconds: the first six digits of the fraction, right-padded.
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return time(int(hour), int(minute), int(second or 0), micro)
    except ValueError as exc:
        raise ValueError(f"invalid date {text!r}: {exc}") from exc


def _parse_offset(offset: str, text: str) -> timezone:
    if offset == "Z":
        return UTC

    digits = offset[1:].replace(":", "")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    try:
        return timezone(-delta if offset[0] == "-" else delta)
    except ValueError as exc:
        raise ValueError(f"invalid date {text!r}: offset {offset!r} out of range") from exc
