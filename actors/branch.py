"""Branch actors: one per 1C base, supervised, addressed as `branch:<code>`.

A CommerceML branch is driven by its 1C (the exchange endpoint does the work), so its
actor only watches for stale exchanges. An OData branch is driven by the hub: its actor
delivers pending orders, polls stock, prices and order statuses, and treats an
unreachable 1C as a state with back-off, not as a crash.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import trio

from actors.messages import BranchControl, Wake
from connectors.commerceml import model
from connectors.odata.changes import CatalogDelta, CatalogTracker, orders_watermark
from connectors.odata.client import CatalogRead, ODataClient, ODataConfig
from connectors.odata.errors import ODataError, is_not_published
from connectors.odata.models import OrderIn, OrderLineIn, OrderRef
from connectors.odata.profile import ODataProfile, Role
from tentorium_hub import metrics
from tentorium_hub.domain.backoff import backoff_s, spread_offset_s
from tentorium_hub.domain.circuit import CircuitBreaker, CircuitState
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
# The status poll reads order documents dated from the oldest waiting order minus this
# margin. The hub writes the order's creation time as the document date; the margin covers
# a manager who moves the date back within a day. The day is a judgement, not a measurement.
ORDER_DATE_MARGIN = timedelta(days=1)
# While a branch stays healthy, its actor writes a success to branch_health at most this
# often, and between writes it updates only the metric. The first success after a failure
# is written at once, and a failure writes the latest unwritten success with it. The stored
# time may lag by this much, far below the 3600 s after which HubBranchStale fires.
HEALTH_WRITE_INTERVAL_S = 300.0


class CommerceMLBranchActor(Actor):
    """Holds the place of a CommerceML branch in the tree; its 1C pulls orders itself."""

    mailbox_spec = BRANCH_MAILBOX

    def __init__(self, branch: Branch) -> None:
        super().__init__(f"branch:{branch.code}")
        self.branch = branch

    async def handle(self, message: object) -> None:
        # Orders wait in the outbox until the branch's 1C requests them (mode=query).
        return None


class ODataBranchActor(Actor):
    """Delivers orders to and polls a branch's standard.odata interface.

    Calls to the branch go through a circuit breaker. Below its threshold, a failure delays
    the next round by the short `retry_*_s` back-off. An open circuit makes no calls at all,
    and orders wait in the outbox. After the open period one trial call, a read of the
    service document, decides whether the circuit closes or opens for longer.

    On first contact the actor takes the branch's entity names from the database, or reads
    the service document and stores what it chose. It reads the document again on a resync
    and after 1C replies "entity type not found" (code 8).
    """

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
        self._circuit = CircuitBreaker(
            failure_threshold=settings.circuit_failure_threshold,
            open_base_s=settings.circuit_open_base_s,
            open_max_s=settings.circuit_open_max_s,
        )
        self._retry_at: float | None = None
        self._paused = branch.paused
        self._next_poll = 0.0
        self._tz = ZoneInfo(branch.time_zone)
        self._need_probe = True
        self._profile_loaded = False  # whether the stored profile was looked up already
        self._catalog = CatalogTracker()
        self._order_versions: dict[str, str | None] = {}
        self._watermark: datetime | None = None
        # What this actor last wrote to branch_health: a success (when, on the trio clock),
        # or None after a failure or before the first write.
        self._success_written_at: float | None = None
        self._unwritten_success: datetime | None = None

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
            metrics.record_circuit_state(self.branch.code, "closed", 0, changed=False)
            interval = self._settings.poll_interval_s
            self._next_poll = trio.current_time() + spread_offset_s(self.branch.code, interval)
            if not self._paused:
                await self._work(client)
            while True:
                try:
                    envelope = await self.receive_envelope(timeout_s=self._wait_s())
                except trio.EndOfChannel:
                    return  # mailbox closed: graceful stop
                if envelope is not None:
                    await self.dispatch(envelope)
                if not self._paused:
                    await self._work(client)
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

    async def _work(self, client: ODataClient) -> None:
        """Run one round: the circuit's trial call if due, the profile, a due poll, deliveries."""
        now = trio.current_time()
        if self._retry_at is not None and now < self._retry_at:
            return
        if not await self._admit(client, now):
            return
        if not await self._ensure_profile(client):
            return

        if now >= self._next_poll:
            self._next_poll = now + self._settings.poll_interval_s
            deliveries_due = await self._poll(client)
            if self._retry_at is not None:
                return  # the poll failed in a way worth retrying: the branch is likely down
            if not deliveries_due:
                return
        await self._deliver(client)

    async def handle(self, message: object) -> None:
        if isinstance(message, BranchControl):
            if message.action in ("pause", "resume"):
                self._paused = message.action == "pause"
            elif message.action == "resync":
                self._resync()
            self.log.info("branch.control", action=message.action)
        elif not isinstance(message, Wake):
            self.log.warning("actor.unknown_message", message_type=type(message).__name__)

    def _resync(self) -> None:
        """Prepare a full round now: back-off or open circuit aside, probe, full catalog read."""
        now = trio.current_time()
        self._retry_at = None
        self._next_poll = now
        self._circuit.retry_now(now)
        self._need_probe = True
        self._profile_loaded = True  # skip the stored profile: the operator wants a fresh one
        self._catalog.reset()
        self._order_versions.clear()

    # -- circuit breaker --------------------------------------------------------------

    async def _admit(self, client: ODataClient, now: float) -> bool:
        """Ask the circuit whether calls may go out; in half-open state, make the trial call."""
        allowed = self._circuit.acquire(now)
        self._report_circuit()
        if not allowed:
            self._retry_at = self._circuit.open_until
            return False
        if self._circuit.state is not CircuitState.HALF_OPEN:
            return True

        try:
            profile = await client.probe_profile(retry=False)
        except ConnectorError as exc:
            return await self._trial_failed(exc)
        await self._succeeded()
        await self._adopt_profile(client, profile)
        return True

    async def _trial_failed(self, exc: ConnectorError) -> bool:
        metrics.ODATA_PROFILE_PROBES.labels("failure").inc()
        if not exc.retryable:
            # 1C replied, so the branch is up. The round goes on and meets the same error
            # where it is handled: an order gets needs_attention, a poll logs it.
            self._record_circuit_success()
            self.log.error("branch.trial_rejected", error=str(exc))
            return True
        delay = await self._failed(str(exc))
        self.log.warning("branch.trial_failed", error=str(exc), retry_in_s=round(delay, 2))
        return False

    def _record_circuit_success(self) -> None:
        self._circuit.record_success(trio.current_time())
        self._report_circuit()

    def _report_circuit(self) -> None:
        """Log and count the circuit's transitions since the last report."""
        code = self.branch.code
        for transition in self._circuit.drain_transitions():
            state = transition.current
            metrics.record_circuit_state(code, state.name.lower(), int(state), changed=True)
            if state is CircuitState.OPEN:
                self.log.warning(
                    "branch.circuit_opened",
                    failures=transition.consecutive_failures,
                    openings=self._circuit.openings,
                    open_for_s=round(transition.open_for_s or 0.0, 2),
                )
            elif state is CircuitState.CLOSED:
                self.log.info("branch.circuit_closed", previous=transition.previous.name.lower())
            else:
                self.log.info("branch.circuit_half_open")

    # -- entity names -----------------------------------------------------------------

    async def _ensure_profile(self, client: ODataClient) -> bool:
        """Make sure the client uses this branch's entity names; False to end the round."""
        if not self._need_probe:
            return True
        if not self._profile_loaded:
            self._profile_loaded = True
            stored = await self._db.run(_load_profile, self.branch.code)
            if stored is not None:
                client.use_profile(stored)
                self._need_probe = False
                return True

        try:
            profile = await client.probe_profile()
        except ConnectorError as exc:
            return await self._probe_failed(exc)
        await self._adopt_profile(client, profile)
        return True

    async def _probe_failed(self, exc: ConnectorError) -> bool:
        metrics.ODATA_PROFILE_PROBES.labels("failure").inc()
        if exc.retryable:
            delay = await self._failed(str(exc))
            self.log.warning("branch.probe_failed", error=str(exc), retry_in_s=round(delay, 2))
            return False

        # A rejected read of the service document (bad path, rights) is not retried until a
        # resync. The round goes on with the configured УТ 11 names and meets the error there.
        self._need_probe = False
        await self._record_failure(str(exc))
        self.log.error("branch.probe_failed", error=str(exc), permanent=True)
        return True

    async def _adopt_profile(self, client: ODataClient, profile: ODataProfile) -> None:
        metrics.ODATA_PROFILE_PROBES.labels("success").inc()
        client.use_profile(profile)
        self._need_probe = False
        await self._db.run(_store_profile, self.branch.code, profile, datetime.now(UTC))

        missing = [str(role) for role in Role if not profile.has(role)]
        entities = {str(role): choice.entity for role, choice in profile.choices.items()}
        if missing:
            self.log.warning("branch.profile_incomplete", entities=entities, missing=missing)
        else:
            self.log.info("branch.profile_probed", entities=entities)

    def _note_unpublished(self, exc: ConnectorError) -> None:
        """Plan a new probe when 1C reports that an entity set the hub uses does not exist."""
        if isinstance(exc, ODataError) and is_not_published(exc):
            self._need_probe = True
            self._profile_loaded = True
            self.log.warning("branch.profile_stale", error=str(exc))

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
        self._note_unpublished(exc)
        attempts = await self._db.run(_attempts, export.outbox_id)
        if not exc.retryable or attempts >= self._settings.max_delivery_attempts:
            await self._db.transaction(outbox_db.mark_failed, export.outbox_id, str(exc))
            self.log.error(
                "order.needs_attention", order=export.number, error=str(exc), attempts=attempts
            )
            self._registry.tell_nowait("notifications", Wake())
            return True  # the next order is independent of this one
        delay = await self._failed(str(exc))
        # The row stays due at once: the actor's back-off and circuit time the next attempt.
        # A row-level delay would let the later rows, still due, overtake this order.
        await self._db.run(outbox_db.schedule_retry, export.outbox_id, str(exc), 0.0)
        self.log.warning(
            "order.delivery_retry", order=export.number, error=str(exc), retry_in_s=round(delay, 2)
        )
        return False

    # -- polling ----------------------------------------------------------------------

    async def _poll(self, client: ODataClient) -> bool:
        """Read the catalog and order statuses; return whether outbox rows may be due."""
        started = trio.current_time()
        try:
            catalog = await client.read_catalog(unchanged_digest=self._catalog.digest)
            counts = await self._store_catalog(catalog)
            deliveries_due = await self._poll_statuses(client)
        except ConnectorError as exc:
            metrics.record_exchange("odata", "poll", "failure", trio.current_time() - started)
            await self._poll_failed(exc)
            return True
        metrics.record_exchange("odata", "poll", "success", trio.current_time() - started)
        self.log.info("branch.synced", **counts)
        await self._succeeded()
        return deliveries_due

    async def _poll_failed(self, exc: ConnectorError) -> None:
        self._note_unpublished(exc)
        if exc.retryable:
            delay = await self._failed(str(exc))
            self.log.warning("branch.sync_failed", error=str(exc), retry_in_s=round(delay, 2))
            return

        # A permanent error (an entity not published, no rights) will not heal by retrying
        # sooner, so the next poll comes at the usual interval and deliveries go on.
        await self._record_failure(str(exc))
        self.log.error("branch.sync_failed", error=str(exc), permanent=True)

    async def _store_catalog(self, catalog: CatalogRead) -> dict[str, int | bool]:
        """Import what changed since the last stored poll; see `CatalogTracker`."""
        if catalog.rows is None:
            # The read matched the last stored one byte for byte, so nothing changed.
            return {
                "read_products": catalog.product_count,
                "changed_products": 0,
                "changed_offers": 0,
                "full": False,
            }

        rows = catalog.rows
        delta = self._catalog.delta(rows.products, rows.prices, rows.stock, digest=catalog.digest)
        counts: dict[str, int | bool] = {
            "read_products": len(rows.products),
            "changed_products": len(delta.products),
            "changed_offers": len(delta.offers),
            "full": delta.full,
        }
        if delta.empty:
            self._catalog.commit(delta)
            return counts

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
                self._db, branch=self.branch.code, items=_catalog_items(delta), job_id=job_id
            )
        except StorageError as exc:
            await self._db.run(exchange_db.finish_import_job, job_id, "failure", str(exc), {})
            raise
        await self._db.run(exchange_db.finish_import_job, job_id, "success", "ok", result.counts)
        self._catalog.commit(delta)
        return {**counts, **result.counts}

    async def _poll_statuses(self, client: ODataClient) -> bool:
        """Apply the 1C state of delivered orders, read in one paged query since a watermark.

        Return whether outbox rows may be due, from the same database read, so an idle
        poll makes one database call besides the success it records.

        NOTE: an order document whose date a manager moved back by more than
        `ORDER_DATE_MARGIN` falls outside the query, and its status is no longer followed.
        """
        profile = client.profile
        if profile is not None and not profile.has(Role.ORDER):
            return True  # deliveries report the missing order document to the operator
        state = await self._db.run(
            outbox_db.read_poll_state, self.branch.code, self._node_id, STATUS_POLL_LIMIT
        )
        since = orders_watermark((order.created_at for order in state.awaiting), ORDER_DATE_MARGIN)
        if since is None:
            return state.deliveries_due
        refs = await client.fetch_hub_orders_since(since)
        await self._store_watermark(since)

        versions: dict[str, str | None] = {}
        for order in state.awaiting:
            ref = refs.get(order.number)
            if ref is None:
                continue
            versions[ref.ref_key] = ref.data_version
            unchanged = ref.data_version is not None and (
                self._order_versions.get(ref.ref_key) == ref.data_version
            )
            if not unchanged:
                await self._db.transaction(_apply_ref_status, order.order_id, ref)
        self._order_versions = versions
        return state.deliveries_due

    async def _store_watermark(self, since: datetime) -> None:
        if since == self._watermark:
            return
        await self._db.run(_store_watermark, self.branch.code, since)
        self._watermark = since

    # -- health -------------------------------------------------------------------------

    async def _failed(self, error: str) -> float:
        """Count a failed call; return the seconds until the next round may call the branch."""
        now = trio.current_time()
        self._circuit.record_failure(now)
        self._report_circuit()
        open_until = self._circuit.open_until
        if open_until is not None:
            delay = max(0.0, open_until - now)
        else:
            delay = backoff_s(
                self._circuit.consecutive_failures,
                base_s=self._settings.retry_base_s,
                max_s=self._settings.retry_max_s,
            )
        self._retry_at = now + delay
        await self._record_failure(error)
        return delay

    async def _succeeded(self) -> None:
        failures = self._circuit.consecutive_failures
        self._record_circuit_success()
        if failures:
            self.log.info("branch.recovered", failures=failures)
        self._retry_at = None
        await self._record_success()

    async def _record_success(self) -> None:
        """Record a success in branch_health and the metric, or in the metric alone.

        The database write is skipped within `HEALTH_WRITE_INTERVAL_S` of the last one,
        unless a failure was written since.
        """
        now = trio.current_time()
        written_at = self._success_written_at
        if written_at is not None and now - written_at < HEALTH_WRITE_INTERVAL_S:
            self._unwritten_success = datetime.now(UTC)
            metrics.record_branch_success(self.branch.code, self._unwritten_success.timestamp())
            return

        when = await self._db.run(branches_db.record_success, self.branch.code)
        self._success_written_at = now
        self._unwritten_success = None
        metrics.record_branch_success(self.branch.code, when.timestamp())

    async def _record_failure(self, error: str) -> None:
        count = await self._db.run(
            branches_db.record_failure,
            self.branch.code,
            error,
            succeeded_at=self._unwritten_success,
        )
        self._success_written_at = None
        self._unwritten_success = None
        metrics.record_branch_failure(self.branch.code, count)


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


