"""Pause, resume and resync from the API and from the CLI's database path."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import trio

from connectors.emulator.odata_server import ODataBranchEmulator
from tentorium_hub.branches import new_branch
from tentorium_hub.cli import main as cli_main
from tentorium_hub.node import NodeContext
from tentorium_hub.storage import branches as branches_db

from hubtest import RawExchange, add_commerceml_branch, wait_until


async def test_paused_commerceml_branch_rejects_checkauth(
    node: NodeContext, api: httpx.AsyncClient
) -> None:
    login = await add_commerceml_branch(node)
    paused = await api.post("/api/v1/branches/MSK01/pause")
    client = RawExchange(node, login)
    reply = (await client.call("checkauth")).text.splitlines()
    await api.post("/api/v1/branches/MSK01/resume")
    again = (await client.call("checkauth")).text.splitlines()
    await client.aclose()
    assert paused.status_code == 202
    assert reply[0] == "failure"
    assert "приостановлен" in reply[1]
    assert again[0] == "success"


async def test_pause_in_database_holds_odata_orders(
    node: NodeContext, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    emulator = ODataBranchEmulator(branch_code="OD1", tz=ZoneInfo("Europe/Samara"), products=5)
    await nursery.start(emulator.serve)
    branch = new_branch(
        code="OD1",
        name="Самара",
        kind="odata",
        time_zone="Europe/Samara",
        odata_url=emulator.base_url,
        odata_username="hub",
        odata_password="secret",
    )
    await node.db.transaction(branches_db.insert_branch, branch)
    assert node.leases is not None
    await node.leases.sync()

    async def priced_offer() -> str | None:
        page = (await api.get("/api/v1/products", params={"branch": "OD1"})).json()
        offers = [v["offer_id"] for p in page["items"] for v in p["variants"] if v["price"]]
        return offers[0] if offers else None

    await wait_until(priced_offer)
    offer = await priced_offer()
    await node.db.run(branches_db.set_paused, "OD1", True)  # what `branches pause` does
    await node.leases.sync()
    body = {
        "branch": "OD1",
        "customer": {"name": "Соколов Дмитрий"},
        "lines": [{"offer_id": offer, "quantity": 1}],
    }
    placed = (
        await api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "pause-1"})
    ).json()
    await trio.sleep(1.5)
    held = sum(emulator.creations.values())
    await node.db.run(branches_db.set_paused, "OD1", False)  # what `branches resume` does
    await node.leases.sync()

    async def delivered() -> bool:
        return emulator.creations.get(placed["number"], 0) == 1

    await wait_until(delivered, timeout_s=20)
    assert held == 0


async def test_cli_resync_unknown_branch_fails(
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    argv = ["--data-dir", str(tmp_path), "branches", "resync", "--code", "NOPE"]
    code = await trio.to_thread.run_sync(cli_main, argv)
    assert code == 1
    assert "NOPE" in capsys.readouterr().err
