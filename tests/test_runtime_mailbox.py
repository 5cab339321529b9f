"""Tests of the bounded mailbox and its overflow policies."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
import trio
import trio.testing
from prometheus_client import REGISTRY

from tentorium_hub.errors import MailboxFull
from tentorium_hub.runtime import Mailbox, MailboxClosed, MailboxSpec, Overflow

_owner_numbers = itertools.count()


@dataclass(frozen=True)
class Wake:
    reason: str = "timer"


def new_owner() -> str:
    """Return a fresh owner name so that metric labels do not leak between tests."""
    return f"test-mailbox-{next(_owner_numbers)}"


def sample(metric: str, owner: str) -> float:
    return REGISTRY.get_sample_value(metric, {"actor": owner}) or 0.0


async def test_mailbox_wait_times_out_when_full(autojump_clock: trio.abc.Clock) -> None:
    owner = new_owner()
    mailbox = Mailbox(owner, MailboxSpec(1, Overflow.WAIT, send_timeout_s=2.0))
    await mailbox.send("first")
    started_at = trio.current_time()

    with pytest.raises(MailboxFull):
        await mailbox.send("second")

    assert trio.current_time() - started_at >= 2.0
    assert mailbox.depth == 1
    assert sample("hub_mailbox_rejected_total", owner) == 1.0


async def test_mailbox_wait_delivers_when_room_frees(autojump_clock: trio.abc.Clock) -> None:
    mailbox = Mailbox(new_owner(), MailboxSpec(1, Overflow.WAIT, send_timeout_s=5.0))
    await mailbox.send("first")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(mailbox.send, "second")
        await trio.sleep(1.0)
        assert await mailbox.receive() == "first"

    assert await mailbox.receive() == "second"


async def test_mailbox_reject_raises_when_full() -> None:
    owner = new_owner()
    mailbox = Mailbox(owner, MailboxSpec(2, Overflow.REJECT))
    await mailbox.send("a")
    await mailbox.send("b")

    with pytest.raises(MailboxFull):
        await mailbox.send("c")

    assert mailbox.depth == 2
    assert sample("hub_mailbox_rejected_total", owner) == 1.0


@pytest.mark.parametrize("overflow", list(Overflow), ids=str)
async def test_mailbox_send_nowait_raises_when_full(overflow: Overflow) -> None:
    mailbox = Mailbox(new_owner(), MailboxSpec(1, overflow))
    mailbox.send_nowait(Wake("a"))

    with pytest.raises(MailboxFull):
        mailbox.send_nowait(Wake("b"))


async def test_mailbox_coalesce_drops_equal_message() -> None:
    owner = new_owner()
    mailbox = Mailbox(owner, MailboxSpec(4, Overflow.COALESCE))

    await mailbox.send(Wake())
    await mailbox.send(Wake())
    mailbox.send_nowait(Wake())

    assert mailbox.depth == 1
    assert sample("hub_mailbox_coalesced_total", owner) == 2.0


async def test_mailbox_coalesce_keeps_different_messages() -> None:
    mailbox = Mailbox(new_owner(), MailboxSpec(4, Overflow.COALESCE))

    await mailbox.send(Wake("timer"))
    await mailbox.send(Wake("order"))

    assert mailbox.depth == 2


async def test_mailbox_coalesce_queues_after_receive() -> None:
    mailbox = Mailbox(new_owner(), MailboxSpec(4, Overflow.COALESCE))
    await mailbox.send(Wake())
    await mailbox.receive()

    await mailbox.send(Wake())

    assert mailbox.depth == 1


async def test_mailbox_coalesce_full_rejects_different() -> None:
    owner = new_owner()
    mailbox = Mailbox(owner, MailboxSpec(1, Overflow.COALESCE))
    await mailbox.send(Wake("timer"))

    with pytest.raises(MailboxFull):
        await mailbox.send(Wake("order"))

    assert sample("hub_mailbox_rejected_total", owner) == 1.0


async def test_mailbox_coalesce_full_drops_duplicate() -> None:
    mailbox = Mailbox(new_owner(), MailboxSpec(1, Overflow.COALESCE))
    await mailbox.send(Wake())

    await mailbox.send(Wake())

    assert mailbox.depth == 1


async def test_mailbox_coalesce_queues_unhashable() -> None:
    mailbox = Mailbox(new_owner(), MailboxSpec(4, Overflow.COALESCE))

    await mailbox.send(["same"])
    await mailbox.send(["same"])

    assert mailbox.depth == 2
    assert await mailbox.receive() == ["same"]


async def test_mailbox_depth_metric_follows() -> None:
    owner = new_owner()
    mailbox = Mailbox(owner, MailboxSpec(5, Overflow.REJECT))
    assert sample("hub_mailbox_capacity", owner) == 5.0
    assert sample("hub_mailbox_depth", owner) == 0.0

    await mailbox.send("a")
    await mailbox.send("b")
    assert sample("hub_mailbox_depth", owner) == 2.0

    await mailbox.receive()
    assert sample("hub_mailbox_depth", owner) == 1.0


async def test_mailbox_close_then_drain() -> None:
    mailbox = Mailbox(new_owner(), MailboxSpec(5, Overflow.WAIT))
    await mailbox.send("a")
    await mailbox.send("b")

    mailbox.close()
    received = [message async for message in mailbox]

    assert received == ["a", "b"]
    with pytest.raises(trio.EndOfChannel):
        await mailbox.receive()


async def test_mailbox_send_after_close_raises() -> None:
    mailbox = Mailbox(new_owner(), MailboxSpec(5, Overflow.REJECT))
    mailbox.close()

    with pytest.raises(MailboxClosed):
        await mailbox.send("late")
    with pytest.raises(MailboxClosed):
        mailbox.send_nowait("late")
    assert mailbox.closed


async def test_mailbox_close_wakes_blocked_sender(autojump_clock: trio.abc.Clock) -> None:
    mailbox = Mailbox(new_owner(), MailboxSpec(1, Overflow.WAIT, send_timeout_s=60.0))
    await mailbox.send("first")
    errors: list[Exception] = []

    async def send_blocked() -> None:
        try:
            await mailbox.send("second")
        except MailboxFull as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_blocked)
        await trio.testing.wait_all_tasks_blocked()
        mailbox.close()

    assert len(errors) == 1
    assert isinstance(errors[0], MailboxClosed)


async def test_mailbox_receive_waits_for_send() -> None:
    mailbox = Mailbox(new_owner(), MailboxSpec(1, Overflow.REJECT))
    received: list[object] = []

    async def receive_one() -> None:
        received.append(await mailbox.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive_one)
        await trio.testing.wait_all_tasks_blocked()
        await mailbox.send("hello")

    assert received == ["hello"]
    assert mailbox.depth == 0


@pytest.mark.parametrize(
    "capacity",
    [pytest.param(0, id="zero"), pytest.param(-1, id="negative"), pytest.param(1.5, id="float")],
)
def test_mailbox_spec_rejects_bad_capacity(capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        MailboxSpec(capacity, Overflow.WAIT)


def test_mailbox_spec_rejects_unknown_overflow() -> None:
    with pytest.raises(ValueError, match="drop"):
        MailboxSpec(1, "drop")  # type: ignore[arg-type]


def test_mailbox_spec_rejects_negative_timeout() -> None:
    with pytest.raises(ValueError, match="send_timeout_s"):
        MailboxSpec(1, Overflow.WAIT, send_timeout_s=-1.0)
