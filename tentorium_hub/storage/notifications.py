"""The notification queue: rows written with the event, sent later by the notification actor."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def enqueue_notification(
    conn: asyncpg.Connection, *, event: str, payload: dict[str, Any], channel: str = "webhook"
) -> int:
    return int(
        await conn.fetchval(
            """INSERT INTO notifications (channel, event, payload)
               VALUES ($1, $2, $3) RETURNING id""",
            channel,
            event,
            json.dumps(payload, ensure_ascii=False, default=str),
        )
    )


async def claim_notifications(conn: asyncpg.Connection, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """UPDATE notifications SET attempts = attempts + 1,
                                    next_attempt_at = now() + interval '60 seconds'
            WHERE id IN (SELECT id FROM notifications
                          WHERE state = 'pending' AND next_attempt_at <= now()
                          ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING id, channel, event, payload, attempts""",
        limit,
    )
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


async def mark_sent(conn: asyncpg.Connection, notification_id: int) -> None:
    await conn.execute(
        "UPDATE notifications SET state = 'sent', sent_at = now() WHERE id = $1", notification_id
    )


async def mark_retry(
    conn: asyncpg.Connection, notification_id: int, error: str, delay_s: float, give_up: bool
) -> None:
    await conn.execute(
        """UPDATE notifications
              SET state = CASE WHEN $4 THEN 'failed' ELSE 'pending' END,
                  last_error = $2, next_attempt_at = now() + make_interval(secs => $3)
            WHERE id = $1""",
        notification_id,
        error[:2000],
        delay_s,
        give_up,
    )
