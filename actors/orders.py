"""The order actor: routes new orders to their branch and keeps order gauges current."""

from __future__ import annotations

import trio

from actors.messages import OrderAccepted, StatusChanged, Wake
from tentorium_hub import metrics
from tentorium_hub.domain.orders import OrderStatus
from tentorium_hub.runtime import Actor, MailboxSpec, Overflow, Registry
from tentorium_hub.storage import Database
from tentorium_hub.storage import branches as branches_db
from tentorium_hub.storage import orders as orders_db
from tentorium_hub.storage import outbox as outbox_db

# Every accepted order sends one message here. The API waits at most a second for room
# rather than drop the wake-up. The outbox row is committed either way, so the branch's
# next poll delivers the order even when this message is lost.
ORDERS_MAILBOX = MailboxSpec(capacity=1_000, overflow=Overflow.WAIT, send_timeout_s=1.0)
GAUGE_REFRESH_S = 5.0


class OrderActor(Actor):
    mailbox_spec = ORDERS_MAILBOX

    def __init__(self, db: Database, registry: Registry) -> None:
        super().__init__("orders")
        self._db = db
        self._registry = registry

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        next_refresh = trio.current_time()
        while True:
            timeout = max(0.0, next_refresh - trio.current_time())
            try:
                envelope = await self.receive_envelope(timeout_s=timeout)
            except trio.EndOfChannel:
                return  # mailbox closed: graceful stop
            if envelope is None:
                await self._refresh_gauges()
                next_refresh = trio.current_time() + GAUGE_REFRESH_S
            else:
                await self.dispatch(envelope)

    async def handle(self, message: object) -> None:
        if isinstance(message, OrderAccepted):
            # The branch may be leased by another node; its own poll picks the row up.
            self._registry.tell_nowait(f"branch:{message.branch}", Wake())
        elif isinstance(message, StatusChanged):
            self._registry.tell_nowait("notifications", Wake())

    async def _refresh_gauges(self) -> None:
        counts = await self._db.run(orders_db.order_status_counts)
        for status in OrderStatus:
            metrics.ORDERS_BY_STATUS.labels(status.value).set(counts.get(status.value, 0))
        await self._refresh_branch_gauges()
        pending = await self._db.run(outbox_db.pending_by_branch)
        for branch, value in pending.items():
            metrics.OUTBOX_PENDING.labels(branch).set(value)
        for branch in set(metrics_branches()) - set(pending):
            metrics.OUTBOX_PENDING.labels(branch).set(0)

    async def _refresh_branch_gauges(self) -> None:
        """Export every active branch's health from the database, whichever node runs it.

        The database is the record, so a branch that moved to another node, or failed since
        before this node started, still has current series here.
        """
        rows = await self._db.run(branches_db.branch_health)
        active = set()
        for row in rows:
            code = row["code"]
            active.add(code)
            if row["last_success_at"] is not None:
                metrics.BRANCH_LAST_SUCCESS.labels(code).set(row["last_success_at"].timestamp())
            metrics.BRANCH_FAILURES.labels(code).set(row["consecutive_failures"])
        for gauge in (metrics.BRANCH_LAST_SUCCESS, metrics.BRANCH_FAILURES):
            for sample in next(iter(gauge.collect())).samples:
                if sample.labels["branch"] not in active:
                    gauge.remove(sample.labels["branch"])


def metrics_branches() -> list[str]:
    """Branches that already have an outbox gauge, so emptied ones drop to zero."""
    samples = next(iter(metrics.OUTBOX_PENDING.collect())).samples
    return [s.labels["branch"] for s in samples]
