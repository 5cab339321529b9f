"""CommerceML exchange sessions, background import jobs and the exchange log."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg


async def create_session(
    conn: asyncpg.Connection, branch: str, exchange_type: str, token_hash: bytes
) -> uuid.UUID:
    session_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO exchange_sessions (id, branch_code, exchange_type, token_hash)
           VALUES ($1, $2, $3, $4)""",
        session_id,
        branch,
        exchange_type,
        token_hash,
    )
    return session_id


async def find_session(
    conn: asyncpg.Connection, token_hash: bytes, ttl_s: float
) -> tuple[uuid.UUID, str, str | None] | None:
    """Return (session id, branch code, protocol version) of a live session, touching it."""
    row = await conn.fetchrow(
        """UPDATE exchange_sessions SET last_seen_at = now()
            WHERE token_hash = $1 AND last_seen_at > now() - make_interval(secs => $2)
        RETURNING id, branch_code, protocol_version""",
        token_hash,
        ttl_s,
    )
    return (row["id"], row["branch_code"], row["protocol_version"]) if row else None


async def set_protocol_version(
    conn: asyncpg.Connection, session_id: uuid.UUID, version: str | None
) -> None:
    await conn.execute(
        "UPDATE exchange_sessions SET protocol_version = $2 WHERE id = $1", session_id, version
    )


async def expire_sessions(conn: asyncpg.Connection, ttl_s: float) -> list[uuid.UUID]:
    rows = await conn.fetch(
        """DELETE FROM exchange_sessions
            WHERE last_seen_at < now() - make_interval(secs => $1) RETURNING id""",
        ttl_s,
    )
    return [r["id"] for r in rows]


async def start_import_job(
    conn: asyncpg.Connection,
    branch: str,
    session_id: uuid.UUID,
    filename: str,
    node_id: str,
    size_bytes: int,
) -> tuple[int, bool]:
    """Create the job for (session, filename) or return the existing one: (id, created)."""
    row = await conn.fetchrow(
        """INSERT INTO import_jobs (branch_code, session_id, filename, state, node_id, size_bytes)
           VALUES ($1, $2, $3, 'running', $4, $5)
           ON CONFLICT (session_id, filename) DO NOTHING RETURNING id""",
        branch,
        session_id,
        filename,
        node_id,
        size_bytes,
    )
    if row is not None:
        return int(row["id"]), True
    existing = await conn.fetchval(
        "SELECT id FROM import_jobs WHERE session_id = $1 AND filename = $2", session_id, filename
    )
    return int(existing), False


async def get_import_job(conn: asyncpg.Connection, job_id: int) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM import_jobs WHERE id = $1", job_id)
    job = dict(row) if row else {}
    if job:
        job["counts"] = json.loads(job["counts"])
    return job


async def finish_import_job(
    conn: asyncpg.Connection, job_id: int, state: str, message: str, counts: dict[str, Any]
) -> None:
    await conn.execute(
        """UPDATE import_jobs SET state = $2, message = $3, counts = $4, finished_at = now()
            WHERE id = $1""",
        job_id,
        state,
        message,
        json.dumps(counts, ensure_ascii=False),
    )


async def fail_orphaned_jobs(conn: asyncpg.Connection, node_id: str) -> int:
    """Jobs left 'running' by an earlier run of this node can never finish: fail them."""
    status = await conn.execute(
        """UPDATE import_jobs SET state = 'failure', finished_at = now(),
                  message = 'Загрузка прервана перезапуском сервера; повторите обмен'
            WHERE state = 'running'
              AND (node_id = $1 OR started_at < now() - interval '6 hours')""",
        node_id,
    )
    return int(status.split()[-1])


async def log_exchange(
    conn: asyncpg.Connection,
    branch: str,
    *,
    direction: str,
    step: str,
    result: str,
    filename: str | None = None,
    size_bytes: int | None = None,
    duration_s: float | None = None,
    error: str | None = None,
    counts: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO exchange_log (branch_code, direction, step, filename, size_bytes,
                                     duration_s, result, error, counts)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        branch,
        direction,
        step,
        filename,
        size_bytes,
        duration_s,
        result,
        error,
        json.dumps(counts, ensure_ascii=False) if counts is not None else None,
    )


async def recent_exchanges(
    conn: asyncpg.Connection, branch: str, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT direction, step, filename, size_bytes, duration_s, result, error, counts, at
             FROM exchange_log WHERE branch_code = $1 ORDER BY id DESC LIMIT $2""",
        branch,
        limit,
    )
    result = []
    for r in rows:
        item = dict(r)
        item["counts"] = json.loads(item["counts"]) if item["counts"] else None
        result.append(item)
    return result
