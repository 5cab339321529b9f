"""An imitation of a UT 11 branch base's 1C standard OData interface, served on loopback.

The emulator plays one branch's 1C for the demo and the tests: a generated goods catalog
(honey, balms, cosmetics), stock on one or two warehouses, two price types, and customer
orders that the hub creates and posts. Response shapes follow real 1C 8.3 output (`Ref_Key`,
base64 `DataVersion`, `_Key` references, all-zero empty reference, string `LineNumber`,
dates without a zone). A `FaultPlan` injects the failures a branch really shows.

It is a plain ASGI callable with no threads and no per-instance tasks besides the HTTP
server, so one process can run a thousand of them. `serve_branches` puts many emulators
behind a single listening socket.
"""

from __future__ import annotations

import base64
import collections
import enum
import json
import random
import re
import struct
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any, cast
from urllib.parse import parse_qsl, quote
from zoneinfo import ZoneInfo

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIFramework

__all__ = [
    "CATALOG_ENTITY",
    "ORDER_ENTITY",
    "PRICE_ENTITY",
    "STOCK_ENTITY",
    "UNF",
    "UT_11_4",
    "UT_11_5",
    "EmulatedConfiguration",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "ODataBranchEmulator",
    "serve_branches",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Row = dict[str, Any]

CATALOG_ENTITY = "Catalog_Номенклатура"
ORDER_ENTITY = "Document_ЗаказКлиента"
STOCK_ENTITY = "AccumulationRegister_ТоварыНаСкладах"
PRICE_ENTITY = "InformationRegister_ЦеныНоменклатуры"
ORDER_NUMBER_FIELD = "НомерПоДаннымКлиента"
ORDER_LINES = "Товары"

EMPTY_REF = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE = "0001-01-01T00:00:00"
NUMBER_PREFIX = "МС00"
MAX_BODY_BYTES = 1 << 20

# Price history: every price has an older record and a newer one, so SliceLast with a Period
# between the two returns the older price.
PRICE_PERIODS = ("2025-01-09T00:00:00", "2025-06-02T00:00:00")
OLD_PRICE_SHARE = Decimal("0.9")
DISTRIBUTOR_PRICE_SHARE = Decimal("0.7")
KOPECKS = Decimal("0.01")

# Goods groups: names, package sizes and the retail price range in roubles.
GOODS_GROUPS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[int, int]], ...] = (
    (
        "Мёд",
        (
            "Мёд липовый",
            "Мёд гречишный",
            "Мёд цветочный",
            "Мёд донниковый",
            "Мёд каштановый",
            "Мёд с прополисом",
            "Мёд с маточным молочком",
        ),
        ("250 г", "500 г", "1 кг"),
        (290, 1450),
    ),
    (
        "Бальзамы",
        (
            "Бальзам «Кедровый»",
            "Бальзам «Таёжный»",
            "Бальзам «Золотой корень»",
            "Бальзам «Лесная ягода»",
            "Бальзам для суставов с живицей",
        ),
        ("100 мл", "250 мл"),
        (450, 1900),
    ),
    (
        "Косметика",
        (
            "Крем для рук с прополисом",
            "Крем для лица с пчелиным ядом",
            "Зубная паста с прополисом",
            "Шампунь медовый",
            "Бальзам для губ с пчелиным воском",
            "Мыло медовое",
        ),
        ("50 мл", "100 мл", "200 мл"),
        (150, 690),
    ),
)

HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>1С:Предприятие</title></head><body>"
    "<h1>Сервис временно недоступен</h1><p>Идёт обновление информационной базы.</p>"
    "</body></html>"
)


