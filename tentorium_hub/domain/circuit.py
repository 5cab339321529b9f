"""Circuit breaker for the calls a branch actor makes to one branch's 1C, free of I/O.

The breaker never reads a clock: every method takes `now` in seconds on the caller's
monotonic clock (the actor passes `trio.current_time()`), so tests drive it with plain floats.

States and transitions:

- CLOSED: calls go out. `failure_threshold` consecutive failures open the circuit.
- OPEN: no call goes out until `open_until`. The open period is a jittered back-off
  (`domain.backoff.backoff_s`) over the number of openings since the circuit was last
  closed, so a branch that stays down is tried less and less often, up to `open_max_s`.
- HALF_OPEN: reached from OPEN once `open_until` passed. Exactly one trial call may go out.
  Its success closes the circuit; its failure opens it again for a longer period.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from tentorium_hub.domain.backoff import backoff_s

__all__ = ["CircuitBreaker", "CircuitState", "Transition"]


class CircuitState(enum.IntEnum):
    """Circuit states; the values are what the `hub_branch_circuit_state` gauge shows."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True)
class Transition:
    """One change of state; `open_for_s` is the open period when `current` is OPEN."""

    previous: CircuitState
    current: CircuitState
    at: float
    consecutive_failures: int
    open_for_s: float | None = None


class CircuitBreaker:
    """Decides whether a call to a branch may go out, from the outcomes of earlier calls.

    The caller asks `acquire(now)` before each call and reports the outcome with
    `record_success(now)` or `record_failure(now)`. State changes queue up as `Transition`
    records until `drain_transitions()` takes them, so the caller logs and counts them.
    """

    def __init__(
        self,
        *,
        failure_threshold: int,
        open_base_s: float,
        open_max_s: float,
        rng: random.Random | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold!r}")
        if open_base_s <= 0:
            raise ValueError(f"open_base_s must be > 0, got {open_base_s!r}")
        if open_max_s < open_base_s:
            raise ValueError(
                f"open_max_s must be >= open_base_s ({open_base_s!r}), got {open_max_s!r}"
            )
        self._threshold = failure_threshold
        self._open_base_s = open_base_s
        self._open_max_s = open_max_s
        self._rng = rng or random.Random()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._openings = 0
        self._open_until: float | None = None
        self._trial_out = False
        self._transitions: list[Transition] = []

    @property
    def state(self) -> CircuitState:
        """The state as of the last call; an expired OPEN turns HALF_OPEN only in `acquire`."""
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def openings(self) -> int:
        """How many times the circuit opened since it was last closed."""
        return self._openings

    @property
    def open_until(self) -> float | None:
        """When an OPEN circuit lets a trial call out; None in the other states."""
        return self._open_until if self._state is CircuitState.OPEN else None

    def acquire(self, now: float) -> bool:
        """Return whether a call may go out now; in HALF_OPEN, grant the one trial call."""
        if self._state is CircuitState.CLOSED:
            return True

        if self._state is CircuitState.OPEN:
            if self._open_until is not None and now < self._open_until:
                return False
            self._change(CircuitState.HALF_OPEN, now)

        if self._trial_out:
            return False
        self._trial_out = True
        return True

    def record_success(self, now: float) -> None:
        """Count a call that reached the branch and worked; any state becomes CLOSED."""
        self._failures = 0
        self._openings = 0
        self._trial_out = False
        if self._state is not CircuitState.CLOSED:
            self._open_until = None
            self._change(CircuitState.CLOSED, now)

    def record_failure(self, now: float) -> None:
        """Count a failed call; open the circuit at the threshold or after a failed trial."""
        self._failures += 1
        if self._state is CircuitState.OPEN:
            # A call that started before the circuit opened; the open period stays as it is.
            return

        if self._state is CircuitState.HALF_OPEN or self._failures >= self._threshold:
            self._open(now)

    def retry_now(self, now: float) -> None:
        """End an open period early, so the next `acquire` grants a trial (operator resync)."""
        if self._state is CircuitState.OPEN:
            self._open_until = now

    def drain_transitions(self) -> list[Transition]:
        """Return the transitions since the last drain, oldest first, and forget them."""
        transitions, self._transitions = self._transitions, []
        return transitions

    def _open(self, now: float) -> None:
        self._openings += 1
        open_for_s = backoff_s(
            self._openings, base_s=self._open_base_s, max_s=self._open_max_s, rng=self._rng
        )
        self._open_until = now + open_for_s
        self._trial_out = False
        self._change(CircuitState.OPEN, now, open_for_s)

    def _change(self, state: CircuitState, now: float, open_for_s: float | None = None) -> None:
        transition = Transition(self._state, state, now, self._failures, open_for_s)
        self._state = state
        self._transitions.append(transition)
