"""Messages between actors: commands and wake-ups only, never the only copy of data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Wake:
    """Look at the database now instead of at the next poll; equal wake-ups coalesce."""


@dataclass(frozen=True)
class OrderAccepted:
    """An order and its outbox row were committed; its branch should deliver it."""

    order_id: uuid.UUID
    branch: str


@dataclass(frozen=True)
class StatusChanged:
    """An order's status changed; the notification actor sends the queued events."""

    order_number: str
    status: str
    branch: str


@dataclass(frozen=True)
class Availability:
    """Ask the stock actor for the quantities of offers in a branch."""

    branch: str
    offer_ids: tuple[str, ...]


@dataclass(frozen=True)
class BranchControl:
    """Pause, resume or resync a branch actor."""

    action: str  # "pause" | "resume" | "resync"