class ODataFailure(Exception):
    """An `odata.error` reply raised inside a handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class FaultKind(enum.StrEnum):
    SERVER_ERROR = "server_error"  # HTTP 500 with a plain-text body
    HTML_200 = "html_200"  # an HTML maintenance page with HTTP 200
    ODATA_ERROR = "odata_error"  # an odata.error body with the fault's status and code
    HANG = "hang"  # no response for `seconds` or until the client disconnects
    DROP = "drop"  # headers promising a body, then the connection closes


@dataclass
class Fault:
    """One injected failure; `remaining` counts the requests it still applies to."""

    kind: FaultKind
    remaining: int = 1
    method: str | None = None
    after_handling: bool = False
    status: int = 500
    code: str = "0"
    seconds: float = 30.0


@dataclass
class FaultPlan:
    """Failures the emulator injects into the next matching requests, oldest first.

    A fault with `after_handling=True` lets the request take effect (an order is created)
    and then spoils the reply, as when a response is lost on the way back. `down` makes
    every request fail with HTTP 503, like a stopped 1C server behind its web server.
    """

    down: bool = False
    faults: list[Fault] = field(default_factory=list)

    def inject(
        self,
        kind: FaultKind,
        *,
        times: int = 1,
        method: str | None = None,
        after_handling: bool = False,
        status: int = 500,
        code: str = "0",
        seconds: float = 30.0,
    ) -> None:
        """Apply a fault of `kind` to the next `times` requests (of `method`, if given)."""
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times!r}")
        self.faults.append(Fault(kind, times, method, after_handling, status, code, seconds))

    def take(self, method: str, *, after_handling: bool) -> Fault | None:
        """Consume one use of the first fault that matches this request and stage."""
        for fault in self.faults:
            if fault.after_handling != after_handling:
                continue
            if fault.method is not None and fault.method != method:
                continue
            fault.remaining -= 1
            if fault.remaining == 0:
                self.faults.remove(fault)
            return fault
        return None

    def clear(self) -> None:
        self.faults.clear()
        self.down = False


@dataclass(frozen=True)
class EmulatedConfiguration:
    """The names a 1C configuration gives the objects the emulator publishes.

    The emulator keeps its data under УТ 11 names (table part Товары, dimension Склад,
    resource ВНаличии) and renames them in requests and replies. `stock_resources` maps an
    internal resource to its published name; a resource left out is not published.
    """

    name: str
    catalog_entity: str = CATALOG_ENTITY
    order_entity: str = ORDER_ENTITY
    stock_entity: str = STOCK_ENTITY
    price_entity: str = PRICE_ENTITY
    order_lines: str = ORDER_LINES
    stock_warehouse: str = "Склад"
    stock_resources: tuple[tuple[str, str], ...] = (
        ("ВНаличии", "ВНаличии"),
        ("КОтгрузке", "КОтгрузке"),
    )

    def roles(self) -> dict[str, str]:
        """Map each published entity set to the role the emulator serves it in."""
        return {
            self.catalog_entity: "catalog",
            self.order_entity: "order",
            self.stock_entity: "stock",
            self.price_entity: "price",
        }


UT_11_4 = EmulatedConfiguration("УТ 11.4")
UT_11_5 = EmulatedConfiguration("УТ 11.5", price_entity="InformationRegister_ЦеныНоменклатуры25")
# NOTE: the УНФ names follow integrators' descriptions; no real УНФ base was checked.
UNF = EmulatedConfiguration(
    "УНФ",
    order_entity="Document_ЗаказПокупателя",
    stock_entity="AccumulationRegister_ЗапасыНаСкладах",
    order_lines="Запасы",
    stock_warehouse="СтруктурнаяЕдиница",
    stock_resources=(("ВНаличии", "Количество"),),
)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json;charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Request:
    method: str
    resource: str  # the path after the publication's base path, percent-decoded
    options: dict[str, str]  # query options, percent-decoded
    headers: dict[str, str]  # lower-case names
    body: bytes


def dump_json(value: object) -> bytes:
    """Serialise 1C-like JSON; `Decimal` is written as an exact number (prices keep 2 places)."""
    return _encode(value).encode("utf-8")


def _encode(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        items = (
            f"{json.dumps(key, ensure_ascii=False)}:{_encode(item)}" for key, item in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def json_reply(
    status: int, document: object, *, headers: tuple[tuple[str, str], ...] = ()
) -> Reply:
    return Reply(status, dump_json(document), headers=headers)


def error_reply(status: int, code: str, message: str) -> Reply:
    """Build an `odata.error` body the way 1C writes it (the code is a string)."""
    error = {"odata.error": {"code": code, "message": {"lang": "ru", "value": message}}}
    return json_reply(status, error)


def html_reply(status: int) -> Reply:
    return Reply(status, HTML_PAGE.encode("utf-8"), content_type="text/html; charset=utf-8")


def data_version(counter: int) -> str:
    """Encode a version counter the way 1C shows DataVersion, e.g. 4 -> 'AAAABAAAAAA='."""
    return base64.b64encode(struct.pack(">II", counter, 0)).decode("ascii")


# --- Query options ---------------------------------------------------------------------------

TOKEN = re.compile(r"\s*(guid'[^']*'|datetime'[^']*'|'(?:[^']|'')*'|[^\s']+)")


def parse_literal(token: str) -> object:
    """Decode an OData v3 literal; a malformed one raises code 14 (query option parse error)."""
    if token.startswith("guid'"):
        try:
            return str(uuid.UUID(token[5:-1]))
        except ValueError:
            raise ODataFailure(400, "14", f"Неверный литерал GUID: {token}") from None
    if token.startswith("datetime'"):
        try:
            return datetime.fromisoformat(token[9:-1]).isoformat(timespec="seconds")
        except ValueError:
            raise ODataFailure(400, "14", f"Неверный литерал даты: {token}") from None
    if token.startswith("'"):
        return token[1:-1].replace("''", "'")
    if token in ("true", "false"):
        return token == "true"
    try:
        return Decimal(token)
    except ArithmeticError:
        raise ODataFailure(400, "14", f"Неверный литерал: {token}") from None


# Comparison operators of $filter that the emulator supports; 1C supports more.
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda actual, value: bool(actual == value),
    "ne": lambda actual, value: bool(actual != value),
    "gt": lambda actual, value: bool(actual > value),
    "ge": lambda actual, value: bool(actual >= value),
    "lt": lambda actual, value: bool(actual < value),
    "le": lambda actual, value: bool(actual <= value),
}


def parse_filter(text: str) -> list[tuple[str, str, object]]:
    """Parse `Field op literal [and Field op literal ...]` with the operators in COMPARISONS."""
    tokens = TOKEN.findall(text)
    clauses: list[tuple[str, str, object]] = []
    position = 0
    while True:
        if len(tokens) < position + 3 or tokens[position + 1] not in COMPARISONS:
            raise ODataFailure(400, "14", f"Ошибка разбора условия отбора: {text}")
        name, operator, literal = tokens[position : position + 3]
        clauses.append((name, operator, parse_literal(literal)))
        position += 3
        if position == len(tokens):
            return clauses
        if tokens[position] != "and":
            raise ODataFailure(400, "14", f"Ошибка разбора условия отбора: {text}")
        position += 1


def matches(row: Row, clauses: Sequence[tuple[str, str, object]]) -> bool:
    """Apply parsed $filter clauses; dates compare as their ISO text, which sorts by time."""
    for name, operator, value in clauses:
        if name not in row:
            raise ODataFailure(400, "10", f"Не найдено свойство: {name}")
        actual = row[name]
        if isinstance(actual, str) and isinstance(value, str):
            actual = actual.rstrip(" ")
        try:
            if not COMPARISONS[operator](actual, value):
                return False
        except TypeError:
            raise ODataFailure(400, "14", f"Несравнимые типы в условии: {name}") from None
    return True


def select_fields(row: Row, select: str | None, *, table_parts: Iterable[str] = ()) -> Row:
    """Apply `$select`; without it, or with `*`, every property is returned."""
    if select is None or select.strip() in ("", "*"):
        return row
    names = [name.strip() for name in select.split(",")]
    if names == ["**"]:
        return {key: value for key, value in row.items() if key not in set(table_parts)}
    unknown = [name for name in names if name not in row]
    if unknown:
        raise ODataFailure(400, "10", f"Не найдено свойство: {unknown[0]}")
    return {name: row[name] for name in names}


def order_rows(rows: list[Row], orderby: str | None) -> list[Row]:
    """Apply `$orderby=Field [asc|desc], ...`; values compare as text, like GUIDs in the key."""
    if not orderby:
        return rows
    for part in reversed([item.strip() for item in orderby.split(",")]):
        name, _, direction = part.partition(" ")
        descending = direction.strip().lower() == "desc"
        if rows and name not in rows[0]:
            raise ODataFailure(400, "10", f"Не найдено свойство: {name}")
        rows = sorted(rows, key=partial(text_of, name), reverse=descending)
    return rows


def text_of(name: str, row: Row) -> str:
    return str(row[name])


def paging_option(options: Mapping[str, str], name: str) -> int | None:
    text = options.get(name)
    if text is None:
        return None
    if not text.isdigit():
        raise ODataFailure(400, "14", f"Неверное значение параметра {name}: {text}")
    return int(text)


def query_rows(
    rows: Iterable[Row], options: Mapping[str, str], *, table_parts: Iterable[str] = ()
) -> list[Row]:
    """Apply $filter, $orderby, $skip, $top and $select, in the order 1C applies them."""
    selected = list(rows)
    if "$filter" in options:
        clauses = parse_filter(options["$filter"])
        selected = [row for row in selected if matches(row, clauses)]

    selected = order_rows(selected, options.get("$orderby"))
    skip = paging_option(options, "$skip") or 0
    top = paging_option(options, "$top")
    selected = selected[skip:] if top is None else selected[skip : skip + top]
    return [select_fields(row, options.get("$select"), table_parts=table_parts) for row in selected]


def split_function_arguments(text: str) -> dict[str, str]:
    """Split `Period=…,Condition='…',Dimensions='…'` of a virtual table call.

    1C writes literals inside `Condition='…'` with undoubled quotes, so the text is split only
    before the known parameter names instead of by a quote-aware tokenizer.
    """
    arguments: dict[str, str] = {}
    if not text.strip():
        return arguments
    for part in re.split(r",(?=\s*(?:Period|Condition|Dimensions)\s*=)", text):
        name, sign, value = part.partition("=")
        if not sign:
            raise ODataFailure(400, "21", f"Неверный аргумент функции: {part}")
        arguments[name.strip()] = value.strip()
    return arguments


def unquote_argument(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    raise ODataFailure(400, "21", f"Аргумент функции должен быть строкой: {value}")


def parse_condition(value: str) -> list[tuple[str, str, object]]:
    inner = unquote_argument(value)
    try:
        return parse_filter(inner)
    except ODataFailure:
        return parse_filter(inner.replace("''", "'"))


def parse_period(value: str | None) -> str | None:
    """Return the local date text of `Period=datetime'…'`, or None when it is absent."""
    if value is None:
        return None
    literal = parse_literal(value)
    if not value.startswith("datetime'") or not isinstance(literal, str):
        raise ODataFailure(400, "21", f"Period должен быть датой: {value}")
    return literal


RESOURCE = re.compile(
    r"^(?P<entity>[^/(]+)(?:\((?P<key>[^)]*)\))?(?:/(?P<action>[^/(]+)(?:\((?P<args>.*)\))?)?$"
)


def parse_key(key: str) -> str:
    """Read `guid'…'` (or `Ref_Key=guid'…'`) of a canonical entity URL; else code 6."""
    text = key.removeprefix("Ref_Key=")
    match = re.fullmatch(r"guid'([^']*)'", text)
    if match is None:
        raise ODataFailure(400, "6", f"Неверный URL: ключ {key!r}")
    try:
        return str(uuid.UUID(match.group(1)))
    except ValueError:
        raise ODataFailure(400, "6", f"Неверный URL: ключ {key!r}") from None


# --- Generated branch data -------------------------------------------------------------------


class BranchData:
    """The catalog, stock and price records of one generated branch base."""

    def __init__(self, rng: random.Random, products: int) -> None:
        self._rng = rng
        self.warehouses = [self.new_ref() for _ in range(rng.choice((1, 2)))]
        self.price_types = {"Розничная": self.new_ref(), "Дистрибьюторская": self.new_ref()}
        self.catalog: list[Row] = []
        self.stock: dict[tuple[str, str, str], dict[str, Decimal]] = {}
        self.prices: list[Row] = []
        self._generate(products)

    def new_ref(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _generate(self, products: int) -> None:
        groups = [self._catalog_row(name, None, is_folder=True) for name, *_ in GOODS_GROUPS]
        self.catalog.extend(groups)
        names_seen: collections.Counter[str] = collections.Counter()
        for index in range(products):
            group_index = index % len(GOODS_GROUPS)
            _, names, sizes, price_range = GOODS_GROUPS[group_index]
            name = f"{self._rng.choice(names)}, {self._rng.choice(sizes)}"
            names_seen[name] += 1
            if names_seen[name] > 1:
                name = f"{name} (вариант {names_seen[name]})"

            product = self._catalog_row(name, groups[group_index]["Ref_Key"], is_folder=False)
            product["DeletionMark"] = index % 10 == 9
            self.catalog.append(product)
            if not product["DeletionMark"]:
                self._add_goods(
                    product["Ref_Key"], with_characteristics=index % 5 == 4, price_range=price_range
                )

    def _catalog_row(self, name: str, parent: str | None, *, is_folder: bool) -> Row:
        ref = self.new_ref()
        code = f"00-{len(self.catalog) + 1:08d}"
        sku = (
            None
            if is_folder or self._rng.random() < 0.15
            else f"ТН-{self._rng.randint(1000, 9999)}"
        )
        row: Row = {
            "Ref_Key": ref,
            "DataVersion": data_version(self._rng.randint(1, 40)),
            "DeletionMark": False,
            "Parent_Key": parent or EMPTY_REF,
            "IsFolder": is_folder,
            "Code": code,
            "Description": name,
            "Артикул": sku,
            "НаименованиеПолное": name,
            "ЕдиницаИзмерения_Key": None if is_folder else EMPTY_REF,
            "Predefined": False,
            "PredefinedDataName": "",
        }
        if parent:
            row["Parent@navigationLinkUrl"] = f"{CATALOG_ENTITY}(guid'{ref}')/Parent"
        return row

    def _add_goods(
        self, product: str, *, with_characteristics: bool, price_range: tuple[int, int]
    ) -> None:
        characteristics = [self.new_ref(), self.new_ref()] if with_characteristics else [EMPTY_REF]
        for characteristic in characteristics:
            for number, warehouse in enumerate(self.warehouses):
                quantity = self._rng.randint(0, 120)
                if quantity and (number == 0 or self._rng.random() < 0.5):
                    balance = {"ВНаличии": Decimal(quantity), "КОтгрузке": Decimal(0)}
                    self.stock[(product, characteristic, warehouse)] = balance

            low, high = price_range
            retail = (Decimal(self._rng.randint(low * 10, high * 10)) / 10).quantize(KOPECKS)
            shares = {"Розничная": Decimal(1), "Дистрибьюторская": DISTRIBUTOR_PRICE_SHARE}
            for type_name, share in shares.items():
                newest = (retail * share).quantize(KOPECKS)
                older = (newest * OLD_PRICE_SHARE).quantize(KOPECKS)
                for period, amount in zip(PRICE_PERIODS, (older, newest), strict=True):
                    self.prices.append(
                        {
                            "Period": period,
                            "Номенклатура_Key": product,
                            "Характеристика_Key": characteristic,
                            "ВидЦены_Key": self.price_types[type_name],
                            "Цена": amount,
                            "Упаковка_Key": EMPTY_REF,
                        }
                    )


# --- The emulator ----------------------------------------------------------------------------

# Russian texts of 1C OData error codes, from the table of codes in the 1C 8.3 manual.
ERROR_TEXTS_RU = {
    "0": "Возможность не поддерживается",
    "2": "Неверный формат запроса",
    "3": "Запрошенный тип представления не поддерживается",
    "4": "Неверное значение свойства",
    "6": "Неверный URL",
    "8": "Тип сущности не найден",
    "9": "Экземпляр сущности не найден",
    "11": "Метод не найден",
    "14": "Ошибка разбора опций запроса",
    "19": "Использованный HTTP-метод запрещен в данном контексте",
    "20": "Ошибка прав доступа",
}

ORDER_REF_FIELDS = (
    "Организация_Key",
    "Партнер_Key",
    "Контрагент_Key",
    "Соглашение_Key",
    "Склад_Key",
    "Валюта_Key",
)
STOCK_DIMENSIONS = ("Номенклатура", "Характеристика", "Склад")
STOCK_RESOURCES = ("ВНаличии", "КОтгрузке")


# (role of the entity set, key given, action, HTTP method) -> name of the handler method.
ROUTES: dict[tuple[str, bool, str | None, str], str] = {
    ("catalog", False, None, "GET"): "_catalog_list",
    ("catalog", True, None, "GET"): "_catalog_item",
    ("order", False, None, "GET"): "_order_list",
    ("order", False, None, "POST"): "_order_create",
    ("order", True, None, "GET"): "_order_item",
    ("order", True, None, "PATCH"): "_order_patch",
    ("order", True, "Post", "POST"): "_order_post",
    ("order", True, "Unpost", "POST"): "_order_unpost",
    ("stock", False, "Balance", "GET"): "_stock_balance",
    ("price", False, "SliceLast", "GET"): "_price_slice_last",
}
ACTIONS = {(role, action) for role, _, action, _ in ROUTES if action is not None}


class BodyTooLarge(Exception):
    """A request body over `MAX_BODY_BYTES`."""


class ODataBranchEmulator:
    """One branch's 1C `standard.odata` publication, as an ASGI app.

    `configuration` sets the entity and field names: УТ 11.4 by default, or `UT_11_5`,
    `UNF`. `hidden` leaves entity sets out of the OData composition, so requests to them
    get code 8 and the service document does not list them.

    State visible to tests:
    - `orders`: order documents by Ref_Key, in 1C JSON shape;
    - `creations`: documents created per hub order number (a value above 1 is a duplicate);
    - `created_at`: when, on trio's clock, the first document of each hub number was made;
    - `posted`: Ref_Keys of posted orders;
    - `requests`: requests received per entity set ("" is the service document), counted
      before faults apply, so a request that an injected fault fails counts too;
    - `faults`: failures to inject; `data`: the generated goods, stock and prices.
    """

    def __init__(
        self,
        *,
        branch_code: str,
        username: str = "hub",
        password: str = "secret",
        tz: ZoneInfo,
        products: int = 20,
        seed: int = 0,
        configuration: EmulatedConfiguration = UT_11_4,
        hidden: Iterable[str] = (),
    ) -> None:
        self.branch_code = branch_code
        self.tz = tz
        self.configuration = configuration
        hidden_names = set(hidden)
        self.published = {
            entity: role
            for entity, role in configuration.roles().items()
            if entity not in hidden_names
        }
        self.requests: collections.Counter[str] = collections.Counter()
        self._rng = random.Random(f"{branch_code}:{seed}")
        self.data = BranchData(self._rng, products)
        self.base_path = f"/{branch_code}/odata/standard.odata/"
        self.base_url = ""
        self.orders: dict[str, dict[str, Any]] = {}
        self.creations: collections.Counter[str] = collections.Counter()
        self.created_at: dict[str, float] = {}
        self.posted: set[str] = set()
        self.faults = FaultPlan()
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._authorization = f"Basic {token}"
        self._versions: dict[str, int] = {}
        self._next_number = self._rng.randint(100, 900)

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve this branch until cancelled; `task_status.started` receives the base URL."""
        async with trio.open_nursery() as nursery:
            origin = await start_http_server(nursery, self, host, port)
            self.base_url = origin + quote(self.base_path)
            task_status.started(self.base_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send)
        elif scope["type"] == "http":
            await self._serve_http(scope, receive, send)

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(receive)
        except BodyTooLarge:
            await send_reply(send, error_reply(413, "2", "Слишком большой запрос"))
            return
        if body is None:
            return

        method = scope["method"]
        request = self._request(scope, body)
        self._count(request)
        if self.faults.down:
            await send_reply(send, html_reply(503))
            return

        fault = self.faults.take(method, after_handling=False)
        if fault is not None and await play_fault(fault, receive, send):
            return

        reply = self.handle(request)
        fault = self.faults.take(method, after_handling=True)
        if fault is not None and await play_fault(fault, receive, send):
            return
        await send_reply(send, reply)

    def _request(self, scope: Scope, body: bytes) -> Request | None:
        """Describe an HTTP request to this publication; None when the path is outside it."""
        path: str = scope["path"]
        if path == self.base_path.rstrip("/"):
            resource = ""
        elif path.startswith(self.base_path):
            resource = path.removeprefix(self.base_path)
        else:
            return None

        query = scope.get("query_string", b"").decode("latin-1")
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        options = dict(parse_qsl(query, keep_blank_values=True))
        return Request(scope["method"], resource, options, headers, body)

    def _count(self, request: Request | None) -> None:
        if request is None:
            return
        match = RESOURCE.match(request.resource)
        self.requests[match.group("entity") if match else request.resource] += 1

    def touch_product(self, ref: str, **changes: Any) -> None:
        """Change catalog fields of one element and raise its DataVersion, as a 1C write does."""
        row = next((row for row in self.data.catalog if row["Ref_Key"] == ref), None)
        if row is None:
            raise KeyError(f"no catalog element {ref!r}")
        unknown = set(changes) - set(row)
        if unknown:
            raise KeyError(f"unknown catalog fields {sorted(unknown)!r}")
        row.update(changes)
        counter, _ = struct.unpack(">II", base64.b64decode(row["DataVersion"]))
        row["DataVersion"] = data_version(counter + 1)

    def handle(self, request: Request | None) -> Reply:
        """Build the reply to one request; the synchronous core of the emulator, after faults."""
        if request is None:
            return Reply(404, b"Not Found", content_type="text/plain")

        if request.headers.get("authorization") != self._authorization:
            headers = (("WWW-Authenticate", 'Basic realm="1C:Enterprise"'),)
            body = "Ошибка аутентификации".encode()
            return Reply(401, body, "text/plain; charset=utf-8", headers)

        try:
            return self._route(request)
        except ODataFailure as failure:
            return error_reply(failure.status, failure.code, failure.message)

    def _route(self, request: Request) -> Reply:
        if request.resource == "":
            return self._service_document()
        if not wants_json(request):
            raise ODataFailure(400, "3", "Эмулятор отдает только JSON: укажите $format=json")

        match = RESOURCE.match(request.resource)
        if match is None:
            raise ODataFailure(400, "6", f"Неверный URL: {request.resource}")
        entity, key, action, arguments = match.group("entity", "key", "action", "args")
        role = self.published.get(entity)
        if role is None:
            raise ODataFailure(404, "8", f"Не найден тип сущности: {entity}")

        handler = self._handler(role, entity, key is not None, action, request.method)
        return handler(request, key=key, arguments=arguments or "")

    def _handler(
        self, role: str, entity: str, has_key: bool, action: str | None, method: str
    ) -> Callable[..., Reply]:
        name = ROUTES.get((role, has_key, action, method))
        if name is not None:
            handler: Callable[..., Reply] = getattr(self, name)
            return handler
        if action is not None and (role, action) not in ACTIONS:
            raise ODataFailure(400, "11", f"Метод не найден: {action}")
        raise ODataFailure(405, "19", f"Метод {method} запрещен для {entity}")

    def _collection(self, entity: str, rows: list[Row]) -> Reply:
        metadata = f"{self.base_url}$metadata#{entity}"
        return json_reply(200, {"odata.metadata": metadata, "value": rows})

    def _element(
        self, entity: str, row: Row, *, status: int = 200, headers: tuple[tuple[str, str], ...] = ()
    ) -> Reply:
        metadata = f"{self.base_url}$metadata#{entity}/@Element"
        return json_reply(status, {"odata.metadata": metadata, **row}, headers=headers)

    def _service_document(self) -> Reply:
        entity_sets = [{"name": name, "url": name} for name in self.published]
        return json_reply(
            200, {"odata.metadata": f"{self.base_url}$metadata", "value": entity_sets}
        )

    def _catalog_list(self, request: Request, **_: str) -> Reply:
        entity = self.configuration.catalog_entity
        return self._collection(entity, query_rows(self.data.catalog, request.options))

    def _catalog_item(self, request: Request, *, key: str, **_: str) -> Reply:
        ref = parse_key(key)
        for row in self.data.catalog:
            if row["Ref_Key"] == ref:
                return self._element(
                    self.configuration.catalog_entity,
                    select_fields(row, request.options.get("$select")),
                )
        raise ODataFailure(404, "9", f"Экземпляр сущности не найден: {ref}")

    def _order_list(self, request: Request, **_: str) -> Reply:
        lines = self.configuration.order_lines
        rows = query_rows(self.orders.values(), request.options, table_parts=(lines,))
        return self._collection(self.configuration.order_entity, rows)

    def _order_item(self, request: Request, *, key: str, **_: str) -> Reply:
        order = self._find_order(key)
        lines = self.configuration.order_lines
        return self._element(
            self.configuration.order_entity,
            select_fields(order, request.options.get("$select"), table_parts=(lines,)),
        )

    def _find_order(self, key: str) -> dict[str, Any]:
        ref = parse_key(key)
        order = self.orders.get(ref)
        if order is None:
            raise ODataFailure(404, "9", f"Экземпляр сущности не найден: {ref}")
        return order

    def _order_create(self, request: Request, **_: str) -> Reply:
        document = parse_body(request.body)
        lines = self.configuration.order_lines
        ref = self.data.new_ref()
        order: dict[str, Any] = {
            "Ref_Key": ref,
            "DataVersion": self._bump_version(ref),
            "DeletionMark": False,
            "Number": f"{NUMBER_PREFIX}-{self._next_number:06d}",
            "Date": local_date(document.get("Date"), default=datetime.now(self.tz)),
            "Posted": False,
            "Статус": "НеСогласован",
            ORDER_NUMBER_FIELD: text_property(document, ORDER_NUMBER_FIELD),
            "Комментарий": text_property(document, "Комментарий"),
            "СуммаДокумента": number_property(document, "СуммаДокумента"),
            **{name: ref_property(document, name) for name in ORDER_REF_FIELDS},
            lines: order_lines(document.get(lines, []), ref),
        }
        self._next_number += 1
        self.orders[ref] = order
        self.creations[order[ORDER_NUMBER_FIELD]] += 1
        self.created_at.setdefault(order[ORDER_NUMBER_FIELD], trio.current_time())

        entity = self.configuration.order_entity
        location = self.base_url + quote(f"{entity}(guid'{ref}')", safe="()'")
        return self._element(
            entity, with_links(order, entity), status=201, headers=(("Location", location),)
        )

    def _order_patch(self, request: Request, *, key: str, **_: str) -> Reply:
        order = self._find_order(key)
        expected_version = request.headers.get("if-match")
        if expected_version is not None and expected_version.strip('"') != order["DataVersion"]:
            # NOTE: the status 412 follows HTTP. The odata.error body 1C sends for a DataVersion
            # mismatch is not documented, so the code "0" here is a stand-in.
            raise ODataFailure(412, "0", "Версия данных объекта изменилась")

        document = parse_body(request.body)
        for name, value in document.items():
            if name == self.configuration.order_lines:
                order[name] = order_lines(value, order["Ref_Key"])
            elif name in order and name not in ("Ref_Key", "DataVersion", "Number"):
                order[name] = value
        order["DataVersion"] = self._bump_version(order["Ref_Key"])
        entity = self.configuration.order_entity
        return self._element(entity, with_links(order, entity))

    def _order_post(self, request: Request, *, key: str, **_: str) -> Reply:
        order = self._find_order(key)
        if order["Ref_Key"] not in self.posted:
            self._reserve(order, sign=1)
        order["Posted"] = True
        order["Статус"] = "КОбеспечению"
        order["DataVersion"] = self._bump_version(order["Ref_Key"])
        self.posted.add(order["Ref_Key"])
        return Reply(200)

    def _order_unpost(self, request: Request, *, key: str, **_: str) -> Reply:
        order = self._find_order(key)
        if order["Ref_Key"] in self.posted:
            self._reserve(order, sign=-1)
        order["Posted"] = False
        order["DataVersion"] = self._bump_version(order["Ref_Key"])
        self.posted.discard(order["Ref_Key"])
        return Reply(200)

    def _reserve(self, order: dict[str, Any], *, sign: int) -> None:
        """Move posted order quantities into КОтгрузке (to ship) at the main warehouse."""
        warehouse = self.data.warehouses[0]
        for line in order[self.configuration.order_lines]:
            key = (line["Номенклатура_Key"], line["Характеристика_Key"], warehouse)
            balance = self.data.stock.setdefault(
                key, {"ВНаличии": Decimal(0), "КОтгрузке": Decimal(0)}
            )
            balance["КОтгрузке"] += sign * line["Количество"]

    def _bump_version(self, ref: str) -> str:
        self._versions[ref] = self._versions.get(ref, 0) + 1
        return data_version(self._versions[ref])

    def _stock_balance(self, request: Request, *, arguments: str, **_: str) -> Reply:
        parsed = split_function_arguments(arguments)
        # The emulator keeps no stock history, so Period is only checked for syntax.
        parse_period(parsed.get("Period"))
        # Published dimension name -> the internal (УТ 11) one.
        internal = {name: name for name in STOCK_DIMENSIONS}
        del internal["Склад"]
        internal[self.configuration.stock_warehouse] = "Склад"
        dimensions: tuple[str, ...] = tuple(internal)
        if "Dimensions" in parsed:
            dimensions = tuple(
                name.strip() for name in unquote_argument(parsed["Dimensions"]).split(",")
            )
        unknown = [name for name in dimensions if name not in internal]
        if unknown:
            raise ODataFailure(400, "21", f"Неверное измерение: {unknown[0]}")

        totals = balance_rows(self.data.stock, [internal[name] for name in dimensions])
        rows = [self._published_balance(row) for row in totals]
        if "Condition" in parsed:
            clauses = parse_condition(parsed["Condition"])
            rows = [row for row in rows if matches(row, clauses)]
        entity = f"{self.configuration.stock_entity}_Balance"
        return self._collection(entity, query_rows(rows, request.options))

    def _published_balance(self, row: Row) -> Row:
        """Rename an internal balance row to the configuration's dimension and resources."""
        published: Row = {}
        warehouse_key = f"{self.configuration.stock_warehouse}_Key"
        for name, value in row.items():
            if name.endswith("_Key"):
                published[warehouse_key if name == "Склад_Key" else name] = value
        for resource, name in self.configuration.stock_resources:
            published[f"{name}Balance"] = row[f"{resource}Balance"]
        return published

    def _price_slice_last(self, request: Request, *, arguments: str, **_: str) -> Reply:
        parsed = split_function_arguments(arguments)
        period = parse_period(parsed.get("Period"))
        latest: dict[tuple[str, str, str], Row] = {}
        for record in self.data.prices:
            if period is not None and record["Period"] > period:
                continue
            key = (record["Номенклатура_Key"], record["Характеристика_Key"], record["ВидЦены_Key"])
            if key not in latest or latest[key]["Period"] < record["Period"]:
                latest[key] = record

        rows = list(latest.values())
        condition = parsed.get("Condition") or quote_condition(request.options.get("Condition"))
        if condition:
            clauses = parse_condition(condition)
            rows = [row for row in rows if matches(row, clauses)]
        entity = f"{self.configuration.price_entity}_SliceLast"
        return self._collection(entity, query_rows(rows, request.options))


