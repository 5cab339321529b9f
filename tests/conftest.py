"""Shared fixtures: real PostgreSQL (embedded or TEST_DATABASE_URL), a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from tentorium_hub.storage import (
    Database,
    apply_migrations,
    open_database,
    start_embedded,
    stop_embedded,
)
from tentorium_hub.storage.admin import create_database, drop_database, with_database

TEMPLATE = "hub_test_template"
SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples"


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the server's maintenance database, with a migrated template database on it."""
    url = os.environ.get("TEST_DATABASE_URL")
    embedded_dir = None
    if not url:
        embedded_dir = tmp_path_factory.mktemp("embedded-pg")
        url = start_embedded(embedded_dir)

    async def build_template() -> None:
        async with open_database(url, max_size=1) as admin:
            await admin.run(drop_database, TEMPLATE)
            await admin.run(create_database, TEMPLATE)
        async with open_database(with_database(url, TEMPLATE), max_size=1) as template:
            await template.run(apply_migrations)

    trio.run(build_template)
    yield url
    if embedded_dir is not None:
        stop_embedded(embedded_dir)


@pytest.fixture
async def database_url(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh database cloned from the migrated template, dropped after the test."""
    name = f"hub_test_{uuid.uuid4().hex[:12]}"
    async with open_database(pg_server_url, max_size=1) as admin:
        await admin.run(create_database, name, TEMPLATE)
    try:
        yield with_database(pg_server_url, name)
    finally:
        async with open_database(pg_server_url, max_size=1) as admin:
            await admin.run(drop_database, name)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with open_database(database_url, max_size=4) as database:
        yield database


@pytest.fixture
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"shared samples folder {SAMPLES} is absent; conformance tests need it")
    return SAMPLES


# -- a running hub node on loopback -----------------------------------------------------

import httpx  # noqa: E402

from tentorium_hub.domain.secrets import hash_token, new_token  # noqa: E402
from tentorium_hub.node import NodeContext, run_node  # noqa: E402
from tentorium_hub.settings import Settings  # noqa: E402
from tentorium_hub.storage import tokens as tokens_db  # noqa: E402


def node_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "http_port": 0,
        "poll_interval_s": 2.0,
        "lease_renew_interval_s": 0.5,
        "retry_base_s": 0.05,
        "retry_max_s": 0.5,
        "circuit_open_base_s": 0.5,
        "circuit_open_max_s": 2.0,
        "exchange_step_s": 0.5,
        "log_format": "json",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def node(database_url: str, tmp_path: Path, nursery: trio.Nursery) -> NodeContext:
    settings = node_settings(database_url, tmp_path / "data")
    ctx: NodeContext = await nursery.start(
        lambda task_status: run_node(settings, handle_signals=False, task_status=task_status)
    )
    return ctx


async def make_token(ctx: NodeContext, scopes: list[str]) -> str:
    token = new_token()
    await ctx.db.run(tokens_db.insert_token, "test", hash_token(token), scopes)
    return token


@pytest.fixture
async def api(node: NodeContext) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the node's API with an admin token."""
    token = await make_token(node, ["admin"])
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{node.http_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as client:
        yield client
