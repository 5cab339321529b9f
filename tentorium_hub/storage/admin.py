"""Database-level operations: URLs of sibling databases, create from template, drop."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import asyncpg

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def with_database(url: str, name: str) -> str:
    """Return `url` pointing at database `name` on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"database name {name!r} is invalid; use lower-case letters, digits, _")
    return name


async def create_database(conn: asyncpg.Connection, name: str, template: str | None = None) -> None:
    clause = f" TEMPLATE {_check_name(template)}" if template else ""
    await conn.execute(f"CREATE DATABASE {_check_name(name)}{clause}")


async def drop_database(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(f"DROP DATABASE IF EXISTS {_check_name(name)} WITH (FORCE)")


async def database_exists(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
