"""The stock actor: answers availability questions for the shop from stored stock."""

from __future__ import annotations

from actors.messages import Availability
from tentorium_hub.runtime import Actor, MailboxSpec, Overflow
from tentorium_hub.storage import Database
from tentorium_hub.storage import stock as stock_db

# Availability questions come from API requests that wait for the answer; a full mailbox
# means the database is slow, and rejecting fast lets the API answer 503 at once.
STOCK_MAILBOX = MailboxSpec(capacity=500, overflow=Overflow.REJECT)


class StockActor(Actor):
    mailbox_spec = STOCK_MAILBOX

    def __init__(self, db: Database) -> None:
        super().__init__("stock")
        self._db = db

    async def handle(self, message: object) -> dict[str, dict[str, object]] | None:
        if isinstance(message, Availability):
            return await self._db.run(
                stock_db.availability_by_warehouse, message.branch, list(message.offer_ids)
            )
        self.log.warning("actor.unknown_message", message_type=type(message).__name__)
        return None