# --- Request bodies --------------------------------------------------------------------------


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body, parse_float=Decimal)
    except ValueError:
        raise ODataFailure(400, "2", "Неверный формат запроса: тело не является JSON") from None
    if not isinstance(document, dict):
        raise ODataFailure(400, "2", "Неверный формат запроса: ожидается объект JSON")
    return document


def text_property(document: Mapping[str, Any], name: str) -> str:
    value = document.get(name, "")
    if not isinstance(value, str):
        raise ODataFailure(400, "4", f"Неверное значение свойства {name}: {value!r}")
    return value


def number_property(document: Mapping[str, Any], name: str) -> Decimal:
    value = document.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ODataFailure(400, "4", f"Неверное значение свойства {name}: {value!r}")
    return Decimal(value)


def ref_property(document: Mapping[str, Any], name: str) -> str:
    value = document.get(name, EMPTY_REF)
    try:
        return str(uuid.UUID(value))
    except (TypeError, ValueError, AttributeError):
        raise ODataFailure(400, "4", f"Неверное значение свойства {name}: {value!r}") from None


def local_date(value: object, *, default: datetime) -> str:
    """Read a naive local 1C date from a request body; a missing one is the current time."""
    if value is None:
        return default.replace(tzinfo=None).isoformat(timespec="seconds")
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ODataFailure(400, "4", f"Неверное значение свойства Date: {value!r}") from None
    if moment.tzinfo is not None:
        raise ODataFailure(400, "4", f"Дата 1С не содержит часового пояса: {value!r}")
    return moment.isoformat(timespec="seconds")


