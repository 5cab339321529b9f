"""What keeps an idle OData poll cheap, and what must stay true while it does.

An idle poll skips decoding a catalog read whose bytes match the last stored read, makes one
database read for order statuses and due deliveries, and writes a success to branch_health
at most every `HEALTH_WRITE_INTERVAL_S`. A failure still stores the latest success.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
from prometheus_client import REGISTRY

from actors.branch import HEALTH_WRITE_INTERVAL_S, ODataBranchActor
from connectors.emulator.odata_server import ODataBranchEmulator
from connectors.odata.changes import CatalogTracker
from connectors.odata.models import RowReader
from tentorium_hub.branches import new_branch
from tentorium_hub.runtime import Registry
from tentorium_hub.storage import Database
from tentorium_hub.storage import branches as branches_db
from tentorium_hub.storage import outbox as outbox_db

from conftest import node_settings
from hubtest import wait_until
from odata_helpers import PASSWORD, TIME_ZONE, USERNAME, open_client, serve_emulator

NODE = "node-poll"
OTHER_NODE = "node-other"
STATUS_LIMIT = 200
DEADLINE_S = 20.0
CATALOG_ENTITY = "Catalog_Номенклатура"
ALERT_RULES = Path(__file__).resolve().parents[1] / "config" / "prometheus-alerts.yml"


# --- reading the catalog -------------------------------------------------------------------


async def test_read_catalog_same_digest_skips_decoding(nursery: trio.Nursery) -> None:
    emulator = await serve_emulator(nursery, "RC1")
    async with open_client(emulator) as client:
        first = await client.read_catalog()
        second = await client.read_catalog(unchanged_digest=first.digest)

    assert first.rows is not None
    assert second.rows is None
    assert second.digest == first.digest
    assert second.product_count == len(emulator.data.catalog)


async def test_read_catalog_changed_stock_decodes_rows(nursery: trio.Nursery) -> None:
    emulator = await serve_emulator(nursery, "RC2")
    async with open_client(emulator) as client:
        first = await client.read_catalog()
        key = next(iter(emulator.data.stock))
        emulator.data.stock[key]["ВНаличии"] += 7
        second = await client.read_catalog(unchanged_digest=first.digest)

    assert second.rows is not None
    assert second.digest != first.digest


async def test_read_catalog_rows_match_fetches(nursery: trio.Nursery) -> None:
    emulator = await serve_emulator(nursery, "RC3")
    async with open_client(emulator) as client:
        read = await client.read_catalog()
        products = await client.fetch_products()
        prices = await client.fetch_prices()
        stock = await client.fetch_stock()

    assert read.rows is not None
    assert read.rows.products == products
    assert read.rows.prices == prices
    assert read.rows.stock == stock


def test_tracker_commit_keeps_digest() -> None:
    tracker = CatalogTracker()

    tracker.commit(tracker.delta([], [], [], digest=b"read-1"))

    assert tracker.digest == b"read-1"


def test_tracker_reset_forgets_digest() -> None:
    tracker = CatalogTracker()
    tracker.commit(tracker.delta([], [], [], digest=b"read-1"))

    tracker.reset()

    assert tracker.digest is None


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        pytest.param(
            "0d4e3b52-6a0f-11ef-8b3c-005056a7c1f2",
            "0d4e3b52-6a0f-11ef-8b3c-005056a7c1f2",
            id="canonical",
        ),
        pytest.param(
            "0D4E3B52-6A0F-11EF-8B3C-005056A7C1F2",
            "0d4e3b52-6a0f-11ef-8b3c-005056a7c1f2",
            id="upper-case",
        ),
        pytest.param(
            "{0d4e3b52-6a0f-11ef-8b3c-005056a7c1f2}",
            "0d4e3b52-6a0f-11ef-8b3c-005056a7c1f2",
            id="braces",
        ),
    ],
)
def test_row_reader_ref_canonical_form(sent: str, expected: str) -> None:
    reader = RowReader({"Ref_Key": sent}, "product")

    assert reader.ref("Ref_Key") == expected


# --- one database read per idle poll -------------------------------------------------------


async def add_branch(db: Database, code: str) -> None:
    branch = new_branch(
        code=code,
        name=f"Филиал {code}",
        kind="odata",
        time_zone=TIME_ZONE,
        odata_url="http://127.0.0.1:9/odata/standard.odata/",
        odata_username=USERNAME,
        odata_password=PASSWORD,
    )
    await db.transaction(branches_db.insert_branch, branch)


async def add_order(db: Database, branch: str, number: str, status: str) -> uuid.UUID:
    order_id = uuid.uuid4()
    await db.run(
        lambda conn: conn.execute(
            """INSERT INTO orders (id, number, branch_code, idempotency_key, request_hash,
                                   status, currency, total, customer)
               VALUES ($1, $2, $3, $2, '\\x00', $4, 'RUB', $5, '{}')""",
            order_id,
            number,
            branch,
            status,
            Decimal("100.00"),
        )
    )
    return order_id


async def add_outbox_row(db: Database, branch: str, order_id: uuid.UUID, **columns: Any) -> None:
    names = ["branch_code", "order_id", *columns]
    placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    sql = f"INSERT INTO outbox ({', '.join(names)}) VALUES ({placeholders})"
    await db.run(lambda conn: conn.execute(sql, branch, order_id, *columns.values()))


async def read_state(db: Database, branch: str) -> outbox_db.PollState:
    return await db.run(outbox_db.read_poll_state, branch, NODE, STATUS_LIMIT)


async def test_poll_state_idle_branch(db: Database) -> None:
    await add_branch(db, "PS1")

    state = await read_state(db, "PS1")

    assert state.awaiting == []
    assert state.deliveries_due is False


async def test_poll_state_pending_row_is_due(db: Database) -> None:
    await add_branch(db, "PS2")
    order_id = await add_order(db, "PS2", "WEB-PS2-1", "accepted")
    await add_outbox_row(db, "PS2", order_id)

    state = await read_state(db, "PS2")

    assert state.deliveries_due is True


@pytest.mark.parametrize(
    "columns",
    [
        pytest.param({"next_attempt_at": datetime.now(UTC) + timedelta(hours=1)}, id="later"),
        pytest.param(
            {"claimed_by": OTHER_NODE, "claimed_until": datetime.now(UTC) + timedelta(hours=1)},
            id="claimed-elsewhere",
        ),
        pytest.param({"state": "delivered"}, id="delivered"),
    ],
)
async def test_poll_state_unclaimable_row_not_due(db: Database, columns: dict[str, Any]) -> None:
    await add_branch(db, "PS3")
    order_id = await add_order(db, "PS3", "WEB-PS3-1", "accepted")
    await add_outbox_row(db, "PS3", order_id, **columns)

    state = await read_state(db, "PS3")

    assert state.deliveries_due is False


async def test_poll_state_own_claim_is_due(db: Database) -> None:
    await add_branch(db, "PS4")
    order_id = await add_order(db, "PS4", "WEB-PS4-1", "accepted")
    later = datetime.now(UTC) + timedelta(hours=1)
    await add_outbox_row(db, "PS4", order_id, claimed_by=NODE, claimed_until=later)

    state = await read_state(db, "PS4")

    assert state.deliveries_due is True


async def test_poll_state_lists_delivered_orders(db: Database) -> None:
    await add_branch(db, "PS5")
    delivered = await add_order(db, "PS5", "WEB-PS5-1", "delivered")
    await add_order(db, "PS5", "WEB-PS5-2", "accepted")
    paid = await add_order(db, "PS5", "WEB-PS5-3", "paid")

    state = await read_state(db, "PS5")

    assert [order.order_id for order in state.awaiting] == [delivered, paid]
    assert [order.number for order in state.awaiting] == ["WEB-PS5-1", "WEB-PS5-3"]
    assert all(order.created_at.tzinfo is not None for order in state.awaiting)


async def test_poll_state_matches_orders_awaiting_status(db: Database) -> None:
    await add_branch(db, "PS6")
    for index, status in enumerate(["delivered", "confirmed", "cancelled", "paid"]):
        await add_order(db, "PS6", f"WEB-PS6-{index}", status)

    state = await read_state(db, "PS6")
    expected = await db.run(outbox_db.orders_awaiting_status, "PS6", STATUS_LIMIT)

    assert [(order.order_id, order.number) for order in state.awaiting] == expected


# --- branch health written at most every few minutes ----------------------------------------


async def health_row(db: Database, branch: str) -> dict[str, Any]:
    row = await db.run(
        lambda conn: conn.fetchrow(
            """SELECT last_success_at, consecutive_failures, last_error
                 FROM branch_health WHERE branch_code = $1""",
            branch,
        )
    )
    return dict(row)


async def test_record_failure_moves_success_forward(db: Database) -> None:
    await add_branch(db, "RF1")
    stored = await db.run(branches_db.record_success, "RF1")
    later = stored + timedelta(minutes=3)

    await db.run(branches_db.record_failure, "RF1", "HTTP 503", succeeded_at=later)

    assert (await health_row(db, "RF1"))["last_success_at"] == later


async def test_record_failure_keeps_newer_success(db: Database) -> None:
    await add_branch(db, "RF2")
    stored = await db.run(branches_db.record_success, "RF2")

    await db.run(
        branches_db.record_failure, "RF2", "HTTP 503", succeeded_at=stored - timedelta(hours=1)
    )

    assert (await health_row(db, "RF2"))["last_success_at"] == stored


async def test_record_failure_without_success_keeps_it(db: Database) -> None:
    await add_branch(db, "RF3")
    stored = await db.run(branches_db.record_success, "RF3")

    count = await db.run(branches_db.record_failure, "RF3", "HTTP 503")

    row = await health_row(db, "RF3")
    assert row["last_success_at"] == stored
    assert row["consecutive_failures"] == 1
    assert count == 1


@dataclass
class RunningActor:
    db: Database
    emulator: ODataBranchEmulator
    code: str

    async def health(self) -> dict[str, Any]:
        return await health_row(self.db, self.code)

    def success_gauge(self) -> float | None:
        return REGISTRY.get_sample_value(
            "hub_branch_last_success_timestamp_seconds", {"branch": self.code}
        )

    async def wait_polls(self, polls: int) -> None:
        """Wait until `polls` more catalog reads began, so every poll before them finished."""
        target = self.emulator.requests[CATALOG_ENTITY] + polls

        async def polled() -> bool:
            return self.emulator.requests[CATALOG_ENTITY] >= target

        await wait_for(polled)


async def wait_for(predicate: Callable[[], Awaitable[bool]]) -> None:
    await wait_until(predicate, timeout_s=DEADLINE_S, interval_s=0.05)


async def start_actor(
    db: Database, database_url: str, tmp_path: Path, nursery: trio.Nursery, code: str
) -> RunningActor:
    emulator = await serve_emulator(nursery, code)
    branch = new_branch(
        code=code,
        name=f"Филиал {code}",
        kind="odata",
        time_zone=TIME_ZONE,
        odata_url=emulator.base_url,
        odata_username=USERNAME,
        odata_password=PASSWORD,
    )
    await db.transaction(branches_db.insert_branch, branch)
    # Short retries and a circuit that stays closed, so a failure is recorded at once.
    settings = node_settings(
        database_url,
        tmp_path / "data",
        poll_interval_s=0.2,
        odata_timeout_s=2.0,
        circuit_failure_threshold=50,
    )
    actor = ODataBranchActor(branch, db, settings, Registry(), NODE)
    await nursery.start(actor.run)
    running = RunningActor(db, emulator, code)

    async def succeeded() -> bool:
        return (await running.health())["last_success_at"] is not None

    await wait_for(succeeded)
    return running


def stale_alert_threshold_s() -> float:
    """Read the seconds without a success after which HubBranchStale fires."""
    lines = ALERT_RULES.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- alert: HubBranchStale")
    expr = next(line for line in lines[start:] if line.strip().startswith("expr:"))
    return float(expr.rpartition(">")[2])


def test_health_write_interval_within_stale_alert() -> None:
    # A stored success may lag by the write interval, so it must stay a small part of the
    # alert's threshold.
    assert stale_alert_threshold_s() >= HEALTH_WRITE_INTERVAL_S * 4


async def test_actor_healthy_polls_write_success_once(
    db: Database, database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    running = await start_actor(db, database_url, tmp_path, nursery, "HW1")
    written = (await running.health())["last_success_at"]

    await running.wait_polls(3)

    gauge = running.success_gauge()
    assert (await running.health())["last_success_at"] == written
    assert gauge is not None
    assert gauge > written.timestamp()


async def test_actor_failure_stores_unwritten_success(
    db: Database, database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    running = await start_actor(db, database_url, tmp_path, nursery, "HW2")
    written = (await running.health())["last_success_at"]
    await running.wait_polls(3)

    running.emulator.faults.down = True

    async def failed() -> bool:
        return (await running.health())["consecutive_failures"] >= 1

    await wait_for(failed)
    stored = (await running.health())["last_success_at"]
    last_success = running.success_gauge()  # failures leave this gauge as it was
    assert stored > written
    assert last_success is not None
    assert stored.timestamp() == pytest.approx(last_success, abs=1e-3)


async def test_actor_recovery_clears_failures(
    db: Database, database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    running = await start_actor(db, database_url, tmp_path, nursery, "HW3")
    running.emulator.faults.down = True

    async def failed() -> bool:
        return (await running.health())["consecutive_failures"] >= 1

    await wait_for(failed)
    running.emulator.faults.down = False

    async def recovered() -> bool:
        return (await running.health())["consecutive_failures"] == 0

    await wait_for(recovered)
    assert (await running.health())["last_error"] is None
