"""One-for-one supervisors in the Erlang/OTP style: restart crashed children, give up on loops.

Structure. Each child has one *runner* task in the supervisor's nursery. The runner awaits
the child's `run()` directly, catches its exceptions and starts the next incarnation, so no
child exception reaches the nursery. Only cancellation (and other BaseExceptions such as
KeyboardInterrupt) leave a runner, and `SupervisorGaveUp` is raised by `run()` after its
nursery has closed, so it never arrives wrapped in an exception group.

Restart types follow OTP: PERMANENT children are restarted after any exit, TRANSIENT ones
only after a crash (an Exception), TEMPORARY ones never. A child that is not restarted is
removed from `child_names()`.

Back-off uses *equal jitter*: the n-th restart in a row (n from 0) waits a uniform random time
in [d/2, d] with d = min(backoff_max_s, backoff_base_s * 2**n). Unlike full jitter, half of the
delay is guaranteed, so a crash loop never restarts immediately. The streak resets after an
incarnation that ran for `within_s` or longer.

Restart intensity is counted over all children, as in OTP: more than `max_restarts` restarts
within `within_s` seconds make the supervisor stop its other children gracefully and raise
`SupervisorGaveUp`. A parent supervisor treats that as a crash of this one.

Registry. An Actor child is registered under `spec.name` from before its start until it
exits; its `name` must equal `spec.name`. Nested supervisors are not registered, because
they take no messages.

Stopping. A graceful stop closes an Actor's mailbox or calls a nested supervisor's `stop()`.
A child still running after its `shutdown_timeout_s` is cancelled, and so is a child with
neither. `stop()` stops the children in reverse start order, all within the supervisor's
own `shutdown_timeout_s`. Give a nested supervisor a ChildSpec.shutdown_timeout_s at least
as long as its own shutdown_timeout_s, or its parent cancels it before its children finish.

Start failures follow OTP: if a child raises before calling `task_status.started()`,
`start_child` raises that exception and the child is not added. In `run()`, such a failure
stops the children already started, and then `run()` raises the same exception.
"""

from __future__ import annotations

import collections
import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import trio

from tentorium_hub import metrics
from tentorium_hub.errors import HubError
from tentorium_hub.logs import get_logger
from tentorium_hub.runtime.actor import Actor
from tentorium_hub.runtime.registry import Registry

__all__ = ["ChildSpec", "Restart", "Runnable", "Supervisor", "SupervisorGaveUp"]

# Caps the exponent of the back-off so that 2**n stays a finite float in long crash loops.
_MAX_BACKOFF_EXPONENT = 60


