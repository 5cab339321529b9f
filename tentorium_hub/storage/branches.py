"""Branch records, their exchange health and the leases that spread them over nodes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from tentorium_hub.errors import NotFoundError


@dataclass(frozen=True, slots=True)
class Branch:
    code: str
    name: str
    kind: str
    time_zone: str
    currency: str
    active: bool
    paused: bool
    exchange_login: str | None
    exchange_password_hash: str | None
    zip_enabled: bool
    file_limit_bytes: int
    price_type: str | None
    old_price_type: str | None
    deactivate_missing: bool
    export_schema_version: str
    export_encoding: str
    export_style: str
    export_delivery: str
    export_delivery_id: str
    export_discounts: str
    odata_url: str | None
    odata_username: str | None
    odata_password: str | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Branch:
        return cls(**{name: row[name] for name in cls.__slots__})


_COLUMNS = ", ".join(Branch.__slots__)


async def insert_branch(conn: asyncpg.Connection, branch: Branch) -> None:
    values = [getattr(branch, name) for name in Branch.__slots__]
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await conn.execute(f"INSERT INTO branches ({_COLUMNS}) VALUES ({placeholders})", *values)
    await conn.execute("INSERT INTO branch_health (branch_code) VALUES ($1)", branch.code)


async def upsert_branch(conn: asyncpg.Connection, branch: Branch) -> None:
    """Insert a branch or overwrite its settings (used by the demo on every run)."""
    names = list(Branch.__slots__)
    values = [getattr(branch, name) for name in names]
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n != "code")
    await conn.execute(
        f"""INSERT INTO branches ({_COLUMNS}) VALUES ({placeholders})
            ON CONFLICT (code) DO UPDATE SET {updates}, updated_at = now()""",
        *values,
    )
    await conn.execute(
        "INSERT INTO branch_health (branch_code) VALUES ($1) ON CONFLICT DO NOTHING", branch.code
    )


async def update_branch(conn: asyncpg.Connection, branch: Branch) -> None:
    """Overwrite the settings of an active branch; its node restarts the actor to use them."""
    names = [n for n in Branch.__slots__ if n not in ("code", "kind", "active", "paused")]
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    status = await conn.execute(
        f"UPDATE branches SET {assignments}, updated_at = now() WHERE code = $1 AND active",
        branch.code,
        *(getattr(branch, name) for name in names),
    )
    if status.endswith(" 0"):
        raise NotFoundError(
            f"branch {branch.code!r} not found",
            code="branch_not_found",
            params={"branch": branch.code},
        )


async def get_branch(conn: asyncpg.Connection, code: str) -> Branch:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM branches WHERE code = $1", code)
    if row is None:
        raise NotFoundError(
            f"branch {code!r} not found; list branches with `tentorium-hub branches list`",
            code="branch_not_found",
            params={"branch": code},
        )
    return Branch.from_row(row)


async def find_branch_by_login(conn: asyncpg.Connection, login: str) -> Branch | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM branches WHERE exchange_login = $1 AND active", login
    )
    return Branch.from_row(row) if row else None


async def list_branches(conn: asyncpg.Connection, *, active_only: bool = False) -> list[Branch]:
    where = "WHERE active" if active_only else ""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM branches {where} ORDER BY code")
    return [Branch.from_row(r) for r in rows]


async def deactivate_branch(conn: asyncpg.Connection, code: str) -> None:
    """Hide a branch from actors and the API; its orders and history stay."""
    status = await conn.execute(
        "UPDATE branches SET active = false, updated_at = now() WHERE code = $1", code
    )
    if status.endswith(" 0"):
        raise NotFoundError(
            f"branch {code!r} not found", code="branch_not_found", params={"branch": code}
        )


async def set_paused(conn: asyncpg.Connection, code: str, paused: bool) -> None:
    status = await conn.execute(
        "UPDATE branches SET paused = $2, updated_at = now() WHERE code = $1", code, paused
    )
    if status.endswith(" 0"):
        raise NotFoundError(
            f"branch {code!r} not found", code="branch_not_found", params={"branch": code}
        )


async def request_resync(conn: asyncpg.Connection, code: str) -> None:
    status = await conn.execute(
        "UPDATE branches SET resync_requested_at = now() WHERE code = $1 AND active", code
    )
    if status.endswith(" 0"):
        raise NotFoundError(
            f"branch {code!r} not found", code="branch_not_found", params={"branch": code}
        )


async def take_branch_controls(
    conn: asyncpg.Connection, codes: list[str]
) -> list[tuple[str, bool, bool, datetime]]:
    """(code, paused, resync requested, updated_at) of `codes`, clearing the resync requests.

    Only rows with a pending request are updated, so the periodic call writes nothing
    in the common case.
    """
    resync = await conn.fetch(
        """UPDATE branches SET resync_requested_at = NULL
            WHERE code = ANY($1::text[]) AND resync_requested_at IS NOT NULL
        RETURNING code""",
        codes,
    )
    requested = {r["code"] for r in resync}
    rows = await conn.fetch(
        "SELECT code, paused, updated_at FROM branches WHERE code = ANY($1::text[])", codes
    )
    return [(r["code"], r["paused"], r["code"] in requested, r["updated_at"]) for r in rows]


async def record_success(conn: asyncpg.Connection, code: str) -> datetime:
    row = await conn.fetchrow(
        """UPDATE branch_health
              SET last_success_at = now(), last_attempt_at = now(),
                  consecutive_failures = 0, last_error = NULL
            WHERE branch_code = $1
        RETURNING last_success_at""",
        code,
    )
    return row["last_success_at"] if row else datetime.now().astimezone()


async def record_failure(
    conn: asyncpg.Connection, code: str, error: str, *, succeeded_at: datetime | None = None
) -> int:
    """Count a failed exchange; return the failures in a row, this one included.

    `succeeded_at` is a success that the caller has not written yet (an OData actor writes
    successes at most every few minutes). It moves `last_success_at` forward, never back.
    """
    row = await conn.fetchrow(
        """UPDATE branch_health
              SET last_attempt_at = now(), consecutive_failures = consecutive_failures + 1,
                  last_error = $2,
                  last_success_at = GREATEST(last_success_at, $3::timestamptz)
            WHERE branch_code = $1
        RETURNING consecutive_failures""",
        code,
        error[:2000],
        succeeded_at,
    )
    return int(row["consecutive_failures"]) if row else 0


async def branch_health(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Per active branch: last success, failures, last error and pending outbox rows."""
    rows = await conn.fetch(
        """SELECT b.code, b.name, b.kind, b.time_zone, b.paused,
                  h.last_success_at, h.last_attempt_at, h.consecutive_failures, h.last_error,
                  l.node_id AS leased_by,
                  (SELECT count(*) FROM outbox o
                    WHERE o.branch_code = b.code AND o.state = 'pending') AS pending_outbox,
                  (SELECT count(*) FROM outbox o
                    WHERE o.branch_code = b.code AND o.state = 'failed') AS failed_outbox
             FROM branches b
             LEFT JOIN branch_health h ON h.branch_code = b.code
             LEFT JOIN branch_leases l ON l.branch_code = b.code AND l.expires_at > now()
            WHERE b.active
            ORDER BY b.code"""
    )
    return [dict(r) for r in rows]


