"""Jittered exponential back-off, shared by branch actors and delivery retries."""

from __future__ import annotations

import random

_RNG = random.Random()


def backoff_s(
    attempt: int, *, base_s: float, max_s: float, rng: random.Random | None = None
) -> float:
    """Delay before retry number `attempt` (1-based): "equal jitter" in [d/2, d].

    d = base * 2**(attempt-1), capped at max_s. Half the delay is fixed so retries never
    bunch up at zero; the random half spreads many branches that failed together.
    """
    source = rng or _RNG
    exponent = min(max(attempt - 1, 0), 32)
    delay = min(max_s, base_s * (2**exponent))
    return delay / 2 + source.uniform(0, delay / 2)


def spread_offset_s(key: str, interval_s: float) -> float:
    """Return a stable offset in [0, interval) for `key`, so pollers do not fire together."""
    # FNV-1a: stable across processes, unlike hash() with its per-process salt.
    value = 0x811C9DC5
    for byte in key.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return (value / 0x1_0000_0000) * interval_s
