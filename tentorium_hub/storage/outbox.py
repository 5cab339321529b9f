"""Claiming, delivering and retrying the outbox rows that carry orders to branches."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from tentorium_hub.domain.orders import OrderStatus
from tentorium_hub.storage.notifications import enqueue_notification
from tentorium_hub.storage.orders import apply_status

# Outbox rows of branch $1 that node $2 may claim now if it holds the branch's lease. A row
# must be due, and a claim by another node must have expired.
_CLAIMABLE = """branch_code = $1 AND state = 'pending' AND next_attempt_at <= now()
                AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = $2)"""

# Orders of branch $1 that reached the branch and whose 1C status may still change.
_AWAITING_STATUS = "branch_code = $1 AND status IN ('delivered', 'confirmed', 'paid')"


@dataclass(frozen=True, slots=True)
class ExportLine:
    offer_id: str
    product_id: str
    characteristic_id: str | None
    name: str
    quantity: Decimal
    price: Decimal
    amount: Decimal  # discount already taken off
    discount: Decimal = Decimal("0")


@dataclass(frozen=True, slots=True)
class ExportOrder:
    """Everything a connector needs to write one order into a branch's 1C."""

    outbox_id: int
    order_id: uuid.UUID
    number: str
    created_at: datetime
    currency: str
    total: Decimal
    delivery_cost: Decimal
    customer: dict[str, Any]
    comment: str | None
    lines: tuple[ExportLine, ...]


