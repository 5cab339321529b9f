"""Actor runtime: bounded mailboxes, actors with tell/ask, a name registry and supervisors."""

from tentorium_hub.runtime.actor import Actor, Envelope, Reply
from tentorium_hub.runtime.mailbox import Mailbox, MailboxClosed, MailboxSpec, Overflow
from tentorium_hub.runtime.registry import Registry
from tentorium_hub.runtime.supervisor import (
    ChildSpec,
    Restart,
    Runnable,
    Supervisor,
    SupervisorGaveUp,
)

__all__ = [
    "Actor",
    "ChildSpec",
    "Envelope",
    "Mailbox",
    "MailboxClosed",
    "MailboxSpec",
    "Overflow",
    "Registry",
    "Reply",
    "Restart",
    "Runnable",
    "Supervisor",
    "SupervisorGaveUp",
]
