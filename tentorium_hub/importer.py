"""Import of one CommerceML file into a branch: parse in a worker thread, stage, merge.

The parser is synchronous and streaming; it runs in a worker thread a batch at a time,
and each batch is COPYed into the staging table. The live catalog changes only in the
final merge transaction, so a file that fails anywhere leaves the previous data intact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio

from connectors.commerceml import model
from connectors.commerceml.parser import iter_document
from tentorium_hub import metrics
from tentorium_hub.domain.orders import StatusReport, status_from_report
from tentorium_hub.logs import get_logger
from tentorium_hub.storage import Database
from tentorium_hub.storage import catalog as catalog_db
from tentorium_hub.storage import counterparties as counterparties_db
from tentorium_hub.storage import orders as orders_db

BATCH_ITEMS = 5_000
log = get_logger("importer")


@dataclass
class ImportResult:
    """Changes one file made; `offer_errors` lists the offers rejected, with reasons."""

    counts: dict[str, int] = field(default_factory=dict)
    offer_errors: list[model.OfferError] = field(default_factory=list)
    statuses_applied: int = 0
    orders_unknown: int = 0
    only_changes: bool = False
    schema_version: str | None = None

    def summary_ru(self) -> str:
        parts = [f"{name}: {value}" for name, value in sorted(self.counts.items()) if value]
        if self.statuses_applied or self.orders_unknown:
            parts.append(f"статусов заказов: {self.statuses_applied}")
        if self.orders_unknown:
            parts.append(f"неизвестных заказов: {self.orders_unknown}")
        if self.offer_errors:
            first = self.offer_errors[0]
            parts.append(f"отклонено предложений: {len(self.offer_errors)} ({first.message_ru})")
        return "Загружено. " + (", ".join(parts) if parts else "изменений нет")


def _json(payload: dict[str, Any]) -> str:
    return _ENCODER.encode(payload)


def _encode(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} in a staged row")


# json.dumps with non-default options builds a new encoder per call; a big import stages
# hundreds of thousands of rows, so one encoder is kept.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=_encode)


def stage_rows_for(item: model.CatalogItem) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Turn one parsed item into (kind, external id, payload) rows for the staging table."""
    if isinstance(item, model.Group):
        yield (
            "group",
            item.external_id,
            {"name": item.name, "parent_id": item.parent_id, "deleted": item.deleted},
        )
    elif isinstance(item, model.PriceType):
        yield "price_type", item.external_id, {"name": item.name, "currency": item.currency}
    elif isinstance(item, model.Warehouse):
        yield "warehouse", item.external_id, {"name": item.name}
    elif isinstance(item, model.Product):
        yield (
            "product",
            item.external_id,
            {
                "sku": item.sku,
                "name": item.name,
                "group_id": item.group_ids[0] if item.group_ids else None,
                "unit": item.unit,
                "description": item.description,
                "barcode": item.barcode,
                "deleted": item.deleted,
                "properties": item.properties,
                "pictures": list(item.pictures),
            },
        )
    elif isinstance(item, model.Offer):
        yield from _offer_rows(item)
    elif isinstance(item, model.Counterparty):
        yield (
            counterparties_db.STAGE_KIND,
            item.external_id,
            {
                "name": item.name,
                "full_name": item.full_name,
                "inn": item.inn,
                "kpp": item.kpp,
                "deleted": item.deleted,
                "raw": item.raw,
            },
        )


def _offer_rows(offer: model.Offer) -> Iterator[tuple[str, str, dict[str, Any]]]:
    yield (
        "offer",
        offer.external_id,
        {
            "product_id": offer.product_id,
            "characteristic_id": offer.characteristic_id,
            "name": offer.name,
            "characteristics": offer.characteristics,
            "stock_total": offer.stock_total,
            "deleted": offer.deleted,
        },
    )
    for price in offer.prices or ():
        yield (
            "price",
            offer.external_id,
            {
                "price_type_id": price.price_type_id,
                "amount": price.amount,
                "currency": price.currency,
            },
        )
    if offer.stock is not None:
        yield "stock_reset", offer.external_id, {}
        for level in offer.stock:
            yield (
                "stock",
                offer.external_id,
                {
                    "warehouse_id": level.warehouse_id,
                    "quantity": level.quantity,
                },
            )


