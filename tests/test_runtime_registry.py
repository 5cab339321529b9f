"""Tests of the actor registry: tell, ask, dead letters, and the actor's ask handling."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio
import trio.testing
from prometheus_client import REGISTRY

from tentorium_hub.errors import ActorNotFound, AskTimeout, MailboxFull
from tentorium_hub.runtime import Actor, Envelope, MailboxSpec, Overflow, Registry, Reply

_name_numbers = itertools.count()


def new_name() -> str:
    """Return a fresh actor name so that metric labels do not leak between tests."""
    return f"test-registry-{next(_name_numbers)}"


def dead_letters(name: str) -> float:
    return REGISTRY.get_sample_value("hub_dead_letters_total", {"actor": name}) or 0.0


@dataclass(frozen=True)
class Fail:
    reason: str


@dataclass(frozen=True)
class Hang:
    pass


class EchoActor(Actor):
    """Records messages, replies ("echo", message) to asks, raises on Fail."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.handled: list[object] = []

    async def handle(self, message: object) -> object | None:
        if isinstance(message, Fail):
            raise ValueError(message.reason)
        if isinstance(message, Hang):
            await trio.sleep_forever()
        self.handled.append(message)
        return ("echo", message)


class PollingActor(Actor):
    """Overrides run() like a branch poller: polls on timeout, replies to asks in between."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.polls = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                envelope = await self.receive_envelope(timeout_s=10.0)
            except trio.EndOfChannel:
                return
            if envelope is None:
                self.polls += 1
            else:
                envelope.reply(("polls", self.polls, envelope.message))


class TellOnlyActor(Actor):
    """Overrides run() with receive(), which takes only messages sent with tell."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.received: list[object | None] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                self.received.append(await self.receive(timeout_s=5.0))
            except trio.EndOfChannel:
                return


async def run_capturing(
    actor: Actor,
    errors: list[Exception],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run `actor` and store its crash instead of failing the test's nursery."""
    try:
        await actor.run(task_status=task_status)
    except Exception as exc:
        errors.append(exc)


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
async def echo(registry: Registry) -> AsyncIterator[EchoActor]:
    actor = EchoActor(new_name())
    registry.register(actor.name, actor)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        yield actor
        actor.mailbox.close()


async def test_registry_tell_delivers(registry: Registry, echo: EchoActor) -> None:
    delivered = await registry.tell(echo.name, "hello")
    await trio.testing.wait_all_tasks_blocked()

    assert delivered is True
    assert echo.handled == ["hello"]


async def test_registry_tell_nowait_delivers(registry: Registry, echo: EchoActor) -> None:
    delivered = registry.tell_nowait(echo.name, "hello")
    await trio.testing.wait_all_tasks_blocked()

    assert delivered is True
    assert echo.handled == ["hello"]


async def test_registry_ask_returns_reply(registry: Registry, echo: EchoActor) -> None:
    reply = await registry.ask(echo.name, "ping")

    assert reply == ("echo", "ping")


async def test_registry_ask_times_out(registry: Registry, autojump_clock: trio.abc.Clock) -> None:
    actor = EchoActor(new_name())
    registry.register(actor.name, actor)

    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        with pytest.raises(AskTimeout, match=actor.name):
            await registry.ask(actor.name, Hang(), timeout_s=3.0)
        nursery.cancel_scope.cancel()


async def test_registry_ask_missing_actor_raises(registry: Registry) -> None:
    name = new_name()
    before = dead_letters(name)

    with pytest.raises(ActorNotFound, match=name):
        await registry.ask(name, "ping")

    assert dead_letters(name) == before + 1


async def test_registry_tell_missing_actor_dead_letter(registry: Registry) -> None:
    name = new_name()
    before = dead_letters(name)

    delivered = await registry.tell(name, "hello")
    delivered_nowait = registry.tell_nowait(name, "hello")

    assert delivered is False
    assert delivered_nowait is False
    assert dead_letters(name) == before + 2


async def test_registry_tell_closed_mailbox_dead_letter(registry: Registry) -> None:
    actor = EchoActor(new_name())
    registry.register(actor.name, actor)
    actor.mailbox.close()
    before = dead_letters(actor.name)

    delivered = await registry.tell(actor.name, "late")

    assert delivered is False
    assert dead_letters(actor.name) == before + 1


async def test_registry_ask_closed_mailbox_raises(registry: Registry) -> None:
    actor = EchoActor(new_name())
    registry.register(actor.name, actor)
    actor.mailbox.close()

    with pytest.raises(ActorNotFound, match="stopping"):
        await registry.ask(actor.name, "late")


async def test_registry_tell_full_mailbox_raises(registry: Registry) -> None:
    class SmallActor(EchoActor):
        mailbox_spec = MailboxSpec(1, Overflow.REJECT)

    actor = SmallActor(new_name())
    registry.register(actor.name, actor)
    await registry.tell(actor.name, "first")

    with pytest.raises(MailboxFull):
        registry.tell_nowait(actor.name, "second")


async def test_registry_handler_exception_reaches_asker(registry: Registry) -> None:
    actor = EchoActor(new_name())
    registry.register(actor.name, actor)
    crashes: list[Exception] = []

    async with trio.open_nursery() as nursery:
        await nursery.start(run_capturing, actor, crashes)
        with pytest.raises(ValueError, match="bad input"):
            await registry.ask(actor.name, Fail("bad input"))

    assert len(crashes) == 1
    assert isinstance(crashes[0], ValueError)


async def test_registry_crash_fails_queued_asks(registry: Registry) -> None:
    actor = EchoActor(new_name())
    registry.register(actor.name, actor)
    await actor.mailbox.send(Fail("first message crashes"))
    outcomes: list[BaseException] = []

    async def ask_queued() -> None:
        try:
            await registry.ask(actor.name, "queued")
        except ActorNotFound as exc:
            outcomes.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask_queued)
        await trio.testing.wait_all_tasks_blocked()
        await nursery.start(run_capturing, actor, [])

    assert len(outcomes) == 1
    assert "stopped before replying" in str(outcomes[0])


