"""Branch catalogs: staged imports merged in one transaction, and the shop's product view.

An import streams parsed items into `import_stage` in batches (COPY), then
`merge_import` moves them into the live tables in a single transaction. A file that fails
halfway leaves the live catalog as it was; its staged rows are dropped.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import asyncpg

StageRow = tuple[int, int, str, str, str]  # job_id, seq, kind, external_id, payload json


async def stage_rows(conn: asyncpg.Connection, rows: list[StageRow]) -> None:
    await conn.copy_records_to_table(
        "import_stage", records=rows, columns=["job_id", "seq", "kind", "external_id", "payload"]
    )


async def clear_stage(conn: asyncpg.Connection, job_id: int) -> None:
    await conn.execute("DELETE FROM import_stage WHERE job_id = $1", job_id)


async def clear_abandoned_stages(conn: asyncpg.Connection) -> int:
    """Drop staged rows of jobs that no longer run (after a crash)."""
    status = await conn.execute(
        """DELETE FROM import_stage s WHERE NOT EXISTS
               (SELECT 1 FROM import_jobs j WHERE j.id = s.job_id AND j.state = 'running')"""
    )
    return int(status.split()[-1])


# Latest staged row per (kind, external_id): a file may mention the same Ид twice.
_LATEST = """SELECT DISTINCT ON (external_id) external_id, payload
               FROM import_stage WHERE job_id = $1 AND kind = '{kind}'
              ORDER BY external_id, seq DESC"""


async def merge_import(
    conn: asyncpg.Connection, branch: str, job_id: int, *, only_changes: bool
) -> dict[str, int]:
    """Merge the staged rows of `job_id` into the live catalog; call inside a transaction."""
    # Statistics lag behind a big import: after autovacuum saw a near-empty table, the
    # planner chose a nested-loop anti join for the deactivation and compared 50,000 staged
    # rows with 50,000 products (minutes, measured in loadtests/bench_latency.py). Every
    # statement here is a bulk set operation, so hash and merge joins are always right.
    await conn.execute("SET LOCAL enable_nestloop = off")
    counts: dict[str, int] = {}
    counts["groups"] = await _merge_simple(
        conn,
        branch,
        job_id,
        "group",
        "product_groups",
        "name, parent_id, deleted",
        "s.payload->>'name', s.payload->>'parent_id', (s.payload->>'deleted')::boolean",
    )
    counts["price_types"] = await _merge_simple(
        conn,
        branch,
        job_id,
        "price_type",
        "price_types",
        "name, currency",
        "s.payload->>'name', s.payload->>'currency'",
    )
    counts["warehouses"] = await _merge_simple(
        conn, branch, job_id, "warehouse", "warehouses", "name", "s.payload->>'name'"
    )
    counts["products"] = await _merge_products(conn, branch, job_id)
    deactivate = await conn.fetchval(
        "SELECT deactivate_missing FROM branches WHERE code = $1", branch
    )
    if counts["products"] and not only_changes and deactivate:
        counts["deactivated"] = await _deactivate_missing(conn, branch, job_id)
    counts["offers"] = await _merge_offers(conn, branch, job_id)
    counts["prices"] = await _merge_prices(conn, branch, job_id)
    counts["stock"] = await _merge_stock(conn, branch, job_id)
    await clear_stage(conn, job_id)
    return counts


def _rowcount(status: str) -> int:
    return int(status.split()[-1])


async def _merge_simple(
    conn: asyncpg.Connection,
    branch: str,
    job_id: int,
    kind: str,
    table: str,
    columns: str,
    values: str,
) -> int:
    updates = ", ".join(f"{c.strip()} = EXCLUDED.{c.strip()}" for c in columns.split(","))
    status = await conn.execute(
        f"""INSERT INTO {table} (branch_code, external_id, {columns})
            SELECT $2, s.external_id, {values} FROM ({_LATEST.format(kind=kind)}) s
            ON CONFLICT (branch_code, external_id) DO UPDATE SET {updates}""",
        job_id,
        branch,
    )
    return _rowcount(status)


async def _merge_products(conn: asyncpg.Connection, branch: str, job_id: int) -> int:
    status = await conn.execute(
        f"""INSERT INTO products (branch_code, external_id, sku, name, group_id, unit,
                                  description, barcode, deleted, properties, pictures, updated_at)
            SELECT $2, s.external_id, s.payload->>'sku', s.payload->>'name',
                   s.payload->>'group_id', s.payload->>'unit', s.payload->>'description',
                   s.payload->>'barcode', (s.payload->>'deleted')::boolean,
                   s.payload->'properties', s.payload->'pictures', now()
              FROM ({_LATEST.format(kind="product")}) s
            ON CONFLICT (branch_code, external_id) DO UPDATE SET
                sku = EXCLUDED.sku, name = EXCLUDED.name, group_id = EXCLUDED.group_id,
                unit = EXCLUDED.unit, description = EXCLUDED.description,
                barcode = EXCLUDED.barcode, deleted = EXCLUDED.deleted,
                properties = EXCLUDED.properties, pictures = EXCLUDED.pictures,
                updated_at = now()""",
        job_id,
        branch,
    )
    return _rowcount(status)


async def _deactivate_missing(conn: asyncpg.Connection, branch: str, job_id: int) -> int:
    """Hide the products a full snapshot leaves out; they are never deleted."""
    status = await conn.execute(
        """UPDATE products p SET deleted = true, updated_at = now()
            WHERE p.branch_code = $2 AND NOT p.deleted
              AND NOT EXISTS (SELECT 1 FROM import_stage s
                               WHERE s.job_id = $1 AND s.kind = 'product'
                                 AND s.external_id = p.external_id)""",
        job_id,
        branch,
    )
    return _rowcount(status)


async def _merge_offers(conn: asyncpg.Connection, branch: str, job_id: int) -> int:
    # stock_total and name are only overwritten when the file carries them, so a
    # prices-only file keeps the stock a rests file delivered earlier.
    status = await conn.execute(
        f"""INSERT INTO offers (branch_code, external_id, product_id, characteristic_id, name,
                                characteristics, stock_total, deleted, updated_at)
            SELECT $2, s.external_id, s.payload->>'product_id', s.payload->>'characteristic_id',
                   s.payload->>'name', s.payload->'characteristics',
                   (s.payload->>'stock_total')::numeric, (s.payload->>'deleted')::boolean, now()
              FROM ({_LATEST.format(kind="offer")}) s
            ON CONFLICT (branch_code, external_id) DO UPDATE SET
                name = coalesce(EXCLUDED.name, offers.name),
                characteristics = CASE WHEN EXCLUDED.characteristics = '{{}}'::jsonb
                                       THEN offers.characteristics
                                       ELSE EXCLUDED.characteristics END,
                stock_total = coalesce(EXCLUDED.stock_total, offers.stock_total),
                deleted = EXCLUDED.deleted, updated_at = now()""",
        job_id,
        branch,
    )
    return _rowcount(status)


async def _merge_prices(conn: asyncpg.Connection, branch: str, job_id: int) -> int:
    status = await conn.execute(
        """INSERT INTO prices (branch_code, offer_id, price_type_id, amount, currency, updated_at)
           SELECT DISTINCT ON (s.external_id, s.payload->>'price_type_id')
                  $2, s.external_id, s.payload->>'price_type_id',
                  (s.payload->>'amount')::numeric, s.payload->>'currency', now()
             FROM import_stage s WHERE s.job_id = $1 AND s.kind = 'price'
            ORDER BY s.external_id, s.payload->>'price_type_id', s.seq DESC
           ON CONFLICT (branch_code, offer_id, price_type_id) DO UPDATE SET
               amount = EXCLUDED.amount, currency = EXCLUDED.currency, updated_at = now()""",
        job_id,
        branch,
    )
    return _rowcount(status)


async def _merge_stock(conn: asyncpg.Connection, branch: str, job_id: int) -> int:
    """Replace the warehouse rows of every offer the file gives warehouse stock for."""
    await conn.execute(
        """DELETE FROM stock st WHERE st.branch_code = $2 AND st.offer_id IN
               (SELECT s.external_id FROM import_stage s
                 WHERE s.job_id = $1 AND s.kind = 'stock_reset')""",
        job_id,
        branch,
    )
    status = await conn.execute(
        """INSERT INTO stock (branch_code, offer_id, warehouse_id, quantity, updated_at)
           SELECT DISTINCT ON (s.external_id, s.payload->>'warehouse_id')
                  $2, s.external_id, s.payload->>'warehouse_id',
                  (s.payload->>'quantity')::numeric, now()
             FROM import_stage s WHERE s.job_id = $1 AND s.kind = 'stock'
            ORDER BY s.external_id, s.payload->>'warehouse_id', s.seq DESC
           ON CONFLICT (branch_code, offer_id, warehouse_id) DO UPDATE SET
               quantity = EXCLUDED.quantity, updated_at = now()""",
        job_id,
        branch,
    )
    return _rowcount(status)


async def resolve_price_type(
    conn: asyncpg.Connection, branch: str, configured: str | None
) -> str | None:
    """Return the Ид of the branch's selling price type.

    A configured value matches an Ид or a name (case-insensitive). Without one, the first
    price type that has prices wins, skipping types whose name marks an old price.
    """
    if configured:
        value = await conn.fetchval(
            """SELECT external_id FROM price_types
                WHERE branch_code = $1 AND (external_id = lower($2) OR lower(name) = lower($2))""",
            branch,
            configured.strip(),
        )
        return value or configured.strip().lower()
    return await conn.fetchval(
        """SELECT pt FROM (
               SELECT DISTINCT p.price_type_id AS pt, t.name
                 FROM prices p LEFT JOIN price_types t
                   ON t.branch_code = p.branch_code AND t.external_id = p.price_type_id
                WHERE p.branch_code = $1) x
            ORDER BY (coalesce(name, '') ILIKE '%стар%'), (coalesce(name, '') NOT ILIKE '%розн%'),
                     pt
            LIMIT 1""",
        branch,
    )


async def resolve_old_price_type(
    conn: asyncpg.Connection, branch: str, configured: str | None
) -> str | None:
    """Return the Ид of the strikethrough price type: configured, or named like "Старая цена"."""
    if configured:
        return await resolve_price_type(conn, branch, configured)
    return await conn.fetchval(
        """SELECT external_id FROM price_types
            WHERE branch_code = $1 AND name ILIKE '%стар%' ORDER BY external_id LIMIT 1""",
        branch,
    )


async def list_products(
    conn: asyncpg.Connection, branch: str, *, after_id: int, limit: int
) -> list[dict[str, Any]]:
    """Return a page of active products with price, old price, currency, stock and variants."""
    row = await conn.fetchrow(
        "SELECT price_type, old_price_type, currency FROM branches WHERE code = $1", branch
    )
    if row is None:
        return []
    price_type = await resolve_price_type(conn, branch, row["price_type"])
    old_type = await resolve_old_price_type(conn, branch, row["old_price_type"])
    products = await conn.fetch(
        """SELECT p.id, p.external_id, p.sku, p.name, p.group_id, g.name AS group_name, p.unit,
                  p.pictures
             FROM products p
             LEFT JOIN product_groups g
                    ON g.branch_code = p.branch_code AND g.external_id = p.group_id
            WHERE p.branch_code = $1 AND NOT p.deleted AND p.id > $2
            ORDER BY p.id LIMIT $3""",
        branch,
        after_id,
        limit,
    )
    ids = [p["external_id"] for p in products]
    variants = await conn.fetch(
        """SELECT o.product_id, o.external_id, o.name, o.characteristics, pr.amount AS price,
                  pr.currency, old.amount AS old_price,
                  coalesce((SELECT sum(quantity) FROM stock s
                             WHERE s.branch_code = o.branch_code AND s.offer_id = o.external_id),
                           o.stock_total, 0) AS stock
             FROM offers o
             LEFT JOIN prices pr ON pr.branch_code = o.branch_code AND pr.offer_id = o.external_id
                               AND pr.price_type_id = $3
             LEFT JOIN prices old
                    ON old.branch_code = o.branch_code AND old.offer_id = o.external_id
                                AND old.price_type_id = $4
            WHERE o.branch_code = $1 AND o.product_id = ANY($2::text[]) AND NOT o.deleted
            ORDER BY o.product_id, o.external_id""",
        branch,
        ids,
        price_type,
        old_type,
    )
    by_product: dict[str, list[asyncpg.Record]] = {}
    for v in variants:
        by_product.setdefault(v["product_id"], []).append(v)
    return [
        _product_view(branch, p, by_product.get(p["external_id"], []), row["currency"])
        for p in products
    ]


def _product_view(
    branch: str, product: asyncpg.Record, variants: list[asyncpg.Record], currency: str
) -> dict[str, Any]:
    priced = [v for v in variants if v["price"] is not None]
    cheapest = min(priced, key=lambda v: v["price"]) if priced else None
    return {
        "id": product["id"],
        "external_id": product["external_id"],
        "sku": product["sku"],
        "name": product["name"],
        "group": {"id": product["group_id"], "name": product["group_name"]}
        if product["group_id"]
        else None,
        "unit": product["unit"],
        "pictures": [f"/pictures/{branch}/{path}" for path in json.loads(product["pictures"])],
        "price": cheapest["price"] if cheapest else None,
        "old_price": cheapest["old_price"] if cheapest else None,
        "currency": (cheapest["currency"] if cheapest and cheapest["currency"] else currency),
        "stock": sum((Decimal(v["stock"]) for v in variants), Decimal("0")),
        "variants": [
            {
                "offer_id": v["external_id"],
                "name": v["name"],
                "price": v["price"],
                "old_price": v["old_price"],
                "stock": Decimal(v["stock"]),
            }
            for v in variants
        ],
    }


async def catalog_counts(conn: asyncpg.Connection, branch: str | None = None) -> dict[str, int]:
    where = "WHERE branch_code = $1" if branch else ""
    args = [branch] if branch else []
    products = await conn.fetchval(f"SELECT count(*) FROM products {where}", *args)
    offers = await conn.fetchval(f"SELECT count(*) FROM offers {where}", *args)
    return {"products": int(products), "offers": int(offers)}
