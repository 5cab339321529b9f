"""Per-branch, per-warehouse stock written by polling branches and read for availability."""

from __future__ import annotations

from decimal import Decimal

import asyncpg


async def availability(
    conn: asyncpg.Connection, branch: str, offer_ids: list[str]
) -> dict[str, Decimal]:
    """Quantity on hand per offer: warehouse rows when 1C sent them, else the offer total."""
    rows = await conn.fetch(
        """SELECT o.external_id,
                  coalesce((SELECT sum(quantity) FROM stock s
                             WHERE s.branch_code = o.branch_code AND s.offer_id = o.external_id),
                           o.stock_total, 0) AS quantity
             FROM offers o
            WHERE o.branch_code = $1 AND o.external_id = ANY($2::text[])""",
        branch,
        offer_ids,
    )
    return {r["external_id"]: Decimal(r["quantity"]) for r in rows}


async def availability_by_warehouse(
    conn: asyncpg.Connection, branch: str, offer_ids: list[str]
) -> dict[str, dict[str, object]]:
    """Per offer: total on hand and the quantity in each named warehouse."""
    totals = await availability(conn, branch, offer_ids)
    rows = await conn.fetch(
        """SELECT s.offer_id, s.warehouse_id, coalesce(w.name, s.warehouse_id) AS name,
                  s.quantity
             FROM stock s LEFT JOIN warehouses w
               ON w.branch_code = s.branch_code AND w.external_id = s.warehouse_id
            WHERE s.branch_code = $1 AND s.offer_id = ANY($2::text[])
            ORDER BY s.offer_id, s.warehouse_id""",
        branch,
        offer_ids,
    )
    result: dict[str, dict[str, object]] = {
        offer: {"quantity": total, "warehouses": []} for offer, total in totals.items()
    }
    for row in rows:
        entry = result.get(row["offer_id"])
        if entry is not None:
            warehouses = entry["warehouses"]
            assert isinstance(warehouses, list)
            warehouses.append(
                {"id": row["warehouse_id"], "name": row["name"], "quantity": row["quantity"]}
            )
    return result


async def warehouse_stock(conn: asyncpg.Connection, branch: str) -> list[dict[str, object]]:
    rows = await conn.fetch(
        """SELECT s.offer_id, s.warehouse_id, w.name AS warehouse, s.quantity, s.updated_at
             FROM stock s LEFT JOIN warehouses w
               ON w.branch_code = s.branch_code AND w.external_id = s.warehouse_id
            WHERE s.branch_code = $1 ORDER BY s.offer_id, s.warehouse_id""",
        branch,
    )
    return [dict(r) for r in rows]
