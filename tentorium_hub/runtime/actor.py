"""Actors: a mailbox, a message loop and request/reply, run under a `Supervisor`.

Messages. A *tell* puts the bare message into the actor's mailbox. An *ask* puts an
`Envelope` whose `reply_to` is a one-slot memory channel, and the asker waits on the other
end. The actor wraps bare messages into envelopes without `reply_to`, so its loop handles
only envelopes, and `Envelope.reply()` on a tell does nothing.

Let it crash. When `handle()` raises while it handles an ask, the asker gets that exception
at once (re-raised from `ask`) and the actor crashes too, as in Erlang/OTP: a failed handler
may have left the actor's memory inconsistent, and its supervisor rebuilds it from durable
state. The asker does not wait for its timeout. A tell whose handler raises crashes the actor
in the same way.

Actors with a periodic duty (branch pollers) override `run()` and poll their mailbox with a
timeout. `dispatch()` replies to asks the same way the default loop does. In this sketch
a crash skips `on_stop()`; wrap the loop as the default `run()` does if cleanup matters::

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
        await self.on_start()
        task_status.started()
        while True:
            try:
                envelope = await self.receive_envelope(timeout_s=self.poll_interval_s)
            except trio.EndOfChannel:
                break  # mailbox closed: graceful stop
            if envelope is None:
                await self.poll()
            else:
                await self.dispatch(envelope)
        await self.on_stop()

`receive(timeout_s)` is the simpler variant for actors that take only tells. It returns the
bare message, and it replies to an ask that reaches it with a RuntimeError instead of letting
the asker wait.

The default `run()` calls `on_stop()` after a graceful stop and after a crash. It does not
call it when the actor is cancelled (its stop deadline passed, or an enclosing cancel scope
was cancelled), because cancelled code cannot await. Put cleanup that must always happen in
a synchronous `finally`. Nor is `on_stop()` called when `on_start()` raised, because the
actor never started.

When a supervised actor exits for any reason, and when the default `run()` returns or raises,
`discard_pending()` closes the mailbox and drops what is still queued. Each dropped message
counts as a dead letter, and each dropped ask gets an ActorNotFound reply. A mailbox message
is a command or a wake-up, never the only copy of data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import trio

from tentorium_hub import metrics
from tentorium_hub.errors import ActorNotFound, AskTimeout
from tentorium_hub.logs import get_logger
from tentorium_hub.runtime.mailbox import Mailbox, MailboxSpec, Overflow

__all__ = ["Actor", "Envelope", "Reply"]


@dataclass(frozen=True)
class Reply:
    """The outcome of one ask: a value, or the exception the handler raised."""

    value: object = None
    error: Exception | None = None

    def unwrap(self) -> object:
        """Return the value, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.value


@dataclass(frozen=True)
class Envelope:
    """A message in an actor's mailbox; `reply_to` is set for an ask and None for a tell."""

    message: object
    reply_to: trio.MemorySendChannel[Reply] | None = None

    def reply(self, value: object) -> None:
        """Send `value` to the asker. Does nothing for a tell.

        Each ask takes one reply; a second one raises RuntimeError. A reply to an asker that
        already gave up (timed out or was cancelled) is dropped.
        """
        self._deliver(Reply(value=value))

    def reply_error(self, error: Exception) -> None:
        """Make the asker's `ask` raise `error`. Does nothing for a tell."""
        self._deliver(Reply(error=error))

    def _deliver(self, reply: Reply) -> None:
        if self.reply_to is None:
            return
        try:
            self.reply_to.send_nowait(reply)
        except trio.BrokenResourceError:
            return
        except trio.ClosedResourceError:
            raise RuntimeError("this ask already has a reply") from None
        self.reply_to.close()


def _as_envelope(item: object) -> Envelope:
    """Wrap a message sent with tell into an Envelope; pass envelopes through."""
    return item if isinstance(item, Envelope) else Envelope(item)