async def _load_exports(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[ExportOrder]:
    if not rows:
        return []
    order_ids = [r["order_id"] for r in rows]
    orders = {
        r["id"]: r
        for r in await conn.fetch("SELECT * FROM orders WHERE id = ANY($1::uuid[])", order_ids)
    }
    lines: dict[uuid.UUID, list[ExportLine]] = {}
    for ln in await conn.fetch(
        "SELECT * FROM order_lines WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, line_no",
        order_ids,
    ):
        lines.setdefault(ln["order_id"], []).append(
            ExportLine(
                offer_id=ln["offer_id"],
                product_id=ln["product_id"],
                characteristic_id=ln["characteristic_id"],
                name=ln["name"],
                quantity=ln["quantity"],
                price=ln["price"],
                amount=ln["amount"],
                discount=ln["discount"],
            )
        )
    exports = []
    for r in rows:
        o = orders[r["order_id"]]
        exports.append(
            ExportOrder(
                outbox_id=r["id"],
                order_id=o["id"],
                number=o["number"],
                created_at=o["created_at"],
                currency=o["currency"],
                total=o["total"],
                delivery_cost=o["delivery_cost"],
                customer=json.loads(o["customer"]),
                comment=o["comment"],
                lines=tuple(lines.get(o["id"], [])),
            )
        )
    return exports


async def claim_pending(
    conn: asyncpg.Connection, branch: str, node_id: str, limit: int, claim_s: float
) -> list[ExportOrder]:
    """Claim the oldest due rows of `branch` for this node (push delivery, e.g. OData).

    SKIP LOCKED keeps two nodes from claiming the same row. The claim expires after
    `claim_s`, so a node that dies mid-delivery does not strand its rows.
    """
    rows = await conn.fetch(
        f"""UPDATE outbox SET claimed_by = $2,
                             claimed_until = now() + make_interval(secs => $4),
                             attempts = attempts + 1
            WHERE id IN (SELECT id FROM outbox
                          WHERE {_CLAIMABLE}
                            -- Fencing: only the node holding the branch's lease delivers,
                            -- even if an old holder has not noticed it lost the lease.
                            AND EXISTS (SELECT 1 FROM branch_leases l
                                         WHERE l.branch_code = $1 AND l.node_id = $2
                                           AND l.expires_at > now())
                          ORDER BY id
                          LIMIT $3
                          FOR UPDATE SKIP LOCKED)
        RETURNING id, order_id, attempts""",
        branch,
        node_id,
        limit,
        claim_s,
    )
    rows = sorted(rows, key=lambda r: r["id"])
    return await _load_exports(conn, rows)


async def mark_delivered(
    conn: asyncpg.Connection, outbox_id: int, *, note: str | None = None
) -> None:
    order_id = await conn.fetchval(
        """UPDATE outbox SET state = 'delivered', delivered_at = now(), claimed_by = NULL,
                             claimed_until = NULL, last_error = NULL
            WHERE id = $1 AND state = 'pending' RETURNING order_id""",
        outbox_id,
    )
    if order_id is not None:
        await conn.execute("UPDATE orders SET exported_at = now() WHERE id = $1", order_id)
        await apply_status(conn, order_id, OrderStatus.DELIVERED, source="hub", note=note)


async def schedule_retry(
    conn: asyncpg.Connection, outbox_id: int, error: str, delay_s: float
) -> None:
    await conn.execute(
        """UPDATE outbox SET next_attempt_at = now() + make_interval(secs => $3),
                             claimed_by = NULL, claimed_until = NULL, last_error = $2
            WHERE id = $1 AND state = 'pending'""",
        outbox_id,
        error[:2000],
        delay_s,
    )


async def release_claims(conn: asyncpg.Connection, branch: str, node_id: str) -> None:
    """Give back claimed rows that were not tried, e.g. after an earlier row failed."""
    await conn.execute(
        """UPDATE outbox SET claimed_by = NULL, claimed_until = NULL,
                             attempts = greatest(attempts - 1, 0)
            WHERE branch_code = $1 AND claimed_by = $2 AND state = 'pending'""",
        branch,
        node_id,
    )


async def release_foreign_claims(conn: asyncpg.Connection, branch: str, node_id: str) -> int:
    """Drop claims other nodes hold on `branch`; call only while holding the branch lease.

    A node that died mid-delivery leaves its claims behind. The lease makes this node the
    only deliverer now, so waiting for those claims to time out would only delay orders.
    """
    status = await conn.execute(
        """UPDATE outbox SET claimed_by = NULL, claimed_until = NULL
            WHERE branch_code = $1 AND state = 'pending' AND claimed_by IS DISTINCT FROM $2
              AND claimed_by IS NOT NULL""",
        branch,
        node_id,
    )
    return int(status.split()[-1])


async def mark_failed(conn: asyncpg.Connection, outbox_id: int, error: str) -> None:
    """Give up on a delivery: the order needs an operator, who is notified."""
    row = await conn.fetchrow(
        """UPDATE outbox SET state = 'failed', last_error = $2, claimed_by = NULL,
                             claimed_until = NULL
            WHERE id = $1 AND state = 'pending' RETURNING order_id, branch_code""",
        outbox_id,
        error[:2000],
    )
    if row is None:
        return
    await apply_status(
        conn, row["order_id"], OrderStatus.NEEDS_ATTENTION, source="hub", note=error[:500]
    )
    number = await conn.fetchval("SELECT number FROM orders WHERE id = $1", row["order_id"])
    await enqueue_notification(
        conn,
        event="order.needs_attention",
        payload={"order": number, "branch": row["branch_code"], "error": error[:500]},
    )


async def offer_for_session(
    conn: asyncpg.Connection, branch: str, session_id: uuid.UUID, limit: int
) -> list[ExportOrder]:
    """Pick the orders a CommerceML `query` returns and tie them to this session.

    Rows stay pending: only `success` in the same session marks them delivered, so a
    session that breaks after `query` offers the same orders again next time.
    """
    rows = await conn.fetch(
        """UPDATE outbox SET offered_in_session = $2, attempts = attempts + 1
            WHERE id IN (SELECT id FROM outbox
                          WHERE branch_code = $1 AND state = 'pending'
                          ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
        RETURNING id, order_id""",
        branch,
        session_id,
        limit,
    )
    rows = sorted(rows, key=lambda r: r["id"])
    return await _load_exports(conn, rows)


async def confirm_session(conn: asyncpg.Connection, branch: str, session_id: uuid.UUID) -> int:
    """Mark every order offered in `session_id` as delivered; return how many."""
    rows = await conn.fetch(
        """SELECT id FROM outbox
            WHERE branch_code = $1 AND offered_in_session = $2 AND state = 'pending'
            ORDER BY id FOR UPDATE""",
        branch,
        session_id,
    )
    for row in rows:
        await mark_delivered(conn, row["id"], note="1C confirmed the exchange (mode=success)")
    return len(rows)


async def pending_by_branch(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT branch_code, count(*) AS n FROM outbox WHERE state = 'pending' GROUP BY 1"
    )
    return {r["branch_code"]: int(r["n"]) for r in rows}


async def orders_awaiting_status(
    conn: asyncpg.Connection, branch: str, limit: int
) -> list[tuple[uuid.UUID, str]]:
    """Delivered orders whose 1C status may still change (for OData status polling)."""
    rows = await conn.fetch(
        f"SELECT id, number FROM orders WHERE {_AWAITING_STATUS} ORDER BY updated_at LIMIT $2",
        branch,
        limit,
    )
    return [(r["id"], r["number"]) for r in rows]


@dataclass(frozen=True, slots=True)
class AwaitingOrder:
    """A delivered order whose 1C status may still change."""

    order_id: uuid.UUID
    number: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PollState:
    """The outbox and order state an OData status poll needs, read in one statement."""

    awaiting: list[AwaitingOrder]  # least recently updated first
    # False only when no row was claimable at the time of the read (see `claim_pending`).
    deliveries_due: bool


async def read_poll_state(
    conn: asyncpg.Connection, branch: str, node_id: str, limit: int
) -> PollState:
    """Read up to `limit` orders awaiting a 1C status and whether any outbox row is due.

    One statement in place of `orders_awaiting_status`, a read of the orders' creation
    times and an empty `claim_pending`: the hub spends more CPU on each database call (the
    trio-asyncio bridge, the pool, the reset on release) than on a small query. The due
    check leaves out the lease, so it can only err towards a claim that finds nothing.
    """
    rows = await conn.fetch(
        f"""SELECT EXISTS (SELECT 1 FROM outbox WHERE {_CLAIMABLE}) AS due,
                  w.id, w.number, w.created_at
             FROM (VALUES (1)) AS anchor (one)
             LEFT JOIN (SELECT id, number, created_at, updated_at FROM orders
                         WHERE {_AWAITING_STATUS}
                         ORDER BY updated_at LIMIT $3) AS w ON true
            ORDER BY w.updated_at""",
        branch,
        node_id,
        limit,
    )
    awaiting = [
        AwaitingOrder(r["id"], r["number"], r["created_at"]) for r in rows if r["id"] is not None
    ]
    return PollState(awaiting=awaiting, deliveries_due=bool(rows[0]["due"]))
