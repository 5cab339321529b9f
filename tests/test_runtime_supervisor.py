"""Tests of one-for-one supervision: restarts, back-off, intensity, escalation and shutdown."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import trio
import trio.lowlevel
from prometheus_client import REGISTRY

from tentorium_hub.runtime import (
    Actor,
    ChildSpec,
    Registry,
    Restart,
    Supervisor,
    SupervisorGaveUp,
)

_name_numbers = itertools.count()


def new_name(prefix: str = "worker") -> str:
    """Return a fresh child name so that metric labels do not leak between tests."""
    return f"test-{prefix}-{next(_name_numbers)}"


def sample(metric: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(metric, labels or {}) or 0.0


@dataclass(frozen=True)
class Crash:
    pass


@dataclass
class Journal:
    """What the workers of one test did, shared by every incarnation."""

    starts: list[tuple[str, float]] = field(default_factory=list)
    crashes: list[tuple[str, float]] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)


class Worker(Actor):
    """Journals its start and stop, crashes on Crash, and notes every exit of run()."""

    def __init__(self, name: str, journal: Journal) -> None:
        super().__init__(name)
        self.journal = journal

    async def on_start(self) -> None:
        self.journal.starts.append((self.name, trio.current_time()))

    async def on_stop(self) -> None:
        self.journal.stops.append(self.name)

    async def handle(self, message: object) -> object | None:
        if isinstance(message, Crash):
            self.journal.crashes.append((self.name, trio.current_time()))
            raise RuntimeError(f"{self.name} crashed on purpose")
        return message

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await super().run(task_status=task_status)
        finally:
            self.journal.exits.append(self.name)


class CrashAfterStart(Worker):
    """Crashes as soon as it has started, to make a crash loop."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.on_start()
        task_status.started()
        await trio.lowlevel.checkpoint()
        raise RuntimeError(f"{self.name} crashed on purpose")


class ReturnAfterStart(Worker):
    """Returns normally right after it has started."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.on_start()
        task_status.started()
        await trio.lowlevel.checkpoint()


class IgnoresStop(Worker):
    """Keeps running after its mailbox is closed, until it is cancelled."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            self.journal.exits.append(self.name)


class FailsToStart(Worker):
    async def on_start(self) -> None:
        raise ConnectionError(f"{self.name} cannot reach its database")


def spec(
    name: str,
    journal: Journal,
    worker: Callable[[str, Journal], Actor] = Worker,
    **options: object,
) -> ChildSpec:
    return ChildSpec(name, lambda: worker(name, journal), **options)  # type: ignore[arg-type]


