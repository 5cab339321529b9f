"""The notification actor: sends queued notifications over the webhook and log channels."""

from __future__ import annotations

import random
from typing import Any

import httpx
import trio

from tentorium_hub import metrics
from tentorium_hub.runtime import Actor, MailboxSpec, Overflow
from tentorium_hub.settings import Settings
from tentorium_hub.storage import Database
from tentorium_hub.storage import notifications as notifications_db

# Only wake-ups arrive here (the notifications themselves are rows), so they coalesce.
NOTIFICATIONS_MAILBOX = MailboxSpec(capacity=8, overflow=Overflow.COALESCE)
POLL_S = 5.0
BATCH = 100
MAX_ATTEMPTS = 12


class NotificationActor(Actor):
    mailbox_spec = NOTIFICATIONS_MAILBOX

    def __init__(self, db: Database, settings: Settings) -> None:
        super().__init__("notifications")
        self._db = db
        self._settings = settings

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        timeout = httpx.Timeout(self._settings.webhook_timeout_s)
        async with httpx.AsyncClient(timeout=timeout) as http:
            task_status.started()
            while True:
                await self._send_due(http)
                try:
                    envelope = await self.receive_envelope(timeout_s=POLL_S)
                except trio.EndOfChannel:
                    return  # mailbox closed: graceful stop
                if envelope is not None:
                    await self.dispatch(envelope)

    async def handle(self, message: object) -> None:
        # Only wake-ups arrive; the loop sends whatever is due right after.
        return None

    async def _send_due(self, http: httpx.AsyncClient) -> None:
        batch = await self._db.run(notifications_db.claim_notifications, BATCH)
        for item in batch:
            await self._send_one(http, item)

    async def _send_one(self, http: httpx.AsyncClient, item: dict[str, Any]) -> None:
        # The log channel always records the event, so operators see it without a webhook.
        self.log.info("notification.event", name=item["event"], payload=item["payload"])
        url = self._settings.webhook_url
        if not url:
            await self._db.run(notifications_db.mark_sent, item["id"])
            metrics.NOTIFICATIONS.labels("log", "sent").inc()
            return
        body = {"id": item["id"], "event": item["event"], "data": item["payload"]}
        try:
            response = await http.post(url, json=body)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            attempts = int(item["attempts"])
            delay = min(3600.0, 2.0**attempts) * random.uniform(0.5, 1.0)
            give_up = attempts >= MAX_ATTEMPTS
            await self._db.run(notifications_db.mark_retry, item["id"], str(exc), delay, give_up)
            metrics.NOTIFICATIONS.labels("webhook", "failed" if give_up else "retry").inc()
            self.log.warning(
                "notification.webhook_failed",
                id=item["id"],
                error=str(exc),
                attempts=attempts,
                retry_in_s=round(delay, 1),
                gave_up=give_up,
            )
            return
        await self._db.run(notifications_db.mark_sent, item["id"])
        metrics.NOTIFICATIONS.labels("webhook", "sent").inc()