class _Batcher:
    """Pulls items from the parser generator in the worker thread, a batch at a time."""

    def __init__(self, items: Iterator[model.CatalogItem], job_id: int, result: ImportResult):
        self._items = items
        self._job_id = job_id
        self._seq = 0
        self._result = result
        self.documents: list[model.OrderDocument] = []

    def next_batch(self) -> list[catalog_db.StageRow] | None:
        rows: list[catalog_db.StageRow] = []
        for item in self._items:
            self._take(item, rows)
            if len(rows) >= BATCH_ITEMS:
                return rows
        return rows or None

    def _take(self, item: model.CatalogItem, rows: list[catalog_db.StageRow]) -> None:
        if isinstance(item, model.DocumentHeader):
            self._result.only_changes = item.only_changes
            self._result.schema_version = item.schema_version
        elif isinstance(item, model.OfferError):
            self._result.offer_errors.append(item)
        elif isinstance(item, model.OrderDocument):
            self.documents.append(item)
        for kind, external_id, payload in stage_rows_for(item):
            self._seq += 1
            rows.append((self._job_id, self._seq, kind, external_id, _json(payload)))


async def import_file(
    db: Database, *, branch: str, path: Path, job_id: int, tz: tzinfo
) -> ImportResult:
    """Import `path` into `branch`; raise CommerceMLError (nothing changed) if it is invalid."""
    with path.open("rb") as source:
        items = iter_document(source, tz=tz, filename=path.name)
        return await import_items(db, branch=branch, items=items, job_id=job_id)


async def import_items(
    db: Database, *, branch: str, items: Iterable[model.CatalogItem], job_id: int
) -> ImportResult:
    """Stage `items` in batches, then merge them in one transaction.

    The iterator is advanced in a worker thread, so a streaming parser never blocks the
    trio loop. On any error the staged rows are dropped and the live catalog is unchanged.
    """
    result = ImportResult()
    batcher = _Batcher(iter(items), job_id, result)
    try:
        await _stage_all(db, batcher)
        counts, applied, unknown = await db.transaction(
            _merge, branch, job_id, result.only_changes, batcher.documents
        )
    except BaseException:
        with trio.CancelScope(shield=True):
            await db.run(catalog_db.clear_stage, job_id)
        raise
    result.counts = counts
    result.statuses_applied = applied
    result.orders_unknown = unknown
    for error in result.offer_errors:
        log.warning(
            "import.offer_rejected", branch=branch, offer=error.external_id, error=error.message
        )
    for item, value in counts.items():
        metrics.IMPORTED_ITEMS.labels(branch, item).inc(value)
    return result


async def _stage_all(db: Database, batcher: _Batcher) -> None:
    """Parse batch k+1 in the worker thread while batch k is COPYed to the database."""
    send, receive = trio.open_memory_channel[list[catalog_db.StageRow]](1)

    async def produce() -> None:
        async with send:
            while (batch := await trio.to_thread.run_sync(batcher.next_batch)) is not None:
                await send.send(batch)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            async with receive:
                async for batch in receive:
                    await db.run(catalog_db.stage_rows, batch)
    except BaseExceptionGroup as group:
        # Callers catch CommerceMLError and StorageError by type: pass a lone error on bare.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


async def _merge(
    conn: Any, branch: str, job_id: int, only_changes: bool, documents: list[model.OrderDocument]
) -> tuple[dict[str, int], int, int]:
    # merge_import clears the stage, so the counterparties are merged first.
    counterparties = await counterparties_db.merge_staged(conn, branch, job_id)
    counts = await catalog_db.merge_import(conn, branch, job_id, only_changes=only_changes)
    counts["counterparties"] = counterparties
    applied, unknown = await apply_status_documents(conn, branch, documents)
    return counts, applied, unknown


async def apply_status_documents(
    conn: Any, branch: str, documents: list[model.OrderDocument]
) -> tuple[int, int]:
    """Apply order documents from 1C to the hub's orders; return (applied, unknown)."""
    applied = unknown = 0
    for doc in documents:
        order_id = await orders_db.find_order_id(conn, branch, doc.site_id)
        if order_id is None:
            unknown += 1
            continue
        report = StatusReport(
            number_1c=doc.number_1c,
            posted=doc.posted,
            paid=doc.paid_at is not None,
            shipped=doc.shipped_at is not None,
            cancelled=doc.cancelled,
            deleted=doc.deleted,
            status_text=doc.status_text,
        )
        status = status_from_report(report)
        raw = asdict(report)
        if doc.subordinates:
            raw["subordinates"] = [asdict(subordinate) for subordinate in doc.subordinates]
        changed = await orders_db.apply_status(
            conn,
            order_id,
            status,
            source="1c",
            note=_subordinates_note(doc.subordinates),
            raw=raw,
            number_1c=doc.number_1c,
            status_1c=doc.status_text,
        )
        if changed is not None:
            metrics.record_order_transition(changed.value, "1c")
        applied += 1
    return applied, unknown


def _subordinates_note(subordinates: tuple[model.SubordinateDocument, ...]) -> str | None:
    """Name the payments and shipments that count, for the order's status history."""
    parts = [
        f"{item.kind} {item.number_1c or item.number or item.external_id}"
        for item in subordinates
        if item.effective
    ]
    return "1C " + ", ".join(parts) if parts else None
