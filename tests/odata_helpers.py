"""Set-up shared by the OData connector tests: emulated branches, client settings, an order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import trio

from connectors.emulator.odata_server import ODataBranchEmulator
from connectors.odata import ODataClient, ODataConfig, OrderIn, OrderLineIn

TIME_ZONE = "Asia/Novosibirsk"  # UTC+7, no daylight saving time
TZ = ZoneInfo(TIME_ZONE)
# The credentials ODataBranchEmulator accepts unless it is given others.
USERNAME = "hub"
PASSWORD = "secret"
SAMPLE_CREATED_AT = datetime(2025, 3, 10, 4, 0, tzinfo=UTC)


def config_for(emulator: ODataBranchEmulator, **overrides: Any) -> ODataConfig:
    """Build client settings for `emulator` with short timeouts and back-off for tests."""
    settings: dict[str, Any] = {
        "base_url": emulator.base_url,
        "username": USERNAME,
        "password": PASSWORD,
        "tz": TZ,
        "timeout_s": 2.0,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
    }
    settings.update(overrides)
    return ODataConfig(**settings)


@asynccontextmanager
async def open_client(
    emulator: ODataBranchEmulator, **overrides: Any
) -> AsyncIterator[ODataClient]:
    """Open a client of `emulator` and close it on exit, also when a check inside fails."""
    client = ODataClient(config_for(emulator, **overrides))
    try:
        yield client
    finally:
        await client.aclose()


async def serve_emulator(nursery: trio.Nursery, code: str, **options: Any) -> ODataBranchEmulator:
    """Start an emulated branch in `TZ` on loopback, passing `options` to ODataBranchEmulator."""
    emulator = ODataBranchEmulator(branch_code=code, tz=TZ, **options)
    await nursery.start(emulator.serve)
    return emulator


def sample_order(
    emulator: ODataBranchEmulator,
    hub_number: str = "WEB-000042",
    created_at: datetime = SAMPLE_CREATED_AT,
) -> OrderIn:
    """Build an order of 3 units of the emulator's first product at 410.30 RUB each."""
    goods = [row for row in emulator.data.catalog if not row["IsFolder"]]
    line = OrderLineIn(goods[0]["Ref_Key"], None, Decimal(3), Decimal("410.30"), Decimal("1230.90"))
    return OrderIn(
        hub_number=hub_number,
        created_at=created_at,
        currency="RUB",
        total=Decimal("1230.90"),
        customer_name="Мария Соколова",
        comment="Позвонить перед доставкой",
        lines=(line,),
    )