def test_registry_register_duplicate_raises(registry: Registry) -> None:
    name = new_name()
    registry.register(name, EchoActor(name))

    with pytest.raises(ValueError, match=name):
        registry.register(name, EchoActor(name))


def test_registry_unregister_keeps_successor(registry: Registry) -> None:
    name = new_name()
    crashed = EchoActor(name)
    successor = EchoActor(name)
    registry.register(name, crashed)
    registry.unregister(name)
    registry.register(name, successor)

    registry.unregister(name, crashed)

    assert registry.lookup(name) is successor
    assert registry.names() == [name]


def test_registry_unregister_unknown_ignored(registry: Registry) -> None:
    registry.unregister("nobody")

    assert registry.names() == []


async def test_actor_receive_envelope_answers_ask(
    registry: Registry, autojump_clock: trio.abc.Clock
) -> None:
    actor = PollingActor(new_name())
    registry.register(actor.name, actor)

    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await trio.sleep(25.0)
        reply = await registry.ask(actor.name, "status")
        actor.mailbox.close()

    assert reply == ("polls", 2, "status")


async def test_actor_receive_returns_none_on_timeout(autojump_clock: trio.abc.Clock) -> None:
    actor = TellOnlyActor(new_name())

    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await trio.sleep(6.0)
        await actor.mailbox.send("hello")
        await trio.testing.wait_all_tasks_blocked()
        actor.mailbox.close()

    assert actor.received == [None, "hello"]


async def test_actor_receive_rejects_ask(registry: Registry) -> None:
    actor = TellOnlyActor(new_name())
    registry.register(actor.name, actor)

    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        with pytest.raises(RuntimeError, match="receive_envelope"):
            await registry.ask(actor.name, "status")
        actor.mailbox.close()

    assert actor.received == []


async def test_envelope_second_reply_raises() -> None:
    reply_send, reply_receive = trio.open_memory_channel[Reply](1)
    envelope = Envelope("question", reply_send)
    envelope.reply("answer")

    with pytest.raises(RuntimeError, match="already has a reply"):
        envelope.reply("another answer")
    assert reply_receive.receive_nowait().unwrap() == "answer"


async def test_envelope_reply_to_tell_ignored() -> None:
    Envelope("told").reply("nobody listens")
