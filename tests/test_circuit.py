"""Unit and property tests of the I/O-free circuit breaker."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tentorium_hub.domain.circuit import CircuitBreaker, CircuitState

THRESHOLD = 3
BASE_S = 10.0
MAX_S = 80.0


def make_breaker(*, threshold: int = THRESHOLD, seed: int = 1) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=threshold,
        open_base_s=BASE_S,
        open_max_s=MAX_S,
        rng=random.Random(seed),
    )


def open_breaker(now: float = 0.0) -> CircuitBreaker:
    breaker = make_breaker()
    for _ in range(THRESHOLD):
        breaker.record_failure(now)
    return breaker


def open_period_bounds(opening: int) -> tuple[float, float]:
    """The [low, high] range `backoff_s` draws the open period of opening number `opening` from."""
    cap = min(MAX_S, BASE_S * 2 ** (opening - 1))
    return cap / 2, cap


# --- closed ------------------------------------------------------------------------------


def test_circuit_starts_closed() -> None:
    breaker = make_breaker()

    assert breaker.state is CircuitState.CLOSED
    assert breaker.acquire(0.0) is True
    assert breaker.open_until is None


def test_circuit_stays_closed_below_threshold() -> None:
    breaker = make_breaker()

    for _ in range(THRESHOLD - 1):
        breaker.record_failure(1.0)

    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == THRESHOLD - 1
    assert breaker.acquire(1.0) is True


def test_circuit_opens_at_threshold() -> None:
    breaker = open_breaker(now=5.0)

    low, high = open_period_bounds(1)
    assert breaker.state is CircuitState.OPEN
    assert breaker.open_until is not None
    assert 5.0 + low <= breaker.open_until <= 5.0 + high


def test_circuit_success_resets_failure_count() -> None:
    breaker = make_breaker()
    for _ in range(THRESHOLD - 1):
        breaker.record_failure(1.0)

    breaker.record_success(2.0)
    breaker.record_failure(3.0)

    assert breaker.consecutive_failures == 1
    assert breaker.state is CircuitState.CLOSED


def test_circuit_threshold_one_opens_on_first_failure() -> None:
    breaker = make_breaker(threshold=1)

    breaker.record_failure(0.0)

    assert breaker.state is CircuitState.OPEN


# --- open and half-open ------------------------------------------------------------------


def test_circuit_open_rejects_calls_until_deadline() -> None:
    breaker = open_breaker()
    assert breaker.open_until is not None
    deadline = breaker.open_until

    assert breaker.acquire(0.0) is False
    assert breaker.acquire(deadline - 0.001) is False
    assert breaker.state is CircuitState.OPEN


def test_circuit_half_open_grants_one_trial() -> None:
    breaker = open_breaker()
    assert breaker.open_until is not None
    later = breaker.open_until + 1.0

    first = breaker.acquire(later)
    second = breaker.acquire(later)

    assert first is True
    assert second is False
    assert breaker.state is CircuitState.HALF_OPEN


def test_circuit_trial_success_closes() -> None:
    breaker = open_breaker()
    assert breaker.open_until is not None
    later = breaker.open_until
    breaker.acquire(later)

    breaker.record_success(later)

    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.openings == 0
    assert breaker.acquire(later) is True


def test_circuit_trial_failure_reopens_longer() -> None:
    breaker = open_breaker()
    assert breaker.open_until is not None
    first_period = breaker.open_until
    trial_at = breaker.open_until
    breaker.acquire(trial_at)

    breaker.record_failure(trial_at)

    assert breaker.state is CircuitState.OPEN
    assert breaker.openings == 2
    assert breaker.open_until is not None
    # Equal jitter: the second period is drawn from [base, 2*base], the first from
    # [base/2, base], so the second is never shorter.
    assert breaker.open_until - trial_at >= first_period


def test_circuit_open_period_is_capped() -> None:
    breaker = open_breaker()
    now = 0.0
    for _ in range(12):
        assert breaker.open_until is not None
        now = breaker.open_until
        breaker.acquire(now)
        breaker.record_failure(now)

    assert breaker.open_until is not None
    assert MAX_S / 2 <= breaker.open_until - now <= MAX_S


def test_circuit_late_failure_keeps_open_period() -> None:
    breaker = open_breaker()
    deadline = breaker.open_until

    breaker.record_failure(1.0)

    assert breaker.open_until == deadline
    assert breaker.openings == 1


def test_circuit_late_success_closes() -> None:
    breaker = open_breaker()

    breaker.record_success(1.0)

    assert breaker.state is CircuitState.CLOSED
    assert breaker.open_until is None


def test_circuit_retry_now_allows_trial() -> None:
    breaker = open_breaker()

    breaker.retry_now(1.0)

    assert breaker.acquire(1.0) is True
    assert breaker.state is CircuitState.HALF_OPEN


def test_circuit_retry_now_ignored_when_closed() -> None:
    breaker = make_breaker()

    breaker.retry_now(1.0)

    assert breaker.state is CircuitState.CLOSED
    assert breaker.drain_transitions() == []


# --- transitions -------------------------------------------------------------------------


def test_circuit_transitions_record_each_change() -> None:
    breaker = open_breaker(now=2.0)
    assert breaker.open_until is not None
    trial_at = breaker.open_until
    breaker.acquire(trial_at)
    breaker.record_success(trial_at)

    transitions = breaker.drain_transitions()

    states = [(t.previous, t.current) for t in transitions]
    assert states == [
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED),
    ]
    assert transitions[0].consecutive_failures == THRESHOLD
    assert transitions[0].open_for_s is not None
    assert transitions[1].open_for_s is None


def test_circuit_transitions_drained_once() -> None:
    breaker = open_breaker()

    breaker.drain_transitions()

    assert breaker.drain_transitions() == []


def test_circuit_state_values_match_gauge() -> None:
    assert [int(state) for state in CircuitState] == [0, 1, 2]


@pytest.mark.parametrize(
    ("threshold", "base_s", "max_s"),
    [
        pytest.param(0, 1.0, 2.0, id="zero-threshold"),
        pytest.param(1, 0.0, 2.0, id="zero-base"),
        pytest.param(1, 3.0, 2.0, id="max-below-base"),
    ],
)
def test_circuit_rejects_bad_settings(threshold: int, base_s: float, max_s: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=threshold, open_base_s=base_s, open_max_s=max_s)


# --- properties --------------------------------------------------------------------------


@given(
    threshold=st.integers(min_value=1, max_value=6),
    outcomes=st.lists(st.booleans(), max_size=40),
)
def test_circuit_opens_exactly_at_threshold(threshold: int, outcomes: list[bool]) -> None:
    breaker = make_breaker(threshold=threshold)
    streak = 0
    for step, succeeded in enumerate(outcomes):
        if breaker.state is not CircuitState.CLOSED:
            break
        if succeeded:
            breaker.record_success(float(step))
            streak = 0
        else:
            breaker.record_failure(float(step))
            streak += 1
        expected = CircuitState.OPEN if streak >= threshold else CircuitState.CLOSED
        assert breaker.state is expected


@given(seed=st.integers(min_value=0, max_value=2**32), reopenings=st.integers(1, 10))
def test_circuit_open_periods_follow_backoff(seed: int, reopenings: int) -> None:
    breaker = make_breaker(seed=seed)
    for _ in range(THRESHOLD):
        breaker.record_failure(0.0)

    periods = []
    for _ in range(reopenings):
        assert breaker.open_until is not None
        now = breaker.open_until
        breaker.acquire(now)
        breaker.record_failure(now)
        assert breaker.open_until is not None
        periods.append((breaker.openings, breaker.open_until - now))

    for opening, period in periods:
        low, high = open_period_bounds(opening)
        assert low <= period <= high


class CircuitMachine(RuleBasedStateMachine):
    """Random calls, outcomes and clock steps; the invariants must hold after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.breaker = make_breaker(threshold=2, seed=7)
        self.now = 0.0
        self.trials_granted = 0
        self.last_state = CircuitState.CLOSED

    @rule(seconds=st.floats(min_value=0.0, max_value=100.0))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def acquire(self) -> None:
        state_before = self.breaker.state
        open_until = self.breaker.open_until
        granted = self.breaker.acquire(self.now)

        if state_before is CircuitState.OPEN and open_until is not None and self.now < open_until:
            assert not granted, "an open circuit let a call out before its deadline"
        if self.breaker.state is CircuitState.HALF_OPEN and granted:
            self.trials_granted += 1
        assert self.trials_granted <= 1, "a half-open circuit granted a second trial"

    @rule()
    def succeed(self) -> None:
        self.breaker.record_success(self.now)
        self.trials_granted = 0

    @rule()
    def fail(self) -> None:
        was_half_open = self.breaker.state is CircuitState.HALF_OPEN
        self.breaker.record_failure(self.now)
        self.trials_granted = 0
        if was_half_open:
            assert self.breaker.state is CircuitState.OPEN

    @invariant()
    def transitions_chain(self) -> None:
        allowed = {
            (CircuitState.CLOSED, CircuitState.OPEN),
            (CircuitState.OPEN, CircuitState.HALF_OPEN),
            (CircuitState.OPEN, CircuitState.CLOSED),
            (CircuitState.HALF_OPEN, CircuitState.OPEN),
            (CircuitState.HALF_OPEN, CircuitState.CLOSED),
        }
        for transition in self.breaker.drain_transitions():
            assert transition.previous is self.last_state
            assert (transition.previous, transition.current) in allowed
            self.last_state = transition.current
        assert self.last_state is self.breaker.state

    @invariant()
    def open_until_only_when_open(self) -> None:
        is_open = self.breaker.state is CircuitState.OPEN
        assert (self.breaker.open_until is not None) == is_open


CircuitMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40)
test_circuit_state_machine = CircuitMachine.TestCase
