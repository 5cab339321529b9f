"""The name → actor table that supervisors fill and senders use for tell and ask.

Names are stable across restarts (`branch:MSK01`, `orders`, `stock`, `notifications`), while
the Actor object behind a name is replaced on every restart, so senders look the actor up
for each message instead of keeping a reference.

A message to a name with no actor, or to an actor whose mailbox is already closed, is a dead
letter: it is counted in `hub_dead_letters_total` and logged as `actor.dead_letter`.
"""

from __future__ import annotations

from tentorium_hub import metrics
from tentorium_hub.errors import ActorNotFound
from tentorium_hub.logs import get_logger
from tentorium_hub.runtime.actor import Actor
from tentorium_hub.runtime.mailbox import MailboxClosed

__all__ = ["Registry"]


class Registry:
    """Actors by name, with tell and ask that count messages to missing actors."""

    def __init__(self) -> None:
        self._actors: dict[str, Actor] = {}
        self._log = get_logger(__name__)

    def register(self, name: str, actor: Actor) -> None:
        """Make `actor` reachable as `name`; raises ValueError if the name is taken."""
        if name in self._actors:
            raise ValueError(f"actor name {name!r} is already registered")
        self._actors[name] = actor

    def unregister(self, name: str, actor: Actor | None = None) -> None:
        """Remove `name`; with `actor`, only if that very actor is still registered.

        The identity check keeps a late clean-up of a crashed incarnation from removing its
        successor. An unknown name is ignored.
        """
        current = self._actors.get(name)
        if current is None:
            return
        if actor is not None and current is not actor:
            return
        del self._actors[name]

    def lookup(self, name: str) -> Actor | None:
        """Return the actor registered as `name`, or None."""
        return self._actors.get(name)

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._actors)

    async def tell(self, name: str, message: object) -> bool:
        """Send `message` to `name` under its mailbox policy; False for a dead letter.

        MailboxFull propagates when the mailbox rejects the message.
        """
        actor = self._actors.get(name)
        if actor is None:
            self._dead_letter(name, message)
            return False

        try:
            await actor.mailbox.send(message)
        except MailboxClosed:
            self._dead_letter(name, message)
            return False
        return True

    def tell_nowait(self, name: str, message: object) -> bool:
        """Like `tell` but never waits: a full mailbox raises MailboxFull under every policy."""
        actor = self._actors.get(name)
        if actor is None:
            self._dead_letter(name, message)
            return False

        try:
            actor.mailbox.send_nowait(message)
        except MailboxClosed:
            self._dead_letter(name, message)
            return False
        return True

    async def ask(self, name: str, message: object, *, timeout_s: float = 5.0) -> object:
        """Send `message` to `name` and return the reply.

        Raises ActorNotFound (counted as a dead letter) when no running actor has the name,
        AskTimeout after `timeout_s`, MailboxFull when the mailbox rejects the message, or
        the exception the actor's handler raised.
        """
        actor = self._actors.get(name)
        if actor is None:
            self._dead_letter(name, message)
            raise ActorNotFound(f"no actor is registered as {name!r}")

        try:
            return await actor.ask(message, timeout_s=timeout_s)
        except MailboxClosed:
            self._dead_letter(name, message)
            raise ActorNotFound(f"actor {name!r} is stopping and takes no messages") from None

    def _dead_letter(self, name: str, message: object) -> None:
        metrics.DEAD_LETTERS.labels(name).inc()
        self._log.warning("actor.dead_letter", actor=name, message_type=type(message).__name__)
