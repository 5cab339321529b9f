"""Async client of a branch's 1C standard OData interface (`/odata/standard.odata/`).

1C speaks OData v3 with its own literals (`guid'…'`, `datetime'…'`) and Cyrillic entity names,
so URLs are built here by hand instead of through an OData library.
"""

from __future__ import annotations

import functools
import hashlib
import random
import ssl
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Generic, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

import certifi
import httpx
import trio

from connectors.odata.errors import (
    ODataConflictError,
    ODataError,
    error_from_exception,
    error_from_response,
    invalid_json_error,
    invalid_row_error,
)
from connectors.odata.models import (
    CHARACTERISTIC_FIELD,
    ORDER_SELECT,
    PRICE_SELECT,
    PRICE_TYPE_FIELD,
    PRODUCT_FIELD,
    PRODUCT_SELECT,
    OrderIn,
    OrderRef,
    PriceRow,
    ProductRow,
    StockRow,
    decode_order,
    decode_price,
    decode_product,
    decode_stock,
    dump_json,
    encode_order,
    parse_json,
    pick_order,
    to_local_text,
)
from connectors.odata.profile import ODataProfile, Role, choose_profile, published_names
from tentorium_hub.logs import get_logger
from tentorium_hub.metrics import record_exchange

T = TypeVar("T")
R = TypeVar("R")

# Dimensions of the stock balance besides the warehouse: everything else (series,
# purpose...) is summed up by 1C.
STOCK_ITEM_DIMENSIONS = ("Номенклатура", "Характеристика")

# Characters left as they are in 1C resource paths and query values, because they make up
# the OData v3 literal syntax (`guid'…'`, `Balance(Period=…,Condition=…)`). Everything else
# is percent-encoded UTF-8, which covers Cyrillic names and the spaces of `$filter`.
PATH_SAFE = "/(),='_-."
QUERY_SAFE = "(),'_-.:"

# Parsed request URLs each client keeps, so the same poll request every interval skips
# building and parsing its URL again. httpx 0.29 parses a URL string character by character,
# and percent-encoded Cyrillic names make these URLs about 500 characters long. One poll
# reads 3 or 4 fixed URLs. The cache is emptied when full, so one-off URLs cannot grow it.
URL_CACHE_SIZE = 16

log = get_logger("connectors.odata")


@dataclass(frozen=True)
class ODataConfig:
    """Connection settings of one branch's 1C OData publication."""

    base_url: str
    username: str
    password: str
    tz: ZoneInfo
    timeout_s: float = 10.0
    max_attempts: int = 3
    catalog_entity: str = "Catalog_Номенклатура"
    order_entity: str = "Document_ЗаказКлиента"
    stock_entity: str = "AccumulationRegister_ТоварыНаСкладах"
    stock_resource: str = "ВНаличииBalance"
    stock_warehouse_dimension: str = "Склад"
    price_entity: str = "InformationRegister_ЦеныНоменклатуры"
    order_number_field: str = "НомерПоДаннымКлиента"
    order_lines_field: str = "Товары"
    page_size: int = 1000
    # Back-off before retry n is drawn from [cap/2, cap], cap = min(base * 2**(n-1), max).
    backoff_base_s: float = 0.5
    backoff_max_s: float = 5.0
    # Branch references a new order needs in 1C (e.g. "Организация_Key", "Склад_Key").
    order_extra_fields: Mapping[str, object] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "order_extra_fields", MappingProxyType(dict(self.order_extra_fields))
        )
        if not self.base_url.endswith("/"):
            object.__setattr__(self, "base_url", self.base_url + "/")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts!r}")
        if self.page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {self.page_size!r}")


@dataclass(frozen=True)
class CatalogRows:
    """A branch's goods catalog, latest prices and stock balances, decoded."""

    products: list[ProductRow]
    prices: list[PriceRow]
    stock: list[StockRow]


@dataclass(frozen=True)
class CatalogRead:
    """One read of a branch's catalog, prices and stock; see `ODataClient.read_catalog`."""

    # BLAKE2b of every request URL and response body of the read, in order.
    digest: bytes
    product_count: int
    # None when `digest` equals the caller's: the same bytes would decode to the same rows.
    rows: CatalogRows | None