def order_lines(rows: object, owner: str) -> list[Row]:
    """Validate the Товары table part; 1C renumbers LineNumber and writes it as a string."""
    if not isinstance(rows, list):
        raise ODataFailure(400, "4", "Табличная часть Товары должна быть массивом")
    lines: list[Row] = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise ODataFailure(400, "4", "Строка табличной части должна быть объектом")
        quantity = number_property(row, "Количество")
        lines.append(
            {
                "Ref_Key": owner,
                "LineNumber": str(number),
                "Номенклатура_Key": ref_property(row, "Номенклатура_Key"),
                "Характеристика_Key": ref_property(row, "Характеристика_Key"),
                "Количество": quantity,
                "КоличествоУпаковок": row.get("КоличествоУпаковок", quantity),
                "Цена": number_property(row, "Цена"),
                "Сумма": number_property(row, "Сумма"),
            }
        )
    return lines


def with_links(order: Mapping[str, Any], entity: str) -> Row:
    """Add the `<Name>@navigationLinkUrl` properties 1C writes for filled references."""
    links: Row = {}
    for name in ORDER_REF_FIELDS:
        if order[name] == EMPTY_REF:
            continue
        attribute = name.removesuffix("_Key")
        links[f"{attribute}@navigationLinkUrl"] = f"{entity}(guid'{order['Ref_Key']}')/{attribute}"
    return {**order, **links}