def _catalog_items(delta: CatalogDelta) -> list[model.CatalogItem]:
    """Turn a catalog delta into the same records a CommerceML file yields."""
    now = datetime.now(UTC)
    header = model.DocumentHeader("odata", now, only_changes=not delta.full)
    items: list[model.CatalogItem] = [header]
    for row in delta.products:
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

    for key, state in delta.offers.items():
        stock = tuple(model.StockLevel(warehouse, quantity) for warehouse, quantity in state.stock)
        prices = tuple(model.Price(price_type, amount) for price_type, amount in state.prices)
        items.append(
            model.Offer(
                key,
                state.product_id,
                state.characteristic_id,
                # An offer without prices in this poll keeps the prices stored before.
                prices=prices or None,
                stock=stock,
                stock_total=sum((level.quantity for level in stock), Decimal("0")),
            )
        )
    return items


async def _load_profile(conn: Any, branch: str) -> ODataProfile | None:
    """Read the stored OData profile; a malformed one is ignored, so the actor probes again."""
    text = await conn.fetchval(
        "SELECT profile::text FROM branch_odata_profile WHERE branch_code = $1", branch
    )
    if text is None:
        return None
    try:
        return ODataProfile.from_json(json.loads(text))
    except ValueError:
        return None


async def _store_profile(
    conn: Any, branch: str, profile: ODataProfile, probed_at: datetime
) -> None:
    await conn.execute(
        """INSERT INTO branch_odata_profile (branch_code, profile, probed_at)
           VALUES ($1, $2::jsonb, $3)
           ON CONFLICT (branch_code) DO UPDATE
              SET profile = EXCLUDED.profile, probed_at = EXCLUDED.probed_at""",
        branch,
        json.dumps(profile.to_json(), ensure_ascii=False),
        probed_at,
    )


async def _store_watermark(conn: Any, branch: str, since: datetime) -> None:
    await conn.execute(
        "UPDATE branch_odata_profile SET orders_watermark = $2 WHERE branch_code = $1",
        branch,
        since,
    )
