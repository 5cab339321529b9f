"""One hub process: database, migrations, the supervision tree, the exchange service and HTTP.

The HTTP front is loaded through the `tentorium_hub.http` entry point (the `api` package
by default), so the core never imports it.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

import trio

from actors.leases import LeaseKeeper
from actors.notifications import NotificationActor
from actors.orders import OrderActor
from actors.stock import StockActor
from tentorium_hub.errors import ConfigError
from tentorium_hub.exchange import ExchangeService
from tentorium_hub.logs import get_logger
from tentorium_hub.runtime import ChildSpec, Registry, Restart, Supervisor
from tentorium_hub.settings import Settings
from tentorium_hub.storage import (
    Database,
    apply_migrations,
    open_database,
    redact_url,
    start_embedded,
)
from tentorium_hub.storage import branches as branches_db
from tentorium_hub.storage import catalog as catalog_db
from tentorium_hub.storage import exchange as exchange_db

log = get_logger("node")
HttpFront = Callable[..., Awaitable[None]]


@dataclass
class NodeContext:
    """State of a running node that the HTTP front and the CLI use."""

    settings: Settings
    db: Database
    registry: Registry
    exchange: ExchangeService
    node_id: str
    root: Supervisor | None = None
    branches: Supervisor | None = None
    leases: LeaseKeeper | None = None
    http_port: int | None = None
    started_at: float = field(default_factory=time.time)
    ready: trio.Event = field(default_factory=trio.Event)


async def database_url(settings: Settings) -> str:
    """DATABASE_URL when set, else the URL of the embedded server in the data folder."""
    if settings.database_url:
        return settings.database_url
    return await trio.to_thread.run_sync(start_embedded, settings.data_dir)


@asynccontextmanager
async def open_storage(settings: Settings) -> AsyncIterator[Database]:
    """Open the database and bring its schema up to date."""
    url = await database_url(settings)
    async with open_database(
        url, min_size=settings.db_pool_min_size, max_size=settings.db_pool_max_size
    ) as db:
        applied = await db.run(apply_migrations)
        if applied:
            log.info("storage.migrated", versions=applied, url=redact_url(url))
        yield db


def load_http_front() -> HttpFront:
    """Find the HTTP front: HUB_HTTP_FRONT="module:function" or the installed entry point."""
    spec = os.environ.get("HUB_HTTP_FRONT")
    if spec is None:
        found = entry_points(group="tentorium_hub.http", name="default")
        if not found:
            raise ConfigError(
                "no HTTP front installed (entry point group 'tentorium_hub.http'); "
                "install the project with `pip install -e .` or set HUB_HTTP_FRONT=api.app:serve"
            )
        loaded: HttpFront = next(iter(found)).load()
        return loaded
    module, _, name = spec.partition(":")
    return getattr(import_module(module), name)


def build_tree(ctx: NodeContext) -> Supervisor:
    """Build the supervision tree: order, stock and notification actors, branches, leases."""
    db, settings, registry = ctx.db, ctx.settings, ctx.registry

    def branches_factory() -> Supervisor:
        ctx.branches = Supervisor(
            "branches",
            registry,
            max_restarts=50,
            within_s=60.0,
            backoff_base_s=settings.retry_base_s,
            backoff_max_s=settings.retry_max_s,
        )
        return ctx.branches

    def leases_factory() -> LeaseKeeper:
        assert ctx.branches is not None
        ctx.leases = LeaseKeeper(db, settings, registry, ctx.node_id, lambda: ctx.branches)  # type: ignore[arg-type,return-value]
        return ctx.leases

    children = [
        ChildSpec("orders", lambda: OrderActor(db, registry)),
        ChildSpec("stock", lambda: StockActor(db)),
        ChildSpec("notifications", lambda: NotificationActor(db, settings)),
        ChildSpec("branches", branches_factory, shutdown_timeout_s=30.0),
        ChildSpec("leases", leases_factory, restart=Restart.PERMANENT),
    ]
    return Supervisor("root", registry, children, max_restarts=10, within_s=60.0)


async def run_node(
    settings: Settings,
    *,
    http: bool = True,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[NodeContext] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a hub node until cancelled, or until SIGINT/SIGTERM requests a graceful stop."""
    async with open_storage(settings) as db:
        orphaned = await db.run(exchange_db.fail_orphaned_jobs, settings.node_id)
        await db.run(catalog_db.clear_abandoned_stages)
        if orphaned:
            log.warning("exchange.orphaned_imports_failed", count=orphaned)
        registry = Registry()
        exchange = ExchangeService(db, settings, node_id=settings.node_id)
        ctx = NodeContext(settings, db, registry, exchange, settings.node_id)
        ctx.root = build_tree(ctx)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(exchange.run)
                await nursery.start(ctx.root.run)
                if http:
                    front = load_http_front()
                    ctx.http_port = await nursery.start(front, ctx)
                if handle_signals:
                    nursery.start_soon(_stop_on_signal, ctx, nursery.cancel_scope)
                ctx.ready.set()
                # Objects made during start-up live as long as the node. Frozen, they are left
                # out of every later collection, so full collections stay short.
                gc.freeze()
                log.info("node.started", node=ctx.node_id, http_port=ctx.http_port)
                task_status.started(ctx)
        finally:
            with trio.CancelScope(shield=True):
                await _release(ctx)


async def _stop_on_signal(ctx: NodeContext, scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("node.stopping", signal=signal.Signals(signum).name)
            await shutdown(ctx, scope)
            return


async def shutdown(ctx: NodeContext, scope: trio.CancelScope) -> None:
    """Stop the tree in reverse start order (each child within its deadline), then exit."""
    assert ctx.root is not None
    with trio.move_on_after(60):
        await ctx.root.stop()
    scope.cancel()


async def _release(ctx: NodeContext) -> None:
    with trio.move_on_after(5):
        try:
            await ctx.db.run(branches_db.release_leases, ctx.node_id)
        except Exception as exc:  # the database may be the reason we are stopping
            log.warning("node.lease_release_failed", error=str(exc))
    log.info("node.stopped", node=ctx.node_id)


def describe(ctx: NodeContext) -> dict[str, Any]:
    return {
        "node": ctx.node_id,
        "http_port": ctx.http_port,
        "uptime_s": time.time() - ctx.started_at,
    }