async def acquire_leases(
    conn: asyncpg.Connection, node_id: str, ttl_s: float, limit: int
) -> list[str]:
    """Renew this node's leases and take free or expired ones; return the codes held.

    `limit` caps how many branches one node holds, so a node joining later gets a share
    once other nodes' leases expire or are released.
    """
    await conn.execute(
        """UPDATE branch_leases SET expires_at = now() + make_interval(secs => $2)
            WHERE node_id = $1""",
        node_id,
        ttl_s,
    )
    held = await conn.fetchval("SELECT count(*) FROM branch_leases WHERE node_id = $1", node_id)
    room = max(0, limit - int(held))
    if room:
        await conn.execute(
            """INSERT INTO branch_leases (branch_code, node_id, expires_at)
               SELECT b.code, $1, now() + make_interval(secs => $2)
                 FROM branches b
                 LEFT JOIN branch_leases l ON l.branch_code = b.code
                WHERE b.active AND (l.branch_code IS NULL OR l.expires_at < now())
                ORDER BY b.code
                LIMIT $3
               ON CONFLICT (branch_code) DO UPDATE
                  SET node_id = EXCLUDED.node_id, expires_at = EXCLUDED.expires_at
                WHERE branch_leases.expires_at < now()""",
            node_id,
            ttl_s,
            room,
        )
    rows = await conn.fetch(
        """SELECT l.branch_code FROM branch_leases l JOIN branches b ON b.code = l.branch_code
            WHERE l.node_id = $1 AND b.active ORDER BY 1""",
        node_id,
    )
    return [r["branch_code"] for r in rows]


async def heartbeat(conn: asyncpg.Connection, node_id: str, ttl_s: float) -> int:
    """Record that this node is alive; return how many nodes are alive now (itself included)."""
    await conn.execute(
        """INSERT INTO hub_nodes (node_id, seen_at) VALUES ($1, now())
           ON CONFLICT (node_id) DO UPDATE SET seen_at = now()""",
        node_id,
    )
    await conn.execute(
        "DELETE FROM hub_nodes WHERE seen_at < now() - make_interval(secs => $1 * 4)", ttl_s
    )
    value = await conn.fetchval(
        "SELECT count(*) FROM hub_nodes WHERE seen_at > now() - make_interval(secs => $1)", ttl_s
    )
    return max(1, int(value or 0))


async def count_active_branches(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM branches WHERE active"))


async def release_lease(conn: asyncpg.Connection, node_id: str, code: str) -> None:
    await conn.execute(
        "DELETE FROM branch_leases WHERE node_id = $1 AND branch_code = $2", node_id, code
    )


async def release_leases(conn: asyncpg.Connection, node_id: str) -> None:
    """Give up every lease and the node's heartbeat, on a graceful stop."""
    await conn.execute("DELETE FROM branch_leases WHERE node_id = $1", node_id)
    await conn.execute("DELETE FROM hub_nodes WHERE node_id = $1", node_id)