class BodyDigest:
    """A running digest of response bodies and the URLs they came from."""

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=16)

    def add(self, url: str, body: bytes) -> None:
        # Each part goes in with its length, so bytes moved from one part to the next
        # change the digest.
        for part in (url.encode(), body):
            self._hash.update(len(part).to_bytes(8, "big"))
            self._hash.update(part)

    def digest(self) -> bytes:
        return self._hash.digest()


@dataclass(frozen=True)
class _RawRows(Generic[R]):
    """Rows of one read, parsed from JSON and not decoded yet."""

    rows: list[object]
    decode_row: Callable[[object], R]

    def decode(self) -> list[R]:
        return [self.decode_row(row) for row in self.rows]


def guid_literal(value: str) -> str:
    """Format a GUID as an OData v3 literal; a malformed GUID raises ValueError."""
    return f"guid'{uuid.UUID(value)}'"


def string_literal(value: str) -> str:
    """Format an OData string literal; a quote inside is doubled."""
    return "'" + value.replace("'", "''") + "'"


def datetime_literal(moment: datetime, tz: ZoneInfo) -> str:
    """Format an aware time as a 1C date literal in the branch's local time."""
    return f"datetime'{to_local_text(moment, tz)}'"


def build_url(base_url: str, resource: str, params: Sequence[tuple[str, str]]) -> str:
    """Join the base URL, the percent-encoded resource path and the query options."""
    query = "&".join(
        f"{quote(key, safe='$')}={quote(value, safe=QUERY_SAFE)}" for key, value in params
    )
    url = base_url + quote(resource, safe=PATH_SAFE)
    return f"{url}?{query}" if query else url


