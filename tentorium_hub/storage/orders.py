"""Orders, their status history and the outbox of deliveries owed to branches."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import asyncpg

from tentorium_hub.domain.orders import (
    OrderStatus,
    PricedLine,
    allocate_discount,
    can_transition,
    format_order_number,
    order_total,
)
from tentorium_hub.errors import ConflictError, NotFoundError, ValidationError
from tentorium_hub.storage.catalog import resolve_price_type
from tentorium_hub.storage.notifications import enqueue_notification


@dataclass(frozen=True, slots=True)
class LineRequest:
    offer_id: str
    quantity: Decimal
    gift: bool = False


@dataclass(frozen=True, slots=True)
class OrderRequest:
    branch_code: str
    customer: dict[str, Any]
    lines: tuple[LineRequest, ...]
    comment: str | None
    delivery_cost: Decimal
    idempotency_key: str
    fingerprint: bytes
    token_id: int | None
    discount: Decimal = Decimal("0")  # order discount, spread over the paid lines


async def create_order(conn: asyncpg.Connection, request: OrderRequest) -> tuple[uuid.UUID, bool]:
    """Record an order, its first history entry and its outbox row in the caller's transaction.

    Returns (order id, created). The same idempotency key with the same body returns the
    existing order; with another body it raises ConflictError.
    """
    existing = await _find_by_key(conn, request)
    if existing is not None:
        return existing, False

    branch = await conn.fetchrow(
        "SELECT code, currency, price_type FROM branches WHERE code = $1 AND active",
        request.branch_code,
    )
    if branch is None:
        raise ValidationError(
            f"branch {request.branch_code!r} not found; use a code from GET /api/v1/branches",
            field="branch",
            code="branch_not_found",
            params={"branch": request.branch_code},
        )
    priced = await _price_lines(conn, request.branch_code, branch["price_type"], request.lines)
    priced = _apply_discount(priced, request.discount)
    total = order_total(priced, request.delivery_cost)

    order_id = uuid.uuid4()
    number = format_order_number(int(await conn.fetchval("SELECT nextval('order_number_seq')")))
    inserted = await conn.fetchval(
        """INSERT INTO orders (id, number, branch_code, client_token_id, idempotency_key,
                               request_hash, status, currency, total, delivery_cost,
                               customer, comment, discount)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           ON CONFLICT (client_token_id, idempotency_key) DO NOTHING
           RETURNING id""",
        order_id,
        number,
        request.branch_code,
        request.token_id,
        request.idempotency_key,
        request.fingerprint,
        OrderStatus.ACCEPTED.value,
        branch["currency"],
        total,
        request.delivery_cost,
        json.dumps(request.customer, ensure_ascii=False),
        request.comment,
        request.discount,
    )
    if inserted is None:
        # Another request with the same key committed between our check and insert.
        raced = await _find_by_key(conn, request)
        assert raced is not None
        return raced, False

    await conn.executemany(
        """INSERT INTO order_lines (order_id, line_no, offer_id, product_id, characteristic_id,
                                    name, quantity, price, amount, discount)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        [
            (
                order_id,
                n,
                ln.offer_id,
                ln.product_id,
                ln.characteristic_id,
                ln.name,
                ln.quantity,
                ln.price,
                ln.amount,
                ln.discount,
            )
            for n, ln in enumerate(priced, start=1)
        ],
    )
    await conn.execute(
        "INSERT INTO order_status_history (order_id, status, source) VALUES ($1, $2, 'api')",
        order_id,
        OrderStatus.ACCEPTED.value,
    )
    await conn.execute(
        "INSERT INTO outbox (branch_code, order_id) VALUES ($1, $2)", request.branch_code, order_id
    )
    return order_id, True


def _apply_discount(lines: list[PricedLine], discount: Decimal) -> list[PricedLine]:
    """Spread the order discount over the paid lines; gifts already cost nothing."""
    paid = [i for i, line in enumerate(lines) if not line.gift]
    gross = [lines[i].gross for i in paid]
    try:
        shares = allocate_discount(gross, discount)
    except ValueError:
        raise ValidationError(
            f"discount {discount} exceeds the sum of the paid lines {sum(gross, Decimal(0))}",
            field="discount",
            code="discount_too_large",
            params={"discount": discount, "lines_sum": sum(gross, Decimal(0))},
        ) from None
    result = list(lines)
    for index, share in zip(paid, shares, strict=True):
        result[index] = replace(lines[index], discount=share)
    return result


async def _find_by_key(conn: asyncpg.Connection, request: OrderRequest) -> uuid.UUID | None:
    row = await conn.fetchrow(
        """SELECT id, request_hash FROM orders
            WHERE client_token_id IS NOT DISTINCT FROM $1 AND idempotency_key = $2""",
        request.token_id,
        request.idempotency_key,
    )
    if row is None:
        return None
    if bytes(row["request_hash"]) != request.fingerprint:
        raise ConflictError(
            f"Idempotency-Key {request.idempotency_key!r} was already used with another "
            "request body; send a new key for a new order",
            code="idempotency_key_reused",
            params={"key": request.idempotency_key},
        )
    return row["id"]


