"""SIGKILL the hub mid-run and start it again on the same data folder: no order is lost or
duplicated. The hub runs as a real process on its embedded PostgreSQL, as in the demo."""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import trio

from connectors.emulator.catalog import write_catalog
from connectors.emulator.commerceml_client import CommerceMLEmulator
from connectors.emulator.odata_server import FaultKind, ODataBranchEmulator
from tentorium_hub.storage import stop_embedded

pytestmark = pytest.mark.slow
ORDERS = 30
KILL_AFTER = 12
PASSWORD = "crash-test-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HUB_DATABASE_URL")}
    env.update({
        "HUB_HTTP_PORT": str(port), "HUB_POLL_INTERVAL_S": "1", "HUB_LEASE_TTL_S": "3",
        "HUB_LEASE_RENEW_INTERVAL_S": "0.5", "HUB_RETRY_BASE_S": "0.1", "HUB_RETRY_MAX_S": "1",
        "HUB_ODATA_TIMEOUT_S": "10", "HUB_EXCHANGE_STEP_S": "0.5", "HUB_LOG_FORMAT": "json",
        "HUB_LOG_LEVEL": "warning", "CRASH_TEST_PASSWORD": PASSWORD,
        "ODATA_PASSWORD": "secret",
    })  # fmt: skip
    return env


async def _cli(data_dir: Path, env: dict[str, str], *args: str) -> str:
    command = [sys.executable, "-m", "tentorium_hub", "--data-dir", str(data_dir), *args]
    result = await trio.run_process(command, env=env, capture_stdout=True, capture_stderr=True,
                                    check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


async def _start_hub(data_dir: Path, env: dict[str, str], log: Path) -> trio.Process:
    command = [sys.executable, "-m", "tentorium_hub", "--data-dir", str(data_dir), "run"]
    handle = log.open("ab")
    process = await trio.lowlevel.open_process(command, env=env, stdout=handle, stderr=handle)
    port = env["HUB_HTTP_PORT"]
    async with httpx.AsyncClient() as http:
        with trio.fail_after(60):
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        return process
                except httpx.TransportError:
                    pass
                if process.poll() is not None:
                    tail = await trio.Path(log).read_text()
                    raise AssertionError(f"hub exited during start-up:\n{tail[-3000:]}")
                await trio.sleep(0.2)


def _order(branch: str, offer: str, index: int) -> dict[str, Any]:
    return {
        "branch": branch,
        "customer": {"id": f"D{index:06d}", "name": "Петрова Ольга"},
        "lines": [{"offer_id": offer, "quantity": 1 + index % 3}],
    }


async def _first_offer(api: httpx.AsyncClient, branch: str) -> str:
    with trio.fail_after(60):
        while True:
            page = (await api.get("/api/v1/products", params={"branch": branch})).json()
            offers = [v["offer_id"] for p in page.get("items", []) for v in p["variants"]
                      if v["price"] is not None]  # fmt: skip
            if offers:
                return offers[0]
            await trio.sleep(0.3)


async def test_sigkill_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "hub"
    port = _free_port()
    env = _env(port)
    odata = ODataBranchEmulator(branch_code="OD1", tz=ZoneInfo("Asia/Yekaterinburg"), products=10)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(odata.serve)
            await _run_scenario(data_dir, env, odata, tmp_path)
            nursery.cancel_scope.cancel()
    finally:
        stop_embedded(data_dir)


async def _run_scenario(
    data_dir: Path, env: dict[str, str], odata: ODataBranchEmulator, tmp_path: Path
) -> None:
    await _cli(
        data_dir,
        env,
        "branches",
        "add",
        "--code",
        "CML1",
        "--name",
        "Пермь",
        "--kind",
        "commerceml",
        "--login",
        "cml1",
        "--password-env",
        "CRASH_TEST_PASSWORD",
    )
    await _cli(
        data_dir,
        env,
        "branches",
        "add",
        "--code",
        "OD1",
        "--name",
        "Екатеринбург",
        "--kind",
        "odata",
        "--time-zone",
        "Asia/Yekaterinburg",
        "--odata-url",
        odata.base_url,
        "--odata-user",
        "hub",
        "--odata-password-env",
        "ODATA_PASSWORD",
    )
    token = (await _cli(data_dir, env, "tokens", "create", "--name", "crash-test")).strip()
    catalog = write_catalog(tmp_path / "catalog", products=20, seed=3)
    await _cli(data_dir, env, "import-commerceml", "--branch", "CML1", *map(str, catalog))

    log = tmp_path / "hub.log"
    hub = await _start_hub(data_dir, env, log)
    base = f"http://127.0.0.1:{env['HUB_HTTP_PORT']}"
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as api:
        offers = {b: await _first_offer(api, b) for b in ("CML1", "OD1")}
        bodies = [_order("CML1" if i % 2 else "OD1", offers["CML1" if i % 2 else "OD1"], i)
                  for i in range(ORDERS)]  # fmt: skip
        # Replies to the next order documents are held back while the hub is killed, so
        # 1C has created documents the hub never heard about.
        odata.faults.inject(FaultKind.HANG, method="POST", after_handling=True, times=3,
                            seconds=2.0)  # fmt: skip
        for index, body in enumerate(bodies[:KILL_AFTER]):
            response = await api.post("/api/v1/orders", json=body,
                                      headers={"Idempotency-Key": f"crash-{index}"})  # fmt: skip
            assert response.status_code == 201, response.text
        await trio.sleep(0.5)
        hub.send_signal(signal.SIGKILL)
        await hub.wait()

        hub = await _start_hub(data_dir, env, log)
        numbers = set()
        for index, body in enumerate(bodies):
            response = await api.post("/api/v1/orders", json=body,
                                      headers={"Idempotency-Key": f"crash-{index}"})  # fmt: skip
            assert response.status_code in (200, 201), response.text
            numbers.add(response.json()["number"])
        assert len(numbers) == ORDERS

        one_c = CommerceMLEmulator(base_url=f"{base}/1c/exchange", login="cml1", password=PASSWORD,
                                   http=httpx.AsyncClient(timeout=30))  # fmt: skip
        await _wait_all_confirmed(api, one_c, numbers)
        hub.send_signal(signal.SIGTERM)
        with trio.fail_after(60):
            await hub.wait()

    cml_numbers = {n for n in numbers if n.lower() in {k.lower() for k in one_c.received}}
    od_numbers = {n for n in numbers if odata.creations.get(n)}
    assert one_c.duplicates == 0
    assert all(count == 1 for count in odata.creations.values()), odata.creations
    assert cml_numbers | od_numbers == numbers
    assert not cml_numbers & od_numbers


async def _wait_all_confirmed(
    api: httpx.AsyncClient, one_c: CommerceMLEmulator, numbers: set[str]
) -> None:
    pending = set(numbers)
    with trio.fail_after(120):
        while pending:
            await one_c.exchange_sale()
            for number in sorted(pending):
                status = (await api.get(f"/api/v1/orders/{number}")).json()["status"]
                if status == "confirmed":
                    pending.discard(number)
            await trio.sleep(0.3)
