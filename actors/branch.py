"""Branch actors: one per 1C base, supervised, addressed as `branch:<code>`.

A CommerceML branch is driven by its 1C (the exchange endpoint does the work), so its
actor only watches for stale exchanges. An OData branch is driven by the hub: its actor
delivers pending orders, polls stock, prices and order statuses, and treats an
unreachable 1C as a state with back-off, not as a crash.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import trio

from actors.messages import BranchControl, Wake
from connectors.commerceml import model
from connectors.odata.client import ODataClient, ODataConfig
from connectors.odata.models import OrderIn, OrderLineIn, OrderRef
from tentorium_hub import metrics
from tentorium_hub.domain.backoff import backoff_s, spread_offset_s
from tentorium_hub.domain.orders import StatusReport, status_from_report
from tentorium_hub.errors import ConnectorError, StorageError
from tentorium_hub.importer import import_items
from tentorium_hub.runtime import Actor, MailboxSpec, Overflow, Registry
from tentorium_hub.settings import Settings
from tentorium_hub.storage import Database
from tentorium_hub.storage import branches as branches_db
from tentorium_hub.storage import exchange as exchange_db
from tentorium_hub.storage import orders as orders_db
from tentorium_hub.storage import outbox as outbox_db
from tentorium_hub.storage.branches import Branch
from tentorium_hub.storage.outbox import ExportOrder

# Branch actors receive wake-ups and control commands only; repeated wake-ups merge.
BRANCH_MAILBOX = MailboxSpec(capacity=16, overflow=Overflow.COALESCE)
STATUS_POLL_LIMIT = 200


class CommerceMLBranchActor(Actor):
    """Holds the place of a CommerceML branch in the tree; its 1C pulls orders itself."""

    mailbox_spec = BRANCH_MAILBOX

    def __init__(self, branch: Branch) -> None:
        super().__init__(f"branch:{branch.code}")
        self.branch = branch

    async def handle(self, message: object) -> None:
        # Orders wait in the outbox until the branch's 1C asks for them (mode=query).
        return None


class ODataBranchActor(Actor):
    """Delivers orders to and polls a branch's standard.odata interface."""

    mailbox_spec = BRANCH_MAILBOX

    def __init__(
        self, branch: Branch, db: Database, settings: Settings, registry: Registry, node_id: str
    ) -> None:
        super().__init__(f"branch:{branch.code}")
        self.branch = branch
        self._db = db
        self._settings = settings
        self._registry = registry
        self._node_id = node_id
        self._failures = 0
        self._retry_at: float | None = None
        self._paused = branch.paused
        self._next_poll = 0.0
        self._tz = ZoneInfo(branch.time_zone)

    def _client(self) -> ODataClient:
        config = ODataConfig(
            base_url=self.branch.odata_url or "",
            username=self.branch.odata_username or "",
            password=self.branch.odata_password or "",
            tz=self._tz,
            timeout_s=self._settings.odata_timeout_s,
        )
        return ODataClient(config)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        client = self._client()
        try:
            released = await self._db.run(
                outbox_db.release_foreign_claims, self.branch.code, self._node_id
            )
            if released:
                self.log.warning("branch.claims_taken_over", rows=released)
            task_status.started()
            interval = self._settings.poll_interval_s
            self._next_poll = trio.current_time() + spread_offset_s(self.branch.code, interval)
            if not self._paused:
                await self._deliver(client)
            while True:
                try:
                    envelope = await self.receive_envelope(timeout_s=self._wait_s())
                except trio.EndOfChannel:
                    return  # mailbox closed: graceful stop
                if envelope is not None:
                    await self.dispatch(envelope)
                now = trio.current_time()
                if self._paused or (self._retry_at is not None and now < self._retry_at):
                    continue
                if now >= self._next_poll:
                    self._next_poll = now + interval
                    await self._poll(client)
                await self._deliver(client)
        finally:
            with trio.CancelScope(shield=True):
                await client.aclose()

    def _wait_s(self) -> float | None:
        """How long to wait for mail: forever while paused, until the retry while backing
        off (the poll waits too, since the branch is down), else until the next poll."""
        if self._paused:
            return None
        wake_at = self._retry_at if self._retry_at is not None else self._next_poll
        return max(0.0, wake_at - trio.current_time())

    async def handle(self, message: object) -> None:
        if isinstance(message, BranchControl):
            if message.action in ("pause", "resume"):
                self._paused = message.action == "pause"
            elif message.action == "resync":
                # An operator asks for a full poll now, back-off or not.
                self._retry_at = None
                self._next_poll = trio.current_time()
            self.log.info("branch.control", action=message.action)
        elif not isinstance(message, Wake):
            self.log.warning("actor.unknown_message", message_type=type(message).__name__)

    # -- delivery ---------------------------------------------------------------------

    async def _deliver(self, client: ODataClient) -> None:
        """Deliver due outbox rows in order; stop at the first retryable failure."""
        while True:
            batch = await self._db.transaction(
                outbox_db.claim_pending,
                self.branch.code,
                self._node_id,
                self._settings.delivery_batch_size,
                self._settings.odata_timeout_s * 6,
            )
            if not batch:
                return
            for export in batch:
                if not await self._deliver_one(client, export):
                    await self._db.run(outbox_db.release_claims, self.branch.code, self._node_id)
                    return
            if len(batch) < self._settings.delivery_batch_size:
                return

    async def _deliver_one(self, client: ODataClient, export: ExportOrder) -> bool:
        started = trio.current_time()
        try:
            ref = await client.create_order(_to_odata(export))
            if not ref.posted:
                await client.post_document(ref.ref_key)
            ref = await client.get_order(ref.ref_key)
        except ConnectorError as exc:
            return await self._delivery_failed(export, exc)
        await self._db.transaction(_record_delivery, export, ref)
        metrics.record_exchange("odata", "deliver", "success", trio.current_time() - started)
        self.log.info("order.delivered", order=export.number, number_1c=ref.number)
        self._registry.tell_nowait("notifications", Wake())
        await self._succeeded()
        return True

    async def _delivery_failed(self, export: ExportOrder, exc: ConnectorError) -> bool:
        metrics.record_exchange("odata", "deliver", "failure", 0.0)
        attempts = await self._db.run(_attempts, export.outbox_id)
        if not exc.retryable or attempts >= self._settings.max_delivery_attempts:
            await self._db.transaction(outbox_db.mark_failed, export.outbox_id, str(exc))
            self.log.error(
                "order.needs_attention", order=export.number, error=str(exc), attempts=attempts
            )
            self._registry.tell_nowait("notifications", Wake())
            return True  # the next order is independent of this one
        delay = await self._failed(str(exc))
        await self._db.run(outbox_db.schedule_retry, export.outbox_id, str(exc), delay)
        self.log.warning(
            "order.delivery_retry", order=export.number, error=str(exc), retry_in_s=round(delay, 2)
        )
        return False

    # -- polling ----------------------------------------------------------------------

    async def _poll(self, client: ODataClient) -> None:
        started = trio.current_time()
        try:
            products = await client.fetch_products()
            prices = await client.fetch_prices()
            stock = await client.fetch_stock()
            counts = await self._store_catalog(products, prices, stock)
            await self._poll_statuses(client)
        except ConnectorError as exc:
            metrics.record_exchange("odata", "poll", "failure", trio.current_time() - started)
            delay = await self._failed(str(exc))
            self.log.warning("branch.sync_failed", error=str(exc), retry_in_s=round(delay, 2))
            return
        metrics.record_exchange("odata", "poll", "success", trio.current_time() - started)
        self.log.info("branch.synced", **counts)
        await self._succeeded()

    async def _store_catalog(self, products: list, prices: list, stock: list) -> dict[str, int]:
        items = list(_catalog_items(products, prices, stock))
        job_id, _ = await self._db.run(
            exchange_db.start_import_job,
            self.branch.code,
            uuid.uuid4(),
            "odata-poll",
            self._node_id,
            0,
        )
        try:
            result = await import_items(
                self._db, branch=self.branch.code, items=items, job_id=job_id
            )
        except StorageError as exc:
            await self._db.run(exchange_db.finish_import_job, job_id, "failure", str(exc), {})
            raise
        await self._db.run(exchange_db.finish_import_job, job_id, "success", "ok", result.counts)
        return result.counts

    async def _poll_statuses(self, client: ODataClient) -> None:
        waiting = await self._db.run(
            outbox_db.orders_awaiting_status, self.branch.code, STATUS_POLL_LIMIT
        )
        for order_id, number in waiting:
            ref = await client.find_order(number)
            if ref is not None:
                await self._db.transaction(_apply_ref_status, order_id, ref)

    # -- health -------------------------------------------------------------------------

    async def _failed(self, error: str) -> float:
        self._failures += 1
        delay = backoff_s(
            self._failures, base_s=self._settings.retry_base_s, max_s=self._settings.retry_max_s
        )
        self._retry_at = trio.current_time() + delay
        count = await self._db.run(branches_db.record_failure, self.branch.code, error)
        metrics.record_branch_failure(self.branch.code, count)
        return delay

    async def _succeeded(self) -> None:
        if self._failures:
            self.log.info("branch.recovered", failures=self._failures)
        self._failures = 0
        self._retry_at = None
        when = await self._db.run(branches_db.record_success, self.branch.code)
        metrics.record_branch_success(self.branch.code, when.timestamp())


