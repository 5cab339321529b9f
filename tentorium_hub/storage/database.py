"""The single bridge between the trio hub and asyncpg.

asyncpg runs on an asyncio loop that trio-asyncio hosts inside the trio run. Every query
function in `tentorium_hub.storage` is an asyncio coroutine taking a connection; the rest
of the hub calls them through `Database.run` / `Database.transaction`, which cross the
bridge once per unit of work (not once per statement) and map asyncpg's errors onto the
hub's tree. No other module touches asyncio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg
import trio_asyncio

from tentorium_hub.errors import ConflictError, StorageError

P = ParamSpec("P")
T = TypeVar("T")

ConnFn = Callable[Concatenate[asyncpg.Connection, P], Awaitable[T]]


class Database:
    """A connection pool living on a trio-asyncio loop."""

    def __init__(self, pool: asyncpg.Pool, loop: Any, url: str) -> None:
        self._pool = pool
        self._loop = loop
        self.url = url

    async def run(self, fn: ConnFn[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(conn, ...)` on a pooled connection without a transaction."""

        async def call() -> T:
            async with self._pool.acquire() as conn:
                return await fn(conn, *args, **kwargs)

        return await self._bridge(call)

    async def transaction(self, fn: ConnFn[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(conn, ...)` in one transaction: all of it is committed or none."""

        async def call() -> T:
            async with self._pool.acquire() as conn, conn.transaction():
                return await fn(conn, *args, **kwargs)

        return await self._bridge(call)

    async def _bridge(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await trio_asyncio.aio_as_trio(call, loop=self._loop)()
        except asyncpg.UniqueViolationError as exc:
            raise ConflictError(f"database conflict: {exc.detail or exc}") from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise StorageError(f"database call failed: {exc}") from exc
        except TimeoutError as exc:
            raise StorageError("database call timed out") from exc

    async def close(self) -> None:
        await trio_asyncio.aio_as_trio(self._pool.close, loop=self._loop)()


@asynccontextmanager
async def open_database(
    url: str, *, min_size: int = 1, max_size: int = 10
) -> AsyncIterator[Database]:
    """Open a trio-asyncio loop and an asyncpg pool on it; close both on exit.

    Everything that uses the returned Database must run inside this context, because the
    pool belongs to the loop opened here.
    """
    async with trio_asyncio.open_loop() as loop:
        try:
            pool = await trio_asyncio.aio_as_trio(asyncpg.create_pool, loop=loop)(
                url,
                min_size=min_size,
                max_size=max_size,
                command_timeout=120,
                # asyncpg re-arms an idle-connection timer on every release, and each timer
                # becomes a trio deadline. The pool is small, so idle connections may stay.
                max_inactive_connection_lifetime=0,
            )
        except (asyncpg.PostgresError, OSError) as exc:
            raise StorageError(
                f"cannot connect to PostgreSQL at {redact_url(url)}: {exc}; "
                "check DATABASE_URL or unset it to use the embedded server"
            ) from exc
        db = Database(pool, loop, url)
        try:
            yield db
        finally:
            await db.close()


def redact_url(url: str) -> str:
    """Return `url` with any password replaced, for logs and errors."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