class Actor:
    """An actor with a bounded mailbox; subclasses implement `handle()` or override `run()`."""

    # WAIT with room for 100: senders slow down under load instead of losing commands, and a
    # stuck actor shows up as MailboxFull after one second instead of as unbounded memory.
    mailbox_spec: ClassVar[MailboxSpec] = MailboxSpec(100, Overflow.WAIT)

    def __init__(self, name: str) -> None:
        self.name = name
        self.mailbox = Mailbox(name, self.mailbox_spec)
        self.log = get_logger(__name__, actor=name)

    async def on_start(self) -> None:
        """Prepare the actor before it takes messages; raising here fails the start."""

    async def on_stop(self) -> None:
        """Clean up after a graceful stop or a crash (not after cancellation)."""

    async def handle(self, message: object) -> object | None:
        """Process one message; the return value is the reply to an ask."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement handle() or override run()"
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start, then handle messages until the mailbox is closed and drained.

        A handler exception ends the run (a crash) after `on_stop()`; the supervisor decides
        whether to restart.
        """
        try:
            await self.on_start()
            task_status.started()
            await self._serve()
        finally:
            self.discard_pending()

    async def _serve(self) -> None:
        try:
            async for item in self.mailbox:
                await self.dispatch(_as_envelope(item))
        except Exception:
            await self._stop_after_crash()
            raise
        await self.on_stop()

    async def _stop_after_crash(self) -> None:
        try:
            await self.on_stop()
        except Exception:
            # The crash that brought us here is the error worth raising.
            self.log.exception("actor.on_stop_failed")

    async def dispatch(self, envelope: Envelope) -> None:
        """Run `handle()` on the envelope's message and send the result to its asker.

        If `handle()` raises, the asker receives the exception and dispatch re-raises it.
        If the actor is cancelled meanwhile, the asker gets ActorNotFound.
        """
        try:
            result = await self.handle(envelope.message)
        except Exception as exc:
            envelope.reply_error(exc)
            raise
        except BaseException:
            envelope.reply_error(self._stopped_error())
            raise
        envelope.reply(result)

    async def receive_envelope(self, timeout_s: float | None = None) -> Envelope | None:
        """Wait for the next message as an Envelope; None when `timeout_s` passes first.

        `timeout_s=None` waits without limit. Raises trio.EndOfChannel once the mailbox is
        closed and drained, which is the signal to stop.
        """
        if timeout_s is None:
            return _as_envelope(await self.mailbox.receive())

        with trio.move_on_after(timeout_s):
            return _as_envelope(await self.mailbox.receive())
        return None

    async def receive(self, timeout_s: float | None = None) -> object | None:
        """Wait for the next message sent with tell; None when `timeout_s` passes first.

        An ask that arrives here gets a RuntimeError reply and is skipped, because this
        method returns no handle to reply with. Raises trio.EndOfChannel once the mailbox
        is closed and drained.
        """
        deadline = trio.current_time() + timeout_s if timeout_s is not None else float("inf")
        with trio.move_on_at(deadline):
            while True:
                envelope = _as_envelope(await self.mailbox.receive())
                if envelope.reply_to is None:
                    return envelope.message
                self._reject_ask(envelope)
        return None

    def _reject_ask(self, envelope: Envelope) -> None:
        self.log.warning("actor.ask_rejected", message_type=type(envelope.message).__name__)
        envelope.reply_error(
            RuntimeError(
                f"actor {self.name!r} reads its mailbox with receive(), which cannot reply "
                "to an ask; send this message with tell, or read with receive_envelope()"
            )
        )

    async def ask(self, message: object, *, timeout_s: float = 5.0) -> object:
        """Send `message` and return the handler's reply.

        Raises AskTimeout after `timeout_s`, the handler's exception if it raised,
        ActorNotFound if the actor stopped before replying, and MailboxFull (or
        MailboxClosed) when the mailbox does not take the message.
        """
        reply_send, reply_receive = trio.open_memory_channel[Reply](1)
        with reply_receive, trio.move_on_after(timeout_s):
            await self.mailbox.send(Envelope(message, reply_send))
            try:
                reply = await reply_receive.receive()
            except trio.EndOfChannel:
                raise self._stopped_error() from None
            return reply.unwrap()

        raise AskTimeout(
            f"actor {self.name!r} did not reply to {type(message).__name__} within {timeout_s}s"
        )

    def discard_pending(self) -> int:
        """Close the mailbox and drop the queued messages; return how many were dropped.

        Each dropped message counts as a dead letter, and each dropped ask gets an ActorNotFound
        reply. Safe to call more than once and from a cancelled task.
        """
        self.mailbox.close()
        dropped = 0
        while True:
            try:
                item = self.mailbox.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            _as_envelope(item).reply_error(self._stopped_error())
            dropped += 1

        if dropped:
            metrics.DEAD_LETTERS.labels(self.name).inc(dropped)
            self.log.warning("actor.messages_dropped", count=dropped)
        return dropped

    def _stopped_error(self) -> ActorNotFound:
        return ActorNotFound(f"actor {self.name!r} stopped before replying")