def _to_odata(export: ExportOrder) -> OrderIn:
    lines = tuple(
        OrderLineIn(
            product_id=ln.product_id,
            characteristic_id=ln.characteristic_id,
            quantity=ln.quantity,
            price=ln.price,
            amount=ln.amount,
        )
        for ln in export.lines
    )
    return OrderIn(
        hub_number=export.number,
        created_at=export.created_at.astimezone(UTC),
        currency=export.currency,
        total=export.total,
        customer_name=str(export.customer.get("name") or "Покупатель"),
        comment=export.comment,
        lines=lines,
    )


def _report(ref: OrderRef) -> StatusReport:
    return StatusReport(
        number_1c=ref.number or None,
        posted=ref.posted,
        deleted=ref.deletion_mark,
        status_text=ref.status,
    )


async def _record_delivery(conn: object, export: ExportOrder, ref: OrderRef) -> None:
    await outbox_db.mark_delivered(conn, export.outbox_id, note=f"1C document {ref.ref_key}")
    await _apply_ref_status(conn, export.order_id, ref)


async def _apply_ref_status(conn: object, order_id: uuid.UUID, ref: OrderRef) -> None:
    report = _report(ref)
    changed = await orders_db.apply_status(
        conn,
        order_id,
        status_from_report(report),
        source="1c",
        raw=asdict(report),
        number_1c=report.number_1c,
        status_1c=ref.status,
    )
    if changed is not None:
        metrics.record_order_transition(changed.value, "1c")


