"""API bearer tokens, stored as hashes."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    scopes: tuple[str, ...]


async def insert_token(
    conn: asyncpg.Connection, name: str, token_hash: bytes, scopes: list[str]
) -> int:
    return int(
        await conn.fetchval(
            "INSERT INTO api_tokens (name, token_hash, scopes) VALUES ($1, $2, $3) RETURNING id",
            name,
            token_hash,
            scopes,
        )
    )


async def find_token(conn: asyncpg.Connection, token_hash: bytes) -> TokenInfo | None:
    row = await conn.fetchrow(
        "SELECT id, name, scopes FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        token_hash,
    )
    return TokenInfo(row["id"], row["name"], tuple(row["scopes"])) if row else None


async def list_tokens(conn: asyncpg.Connection) -> list[dict[str, object]]:
    rows = await conn.fetch(
        "SELECT id, name, scopes, created_at, revoked_at FROM api_tokens ORDER BY id"
    )
    return [dict(r) for r in rows]


async def revoke_token(conn: asyncpg.Connection, token_id: int) -> bool:
    status = await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", token_id
    )
    return not status.endswith(" 0")
