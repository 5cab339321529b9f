"""An hour of faulty branches on virtual time, with healthy branches beside them.

The node, its PostgreSQL pool, its HTTP front and the 1C emulators all run in one trio
run whose clock goes `RATE` times faster than the wall clock, so the hour takes a minute.
Every timeout, back-off, circuit period, poll interval and emulated hang is measured on
that clock. PostgreSQL keeps its own wall-clock `now()`, which only times leases and
claims; they last longer in virtual terms and so hold safely.

Every `ROUND_S` each branch gets one order, and each faulty branch gets its fault for
that order first. Afterwards every order must be in its branch's 1C exactly once and in
the order it was placed, and no order of a healthy branch may have waited longer than
`HEALTHY_BOUND_S`. The bound is a third of the per-call timeout: a healthy branch that
waited behind a hung one, or behind a shared lock or queue, would break it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from connectors.emulator.odata_server import FaultKind, ODataBranchEmulator
from connectors.odata.errors import classify_status

from conftest import node_settings
from hubtest import (
    add_odata_branch,
    created_numbers,
    first_priced_offer,
    open_api,
    outbox_states,
    place_order,
    start_emulator,
    start_node,
    wait_until,
)

RATE = 60.0  # virtual seconds per wall-clock second
HOUR_S = 3600.0
ROUND_S = 300.0  # an order on every branch every five virtual minutes
TIMEOUT_S = 60.0  # the hub's per-call timeout to 1C
HEALTHY_BOUND_S = TIMEOUT_S / 3
FAULT_LEAD_S = 5.0  # how long after the faulty orders the healthy ones are placed
# Production-like settings in virtual seconds. A circuit stays open for at most 5 minutes.
SETTINGS = {
    "poll_interval_s": 300.0,
    "odata_timeout_s": TIMEOUT_S,
    "retry_base_s": 1.0,
    "retry_max_s": 60.0,
    "circuit_failure_threshold": 5,
    "circuit_open_base_s": 30.0,
    "circuit_open_max_s": 300.0,
    "lease_ttl_s": 15.0,
    "lease_renew_interval_s": 5.0,
    "max_delivery_attempts": 1000,
}
HEALTHY = ("OKA", "OKB", "OKC")
DOWN = ("DNA", "DNB")


def hang(emulator: ODataBranchEmulator, round_no: int) -> None:
    # Every other hang comes after 1C made the document, as when the reply is lost.
    emulator.faults.inject(
        FaultKind.HANG, method="POST", seconds=TIMEOUT_S * 3, after_handling=round_no % 2 == 1
    )


def html_page(emulator: ODataBranchEmulator, round_no: int) -> None:
    # More pages than the connector's own attempts, on reads and writes alike.
    emulator.faults.inject(FaultKind.HTML_200, times=4)


def odata_error(emulator: ODataBranchEmulator, round_no: int) -> None:
    emulator.faults.inject(FaultKind.ODATA_ERROR, method="POST", status=500, code="0", times=4)


def drop(emulator: ODataBranchEmulator, round_no: int) -> None:
    emulator.faults.inject(FaultKind.DROP, method="POST", times=2, after_handling=round_no % 2 == 0)


FAULTS: dict[str, Callable[[ODataBranchEmulator, int], None]] = {
    "HNG": hang,
    "HTM": html_page,
    "ERR": odata_error,
    "DRP": drop,
}


@pytest.fixture
def clock() -> MockClock:
    # pytest-trio runs the test on the clock a fixture returns.
    return MockClock(rate=RATE)


async def test_hour_of_faults(
    clock: MockClock, database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    # The odata.error injected above must be one the hub retries, or the test proves less.
    assert classify_status(500, "0")[1] is True

    settings = node_settings(database_url, tmp_path / "data", **SETTINGS)
    assert {name: getattr(settings, name) for name in SETTINGS} == SETTINGS
    ctx = await start_node(nursery, settings)
    emulators = {code: await start_emulator(nursery, code) for code in (*HEALTHY, *DOWN, *FAULTS)}
    placed: dict[str, list[str]] = {code: [] for code in emulators}
    placed_at: dict[str, float] = {}

    async with open_api(ctx, timeout_s=TIMEOUT_S * 10) as api:
        offers = {}
        for emulator in emulators.values():
            await add_odata_branch(ctx, emulator)
        for code in emulators:
            # The first poll comes within one poll interval, spread by branch code.
            offers[code] = await first_priced_offer(
                api, code, timeout_s=SETTINGS["poll_interval_s"] * 2
            )

        async def place(code: str) -> None:
            placed_at_now = trio.current_time()
            number = await place_order(api, code, offers[code])
            placed[code].append(number)
            placed_at[number] = placed_at_now

        start = trio.current_time()
        for code in DOWN:
            emulators[code].faults.down = True
        for round_no in range(int(HOUR_S // ROUND_S)):
            round_start = start + round_no * ROUND_S
            for code, inject in FAULTS.items():
                inject(emulators[code], round_no)
            # The faulty orders go first, so the healthy ones meet their hangs and retries.
            for code in (*FAULTS, *DOWN, *HEALTHY):
                if code in HEALTHY:
                    await trio.sleep_until(round_start + FAULT_LEAD_S)
                await place(code)
            await trio.sleep_until(round_start + ROUND_S / 2)
            for code in HEALTHY:
                await place(code)
            await trio.sleep_until(round_start + ROUND_S)

        assert trio.current_time() - start >= HOUR_S
        for code in DOWN:
            emulators[code].faults.down = False

        async def delivered() -> bool:
            pending = await ctx.db.run(
                lambda conn: conn.fetchval("SELECT count(*) FROM outbox WHERE state <> 'delivered'")
            )
            return bool(pending == 0)

        # The down branches wait out their last open circuit period at most.
        await wait_until(delivered, timeout_s=SETTINGS["circuit_open_max_s"] * 2, interval_s=1.0)

    for code in FAULTS:
        # Every injected fault was consumed by a request, so each faulty branch failed 12 times.
        assert emulators[code].faults.faults == [], code
    for code, emulator in emulators.items():
        assert created_numbers(emulator) == placed[code], code
        duplicates = {n: c for n, c in emulator.creations.items() if c != 1}
        assert not duplicates, (code, duplicates)
        assert await outbox_states(ctx, code) == ["delivered"] * len(placed[code]), code

    waits = [
        emulators[code].created_at[number] - placed_at[number]
        for code in HEALTHY
        for number in placed[code]
    ]
    print(
        f"healthy waits over {len(waits)} orders: median {statistics.median(waits):.2f} s, "
        f"max {max(waits):.2f} s (virtual; real = virtual / {RATE:g})"
    )
    assert max(waits) <= HEALTHY_BOUND_S, sorted(waits)
    for code in DOWN:
        # Nothing reached a down branch while it was down.
        first = min(emulators[code].created_at.values())
        assert first >= start + HOUR_S, (code, first - start)