async def _attempts(conn: object, outbox_id: int) -> int:
    return int(await conn.fetchval("SELECT attempts FROM outbox WHERE id = $1", outbox_id))  # type: ignore[attr-defined]


def _catalog_items(products: list, prices: list, stock: list) -> list[model.CatalogItem]:
    """Turn OData rows into the same records a CommerceML file yields."""
    now = datetime.now(UTC)
    items: list[model.CatalogItem] = [model.DocumentHeader("odata", now, only_changes=False)]
    for row in products:
        if row.is_folder:
            items.append(model.Group(row.ref_key, row.name, row.parent_id, row.deleted))
        else:
            items.append(
                model.Product(
                    row.ref_key,
                    row.name,
                    sku=row.sku,
                    group_ids=(row.parent_id,) if row.parent_id else (),
                    deleted=row.deleted,
                )
            )
    by_offer: dict[str, dict] = {}
    for p in prices:
        offer = by_offer.setdefault(
            _offer_id(p.product_id, p.characteristic_id),
            {"p": p.product_id, "c": p.characteristic_id, "prices": [], "stock": []},
        )
        offer["prices"].append(model.Price(p.price_type_id, p.amount))
    for s in stock:
        offer = by_offer.setdefault(
            _offer_id(s.product_id, s.characteristic_id),
            {"p": s.product_id, "c": s.characteristic_id, "prices": [], "stock": []},
        )
        offer["stock"].append(model.StockLevel(s.warehouse_id, s.quantity))
    for offer_id, data in by_offer.items():
        items.append(
            model.Offer(
                offer_id,
                data["p"],
                data["c"],
                prices=tuple(data["prices"]) or None,
                stock=tuple(data["stock"]),
                stock_total=sum((lvl.quantity for lvl in data["stock"]), Decimal("0")),
            )
        )
    return items


def _offer_id(product_id: str, characteristic_id: str | None) -> str:
    return f"{product_id}#{characteristic_id}" if characteristic_id else product_id
