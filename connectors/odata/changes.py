"""Change detection for a branch's catalog between polls, and the order status watermark.

1C catalogs carry no change date among their standard fields, so a poll still reads the
whole goods catalog (page by page, only the `$select`ed fields). What stays incremental is
the write side: the tracker compares each element's DataVersion with the one stored last
time and hands over only new or changed elements. Prices (SliceLast) and stock (Balance)
are virtual tables without DataVersion; the tracker compares their values per offer instead.

The tracker lives in memory. A fresh tracker (after a restart or a resync) yields a full
snapshot, and so does a poll in which known elements vanished, so the import can hide them.
Changes are remembered only on `commit`, after the import succeeded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from connectors.odata.models import PriceRow, ProductRow, StockRow

__all__ = ["CatalogDelta", "CatalogTracker", "OfferState", "offer_id", "orders_watermark"]


def offer_id(product_id: str, characteristic_id: str | None) -> str:
    """Build the hub's offer id: the product, or `product#characteristic`."""
    return f"{product_id}#{characteristic_id}" if characteristic_id else product_id


@dataclass(frozen=True)
class OfferState:
    """Prices and stock of one offer as one poll read them, sorted so equal states compare equal.

    `prices` contains (price type id, amount) pairs and `stock` (warehouse id, quantity) pairs.
    """

    product_id: str
    characteristic_id: str | None
    prices: tuple[tuple[str, Decimal], ...] = ()
    stock: tuple[tuple[str, Decimal], ...] = ()


def offer_states(prices: Iterable[PriceRow], stock: Iterable[StockRow]) -> dict[str, OfferState]:
    """Group price and stock rows by offer."""
    price_lists: dict[str, list[tuple[str, Decimal]]] = {}
    stock_lists: dict[str, list[tuple[str, Decimal]]] = {}
    owners: dict[str, tuple[str, str | None]] = {}
    for price in prices:
        key = offer_id(price.product_id, price.characteristic_id)
        owners[key] = (price.product_id, price.characteristic_id)
        price_lists.setdefault(key, []).append((price.price_type_id, price.amount))
    for row in stock:
        key = offer_id(row.product_id, row.characteristic_id)
        owners[key] = (row.product_id, row.characteristic_id)
        stock_lists.setdefault(key, []).append((row.warehouse_id, row.quantity))

    return {
        key: OfferState(
            product_id,
            characteristic_id,
            tuple(sorted(price_lists.get(key, ()))),
            tuple(sorted(stock_lists.get(key, ()))),
        )
        for key, (product_id, characteristic_id) in owners.items()
    }


@dataclass(frozen=True)
class CatalogDelta:
    """Catalog changes that one poll should store.

    `full` means `products` is the whole catalog, so the import may hide products it does
    not list. `offers` contains the offers whose prices or stock changed. An offer that left
    both the price slice and the balance appears with empty prices and stock: its stock
    dropped to zero.
    """

    full: bool
    products: list[ProductRow]
    offers: dict[str, OfferState]
    versions: dict[str, str | None] = field(repr=False)
    states: dict[str, OfferState] = field(repr=False)
    # The `ODataClient.read_catalog` digest of the read these rows came from, if known.
    digest: bytes | None = field(default=None, repr=False)

    @property
    def empty(self) -> bool:
        return not self.products and not self.offers


class CatalogTracker:
    """Tracker of the DataVersions and offer states of one branch's last stored poll."""

    def __init__(self) -> None:
        self._versions: dict[str, str | None] | None = None
        self._states: dict[str, OfferState] = {}
        self._digest: bytes | None = None

    @property
    def primed(self) -> bool:
        """Whether a full snapshot was stored, so later polls can be incremental."""
        return self._versions is not None

    @property
    def digest(self) -> bytes | None:
        """The read digest of the last committed delta; None before one or after a reset."""
        return self._digest if self.primed else None

    def reset(self) -> None:
        """Forget everything, so the next poll stores a full snapshot again."""
        self._versions = None
        self._states = {}
        self._digest = None

    def delta(
        self,
        products: list[ProductRow],
        prices: list[PriceRow],
        stock: list[StockRow],
        *,
        digest: bytes | None = None,
    ) -> CatalogDelta:
        """Compare one poll's rows with the last committed ones; nothing is remembered yet.

        `digest` identifies the read of these rows (see `ODataClient.read_catalog`), so the
        next poll can skip decoding a read with the same digest.
        """
        versions = {product.ref_key: product.data_version for product in products}
        states = offer_states(prices, stock)
        if self._versions is None:
            return CatalogDelta(True, list(products), dict(states), versions, states, digest)

        known = self._versions
        full = bool(known.keys() - versions.keys())
        changed_products = list(products) if full else changed_elements(products, known)
        changed_offers = {
            key: state for key, state in states.items() if self._states.get(key) != state
        }
        for key, old in self._states.items():
            if key not in states:
                changed_offers[key] = OfferState(old.product_id, old.characteristic_id)
        return CatalogDelta(full, changed_products, changed_offers, versions, states, digest)

    def commit(self, delta: CatalogDelta) -> None:
        """Remember a delta once the import that stored it succeeded."""
        self._versions = dict(delta.versions)
        self._states = dict(delta.states)
        self._digest = delta.digest


def changed_elements(products: list[ProductRow], known: dict[str, str | None]) -> list[ProductRow]:
    """Return the elements that are new or whose DataVersion differs from `known`."""
    # Without a DataVersion there is nothing to compare, so such a row counts as changed.
    return [
        product
        for product in products
        if product.data_version is None or known.get(product.ref_key) != product.data_version
    ]


def orders_watermark(created_at: Iterable[datetime], margin: timedelta) -> datetime | None:
    """Return the earliest time a status poll must read order documents from, in UTC.

    The hub writes an order's creation time as the document's Date, so the earliest order
    still waiting for a 1C status bounds the documents to read. `margin` covers a manager
    who moves a document's date back a little. None when no order is waiting.
    """
    moments = list(created_at)
    if not moments:
        return None
    return min(moments) - margin
