"""Notifications of a real node: the webhook channel to a loopback receiver, and the log channel."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import structlog
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from prometheus_client import REGISTRY

from actors.messages import Wake
from connectors.emulator.odata_server import FaultKind, ODataBranchEmulator
from tentorium_hub.branches import new_branch
from tentorium_hub.node import NodeContext, run_node
from tentorium_hub.storage import branches as branches_db
from tentorium_hub.storage import notifications as notifications_db

from conftest import node_settings
from hubtest import first_priced_offer, open_api, wait_until

TIME_ZONE = "Asia/Novosibirsk"
# A generous bound for one delivery or one notification on a loaded machine.
DEADLINE_S = 20.0
EVENT = "order.needs_attention"
_keys = itertools.count()


# -- a loopback webhook receiver --------------------------------------------------------


@dataclass
class WebhookReceiver:
    """An ASGI endpoint that records each POST body and returns HTTP 500 to the first `failures`."""

    failures: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return

        body = await _read_body(receive)
        status = 500 if len(self.bodies) < self.failures else 200
        self.bodies.append(json.loads(body))
        self.statuses.append(status)
        headers = [(b"content-length", b"0")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _serve_lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def serve_receiver(nursery: trio.Nursery, receiver: WebhookReceiver) -> str:
    """Serve `receiver` on 127.0.0.1 and return its webhook URL."""
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.loglevel = "WARNING"
    binds: list[str] = await nursery.start(
        partial(hypercorn_serve, receiver, config, mode="asgi")  # type: ignore[arg-type]
    )
    return binds[0] + "/hooks/hub"


async def start_node(
    nursery: trio.Nursery, database_url: str, data_dir: Path, webhook_url: str
) -> NodeContext:
    settings = node_settings(database_url, data_dir, webhook_url=webhook_url)
    ctx: NodeContext = await nursery.start(
        lambda task_status: run_node(settings, handle_signals=False, task_status=task_status)
    )
    return ctx


@pytest.fixture
def receiver() -> WebhookReceiver:
    return WebhookReceiver()


@pytest.fixture
async def webhook_node(
    database_url: str, tmp_path: Path, nursery: trio.Nursery, receiver: WebhookReceiver
) -> NodeContext:
    url = await serve_receiver(nursery, receiver)
    return await start_node(nursery, database_url, tmp_path / "data", url)


# -- notification rows ------------------------------------------------------------------


async def notification_rows(ctx: NodeContext) -> list[dict[str, Any]]:
    rows = await ctx.db.run(
        lambda conn: conn.fetch(
            "SELECT id, event, state, attempts, sent_at FROM notifications ORDER BY id"
        )
    )
    return [dict(r) for r in rows]


async def enqueue(ctx: NodeContext, event: str, payload: dict[str, Any]) -> int:
    notification_id = await ctx.db.transaction(
        notifications_db.enqueue_notification, event=event, payload=payload
    )
    ctx.registry.tell_nowait("notifications", Wake())
    return notification_id


async def wait_not_pending(ctx: NodeContext, *, retry_now: bool = False) -> None:
    """Wait until no notification is pending. With `retry_now`, skip each retry delay."""

    async def none_pending() -> bool:
        rows = await notification_rows(ctx)
        if all(row["state"] != "pending" for row in rows):
            return True
        if retry_now:
            # The retry delay starts at 1-2 s and doubles per attempt. Skipping it keeps the
            # test short and leaves the actor's next pass unchanged.
            await ctx.db.run(
                lambda conn: conn.execute(
                    "UPDATE notifications SET next_attempt_at = now() "
                    "WHERE state = 'pending' AND last_error IS NOT NULL"
                )
            )
            ctx.registry.tell_nowait("notifications", Wake())
        return False

    await wait_until(none_pending, timeout_s=DEADLINE_S, interval_s=0.2)


# -- an order that 1C rejects for good --------------------------------------------------


async def reject_one_order(ctx: NodeContext, nursery: trio.Nursery) -> str:
    """Place an order that 1C rejects with an access-rights error and return its number."""
    emulator = ODataBranchEmulator(branch_code="NTF", tz=ZoneInfo(TIME_ZONE), products=3, seed=2)
    await nursery.start(emulator.serve)
    branch = new_branch(
        code="NTF",
        name="Филиал NTF",
        kind="odata",
        time_zone=TIME_ZONE,
        odata_url=emulator.base_url,
        odata_username="hub",
        odata_password="secret",
    )
    await ctx.db.transaction(branches_db.insert_branch, branch)
    ctx.registry.tell_nowait("leases", Wake())
    emulator.faults.inject(FaultKind.ODATA_ERROR, method="POST", status=403, code="20")

    async with open_api(ctx) as api:
        offer = await first_priced_offer(api, "NTF")
        body = {
            "branch": "NTF",
            "customer": {"id": "D300400", "name": "Сидорова Мария"},
            "lines": [{"offer_id": offer, "quantity": 1}],
        }
        headers = {"Idempotency-Key": f"notify-{next(_keys)}"}
        response = await api.post("/api/v1/orders", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["number"])


# -- webhook channel --------------------------------------------------------------------


async def test_webhook_posts_needs_attention(
    webhook_node: NodeContext, receiver: WebhookReceiver, nursery: trio.Nursery
) -> None:
    number = await reject_one_order(webhook_node, nursery)

    async def notified() -> bool:
        rows = await notification_rows(webhook_node)
        return bool(rows) and all(row["state"] != "pending" for row in rows)

    await wait_until(notified, timeout_s=DEADLINE_S, interval_s=0.2)
    row = next(r for r in await notification_rows(webhook_node) if r["event"] == EVENT)
    posted = [body for body in receiver.bodies if body["event"] == EVENT]
    assert len(posted) == 1, receiver.bodies
    assert posted[0]["data"]["order"] == number
    assert posted[0]["id"] == row["id"]
    assert row["state"] == "sent"


async def test_webhook_retries_until_accepted(
    webhook_node: NodeContext, receiver: WebhookReceiver
) -> None:
    receiver.failures = 2

    notification_id = await enqueue(webhook_node, EVENT, {"order": "TH-0000042", "branch": "NTF"})
    await wait_not_pending(webhook_node, retry_now=True)

    rows = await notification_rows(webhook_node)
    assert receiver.statuses == [500, 500, 200]
    assert [body["id"] for body in receiver.bodies] == [notification_id] * 3
    assert rows[0]["state"] == "sent"
    assert rows[0]["attempts"] == 3
    assert rows[0]["sent_at"] is not None


# -- log channel ------------------------------------------------------------------------


def _log_channel_sent() -> float:
    labels = {"channel": "log", "result": "sent"}
    return REGISTRY.get_sample_value("hub_notifications_total", labels) or 0.0


async def test_log_channel_marks_sent(node: NodeContext) -> None:
    assert node.settings.webhook_url is None
    sent_before = _log_channel_sent()

    with structlog.testing.capture_logs() as logs:
        notification_id = await enqueue(node, EVENT, {"order": "TH-0000043", "branch": "NTF"})
        await wait_not_pending(node)

    rows = await notification_rows(node)
    logged = [entry for entry in logs if entry["event"] == "notification.event"]
    assert rows[0]["id"] == notification_id
    assert rows[0]["state"] == "sent"
    assert rows[0]["sent_at"] is not None
    assert _log_channel_sent() == sent_before + 1
    assert [entry["payload"]["order"] for entry in logged] == ["TH-0000043"]
