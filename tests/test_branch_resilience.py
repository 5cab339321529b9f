"""OData branch actors against an unreliable 1C: back-off, retries, permanent errors, crashes.

A real node on PostgreSQL delivers orders over loopback HTTP to the OData emulator, which
injects the failures a branch base really shows.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.branch import ODataBranchActor
from connectors.emulator.odata_server import FaultKind, ODataBranchEmulator
from tentorium_hub.node import NodeContext

from conftest import node_settings
from hubtest import (
    DELIVERY_DEADLINE_S,
    add_odata_branch,
    branch_view,
    created_numbers,
    first_priced_offer,
    open_api,
    order_status,
    outbox_states,
    place_order,
    restart_count,
    start_emulator,
    start_node,
    wait_delivered,
    wait_until,
)

# Circuit breaker settings small enough that an outage opens the circuit within seconds
# and its open period ends within a second.
SHORT_CIRCUIT = {
    "circuit_failure_threshold": 2,
    "circuit_open_base_s": 0.5,
    "circuit_open_max_s": 1.0,
}


# -- set-up helpers ---------------------------------------------------------------------


@pytest.fixture
async def emulator(nursery: trio.Nursery) -> ODataBranchEmulator:
    return await start_emulator(nursery, "OD1")


# -- a 1C that is down ------------------------------------------------------------------


async def test_down_branch_keeps_orders_pending(
    node: NodeContext, api: httpx.AsyncClient, emulator: ODataBranchEmulator
) -> None:
    branch = await add_odata_branch(node, emulator)
    offer = await first_priced_offer(api, branch)
    emulator.faults.down = True

    placed = [await place_order(api, branch, offer) for _ in range(3)]

    async def failed_repeatedly() -> bool:
        return (await branch_view(api, branch))["consecutive_failures"] >= 3

    await wait_until(failed_repeatedly, timeout_s=DELIVERY_DEADLINE_S, interval_s=0.2)
    view = await branch_view(api, branch)
    assert await outbox_states(node, branch) == ["pending"] * len(placed)
    assert view["pending_outbox"] == len(placed)
    assert "HTTP 503" in view["last_error"]
    assert restart_count(node, branch) == 0
    assert created_numbers(emulator) == []


async def test_down_branch_delivers_once_in_order(
    node: NodeContext, api: httpx.AsyncClient, emulator: ODataBranchEmulator
) -> None:
    branch = await add_odata_branch(node, emulator)
    offer = await first_priced_offer(api, branch)
    emulator.faults.down = True
    placed = [await place_order(api, branch, offer) for _ in range(4)]

    async def failed_repeatedly() -> bool:
        return (await branch_view(api, branch))["consecutive_failures"] >= 3

    await wait_until(failed_repeatedly, timeout_s=DELIVERY_DEADLINE_S, interval_s=0.2)
    emulator.faults.down = False
    await wait_delivered(api, placed)

    view = await branch_view(api, branch)
    assert created_numbers(emulator) == placed
    assert all(emulator.creations[number] == 1 for number in placed), emulator.creations
    assert await outbox_states(node, branch) == ["delivered"] * len(placed)
    assert view["consecutive_failures"] == 0
    assert view["last_error"] is None
    assert restart_count(node, branch) == 0


async def test_long_outage_delivers_once_in_order(
    database_url: str, tmp_path: Path, nursery: trio.Nursery, emulator: ODataBranchEmulator
) -> None:
    ctx = await start_node(nursery, node_settings(database_url, tmp_path / "data", **SHORT_CIRCUIT))
    # Settings ignore unknown names, so a renamed field would silently leave a 30 s circuit.
    assert {name: getattr(ctx.settings, name, None) for name in SHORT_CIRCUIT} == SHORT_CIRCUIT
    async with open_api(ctx) as api:
        branch = await add_odata_branch(ctx, emulator)
        offer = await first_priced_offer(api, branch)
        emulator.faults.down = True
        placed = [await place_order(api, branch, offer) for _ in range(4)]

        async def circuit_reopened() -> bool:
            # Two failures open the circuit, and each failed trial call adds one more.
            return (await branch_view(api, branch))["consecutive_failures"] >= 4

        await wait_until(circuit_reopened, timeout_s=DELIVERY_DEADLINE_S, interval_s=0.2)
        emulator.faults.down = False
        await wait_delivered(api, placed)
        view = await branch_view(api, branch)

    assert created_numbers(emulator) == placed
    assert all(emulator.creations[number] == 1 for number in placed), emulator.creations
    assert await outbox_states(ctx, branch) == ["delivered"] * len(placed)
    assert view["consecutive_failures"] == 0
    assert restart_count(ctx, branch) == 0


async def test_retried_order_keeps_branch_order(
    node: NodeContext, api: httpx.AsyncClient, emulator: ODataBranchEmulator
) -> None:
    branch = await add_odata_branch(node, emulator)
    offer = await first_priced_offer(api, branch)
    # Exactly the connector's own attempts (3), so only the first order's delivery fails.
    emulator.faults.inject(FaultKind.SERVER_ERROR, method="POST", times=3)

    placed = [await place_order(api, branch, offer) for _ in range(3)]
    await wait_delivered(api, placed)

    assert created_numbers(emulator) == placed


# -- transient and permanent errors on POST ---------------------------------------------


@pytest.mark.parametrize(
    ("kind", "after_handling"),
    [
        pytest.param(FaultKind.HTML_200, False, id="html-200"),
        pytest.param(FaultKind.SERVER_ERROR, False, id="500"),
        pytest.param(FaultKind.HTML_200, True, id="html-200-after-create"),
        pytest.param(FaultKind.SERVER_ERROR, True, id="500-after-create"),
    ],
)
async def test_transient_post_error_delivers_once(
    node: NodeContext,
    api: httpx.AsyncClient,
    emulator: ODataBranchEmulator,
    kind: FaultKind,
    after_handling: bool,
) -> None:
    branch = await add_odata_branch(node, emulator)
    offer = await first_priced_offer(api, branch)
    # More failures than the connector's own attempts, so the actor's retry runs too.
    emulator.faults.inject(kind, method="POST", after_handling=after_handling, times=4)

    number = await place_order(api, branch, offer)
    await wait_delivered(api, [number])

    assert emulator.creations[number] == 1
    assert created_numbers(emulator) == [number]
    assert await outbox_states(node, branch) == ["delivered"]


async def notification_events(ctx: NodeContext) -> list[tuple[str, dict[str, Any]]]:
    rows = await ctx.db.run(
        lambda conn: conn.fetch("SELECT event, payload::text AS payload FROM notifications")
    )
    return [(r["event"], json.loads(r["payload"])) for r in rows]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        pytest.param(500, "20", id="odata-access-rights-code"),
        pytest.param(401, "0", id="http-401"),
    ],
)
async def test_permanent_error_needs_attention(
    node: NodeContext,
    api: httpx.AsyncClient,
    emulator: ODataBranchEmulator,
    status: int,
    code: str,
) -> None:
    branch = await add_odata_branch(node, emulator)
    offer = await first_priced_offer(api, branch)
    emulator.faults.inject(FaultKind.ODATA_ERROR, method="POST", status=status, code=code)

    rejected = await place_order(api, branch, offer)

    async def rejected_settled() -> bool:
        return await order_status(api, rejected) == "needs_attention"

    await wait_until(rejected_settled, timeout_s=DELIVERY_DEADLINE_S, interval_s=0.2)
    events = await notification_events(node)
    assert await outbox_states(node, branch) == ["failed"]
    assert ("order.needs_attention", rejected) in [(e, p["order"]) for e, p in events]
    assert emulator.creations[rejected] == 0


async def test_permanent_error_spares_next_order(
    node: NodeContext, api: httpx.AsyncClient, emulator: ODataBranchEmulator
) -> None:
    branch = await add_odata_branch(node, emulator)
    offer = await first_priced_offer(api, branch)
    emulator.faults.inject(FaultKind.ODATA_ERROR, method="POST", status=403, code="20")

    rejected = await place_order(api, branch, offer)
    following = await place_order(api, branch, offer)
    await wait_delivered(api, [following])

    assert await order_status(api, rejected) == "needs_attention"
    assert await outbox_states(node, branch) == ["failed", "delivered"]
    assert created_numbers(emulator) == [following]


# -- isolation between branches ---------------------------------------------------------


@pytest.mark.parametrize("failure", ["down", "hang"])
async def test_broken_branch_spares_healthy_one(
    node: NodeContext, api: httpx.AsyncClient, nursery: trio.Nursery, failure: str
) -> None:
    broken_1c = await start_emulator(nursery, "ODA")
    healthy_1c = await start_emulator(nursery, "ODB")
    broken = await add_odata_branch(node, broken_1c)
    healthy = await add_odata_branch(node, healthy_1c)
    broken_offer = await first_priced_offer(api, broken)
    healthy_offer = await first_priced_offer(api, healthy)
    if failure == "down":
        broken_1c.faults.down = True
    else:
        broken_1c.faults.inject(FaultKind.HANG, times=1000, seconds=60)

    stuck = await place_order(api, broken, broken_offer)
    number = await place_order(api, healthy, healthy_offer)
    await wait_delivered(api, [number])

    assert healthy_1c.creations[number] == 1
    assert await order_status(api, stuck) == "accepted"
    assert broken_1c.creations[stuck] == 0


# -- a crashing actor -------------------------------------------------------------------


async def test_crashed_actor_restarts_and_delivers(
    node: NodeContext,
    api: httpx.AsyncClient,
    emulator: ODataBranchEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original_poll = ODataBranchActor._poll
    polls = itertools.count()

    async def crash_first_poll(self: ODataBranchActor, client: Any) -> None:
        if next(polls) == 0:
            raise RuntimeError("injected crash of the first poll")
        await original_poll(self, client)

    monkeypatch.setattr(ODataBranchActor, "_poll", crash_first_poll)
    branch = await add_odata_branch(node, emulator)
    offer = await first_priced_offer(api, branch)
    number = await place_order(api, branch, offer)
    await wait_delivered(api, [number])

    assert restart_count(node, branch) == 1
    assert emulator.creations[number] == 1
