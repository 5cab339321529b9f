"""Counterparties (Контрагенты) of each branch, merged from staged counterparty files."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

# Kind of the import_stage rows that contain counterparties.
STAGE_KIND = "counterparty"


async def merge_staged(conn: asyncpg.Connection, branch: str, job_id: int) -> int:
    """Upsert the counterparties staged by `job_id` into `branch`, return the rows written.

    Call it inside the import's merge transaction, before the stage is cleared. When the
    file names an Ид twice, its last occurrence wins. Rows are never deleted.
    """
    status = await conn.execute(
        """INSERT INTO counterparties (branch_code, external_id, name, full_name, inn, kpp,
                                       deleted, raw, updated_at)
           SELECT $2, s.external_id, s.payload->>'name', s.payload->>'full_name',
                  s.payload->>'inn', s.payload->>'kpp', (s.payload->>'deleted')::boolean,
                  s.payload->'raw', now()
             FROM (SELECT DISTINCT ON (external_id) external_id, payload
                     FROM import_stage WHERE job_id = $1 AND kind = $3
                    ORDER BY external_id, seq DESC) s
           ON CONFLICT (branch_code, external_id) DO UPDATE SET
               name = EXCLUDED.name, full_name = EXCLUDED.full_name, inn = EXCLUDED.inn,
               kpp = EXCLUDED.kpp, deleted = EXCLUDED.deleted, raw = EXCLUDED.raw,
               updated_at = now()""",
        job_id,
        branch,
        STAGE_KIND,
    )
    return int(status.split()[-1])


async def get_counterparty(
    conn: asyncpg.Connection, branch: str, external_id: str
) -> dict[str, Any] | None:
    """Return one counterparty of `branch` by its normalised Ид, `raw` decoded, or None."""
    row = await conn.fetchrow(
        "SELECT * FROM counterparties WHERE branch_code = $1 AND external_id = $2",
        branch,
        external_id,
    )
    if row is None:
        return None
    counterparty = dict(row)
    counterparty["raw"] = json.loads(counterparty["raw"])
    return counterparty