def supervisor(
    name: str, registry: Registry, children: list[ChildSpec], **options: object
) -> Supervisor:
    options.setdefault("rng", random.Random(7))
    return Supervisor(name, registry, children, **options)  # type: ignore[arg-type]


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll `predicate` in virtual time; fail after a virtual minute.

    Polling because the supervisor has no event for restarts or removed children; under
    autojump_clock each poll costs no real time.
    """
    with trio.fail_after(60):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.001)


def started_names(journal: Journal) -> list[str]:
    return [name for name, _ in journal.starts]


async def test_supervisor_restarts_after_backoff(autojump_clock: trio.abc.Clock) -> None:
    registry, journal, name = Registry(), Journal(), new_name()
    sup = supervisor("sup", registry, [spec(name, journal)], backoff_base_s=0.4)

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await registry.tell(name, Crash())
        await wait_until(lambda: len(journal.starts) == 2)
        await sup.stop()

    elapsed = journal.starts[1][1] - journal.crashes[0][1]
    assert 0.2 <= elapsed <= 0.4
    assert sup.restart_count(name) == 1


async def test_supervisor_backoff_doubles(autojump_clock: trio.abc.Clock) -> None:
    registry, journal, name = Registry(), Journal(), new_name()
    sup = supervisor("sup", registry, [spec(name, journal)], backoff_base_s=0.4)

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await registry.tell(name, Crash())
        await wait_until(lambda: len(journal.starts) == 2)
        await registry.tell(name, Crash())
        await wait_until(lambda: len(journal.starts) == 3)
        await sup.stop()

    elapsed = journal.starts[2][1] - journal.crashes[1][1]
    assert 0.4 <= elapsed <= 0.8


async def test_supervisor_counts_crash_and_restart(autojump_clock: trio.abc.Clock) -> None:
    registry, journal, name = Registry(), Journal(), new_name()
    sup = supervisor("sup", registry, [spec(name, journal)])

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await registry.tell(name, Crash())
        await wait_until(lambda: len(journal.starts) == 2)
        await sup.stop()

    assert sample("hub_actor_crashes_total", {"actor": name}) == 1.0
    assert sample("hub_actor_restarts_total", {"actor": name}) == 1.0


async def test_supervisor_crash_runs_on_stop(autojump_clock: trio.abc.Clock) -> None:
    registry, journal, name = Registry(), Journal(), new_name()
    sup = supervisor("sup", registry, [spec(name, journal)])

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await registry.tell(name, Crash())
        await wait_until(lambda: len(journal.starts) == 2)

        assert journal.stops == [name]
        assert registry.lookup(name) is not None
        await sup.stop()


async def test_supervisor_transient_return_not_restarted(autojump_clock: trio.abc.Clock) -> None:
    registry, journal, name = Registry(), Journal(), new_name()
    child = spec(name, journal, ReturnAfterStart, restart=Restart.TRANSIENT)
    sup = supervisor("sup", registry, [child])

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await wait_until(lambda: sup.child_names() == [])
        await trio.sleep(5.0)
        await sup.stop()

    assert started_names(journal) == [name]
    assert sup.restart_count(name) == 0
    assert registry.lookup(name) is None


async def test_supervisor_transient_crash_restarted(autojump_clock: trio.abc.Clock) -> None:
    registry, journal, name = Registry(), Journal(), new_name()
    sup = supervisor("sup", registry, [spec(name, journal, restart=Restart.TRANSIENT)])

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await registry.tell(name, Crash())
        await wait_until(lambda: len(journal.starts) == 2)
        await sup.stop()

    assert sup.restart_count(name) == 1


async def test_supervisor_temporary_crash_not_restarted(autojump_clock: trio.abc.Clock) -> None:
    registry, journal, name = Registry(), Journal(), new_name()
    sup = supervisor("sup", registry, [spec(name, journal, restart=Restart.TEMPORARY)])

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await registry.tell(name, Crash())
        await wait_until(lambda: sup.child_names() == [])
        await trio.sleep(5.0)
        await sup.stop()

    assert started_names(journal) == [name]
    assert sup.restart_count(name) == 0


async def test_supervisor_permanent_return_restarted(autojump_clock: trio.abc.Clock) -> None:
    registry, journal, name = Registry(), Journal(), new_name()
    sup = supervisor("sup", registry, [spec(name, journal, ReturnAfterStart)], max_restarts=10)

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await wait_until(lambda: sup.restart_count(name) >= 2)
        await sup.stop()

    assert len(journal.starts) >= 3


async def test_supervisor_crash_loop_gives_up(autojump_clock: trio.abc.Clock) -> None:
    registry, journal = Registry(), Journal()
    steady, looping = new_name("steady"), new_name("looping")
    children = [spec(steady, journal), spec(looping, journal, CrashAfterStart)]
    sup = supervisor("sup", registry, children, max_restarts=3, within_s=60.0)

    with pytest.raises(SupervisorGaveUp) as caught:
        await sup.run()

    assert caught.value.supervisor == "sup"
    assert isinstance(caught.value.last_error, RuntimeError)
    assert sup.restart_count(looping) == 3
    assert journal.stops == [steady]
    assert registry.names() == []


async def test_supervisor_gave_up_restarted_by_parent(autojump_clock: trio.abc.Clock) -> None:
    registry, journal, looping = Registry(), Journal(), new_name("looping")

    def build_inner() -> Supervisor:
        return supervisor(
            "inner", registry, [spec(looping, journal, CrashAfterStart)], max_restarts=1
        )

    parent = supervisor("parent", registry, [ChildSpec("inner", build_inner)], max_restarts=10)

    async with trio.open_nursery() as nursery:
        await nursery.start(parent.run)
        await wait_until(lambda: parent.restart_count("inner") >= 1)
        await parent.stop()

    assert parent.restart_count("inner") >= 1


async def test_supervisor_parent_gives_up_in_turn(autojump_clock: trio.abc.Clock) -> None:
    registry, journal, looping = Registry(), Journal(), new_name("looping")

    def build_inner() -> Supervisor:
        return supervisor(
            "inner", registry, [spec(looping, journal, CrashAfterStart)], max_restarts=1
        )

    parent = supervisor(
        "parent", registry, [ChildSpec("inner", build_inner)], max_restarts=1, within_s=60.0
    )

    with pytest.raises(SupervisorGaveUp) as caught:
        await parent.run()

    assert caught.value.supervisor == "parent"
    assert isinstance(caught.value.last_error, SupervisorGaveUp)
    assert caught.value.last_error.supervisor == "inner"


async def test_supervisor_cancellation_propagates(autojump_clock: trio.abc.Clock) -> None:
    registry, journal = Registry(), Journal()
    names = [new_name(), new_name()]
    sup = supervisor("sup", registry, [spec(name, journal) for name in names])
    running_before = sample("hub_actors_running")

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            scope.cancel()

    assert scope.cancelled_caught
    assert sorted(journal.exits) == sorted(names)
    assert registry.names() == []
    assert sample("hub_actors_running") == running_before


async def test_supervisor_stops_in_reverse_order(autojump_clock: trio.abc.Clock) -> None:
    registry, journal = Registry(), Journal()
    names = [new_name(), new_name(), new_name()]
    sup = supervisor("sup", registry, [spec(name, journal) for name in names])

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        assert started_names(journal) == names
        await sup.stop()

    assert journal.stops == list(reversed(names))
    assert registry.names() == []


async def test_supervisor_cancels_child_ignoring_stop(autojump_clock: trio.abc.Clock) -> None:
    registry, journal, name = Registry(), Journal(), new_name()
    sup = supervisor("sup", registry, [spec(name, journal, IgnoresStop, shutdown_timeout_s=2.0)])

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        stop_began = trio.current_time()
        await sup.stop_child(name)
        stop_took = trio.current_time() - stop_began
        await sup.stop()

    assert stop_took >= 2.0
    assert journal.exits == [name]
    assert sup.restart_count(name) == 0


async def test_supervisor_start_stop_child_at_runtime(autojump_clock: trio.abc.Clock) -> None:
    registry, journal = Registry(), Journal()
    first, added = new_name(), new_name()
    sup = supervisor("sup", registry, [spec(first, journal)])

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.start_child(spec(added, journal))
        assert sup.child_names() == [first, added]
        assert registry.lookup(added) is not None

        await sup.stop_child(added)
        assert sup.child_names() == [first]
        assert registry.lookup(added) is None
        await sup.stop()

    assert journal.stops == [added, first]


async def test_supervisor_start_child_failure_raises(autojump_clock: trio.abc.Clock) -> None:
    registry, journal, name = Registry(), Journal(), new_name()
    sup = supervisor("sup", registry, [])

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        with pytest.raises(ConnectionError, match="cannot reach"):
            await sup.start_child(spec(name, journal, FailsToStart))
        assert sup.child_names() == []
        assert registry.lookup(name) is None
        await sup.stop()


async def test_supervisor_initial_start_failure_stops_others(
    autojump_clock: trio.abc.Clock,
) -> None:
    registry, journal = Registry(), Journal()
    good, bad = new_name(), new_name()
    sup = supervisor("sup", registry, [spec(good, journal), spec(bad, journal, FailsToStart)])

    with pytest.raises(ConnectionError):
        await sup.run()

    assert journal.stops == [good]
    assert registry.names() == []


async def test_supervisor_start_child_duplicate_raises(autojump_clock: trio.abc.Clock) -> None:
    registry, journal, name = Registry(), Journal(), new_name()
    sup = supervisor("sup", registry, [spec(name, journal)])

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        with pytest.raises(ValueError, match=name):
            await sup.start_child(spec(name, journal))
        await sup.stop()


async def test_supervisor_stop_child_unknown_raises(autojump_clock: trio.abc.Clock) -> None:
    sup = supervisor("sup", Registry(), [])

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        with pytest.raises(KeyError, match="nobody"):
            await sup.stop_child("nobody")
        await sup.stop()


async def test_supervisor_start_child_before_run_raises() -> None:
    sup = supervisor("sup", Registry(), [])

    with pytest.raises(RuntimeError, match="not running"):
        await sup.start_child(spec(new_name(), Journal()))


async def test_supervisor_stop_interrupts_backoff(autojump_clock: trio.abc.Clock) -> None:
    registry, journal, name = Registry(), Journal(), new_name()
    sup = supervisor(
        "sup", registry, [spec(name, journal)], backoff_base_s=100.0, backoff_max_s=100.0
    )

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await registry.tell(name, Crash())
        await wait_until(lambda: len(journal.crashes) == 1)
        stop_began = trio.current_time()
        await sup.stop()

    assert trio.current_time() - stop_began < 50.0
    assert started_names(journal) == [name]


def test_supervisor_rejects_duplicate_child_names() -> None:
    journal = Journal()

    with pytest.raises(ValueError, match="same"):
        Supervisor("sup", Registry(), [spec("same", journal), spec("same", journal)])


def test_supervisor_rejects_bad_backoff() -> None:
    with pytest.raises(ValueError, match="backoff_max_s"):
        Supervisor("sup", Registry(), backoff_base_s=2.0, backoff_max_s=1.0)
