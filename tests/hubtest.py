"""Helpers shared by the integration tests: branches, a raw 1C protocol client, polling."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import trio

from tentorium_hub.branches import new_branch
from tentorium_hub.node import NodeContext
from tentorium_hub.storage import branches as branches_db

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


async def wait_until(predicate: Any, *, timeout_s: float = 30.0, interval_s: float = 0.1) -> None:
    """Poll `predicate` until true; the state lives in PostgreSQL, so there is no event."""
    with trio.fail_after(timeout_s):
        while not await predicate():  # noqa: ASYNC110
            await trio.sleep(interval_s)