class Restart(enum.StrEnum):
    """When a supervisor restarts a child (OTP restart types)."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class Runnable(Protocol):
    """Anything a supervisor can run: an Actor or a nested Supervisor."""

    name: str

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...


@dataclass(frozen=True)
class ChildSpec:
    """How to build and restart one child; `factory` is called for every (re)start."""

    name: str
    factory: Callable[[], Runnable]
    restart: Restart = Restart.PERMANENT
    shutdown_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "restart", Restart(self.restart))
        if not self.shutdown_timeout_s >= 0:
            raise ValueError(
                f"child {self.name!r}: shutdown_timeout_s must be >= 0, "
                f"got {self.shutdown_timeout_s!r}"
            )


class SupervisorGaveUp(HubError):
    """A supervisor exceeded its restart intensity and stopped its children."""

    def __init__(
        self, supervisor: str, last_error: Exception | None, *, max_restarts: int, within_s: float
    ) -> None:
        super().__init__(
            f"supervisor {supervisor!r} gave up after more than {max_restarts} restarts "
            f"within {within_s}s; last error: {last_error!r}"
        )
        self.supervisor = supervisor
        self.last_error = last_error


@dataclass(eq=False)
class _Child:
    spec: ChildSpec
    # Set when the child must not be restarted again; also ends a back-off wait early.
    stop_requested: trio.Event = field(default_factory=trio.Event)
    # Set when the runner has finished for good.
    done: trio.Event = field(default_factory=trio.Event)
    runnable: Runnable | None = None
    scope: trio.CancelScope | None = None
    restarts_in_a_row: int = 0


class _StartSignal(trio.TaskStatus[None]):
    """The task_status of one incarnation: records the start and forwards it to the runner."""

    def __init__(self, outer: trio.TaskStatus[None], on_started: Callable[[], None]) -> None:
        self.is_started = False
        self._outer = outer
        self._on_started = on_started

    def started(self, value: None = None) -> None:
        if self.is_started:
            raise RuntimeError("called 'started' twice on the same task status")
        self.is_started = True
        self._on_started()
        self._outer.started()


class Supervisor:
    """Runs children one-for-one, restarting them by their restart type with back-off."""

    def __init__(
        self,
        name: str,
        registry: Registry,
        children: Sequence[ChildSpec] = (),
        *,
        max_restarts: int = 5,
        within_s: float = 10.0,
        backoff_base_s: float = 0.1,
        backoff_max_s: float = 10.0,
        shutdown_timeout_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        _check_settings(name, max_restarts, within_s, backoff_base_s, backoff_max_s)
        _check_unique_names(name, children)
        if not shutdown_timeout_s >= 0:
            raise ValueError(
                f"supervisor {name!r}: shutdown_timeout_s must be >= 0, got {shutdown_timeout_s!r}"
            )

        self.name = name
        self._registry = registry
        self._initial_specs = tuple(children)
        self._max_restarts = max_restarts
        self._within_s = within_s
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._shutdown_timeout_s = shutdown_timeout_s
        self._rng = rng if rng is not None else random.Random()

        self._children: dict[str, _Child] = {}
        self._restart_counts: collections.Counter[str] = collections.Counter()
        self._restart_times: collections.deque[float] = collections.deque()
        self._nursery: trio.Nursery | None = None
        self._has_run = False
        self._stop_requested = trio.Event()
        self._finished = trio.Event()
        self._failure: SupervisorGaveUp | None = None
        self._log = get_logger(__name__, supervisor=name)

    def child_names(self) -> list[str]:
        """Return the names of the current children in start order."""
        return list(self._children)

    def restart_count(self, name: str) -> int:
        """Return how often the child `name` was restarted (0 for an unknown name)."""
        return self._restart_counts[name]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children in order, then supervise them until `stop()` or cancellation.

        Raises SupervisorGaveUp when the restart intensity is exceeded. Raises the exception
        of a child that failed to start. Both happen after the other children have stopped.
        """
        if self._has_run:
            raise RuntimeError(f"supervisor {self.name!r} has already run; build a new one")
        self._has_run = True

        start_error: Exception | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                start_error = await self._start_initial_children()
                if start_error is None and self._failure is None:
                    task_status.started()
                    self._log.info("supervisor.started", children=self.child_names())
                    await self._stop_requested.wait()
                await self._stop_all_children()
        finally:
            self._nursery = None
            self._finished.set()

        if start_error is not None:
            raise start_error
        if self._failure is not None:
            raise self._failure from self._failure.last_error
        self._log.info("supervisor.stopped")

    async def stop(self) -> None:
        """Stop all children gracefully in reverse start order; `run()` then returns.

        Waits until `run()` has finished. Before `run()`, makes a later `run()` return
        right after its start. A child must not await this: it would wait for its own
        shutdown until its shutdown_timeout_s cancels it.
        """
        self._stop_requested.set()
        if self._has_run:
            await self._finished.wait()

    async def start_child(self, spec: ChildSpec) -> None:
        """Add and start a child; returns once it called `task_status.started()`.

        Raises ValueError for a name already in use, RuntimeError when the supervisor is
        not running or is stopping, and the child's exception if it fails to start.
        """
        nursery = self._nursery
        if nursery is None or self._stop_requested.is_set():
            raise RuntimeError(
                f"supervisor {self.name!r} is not running or is stopping; "
                f"cannot start {spec.name!r}"
            )
        if spec.name in self._children:
            raise ValueError(f"supervisor {self.name!r} already has a child named {spec.name!r}")

        child = _Child(spec)
        self._children[spec.name] = child
        try:
            await nursery.start(self._supervise_child, child)
        except BaseException:
            self._forget(child)
            raise

    async def stop_child(self, name: str) -> None:
        """Stop a child gracefully, cancel it after its shutdown_timeout_s; no restart follows.

        Raises KeyError when no child has that name.
        """
        child = self._children.get(name)
        if child is None:
            raise KeyError(f"supervisor {self.name!r} has no child named {name!r}")
        await self._stop(child)

    async def _start_initial_children(self) -> Exception | None:
        for spec in self._initial_specs:
            if self._stop_requested.is_set():
                break
            try:
                await self.start_child(spec)
            except Exception as exc:
                self._log.error("supervisor.start_failed", child=spec.name, error=repr(exc))
                return exc
        return None

    async def _stop_all_children(self) -> None:
        with trio.move_on_after(self._shutdown_timeout_s):
            for child in reversed(list(self._children.values())):
                await self._stop(child)

        if self._children and self._nursery is not None:
            self._log.warning(
                "supervisor.stop_timed_out",
                shutdown_timeout_s=self._shutdown_timeout_s,
                cancelled=self.child_names(),
            )
            self._nursery.cancel_scope.cancel()

    async def _stop(self, child: _Child) -> None:
        child.stop_requested.set()
        with trio.move_on_after(child.spec.shutdown_timeout_s):
            await self._request_graceful_stop(child)
            await child.done.wait()
        if child.done.is_set():
            return

        self._log.warning(
            "actor.stop_timed_out",
            actor=child.spec.name,
            shutdown_timeout_s=child.spec.shutdown_timeout_s,
        )
        if child.scope is not None:
            child.scope.cancel()
        await child.done.wait()

    async def _request_graceful_stop(self, child: _Child) -> None:
        runnable = child.runnable
        if isinstance(runnable, Actor):
            runnable.mailbox.close()
        elif isinstance(runnable, Supervisor):
            await runnable.stop()
        elif child.scope is not None:
            # A plain Runnable has no way to ask it to stop, so it is cancelled at once.
            child.scope.cancel()

    async def _supervise_child(
        self, child: _Child, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            error = await self._run_first_incarnation(child, task_status)
            while self._should_restart(child, error):
                if not self._admit_restart(child, error):
                    return
                if not await self._back_off(child):
                    return
                self._count_restart(child)
                signal = self._start_signal(child, trio.TASK_STATUS_IGNORED)
                error = await self._run_incarnation(child, signal)
        finally:
            self._forget(child)
            child.done.set()

    async def _run_first_incarnation(
        self, child: _Child, task_status: trio.TaskStatus[None]
    ) -> Exception | None:
        signal = self._start_signal(child, task_status)
        error = await self._run_incarnation(child, signal)
        if signal.is_started:
            return error
        if error is not None:
            raise error
        if child.stop_requested.is_set():
            # Stopped while starting: report a start so that start_child returns normally.
            task_status.started()
            return None
        raise RuntimeError(f"child {child.spec.name!r} returned without calling started()")

    async def _run_incarnation(self, child: _Child, signal: _StartSignal) -> Exception | None:
        """Run one incarnation; return its exception, or None for a return or a stop."""
        name = child.spec.name
        started_at = trio.current_time()
        reason = "cancelled"
        try:
            with trio.CancelScope() as scope:
                child.scope = scope
                await self._run_child(child, signal)
            reason = "cancelled" if scope.cancelled_caught else "normal"
            return None
        except Exception as exc:
            reason = "crashed"
            metrics.ACTOR_CRASHES.labels(name).inc()
            self._log.error("actor.crashed", actor=name, exc_info=exc)
            return exc
        finally:
            child.scope = None
            child.runnable = None
            if trio.current_time() - started_at >= self._within_s:
                child.restarts_in_a_row = 0
            self._log.info("actor.stopped", actor=name, reason=reason)

    async def _run_child(self, child: _Child, task_status: trio.TaskStatus[None]) -> None:
        runnable = child.spec.factory()
        if runnable.name != child.spec.name:
            raise ValueError(
                f"factory of child {child.spec.name!r} built {runnable.name!r}; "
                "the names must match"
            )
        child.runnable = runnable
        if not isinstance(runnable, Actor):
            await runnable.run(task_status=task_status)
            return

        self._registry.register(child.spec.name, runnable)
        metrics.ACTORS_RUNNING.inc()
        try:
            await runnable.run(task_status=task_status)
        finally:
            metrics.ACTORS_RUNNING.dec()
            self._registry.unregister(child.spec.name, runnable)
            runnable.discard_pending()

    def _should_restart(self, child: _Child, error: Exception | None) -> bool:
        if child.stop_requested.is_set() or self._stop_requested.is_set():
            return False
        restart = child.spec.restart
        if restart is Restart.PERMANENT:
            return True
        return restart is Restart.TRANSIENT and error is not None

    def _admit_restart(self, child: _Child, error: Exception | None) -> bool:
        """Record a restart; give up and return False when it exceeds the intensity."""
        now = trio.current_time()
        self._restart_times.append(now)
        while self._restart_times[0] <= now - self._within_s:
            self._restart_times.popleft()
        if len(self._restart_times) <= self._max_restarts:
            return True

        self._failure = SupervisorGaveUp(
            self.name, error, max_restarts=self._max_restarts, within_s=self._within_s
        )
        self._log.error(
            "supervisor.gave_up",
            child=child.spec.name,
            max_restarts=self._max_restarts,
            within_s=self._within_s,
            error=repr(error),
        )
        self._stop_requested.set()
        return False

    async def _back_off(self, child: _Child) -> bool:
        """Wait the back-off delay; return False when a stop request ended the wait."""
        exponent = min(child.restarts_in_a_row, _MAX_BACKOFF_EXPONENT)
        ceiling_s = min(self._backoff_max_s, self._backoff_base_s * 2.0**exponent)
        delay_s = ceiling_s / 2 + self._rng.uniform(0, ceiling_s / 2)
        child.restarts_in_a_row += 1

        with trio.move_on_after(delay_s):
            await child.stop_requested.wait()
        return not child.stop_requested.is_set() and not self._stop_requested.is_set()

    def _count_restart(self, child: _Child) -> None:
        name = child.spec.name
        self._restart_counts[name] += 1
        metrics.ACTOR_RESTARTS.labels(name).inc()
        self._log.info("actor.restarted", actor=name, restarts=self._restart_counts[name])

    def _start_signal(self, child: _Child, outer: trio.TaskStatus[None]) -> _StartSignal:
        name = child.spec.name
        return _StartSignal(outer, lambda: self._log.info("actor.started", actor=name))

    def _forget(self, child: _Child) -> None:
        if self._children.get(child.spec.name) is child:
            del self._children[child.spec.name]


def _check_settings(
    name: str, max_restarts: int, within_s: float, backoff_base_s: float, backoff_max_s: float
) -> None:
    if max_restarts < 0:
        raise ValueError(f"supervisor {name!r}: max_restarts must be >= 0, got {max_restarts!r}")
    if not within_s > 0:
        raise ValueError(f"supervisor {name!r}: within_s must be > 0, got {within_s!r}")
    if not backoff_base_s >= 0:
        raise ValueError(
            f"supervisor {name!r}: backoff_base_s must be >= 0, got {backoff_base_s!r}"
        )
    if not backoff_max_s >= backoff_base_s:
        raise ValueError(
            f"supervisor {name!r}: backoff_max_s must be >= backoff_base_s "
            f"({backoff_base_s!r}), got {backoff_max_s!r}"
        )


def _check_unique_names(name: str, children: Sequence[ChildSpec]) -> None:
    seen: set[str] = set()
    for spec in children:
        if spec.name in seen:
            raise ValueError(f"supervisor {name!r}: two children are named {spec.name!r}")
        seen.add(spec.name)