def balance_rows(
    stock: Mapping[tuple[str, str, str], Mapping[str, Decimal]], dimensions: Sequence[str]
) -> list[Row]:
    """Sum balances over the dimensions left out; rows whose resources are all zero vanish."""
    totals: dict[tuple[str, ...], dict[str, Decimal]] = {}
    for key, balance in stock.items():
        values = dict(zip(STOCK_DIMENSIONS, key, strict=True))
        group = tuple(values[name] for name in dimensions)
        total = totals.setdefault(group, dict.fromkeys(STOCK_RESOURCES, Decimal(0)))
        for resource in STOCK_RESOURCES:
            total[resource] += balance[resource]

    rows: list[Row] = []
    for group, total in totals.items():
        if not any(total.values()):
            continue
        row: Row = {f"{name}_Key": value for name, value in zip(dimensions, group, strict=True)}
        row.update({f"{resource}Balance": amount for resource, amount in total.items()})
        rows.append(row)
    return rows


def quote_condition(condition: str | None) -> str | None:
    """Wrap the `?Condition=…` query form of a virtual table call like its argument form."""
    return None if condition is None else f"'{condition}'"


def wants_json(request: Request) -> bool:
    requested = request.options.get("$format")
    if requested is not None:
        return requested == "json" or requested.startswith("application/json")
    return "application/json" in request.headers.get("accept", "")


