"""Bounded actor mailboxes on trio memory channels, each with a named overflow policy.

A mailbox is one trio memory channel pair owned by one actor. Every sender shares the
mailbox's single send channel, so `close()` ends the mailbox for all of them at once. After
it, tasks blocked in `send()` and every later send raise `MailboxClosed`. The receiver still
drains what is buffered and then gets `trio.EndOfChannel`.

Overflow policies decide what happens when the buffer is full:

* `WAIT`: the sender waits up to `send_timeout_s` for room, then gets `MailboxFull`. This is
  back-pressure for commands that must not be lost silently.
* `REJECT`: the sender gets `MailboxFull` at once. For producers that would rather drop work
  and retry later than stall.
* `COALESCE`: a message equal to one still waiting in the buffer is dropped, because a second
  identical wake-up carries no new information. A different message on a full mailbox is
  rejected as with `REJECT`. Only hashable messages (frozen dataclasses such as `Wake()`)
  can be compared; unhashable ones are queued as they are.

A message that a receiver has already taken no longer counts as waiting, so a wake-up sent
while the actor handles the previous one is queued. That is deliberate: the handler may have
read its state before the new event happened.
"""

from __future__ import annotations

import collections
import contextlib
import enum
from dataclasses import dataclass

import trio

from tentorium_hub import metrics
from tentorium_hub.errors import MailboxFull

__all__ = ["Mailbox", "MailboxClosed", "MailboxSpec", "Overflow"]


class Overflow(enum.StrEnum):
    """Policy for a message that arrives at a full mailbox."""

    WAIT = "wait"
    REJECT = "reject"
    COALESCE = "coalesce"


@dataclass(frozen=True)
class MailboxSpec:
    """Size and overflow policy of a mailbox. `send_timeout_s` applies to `Overflow.WAIT` only."""

    capacity: int
    overflow: Overflow
    send_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, int):
            raise ValueError(f"mailbox capacity must be an int, got {self.capacity!r}")
        if self.capacity <= 0:
            raise ValueError(f"mailbox capacity must be > 0, got {self.capacity!r}")
        # Overflow("...") raises ValueError naming the bad value and accepts plain strings.
        object.__setattr__(self, "overflow", Overflow(self.overflow))
        if not self.send_timeout_s >= 0:
            raise ValueError(f"mailbox send_timeout_s must be >= 0, got {self.send_timeout_s!r}")


class MailboxClosed(MailboxFull):
    """A message was sent to a mailbox after `close()`: its actor is stopping or has stopped.

    It subclasses `MailboxFull` so that callers handling a full mailbox also handle this case.
    """


class Mailbox:
    """A bounded queue of messages for one actor, with the overflow policy of its spec."""

    def __init__(self, owner: str, spec: MailboxSpec) -> None:
        self.owner = owner
        self.spec = spec
        self._send_channel, self._receive_channel = trio.open_memory_channel[object](spec.capacity)
        # Messages waiting in the buffer, counted by value; filled only for COALESCE.
        self._waiting: collections.Counter[object] = collections.Counter()
        self._closed = False
        self._depth_gauge = metrics.MAILBOX_DEPTH.labels(owner)
        self._depth_gauge.set(0)
        metrics.MAILBOX_CAPACITY.labels(owner).set(spec.capacity)

    @property
    def depth(self) -> int:
        """Number of messages in the buffer; senders blocked by `WAIT` are not counted."""
        return self._receive_channel.statistics().current_buffer_used

    @property
    def capacity(self) -> int:
        """Maximum number of buffered messages."""
        return self.spec.capacity

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    async def send(self, message: object) -> None:
        """Queue `message` under the mailbox's overflow policy.

        Raises MailboxFull when the policy rejects the message and MailboxClosed after `close()`.
        """
        await trio.lowlevel.checkpoint()

        if self._is_duplicate(message):
            return
        if self._try_put(message):
            return
        if self.spec.overflow is not Overflow.WAIT:
            self._reject(message)

        await self._wait_for_room(message)

    def send_nowait(self, message: object) -> None:
        """Queue `message` without waiting.

        A full mailbox raises MailboxFull under every policy, and `WAIT` does not wait here.
        `COALESCE` still drops a duplicate silently. Raises MailboxClosed after `close()`.
        """
        if self._is_duplicate(message):
            return
        if not self._try_put(message):
            self._reject(message)

    async def receive(self) -> object:
        """Return the next message; raises trio.EndOfChannel once closed and drained."""
        message = await self._receive_channel.receive()
        self._note_taken(message)
        return message

    def receive_nowait(self) -> object:
        """Return the next buffered message.

        Raises trio.WouldBlock when the buffer is empty, or trio.EndOfChannel once the
        mailbox is closed and drained.
        """
        message = self._receive_channel.receive_nowait()
        self._note_taken(message)
        return message

    def __aiter__(self) -> Mailbox:
        return self

    async def __anext__(self) -> object:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Reject further messages, while the receiver drains what is buffered. Idempotent."""
        self._closed = True
        self._send_channel.close()

    def _is_duplicate(self, message: object) -> bool:
        if self.spec.overflow is not Overflow.COALESCE:
            return False
        try:
            duplicate = message in self._waiting
        except TypeError:  # unhashable messages are never coalesced
            return False
        if duplicate:
            metrics.MAILBOX_COALESCED.labels(self.owner).inc()
        return duplicate

    def _try_put(self, message: object) -> bool:
        try:
            self._send_channel.send_nowait(message)
        except trio.WouldBlock:
            return False
        except trio.ClosedResourceError:
            raise self._closed_error() from None
        self._note_put(message)
        return True

    async def _wait_for_room(self, message: object) -> None:
        with trio.move_on_after(self.spec.send_timeout_s):
            try:
                await self._send_channel.send(message)
            except trio.ClosedResourceError:
                raise self._closed_error() from None
            self._note_put(message)
            return

        metrics.MAILBOX_REJECTED.labels(self.owner).inc()
        raise MailboxFull(
            f"mailbox of {self.owner!r} stayed full ({self.capacity} messages) for "
            f"{self.spec.send_timeout_s}s; {type(message).__name__} not delivered"
        )

    def _reject(self, message: object) -> None:
        metrics.MAILBOX_REJECTED.labels(self.owner).inc()
        raise MailboxFull(
            f"mailbox of {self.owner!r} is full ({self.capacity} messages); "
            f"{type(message).__name__} rejected"
        )

    def _closed_error(self) -> MailboxClosed:
        return MailboxClosed(f"mailbox of {self.owner!r} is closed: the actor is stopping")

    def _note_put(self, message: object) -> None:
        if self.spec.overflow is Overflow.COALESCE:
            with contextlib.suppress(TypeError):  # unhashable: never coalesced
                self._waiting[message] += 1
        self._depth_gauge.set(self.depth)

    def _note_taken(self, message: object) -> None:
        if self.spec.overflow is Overflow.COALESCE:
            self._forget_waiting(message)
        self._depth_gauge.set(self.depth)

    def _forget_waiting(self, message: object) -> None:
        try:
            count = self._waiting.get(message, 0)
        except TypeError:
            return
        if count > 1:
            self._waiting[message] = count - 1
        elif count == 1:
            del self._waiting[message]