def virtual_table(entity: str, function: str, arguments: Sequence[tuple[str, str]]) -> str:
    """Build the path of a register virtual table, e.g. `Entity/SliceLast(Period=…)`."""
    inner = ",".join(f"{name}={value}" for name, value in arguments)
    return f"{entity}/{function}({inner})"


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every branch client of the process.

    httpx builds a context and loads the CA bundle for each client by default, about
    0.85 MB and 19 ms each (measured in loadtests/bench_pollers.py); a node with 1,100
    branch actors would spend about 0.9 GB on identical copies.
    """
    return ssl.create_default_context(cafile=certifi.where())


class ODataClient:
    """Reads goods, stock and prices from a branch's 1C and writes customer orders into it.

    Each public method retries retryable failures up to `config.max_attempts` times with a
    jittered back-off and raises `ODataError` (a `ConnectorError`) when it gives up.

    Entity names come from the config until `use_profile` sets a probed `ODataProfile`.
    After that, a role the branch does not publish raises `ODataProfileError` before any
    request goes out.
    """

    def __init__(self, config: ODataConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self._config = config
        self._owns_client = client is None
        self._http = client if client is not None else httpx.AsyncClient(verify=_tls_context())
        self._auth = httpx.BasicAuth(config.username, config.password)
        self._timeout = httpx.Timeout(config.timeout_s)
        self._random = random.Random()
        self._log = log.bind(odata_url=config.base_url)
        self._profile: ODataProfile | None = None
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], httpx.URL] = {}

    @property
    def profile(self) -> ODataProfile | None:
        return self._profile

    def use_profile(self, profile: ODataProfile | None) -> None:
        """Take entity and field names from `profile`; None goes back to the config's names."""
        self._profile = profile

    async def aclose(self) -> None:
        if self._owns_client:
            await self._http.aclose()

    async def probe_profile(self, *, retry: bool = True) -> ODataProfile:
        """Read the service document and choose the entity names this branch publishes.

        This is the one GET without `$select`: the service document only lists entity sets.
        With `retry=False` exactly one request goes out (a circuit breaker's trial call).
        The result is returned, not applied; pass it to `use_profile`.
        """

        async def get() -> object:
            return await self._send("GET", "", [])

        document = await self._measure(
            "probe_profile", lambda: self._with_retries(get) if retry else get()
        )
        profile = choose_profile(published_names(document))
        self._log.info(
            "odata.profile_probed",
            published=profile.published_count,
            entities={str(role): choice.entity for role, choice in profile.choices.items()},
        )
        return profile

    async def fetch_products(self) -> list[ProductRow]:
        """Read the whole goods catalog page by page, ordered by Ref_Key."""
        return await self._measure("fetch_products", self._fetch_products)

    async def fetch_stock(self, *, at: datetime | None = None) -> list[StockRow]:
        """Read stock balances per product, characteristic and warehouse (now, or at `at`)."""
        return await self._measure("fetch_stock", lambda: self._fetch_stock(at))

    async def fetch_prices(
        self, *, price_type_id: str | None = None, at: datetime | None = None
    ) -> list[PriceRow]:
        """Read the latest prices (all price types, or one), as of now or of `at`."""
        return await self._measure("fetch_prices", lambda: self._fetch_prices(price_type_id, at))

    async def read_catalog(self, *, unchanged_digest: bytes | None = None) -> CatalogRead:
        """Read the goods catalog, the latest prices and stock, as the `fetch_*` methods do.

        The rows are decoded only when the digest of this read differs from
        `unchanged_digest`, the digest of an earlier read whose rows the caller has stored.
        A 1C base that serialises unchanged data differently each time only loses the saving.
        Each request counts as its `fetch_*` step in the metrics; decoding does not.
        """
        digest = BodyDigest()
        products = await self._measure("fetch_products", lambda: self._read_products(digest))
        prices = await self._measure("fetch_prices", lambda: self._read_prices(None, None, digest))
        stock = await self._measure("fetch_stock", lambda: self._read_stock(None, digest))

        value = digest.digest()
        count = len(products.rows)
        if value == unchanged_digest:
            return CatalogRead(value, count, None)
        rows = CatalogRows(products.decode(), prices.decode(), stock.decode())
        return CatalogRead(value, count, rows)

    async def fetch_hub_orders_since(self, since: datetime) -> dict[str, OrderRef]:
        """Read the order documents dated `since` or later that carry a hub number.

        `since` is an aware time; 1C compares it as the branch's local time. Returns one
        document per hub number (see `pick_order`), read page by page.
        """
        return await self._measure("fetch_orders", lambda: self._fetch_hub_orders(since))

    async def find_order(self, hub_number: str) -> OrderRef | None:
        """Look up the order document that stores `hub_number`; None when there is none."""
        return await self._measure(
            "find_order", lambda: self._with_retries(lambda: self._find_order_once(hub_number))
        )

    async def create_order(self, order: OrderIn) -> OrderRef:
        """Create the order document unless the branch already has one for `order.hub_number`.

        Every attempt looks the order up first, so a retry after a lost 201 response finds
        the document instead of creating a duplicate.
        """
        config = self._config
        body = encode_order(
            order,
            tz=config.tz,
            number_field=config.order_number_field,
            extra_fields=config.order_extra_fields,
            lines_field=self._order_lines_field(),
        )
        return await self._measure(
            "create_order",
            lambda: self._with_retries(lambda: self._find_or_create(order.hub_number, body)),
        )

    async def post_document(self, ref_key: str) -> None:
        """Post (проведение) an order document in non-operational mode."""
        resource = f"{self._entity(Role.ORDER)}({guid_literal(ref_key)})/Post"
        params = [("PostingModeOperational", "false")]
        await self._measure(
            "post_document",
            lambda: self._with_retries(
                lambda: self._send("POST", resource, params, expected=(200, 204))
            ),
        )

    async def get_order(self, ref_key: str) -> OrderRef:
        """Read one order document by its Ref_Key."""
        resource = f"{self._entity(Role.ORDER)}({guid_literal(ref_key)})"
        params = [("$select", ",".join(self._order_select()))]
        document = await self._measure(
            "get_order", lambda: self._with_retries(lambda: self._send("GET", resource, params))
        )
        return self._decode_order(document)

    async def update_order(
        self, ref_key: str, fields: Mapping[str, object], data_version: str
    ) -> OrderRef:
        """Change `fields` of an order document the hub read at `data_version`.

        The PATCH carries `If-Match: <DataVersion>`, so 1C rejects it with HTTP 412, raised
        as `ODataConflictError`, when someone changed the document since. A table part in
        `fields` must list all its rows, because 1C replaces the whole table part.
        """
        if not fields:
            raise ValueError("update_order needs at least one field to change")
        resource = f"{self._entity(Role.ORDER)}({guid_literal(ref_key)})"
        changes = dict(fields)
        attempts = 0

        async def patch() -> object:
            nonlocal attempts
            attempts += 1
            return await self._patch_once(resource, changes, data_version, repeated=attempts > 1)

        document = await self._measure("update_order", lambda: self._with_retries(patch))
        if document is None:
            return await self.get_order(ref_key)
        return self._decode_order(document)

    # -- entity and field names ---------------------------------------------------------

    def _entity(self, role: Role) -> str:
        if self._profile is not None:
            return self._profile.require(role).entity
        config = self._config
        defaults = {
            Role.CATALOG: config.catalog_entity,
            Role.ORDER: config.order_entity,
            Role.STOCK: config.stock_entity,
            Role.PRICE: config.price_entity,
        }
        return defaults[role]

    def _order_lines_field(self) -> str:
        if self._profile is None:
            return self._config.order_lines_field
        return self._profile.require(Role.ORDER).lines_field or self._config.order_lines_field

    def _stock_names(self) -> tuple[str, str, str]:
        """Return the stock register, its warehouse dimension and its quantity field."""
        config = self._config
        if self._profile is None:
            return config.stock_entity, config.stock_warehouse_dimension, config.stock_resource
        choice = self._profile.require(Role.STOCK)
        warehouse = choice.warehouse_dimension or config.stock_warehouse_dimension
        quantity = config.stock_resource
        if choice.quantity_resource is not None:
            quantity = f"{choice.quantity_resource}Balance"
        return choice.entity, warehouse, quantity

    # -- reading ----------------------------------------------------------------------

    async def _fetch_products(self) -> list[ProductRow]:
        return (await self._read_products(None)).decode()

    async def _fetch_stock(self, at: datetime | None) -> list[StockRow]:
        return (await self._read_stock(at, None)).decode()

    async def _fetch_prices(self, price_type_id: str | None, at: datetime | None) -> list[PriceRow]:
        return (await self._read_prices(price_type_id, at, None)).decode()

    async def _read_products(self, digest: BodyDigest | None) -> _RawRows[ProductRow]:
        params = [("$select", ",".join(PRODUCT_SELECT))]
        rows = await self._get_pages(self._entity(Role.CATALOG), params, digest=digest)
        return _RawRows(list(rows), decode_product)

    async def _read_stock(
        self, at: datetime | None, digest: BodyDigest | None
    ) -> _RawRows[StockRow]:
        config = self._config
        entity, warehouse, quantity = self._stock_names()
        dimensions = (*STOCK_ITEM_DIMENSIONS, warehouse)
        arguments = [("Dimensions", "'" + ",".join(dimensions) + "'")]
        if at is not None:
            arguments.insert(0, ("Period", datetime_literal(at, config.tz)))
        resource = virtual_table(entity, "Balance", arguments)
        warehouse_field = f"{warehouse}_Key"
        select = (PRODUCT_FIELD, CHARACTERISTIC_FIELD, warehouse_field, quantity)

        # NOTE: read in one request without $top/$skip, because register rows have no key to
        # order by. A branch is expected to have a few thousand balance rows at most.
        rows = await self._get_rows(resource, [("$select", ",".join(select))], digest=digest)
        return _RawRows(
            rows,
            functools.partial(decode_stock, resource=quantity, warehouse_field=warehouse_field),
        )

    async def _read_prices(
        self, price_type_id: str | None, at: datetime | None, digest: BodyDigest | None
    ) -> _RawRows[PriceRow]:
        config = self._config
        arguments: list[tuple[str, str]] = []
        if at is not None:
            arguments.append(("Period", datetime_literal(at, config.tz)))
        if price_type_id is not None:
            # The 1C manual writes the inner literal's quotes undoubled inside Condition='…'.
            condition = f"{PRICE_TYPE_FIELD} eq {guid_literal(price_type_id)}"
            arguments.append(("Condition", f"'{condition}'"))

        resource = virtual_table(self._entity(Role.PRICE), "SliceLast", arguments)
        rows = await self._get_rows(resource, [("$select", ",".join(PRICE_SELECT))], digest=digest)
        return _RawRows(rows, functools.partial(decode_price, tz=config.tz))

    async def _fetch_hub_orders(self, since: datetime) -> dict[str, OrderRef]:
        number_field = self._config.order_number_field
        condition = f"Date ge {datetime_literal(since, self._config.tz)} and {number_field} ne ''"
        params = [("$filter", condition), ("$select", ",".join(self._order_select()))]
        rows = await self._get_pages(self._entity(Role.ORDER), params)

        by_number: dict[str, list[OrderRef]] = {}
        for row in rows:
            order = self._decode_order(row)
            if order.hub_number:
                by_number.setdefault(order.hub_number, []).append(order)
        return {number: pick_order(orders) for number, orders in by_number.items()}

    async def _get_pages(
        self,
        resource: str,
        params: Sequence[tuple[str, str]],
        *,
        digest: BodyDigest | None = None,
    ) -> list[Mapping[str, object]]:
        """GET an entity set page by page, ordered by Ref_Key; rows repeated across pages once.

        NOTE: $skip paging shifts when 1C deletes a row physically between two pages, and
        one row is then skipped. 1C bases mark rows for deletion rather than delete them,
        so this is rare, but a skipped catalog row looks like a vanished one.
        """
        page_size = self._config.page_size
        rows: dict[str, Mapping[str, object]] = {}
        skip = 0
        while True:
            paging = [("$orderby", "Ref_Key"), ("$top", str(page_size)), ("$skip", str(skip))]
            page = await self._get_rows(resource, [*params, *paging], digest=digest)
            added = 0
            for row in page:
                key = row.get("Ref_Key") if isinstance(row, Mapping) else None
                if not isinstance(row, Mapping) or not isinstance(key, str):
                    raise invalid_row_error(resource, f"row without a Ref_Key: {row!r}")
                added += key not in rows
                rows.setdefault(key, row)

            # A server that ignores $skip would return the same page forever.
            if len(page) < page_size or added == 0:
                return list(rows.values())
            skip += len(page)

    # -- orders -----------------------------------------------------------------------

    async def _find_order_once(self, hub_number: str) -> OrderRef | None:
        number_filter = f"{self._config.order_number_field} eq {string_literal(hub_number)}"
        params = [("$filter", number_filter), ("$select", ",".join(self._order_select()))]
        rows = await self._get_rows(self._entity(Role.ORDER), params, retry=False)
        orders = [self._decode_order(row) for row in rows]
        if not orders:
            return None

        if len(orders) > 1:
            refs = [order.ref_key for order in orders]
            self._log.warning("odata.order_duplicates", hub_number=hub_number, ref_keys=refs)
        return pick_order(orders)

    async def _find_or_create(self, hub_number: str, body: dict[str, object]) -> OrderRef:
        existing = await self._find_order_once(hub_number)
        if existing is not None:
            self._log.info("odata.order_found", hub_number=hub_number, ref_key=existing.ref_key)
            return existing

        entity = self._entity(Role.ORDER)
        document = await self._send("POST", entity, [], body=body, expected=(201,))
        created = self._decode_order(document)
        self._log.info(
            "odata.order_created",
            hub_number=hub_number,
            ref_key=created.ref_key,
            number=created.number,
        )
        return created

    async def _patch_once(
        self, resource: str, changes: dict[str, object], data_version: str, *, repeated: bool
    ) -> object:
        """Send one conditional PATCH; on a repeat, accept a 412 if the values are already in.

        A repeat follows an attempt whose reply was lost. If 1C applied that attempt, the
        write changed DataVersion, and the repeat gets 412 although the document already
        contains the requested values.
        """
        # NOTE: the DataVersion goes unquoted. Whether 1C also accepts it quoted, as an HTTP
        # entity tag, has not been checked on a real base.
        headers = {"If-Match": data_version}
        try:
            return await self._send(
                "PATCH", resource, [], body=changes, headers=headers, expected=(200, 204)
            )
        except ODataConflictError:
            if not repeated:
                raise
            select = dict.fromkeys([*self._order_select(), *changes])
            current = await self._send("GET", resource, [("$select", ",".join(select))])
            if isinstance(current, Mapping) and all(
                current.get(name) == value for name, value in changes.items()
            ):
                return current
            raise

    def _order_select(self) -> tuple[str, ...]:
        return (*ORDER_SELECT, self._config.order_number_field)

    def _decode_order(self, document: object) -> OrderRef:
        return decode_order(
            document, tz=self._config.tz, number_field=self._config.order_number_field
        )

    # -- transport --------------------------------------------------------------------

    async def _get_rows(
        self,
        resource: str,
        params: Sequence[tuple[str, str]],
        *,
        retry: bool = True,
        digest: BodyDigest | None = None,
    ) -> list[object]:
        """GET an entity set or a virtual table and return its `value` array."""

        async def get() -> object:
            return await self._send("GET", resource, params, digest=digest)

        document = await (self._with_retries(get) if retry else get())
        rows = document.get("value") if isinstance(document, dict) else None
        if not isinstance(rows, list):
            raise invalid_row_error(resource, "the response has no 'value' array")
        return rows

    async def _send(
        self,
        method: str,
        resource: str,
        params: Sequence[tuple[str, str]],
        *,
        body: object = None,
        headers: Mapping[str, str] | None = None,
        expected: Collection[int] = (200,),
        digest: BodyDigest | None = None,
    ) -> object:
        """Send one request and return the parsed JSON body (None for an empty body).

        A body that parses is added to `digest`, so a retried attempt adds only its own.
        """
        url = self._request_url(resource, params)
        operation = f"OData {method} {self._config.base_url}{resource}"
        request_headers = {"Accept": "application/json", **(headers or {})}
        content = None
        if body is not None:
            content = dump_json(body)
            request_headers["Content-Type"] = "application/json; charset=utf-8"

        try:
            response = await self._http.request(
                method,
                url,
                content=content,
                headers=request_headers,
                auth=self._auth,
                timeout=self._timeout,
            )
        except httpx.RequestError as exc:
            raise error_from_exception(
                exc, operation=operation, timeout_s=self._config.timeout_s
            ) from exc

        error = error_from_response(response, operation=operation, expected=expected)
        if error is not None:
            raise error
        if not response.content:
            return None
        try:
            document = parse_json(response.content)
        except ValueError as exc:
            raise invalid_json_error(operation, exc) from exc
        if digest is not None:
            digest.add(str(url), response.content)
        return document

    def _request_url(self, resource: str, params: Sequence[tuple[str, str]]) -> httpx.URL:
        key = (resource, tuple(params))
        url = self._urls.get(key)
        if url is not None:
            return url

        if len(self._urls) >= URL_CACHE_SIZE:
            self._urls.clear()
        url = httpx.URL(build_url(self._config.base_url, resource, [("$format", "json"), *params]))
        self._urls[key] = url
        return url

    async def _with_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run `call`, repeating it after retryable `ODataError`s with a jittered back-off."""
        attempt = 1
        while True:
            try:
                return await call()
            except ODataError as error:
                if not error.retryable or attempt >= self._config.max_attempts:
                    raise
                delay_s = self._backoff_s(attempt)
                self._log.warning(
                    "odata.retry", attempt=attempt, delay_s=round(delay_s, 3), error=str(error)
                )
            await trio.sleep(delay_s)
            attempt += 1

    def _backoff_s(self, attempt: int) -> float:
        cap = min(self._config.backoff_base_s * 2 ** (attempt - 1), self._config.backoff_max_s)
        return self._random.uniform(cap / 2, cap)

    async def _measure(self, step: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one public operation and record its duration and result."""
        started = trio.current_time()
        # The same result words as the CommerceML exchange, so one panel shows both.
        result = "failure"
        try:
            value = await call()
            result = "success"
            return value
        except trio.Cancelled:
            result = "cancelled"
            raise
        finally:
            record_exchange("odata", step, result, trio.current_time() - started)