async def _price_lines(
    conn: asyncpg.Connection, branch: str, price_type: str | None, lines: tuple[LineRequest, ...]
) -> list[PricedLine]:
    """Price each requested offer from the branch catalog; gifts cost nothing."""
    type_id = await resolve_price_type(conn, branch, price_type)
    offer_ids = [line.offer_id for line in lines]
    rows = await conn.fetch(
        """SELECT o.external_id, o.product_id, o.characteristic_id, o.deleted,
                  coalesce(o.name, p.name) AS name, p.deleted AS product_deleted, pr.amount
             FROM offers o
             LEFT JOIN products p ON p.branch_code = o.branch_code AND p.external_id = o.product_id
             LEFT JOIN prices pr ON pr.branch_code = o.branch_code
                               AND pr.offer_id = o.external_id AND pr.price_type_id = $3
            WHERE o.branch_code = $1 AND o.external_id = ANY($2::text[])""",
        branch,
        offer_ids,
        type_id,
    )
    by_id = {r["external_id"]: r for r in rows}
    priced = []
    for index, line in enumerate(lines):
        row = by_id.get(line.offer_id)
        field = f"lines[{index}].offer_id"
        if row is None or row["deleted"] or row["product_deleted"]:
            raise ValidationError(
                f"offer {line.offer_id!r} is not sold in branch {branch!r}; "
                "take offer ids from GET /api/v1/products",
                field=field,
                code="offer_not_sold",
                params={"offer": line.offer_id, "branch": branch},
            )
        if row["amount"] is None and not line.gift:
            raise ValidationError(
                f"offer {line.offer_id!r} has no price in branch {branch!r} yet; "
                "wait for the branch's next price exchange",
                field=field,
                code="offer_without_price",
                params={"offer": line.offer_id, "branch": branch},
            )
        price = Decimal("0") if line.gift else Decimal(row["amount"])
        priced.append(
            PricedLine(
                offer_id=line.offer_id,
                product_id=row["product_id"],
                characteristic_id=row["characteristic_id"],
                name=row["name"] or line.offer_id,
                quantity=line.quantity,
                price=price,
                gift=line.gift,
            )
        )
    return priced


async def get_order(conn: asyncpg.Connection, order_ref: str) -> dict[str, Any]:
    """Return an order with its lines and status history, by id or by hub number."""
    try:
        key: Any = uuid.UUID(order_ref)
        where = "id = $1"
    except ValueError:
        key, where = order_ref, "number = $1"
    row = await conn.fetchrow(f"SELECT * FROM orders WHERE {where}", key)
    if row is None:
        raise NotFoundError(
            f"order {order_ref!r} not found", code="order_not_found", params={"order": order_ref}
        )
    order = dict(row)
    order["customer"] = json.loads(order["customer"])
    lines = await conn.fetch(
        "SELECT * FROM order_lines WHERE order_id = $1 ORDER BY line_no", row["id"]
    )
    history = await conn.fetch(
        """SELECT status, source, note, at FROM order_status_history
            WHERE order_id = $1 ORDER BY id""",
        row["id"],
    )
    order["lines"] = [dict(r) for r in lines]
    order["history"] = [dict(r) for r in history]
    return order


async def apply_status(
    conn: asyncpg.Connection,
    order_id: uuid.UUID,
    status: OrderStatus,
    *,
    source: str,
    note: str | None = None,
    raw: dict[str, Any] | None = None,
    number_1c: str | None = None,
    status_1c: str | None = None,
) -> OrderStatus | None:
    """Move an order to `status` if the state machine allows it; return the new status.

    1C facts (its number and raw status text) are stored even when the status stays.
    """
    row = await conn.fetchrow("SELECT status FROM orders WHERE id = $1 FOR UPDATE", order_id)
    if row is None:
        raise NotFoundError(f"order {order_id} not found")
    current = OrderStatus(row["status"])
    await conn.execute(
        """UPDATE orders SET number_1c = coalesce($2, number_1c),
                             status_1c = coalesce($3, status_1c), updated_at = now()
            WHERE id = $1""",
        order_id,
        number_1c,
        status_1c,
    )
    if not can_transition(current, status):
        return None
    await conn.execute(
        "UPDATE orders SET status = $2, updated_at = now() WHERE id = $1", order_id, status.value
    )
    order = await conn.fetchrow(
        "SELECT number, branch_code, number_1c FROM orders WHERE id = $1", order_id
    )
    # Written in the same transaction as the change, so no status change goes unannounced.
    await enqueue_notification(
        conn,
        event="order.status_changed",
        payload={
            "order": order["number"],
            "branch": order["branch_code"],
            "status": status.value,
            "previous": current.value,
            "number_1c": order["number_1c"],
        },
    )
    await conn.execute(
        """INSERT INTO order_status_history (order_id, status, source, note, raw)
           VALUES ($1, $2, $3, $4, $5)""",
        order_id,
        status.value,
        source,
        note,
        json.dumps(raw, ensure_ascii=False, default=str) if raw is not None else None,
    )
    return status


async def find_order_id(conn: asyncpg.Connection, branch: str, site_id: str) -> uuid.UUID | None:
    """Find an order of `branch` by the Ид 1C echoes back (hub number or uuid)."""
    row = await conn.fetchrow(
        "SELECT id FROM orders WHERE branch_code = $1 AND lower(number) = lower($2)",
        branch,
        site_id.strip(),
    )
    if row is None:
        try:
            as_uuid = uuid.UUID(site_id.strip())
        except ValueError:
            return None
        row = await conn.fetchrow(
            "SELECT id FROM orders WHERE branch_code = $1 AND id = $2", branch, as_uuid
        )
    return row["id"] if row else None


async def order_status_counts(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT status, count(*) AS n FROM orders GROUP BY status")
    return {r["status"]: int(r["n"]) for r in rows}
