"""Two hub nodes on one database share the branches through leases and take over each other's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from actors.messages import Wake
from tentorium_hub import node as node_module
from tentorium_hub.branches import new_branch
from tentorium_hub.node import NodeContext, run_node, shutdown
from tentorium_hub.storage import Database
from tentorium_hub.storage import branches as branches_db

from conftest import node_settings

BRANCHES = ("BR1", "BR2", "BR3", "BR4")
# Settings accept a lease TTL above 1 s, and 2 s keeps the takeover tests short.
LEASE_TTL_S = 2.0
# A generous bound for a handful of lease intervals (0.5 s each) on a loaded machine.
SETTLE_S = 15.0


@dataclass
class RunningNode:
    """A node started in the test's nursery with its own cancel scope."""

    ctx: NodeContext
    scope: trio.CancelScope
    finished: trio.Event

    @property
    def node_id(self) -> str:
        return self.ctx.node_id

    def actor_branches(self) -> set[str]:
        return actor_branches(self.ctx)


def actor_branches(ctx: NodeContext) -> set[str]:
    """Codes of the branches whose actors run on this node."""
    assert ctx.branches is not None
    return {name.removeprefix("branch:") for name in ctx.branches.child_names()}


async def start_node(
    nursery: trio.Nursery, database_url: str, data_dir: Path, node_id: str
) -> RunningNode:
    settings = node_settings(database_url, data_dir, node_id=node_id, lease_ttl_s=LEASE_TTL_S)
    scope = trio.CancelScope()
    finished = trio.Event()

    async def run(task_status: trio.TaskStatus[NodeContext]) -> None:
        try:
            with scope:
                await run_node(settings, handle_signals=False, task_status=task_status)
        finally:
            finished.set()

    ctx: NodeContext = await nursery.start(run)
    return RunningNode(ctx, scope, finished)


async def add_branches(db: Database) -> None:
    for code in BRANCHES:
        branch = new_branch(
            code=code,
            name=f"Филиал {code}",
            kind="commerceml",
            exchange_login=code.lower(),
            exchange_password="lease-test-secret",
        )
        await db.transaction(branches_db.insert_branch, branch)


async def live_leases(db: Database) -> dict[str, str]:
    """Branch code -> node id of every unexpired lease."""
    rows = await db.run(
        lambda conn: conn.fetch(
            "SELECT branch_code, node_id FROM branch_leases WHERE expires_at > now()"
        )
    )
    return {r["branch_code"]: r["node_id"] for r in rows}


async def held_by(db: Database, node_id: str) -> set[str]:
    return {code for code, owner in (await live_leases(db)).items() if owner == node_id}


async def eventually(predicate: Callable[[], Awaitable[bool]], timeout_s: float = SETTLE_S) -> None:
    """Wait until `predicate` is true or the deadline passes, so the asserts after it show why."""
    with trio.move_on_after(timeout_s):
        while not await predicate():  # noqa: ASYNC110
            await trio.sleep(0.1)


@pytest.fixture
async def pair(
    db: Database, database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> tuple[RunningNode, RunningNode]:
    """Two nodes that have split the four branches between them."""
    await add_branches(db)
    first = await start_node(nursery, database_url, tmp_path / "first", "node-first")
    second = await start_node(nursery, database_url, tmp_path / "second", "node-second")

    async def balanced() -> bool:
        owners = Counter((await live_leases(db)).values())
        return owners == Counter({first.node_id: 2, second.node_id: 2})

    await eventually(balanced)
    return first, second


async def test_leases_split_two_nodes_evenly(
    db: Database, pair: tuple[RunningNode, RunningNode]
) -> None:
    first, second = pair

    leases = await live_leases(db)
    owners = Counter(leases.values())
    assert sorted(leases) == list(BRANCHES)
    assert owners[first.node_id] == 2, leases
    assert owners[second.node_id] == 2, leases


async def test_leases_match_running_actors(
    db: Database, pair: tuple[RunningNode, RunningNode]
) -> None:
    first, second = pair

    async def actors_follow_leases() -> bool:
        for node in (first, second):
            if node.actor_branches() != await held_by(db, node.node_id):
                return False
        return True

    await eventually(actors_follow_leases)
    assert first.actor_branches() == await held_by(db, first.node_id)
    assert second.actor_branches() == await held_by(db, second.node_id)
    assert first.actor_branches().isdisjoint(second.actor_branches())


async def test_graceful_stop_releases_leases(
    db: Database, pair: tuple[RunningNode, RunningNode]
) -> None:
    _, second = pair

    await shutdown(second.ctx, second.scope)
    await second.finished.wait()

    nodes = await db.run(lambda conn: conn.fetch("SELECT node_id FROM hub_nodes"))
    assert await held_by(db, second.node_id) == set()
    assert second.node_id not in {r["node_id"] for r in nodes}


async def test_graceful_stop_hands_over_branches(
    db: Database, pair: tuple[RunningNode, RunningNode]
) -> None:
    first, second = pair

    await shutdown(second.ctx, second.scope)
    await second.finished.wait()

    async def first_runs_all() -> bool:
        held = await held_by(db, first.node_id)
        return held == set(BRANCHES) and first.actor_branches() == held

    await eventually(first_runs_all)
    assert await held_by(db, first.node_id) == set(BRANCHES)
    assert first.actor_branches() == set(BRANCHES)


async def test_expired_leases_are_taken_over(
    db: Database, pair: tuple[RunningNode, RunningNode], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = pair
    release = node_module._release

    async def release_unless_killed(ctx: NodeContext) -> None:
        # A killed process never reaches its clean-up, so its leases stay until they expire.
        if ctx.node_id != second.node_id:
            await release(ctx)

    monkeypatch.setattr(node_module, "_release", release_unless_killed)
    orphaned = await held_by(db, second.node_id)
    second.scope.cancel()
    await second.finished.wait()
    assert await held_by(db, second.node_id) == orphaned

    async def first_runs_all() -> bool:
        held = await held_by(db, first.node_id)
        return held == set(BRANCHES) and first.actor_branches() == held

    await eventually(first_runs_all)
    assert await held_by(db, first.node_id) == set(BRANCHES)
    assert first.actor_branches() == set(BRANCHES)


async def test_unstartable_branch_spares_others(node: NodeContext) -> None:
    # A time zone missing from this host's tzdata makes the OData actor fail in __init__.
    # The branch sorts before the others, so the lease keeper meets it first.
    broken = new_branch(
        code="BR0",
        name="Филиал BR0",
        kind="odata",
        odata_url="http://127.0.0.1:9/BR0/odata/standard.odata/",
    )
    await node.db.transaction(branches_db.insert_branch, broken)
    await node.db.run(
        lambda conn: conn.execute(
            "UPDATE branches SET time_zone = 'Etc/No-Such-Zone' WHERE code = 'BR0'"
        )
    )
    await add_branches(node.db)
    node.registry.tell_nowait("leases", Wake())

    async def others_running() -> bool:
        return actor_branches(node) >= set(BRANCHES)

    await eventually(others_running)
    assert actor_branches(node) >= set(BRANCHES)
    assert node.root is not None
    assert node.root.restart_count("leases") == 0
