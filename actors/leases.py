"""The lease keeper: decides which branches this node runs, so several nodes share them."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

import trio

from actors.branch import CommerceMLBranchActor, ODataBranchActor
from actors.messages import BranchControl
from tentorium_hub.domain.backoff import backoff_s
from tentorium_hub.runtime import (
    Actor,
    ChildSpec,
    MailboxSpec,
    Overflow,
    Registry,
    Restart,
    Supervisor,
)
from tentorium_hub.settings import Settings
from tentorium_hub.storage import Database
from tentorium_hub.storage import branches as branches_db
from tentorium_hub.storage.branches import Branch

LEASE_MAILBOX = MailboxSpec(capacity=4, overflow=Overflow.COALESCE)


class LeaseKeeper(Actor):
    """Renews leases every `lease_renew_interval_s` and starts or stops branch actors.

    Each node takes at most its fair share (branches / live nodes, rounded up), and gives
    back the excess when another node joins, so load spreads without a coordinator.
    """

    mailbox_spec = LEASE_MAILBOX

    def __init__(
        self,
        db: Database,
        settings: Settings,
        registry: Registry,
        node_id: str,
        branches: Callable[[], Supervisor],
    ) -> None:
        super().__init__("leases")
        self._db = db
        self._settings = settings
        self._registry = registry
        self._node_id = node_id
        self._branches = branches
        self._paused: dict[str, bool] = {}
        self._versions: dict[str, datetime] = {}  # code -> updated_at the actor started with
        self._start_failures: dict[str, tuple[int, float]] = {}  # code -> (count, retry at)
        self._lock = trio.Lock()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.sync()
        task_status.started()
        while True:
            try:
                envelope = await self.receive_envelope(
                    timeout_s=self._settings.lease_renew_interval_s
                )
            except trio.EndOfChannel:
                return  # mailbox closed: graceful stop
            if envelope is not None:
                await self.dispatch(envelope)
            await self.sync()

    async def handle(self, message: object) -> None:
        # A wake-up (branch added or removed): the loop syncs leases right after.
        return None

    async def sync(self) -> None:
        """Renew and balance leases, then make the running branch actors match them.

        Safe to call from outside the keeper's loop (the demo and tests do): a lock keeps
        two syncs from starting the same branch twice.
        """
        async with self._lock:
            await self._sync()

    async def _sync(self) -> None:
        ttl = self._settings.lease_ttl_s
        nodes = await self._db.run(branches_db.heartbeat, self._node_id, ttl)
        total = await self._db.run(branches_db.count_active_branches)
        share = math.ceil(total / nodes) if total else 0
        held = await self._db.run(branches_db.acquire_leases, self._node_id, ttl, share)
        supervisor = self._branches()
        for code in held[share:]:
            if f"branch:{code}" in supervisor.child_names():
                await supervisor.stop_child(f"branch:{code}")
            await self._db.run(branches_db.release_lease, self._node_id, code)
            self.log.info("lease.released", branch=code, share=share, nodes=nodes)
        wanted = {f"branch:{code}" for code in held[:share]}
        running = set(supervisor.child_names())
        for name in sorted(running - wanted):
            await supervisor.stop_child(name)
            self.log.info("lease.lost", branch=name.removeprefix("branch:"))
        for name in sorted(wanted - running):
            await self._start_branch(supervisor, name.removeprefix("branch:"))
        await self._forward_controls(held[:share])

    async def _start_branch(self, supervisor: Supervisor, code: str) -> None:
        """Start one branch's actor; a branch that fails to start is retried with back-off.

        One misconfigured branch (say, a time zone the host's tzdata lacks) must not stop
        the keeper from starting the others, nor crash-loop the node.
        """
        failures, retry_at = self._start_failures.get(code, (0, 0.0))
        if trio.current_time() < retry_at:
            return
        try:
            branch = await self._db.run(branches_db.get_branch, code)
            await supervisor.start_child(self.branch_spec(branch))
        except Exception as exc:  # any start error of one branch is that branch's problem
            failures += 1
            delay = backoff_s(
                failures, base_s=self._settings.retry_base_s, max_s=self._settings.retry_max_s
            )
            self._start_failures[code] = (failures, trio.current_time() + delay)
            self.log.error(
                "lease.start_failed",
                branch=code,
                error=repr(exc),
                failures=failures,
                retry_in_s=round(delay, 2),
            )
            return
        self._start_failures.pop(code, None)
        self._paused[branch.code] = branch.paused
        self.log.info("lease.acquired", branch=branch.code, kind=branch.kind)

    async def _forward_controls(self, codes: list[str]) -> None:
        """Pass pause, resume and resync set from the CLI (in the database) to the actors,
        and restart an actor whose branch settings changed (a new OData URL, say)."""
        controls = await self._db.run(branches_db.take_branch_controls, codes)
        supervisor = self._branches()
        for code, paused, resync, updated_at in controls:
            known = self._versions.setdefault(code, updated_at)
            if known != updated_at and f"branch:{code}" in supervisor.child_names():
                self._versions[code] = updated_at
                await supervisor.stop_child(f"branch:{code}")
                await self._start_branch(supervisor, code)
                self.log.info("branch.reconfigured", branch=code)
                continue
            if self._paused.get(code, paused) != paused:
                self._registry.tell_nowait(
                    f"branch:{code}", BranchControl("pause" if paused else "resume")
                )
            self._paused[code] = paused
            if resync:
                self._registry.tell_nowait(f"branch:{code}", BranchControl("resync"))

    def branch_spec(self, branch: Branch) -> ChildSpec:
        def factory() -> Actor:
            if branch.kind == "odata":
                return ODataBranchActor(
                    branch, self._db, self._settings, self._registry, self._node_id
                )
            return CommerceMLBranchActor(branch)

        return ChildSpec(name=f"branch:{branch.code}", factory=factory, restart=Restart.PERMANENT)