# --- ASGI plumbing ---------------------------------------------------------------------------


async def read_body(receive: Receive) -> bytes | None:
    """Read the request body; None when the client disconnected first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_reply(send: Send, reply: Reply) -> None:
    headers = [
        (b"content-type", reply.content_type.encode("latin-1")),
        (b"content-length", str(len(reply.body)).encode("ascii")),
        (b"dataserviceversion", b"3.0"),
        *(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in reply.headers
        ),
    ]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def play_fault(fault: Fault, receive: Receive, send: Send) -> bool:
    """Act out `fault`; return True when it replaced the reply, False when the reply follows."""
    if fault.kind is FaultKind.HANG:
        return await wait_for_disconnect(receive, fault.seconds)

    if fault.kind is FaultKind.DROP:
        # A Content-Length that the body never reaches makes hypercorn close the connection
        # when the app returns, so the client sees the response cut off mid-way.
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"4096")],
        }
        await send(start)
        await send({"type": "http.response.body", "body": b'{"odata.metadata":', "more_body": True})
        return True

    replies = {
        FaultKind.SERVER_ERROR: Reply(500, b"Internal Server Error", content_type="text/plain"),
        FaultKind.HTML_200: html_reply(200),
        FaultKind.ODATA_ERROR: error_reply(
            fault.status, fault.code, ERROR_TEXTS_RU.get(fault.code, "Ошибка (имитация)")
        ),
    }
    await send_reply(send, replies[fault.kind])
    return True


async def wait_for_disconnect(receive: Receive, seconds: float) -> bool:
    """Stay silent for `seconds`; True when the client gave up and disconnected meanwhile."""
    with trio.move_on_after(seconds):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return True
    return False


async def run_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def start_http_server(
    nursery: trio.Nursery,
    app: Callable[[Scope, Receive, Send], Awaitable[None]],
    host: str,
    port: int,
) -> str:
    """Start hypercorn in `nursery` and return the bound origin, e.g. `http://127.0.0.1:41234`."""
    config = HypercornConfig()
    config.bind = [f"{host}:{port}"]
    config.loglevel = "WARNING"
    config.accesslog = None
    # The ASGI aliases here are looser than hypercorn's TypedDict events, hence the cast.
    asgi_app = cast("ASGIFramework", app)
    binds: list[str] = await nursery.start(partial(hypercorn_serve, asgi_app, config, mode="asgi"))
    return binds[0]


class BranchRouter:
    """An ASGI app that sends `/<branch_code>/…` to that branch's emulator."""

    def __init__(self, emulators: Iterable[ODataBranchEmulator]) -> None:
        self.emulators: dict[str, ODataBranchEmulator] = {}
        for emulator in emulators:
            if emulator.branch_code in self.emulators:
                raise ValueError(f"duplicate branch code {emulator.branch_code!r}")
            self.emulators[emulator.branch_code] = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return

        branch_code = scope["path"].split("/", 2)[1]
        emulator = self.emulators.get(branch_code)
        if emulator is None:
            await send_reply(send, Reply(404, b"Not Found", content_type="text/plain"))
            return
        await emulator(scope, receive, send)


async def serve_branches(
    emulators: Sequence[ODataBranchEmulator],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve many emulators on one socket, each under `/<branch_code>/odata/standard.odata/`.

    Each emulator's `base_url` is set before `task_status.started` receives the origin.
    """
    router = BranchRouter(emulators)
    async with trio.open_nursery() as nursery:
        origin = await start_http_server(nursery, router, host, port)
        for emulator in emulators:
            emulator.base_url = origin + quote(emulator.base_path)
        task_status.started(origin)
