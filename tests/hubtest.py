"""Helpers shared by the integration tests: branches, a raw 1C protocol client, polling."""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import trio

from actors.messages import Wake
from connectors.emulator.odata_server import ORDER_NUMBER_FIELD, ODataBranchEmulator
from tentorium_hub.branches import new_branch
from tentorium_hub.domain.secrets import hash_token, new_token
from tentorium_hub.node import NodeContext, run_node
from tentorium_hub.settings import Settings
from tentorium_hub.storage import branches as branches_db
from tentorium_hub.storage import tokens as tokens_db

FIXTURES = Path(__file__).parent / "fixtures"
PASSWORD = "exchange-secret-1"


async def add_commerceml_branch(
    ctx: NodeContext,
    code: str = "MSK01",
    *,
    zip_enabled: bool = False,
    file_limit: int = 4096,
    time_zone: str = "Europe/Moscow",
) -> str:
    branch = new_branch(
        code=code,
        name=f"Филиал {code}",
        kind="commerceml",
        time_zone=time_zone,
        exchange_login=code.lower(),
        exchange_password=PASSWORD,
        zip_enabled=zip_enabled,
        file_limit_bytes=file_limit,
    )
    await ctx.db.transaction(branches_db.insert_branch, branch)
    return code.lower()


def basic(login: str, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


class RawExchange:
    """A minimal 1C-like client for protocol-level assertions."""

    def __init__(self, ctx: NodeContext, login: str, exchange_type: str = "catalog") -> None:
        self.url = f"http://127.0.0.1:{ctx.http_port}/1c/exchange"
        self.login = login
        self.type = exchange_type
        self.http = httpx.AsyncClient(timeout=30)
        self.cookie: str | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, mode: str, *, body: bytes | None = None, **params: str) -> httpx.Response:
        query = {"type": self.type, "mode": mode, **params}
        headers = {"User-Agent": "1C+Enterprise/8.3"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        if mode == "checkauth":
            headers["Authorization"] = basic(self.login)
        if body is not None:
            return await self.http.post(self.url, params=query, content=body, headers=headers)
        return await self.http.get(self.url, params=query, headers=headers)

    async def login_and_init(self) -> list[str]:
        reply = (await self.call("checkauth")).text.splitlines()
        assert reply[0] == "success", reply
        self.cookie = f"{reply[1]}={reply[2]}"
        return (await self.call("init")).text.splitlines()

    async def import_until_done(self, filename: str, limit: int = 200) -> list[str]:
        for _ in range(limit):
            lines = (await self.call("import", filename=filename)).text.splitlines()
            if lines[0] != "progress":
                return lines
            await trio.sleep(0.05)
        raise AssertionError(f"import of {filename} still in progress after {limit} requests")

    async def upload(self, name: str, data: bytes, chunk: int) -> None:
        for start in range(0, len(data), chunk):
            reply = await self.call("file", filename=name, body=data[start : start + chunk])
            assert reply.text.startswith("success"), reply.text


CATALOG_FILES = (
    ("import.xml", (FIXTURES / "exchange" / "import.xml").read_bytes()),
    ("offers.xml", (FIXTURES / "exchange" / "offers.xml").read_bytes()),
)


async def upload_catalog(
    ctx: NodeContext, login: str, files: tuple[tuple[str, bytes], ...] = CATALOG_FILES
) -> None:
    """Exchange `files` as 1C does, one session per file, and check that each imported."""
    client = RawExchange(ctx, login)
    try:
        for name, data in files:
            await client.login_and_init()
            await client.upload(name, data, 1 << 20)
            assert (await client.import_until_done(name))[0] == "success", name
    finally:
        await client.aclose()


async def wait_until(predicate: Any, *, timeout_s: float = 30.0, interval_s: float = 0.1) -> None:
    """Poll `predicate` until true; the state lives in PostgreSQL, so there is no event."""
    with trio.fail_after(timeout_s):
        while not await predicate():  # noqa: ASYNC110
            await trio.sleep(interval_s)


# -- OData branches on a running node ------------------------------------------------

TIME_ZONE = "Asia/Yekaterinburg"
# A generous deadline for one delivery on a loaded CI machine, not a performance target.
DELIVERY_DEADLINE_S = 20.0
_keys = itertools.count()


async def start_emulator(nursery: trio.Nursery, code: str) -> ODataBranchEmulator:
    emulator = ODataBranchEmulator(branch_code=code, tz=ZoneInfo(TIME_ZONE), products=4, seed=5)
    await nursery.start(emulator.serve)
    return emulator


async def start_node(nursery: trio.Nursery, settings: Settings) -> NodeContext:
    ctx: NodeContext = await nursery.start(
        lambda task_status: run_node(settings, handle_signals=False, task_status=task_status)
    )
    return ctx


@asynccontextmanager
async def open_api(
    ctx: NodeContext, *, timeout_s: float = 30.0
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the API of `ctx` with an admin token."""
    token = new_token()
    await ctx.db.run(tokens_db.insert_token, "test", hash_token(token), ["admin"])
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{ctx.http_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout_s,
    ) as client:
        yield client


async def add_odata_branch(ctx: NodeContext, emulator: ODataBranchEmulator) -> str:
    """Register the emulator as an OData branch and wait until this node runs its actor."""
    code = emulator.branch_code
    branch = new_branch(
        code=code,
        name=f"Филиал {code}",
        kind="odata",
        time_zone=TIME_ZONE,
        odata_url=emulator.base_url,
        odata_username="hub",
        odata_password="secret",
    )
    await ctx.db.transaction(branches_db.insert_branch, branch)
    ctx.registry.tell_nowait("leases", Wake())

    async def actor_running() -> bool:
        return ctx.branches is not None and f"branch:{code}" in ctx.branches.child_names()

    await wait_until(actor_running, timeout_s=10)
    return code


async def first_priced_offer(
    api: httpx.AsyncClient, branch: str, *, timeout_s: float = DELIVERY_DEADLINE_S
) -> str:
    """Wait until the branch's first poll imported its catalog, then return a priced offer id."""
    offers: list[str] = []

    async def catalog_imported() -> bool:
        page = (await api.get("/api/v1/products", params={"branch": branch})).json()
        variants = (v for p in page.get("items", []) for v in p["variants"])
        offers[:] = [v["offer_id"] for v in variants if v["price"] is not None]
        return bool(offers)

    await wait_until(catalog_imported, timeout_s=timeout_s, interval_s=0.2)
    return offers[0]


async def place_order(api: httpx.AsyncClient, branch: str, offer: str) -> str:
    """Place an order of one offer through the API and return its hub number."""
    body = {
        "branch": branch,
        "customer": {"id": "D100200", "name": "Иванова Анна"},
        "lines": [{"offer_id": offer, "quantity": 1}],
    }
    headers = {"Idempotency-Key": f"resilience-{next(_keys)}"}
    response = await api.post("/api/v1/orders", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["number"])


async def order_status(api: httpx.AsyncClient, number: str) -> str:
    return str((await api.get(f"/api/v1/orders/{number}")).json()["status"])


async def wait_settled(api: httpx.AsyncClient, numbers: list[str]) -> dict[str, str]:
    """Wait until no order is still "accepted", then return the status of each order."""
    statuses: dict[str, str] = {}

    async def all_settled() -> bool:
        statuses.update({n: await order_status(api, n) for n in numbers})
        return "accepted" not in statuses.values()

    await wait_until(all_settled, timeout_s=DELIVERY_DEADLINE_S, interval_s=0.2)
    return statuses


async def wait_delivered(api: httpx.AsyncClient, numbers: list[str]) -> None:
    statuses = await wait_settled(api, numbers)
    # A posted document with a 1C number moves the order on to "confirmed" at once.
    assert set(statuses.values()) <= {"delivered", "confirmed"}, statuses


async def outbox_states(ctx: NodeContext, branch: str) -> list[str]:
    rows = await ctx.db.run(
        lambda conn: conn.fetch(
            "SELECT state FROM outbox WHERE branch_code = $1 ORDER BY id", branch
        )
    )
    return [r["state"] for r in rows]


async def branch_view(api: httpx.AsyncClient, branch: str) -> dict[str, Any]:
    items = (await api.get("/api/v1/branches")).json()["items"]
    return next(item for item in items if item["code"] == branch)


def created_numbers(emulator: ODataBranchEmulator) -> list[str]:
    """Hub numbers of the order documents 1C holds, in the order 1C created them."""
    return [document[ORDER_NUMBER_FIELD] for document in emulator.orders.values()]


def restart_count(ctx: NodeContext, branch: str) -> int:
    assert ctx.branches is not None
    return ctx.branches.restart_count(f"branch:{branch}")
