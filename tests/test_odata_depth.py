"""Per-branch entity names, incremental polling, conditional updates and the circuit breaker.

The connector runs against the OData emulator over loopback HTTP; the actor tests also use
a real PostgreSQL database.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import trio
from prometheus_client import REGISTRY

from actors.branch import ORDER_DATE_MARGIN, ODataBranchActor
from actors.messages import BranchControl, Wake
from connectors.emulator.odata_server import (
    ORDER_NUMBER_FIELD,
    UNF,
    UT_11_5,
    EmulatedConfiguration,
    FaultKind,
    ODataBranchEmulator,
)
from connectors.odata import ODataClient, ODataConfig, ODataConflictError
from connectors.odata.changes import CatalogTracker, OfferState, orders_watermark
from connectors.odata.errors import ODataProfileError, ODataResponseError
from connectors.odata.models import PriceRow, ProductRow, StockRow
from connectors.odata.profile import ODataProfile, Role, choose_profile, published_names
from tentorium_hub.branches import new_branch
from tentorium_hub.node import NodeContext
from tentorium_hub.runtime import Registry
from tentorium_hub.storage import Database
from tentorium_hub.storage import branches as branches_db

from conftest import node_settings
from hubtest import (
    add_odata_branch,
    first_priced_offer,
    order_status,
    place_order,
    start_emulator,
    wait_until,
)
from odata_helpers import (
    PASSWORD,
    TIME_ZONE,
    TZ,
    USERNAME,
    open_client,
    sample_order,
    serve_emulator,
)

PRODUCT_A = "b837edfc-c36d-11e6-aede-5404a6b4b8ed"
PRODUCT_B = "68c21ae9-cd73-11e6-aede-5404a6b4b8ed"
WAREHOUSE = "3aa3cd58-c109-11e6-a7a6-5404a6b4b8ed"
PRICE_TYPE = "f8c956eb-cdad-11e6-aede-5404a6b4b8ed"
DEADLINE_S = 20.0  # a bound for slow CI machines, not a measurement
# Values of the hub_branch_circuit_state gauge.
CIRCUIT_CLOSED = 0
CIRCUIT_OPEN = 2


# --- helpers -----------------------------------------------------------------------------


def product(ref: str, version: str | None = "AAAAAQAAAAA=", name: str = "Мёд") -> ProductRow:
    return ProductRow(ref, "00-01", name, None, False, None, False, data_version=version)


def price(product_id: str, amount: str) -> PriceRow:
    period = datetime(2025, 1, 1, tzinfo=UTC)
    return PriceRow(product_id, None, PRICE_TYPE, Decimal(amount), period)


def stock(product_id: str, quantity: str) -> StockRow:
    return StockRow(product_id, None, WAREHOUSE, Decimal(quantity))


async def serve(
    nursery: trio.Nursery,
    code: str = "dp1",
    *,
    configuration: EmulatedConfiguration | None = None,
    hidden: tuple[str, ...] = (),
) -> ODataBranchEmulator:
    options: dict[str, Any] = {"hidden": hidden}
    if configuration is not None:
        options["configuration"] = configuration
    return await serve_emulator(nursery, code, products=6, seed=3, **options)


@asynccontextmanager
async def open_probed_client(
    emulator: ODataBranchEmulator, **overrides: Any
) -> AsyncIterator[ODataClient]:
    """Open a client whose entity names come from the emulator's service document."""
    async with open_client(emulator, **overrides) as client:
        client.use_profile(await client.probe_profile())
        yield client


@pytest.fixture
async def emulator(nursery: trio.Nursery) -> ODataBranchEmulator:
    return await serve(nursery)


@pytest.fixture
async def client(emulator: ODataBranchEmulator) -> AsyncIterator[ODataClient]:
    async with open_probed_client(emulator) as probed:
        yield probed


# --- catalog tracker ---------------------------------------------------------------------


def test_tracker_first_delta_is_full() -> None:
    tracker = CatalogTracker()

    delta = tracker.delta([product(PRODUCT_A)], [price(PRODUCT_A, "10")], [])

    assert delta.full is True
    assert [row.ref_key for row in delta.products] == [PRODUCT_A]
    assert list(delta.offers) == [PRODUCT_A]


def test_tracker_unchanged_poll_is_empty() -> None:
    tracker = CatalogTracker()
    rows = ([product(PRODUCT_A)], [price(PRODUCT_A, "10")], [stock(PRODUCT_A, "3")])
    tracker.commit(tracker.delta(*rows))

    delta = tracker.delta(*rows)

    assert delta.empty is True
    assert delta.full is False


def test_tracker_changed_version_staged() -> None:
    tracker = CatalogTracker()
    tracker.commit(tracker.delta([product(PRODUCT_A), product(PRODUCT_B)], [], []))

    delta = tracker.delta(
        [product(PRODUCT_A, version="AAAAAgAAAAA=", name="Мёд липовый"), product(PRODUCT_B)],
        [],
        [],
    )

    assert delta.full is False
    assert [row.ref_key for row in delta.products] == [PRODUCT_A]


def test_tracker_new_product_staged() -> None:
    tracker = CatalogTracker()
    tracker.commit(tracker.delta([product(PRODUCT_A)], [], []))

    delta = tracker.delta([product(PRODUCT_A), product(PRODUCT_B)], [], [])

    assert [row.ref_key for row in delta.products] == [PRODUCT_B]


def test_tracker_missing_version_counts_as_changed() -> None:
    tracker = CatalogTracker()
    tracker.commit(tracker.delta([product(PRODUCT_A, version=None)], [], []))

    delta = tracker.delta([product(PRODUCT_A, version=None)], [], [])

    assert [row.ref_key for row in delta.products] == [PRODUCT_A]


def test_tracker_vanished_product_makes_full() -> None:
    tracker = CatalogTracker()
    tracker.commit(tracker.delta([product(PRODUCT_A), product(PRODUCT_B)], [], []))

    delta = tracker.delta([product(PRODUCT_A)], [], [])

    assert delta.full is True
    assert [row.ref_key for row in delta.products] == [PRODUCT_A]


def test_tracker_changed_price_stages_offer() -> None:
    tracker = CatalogTracker()
    tracker.commit(tracker.delta([], [price(PRODUCT_A, "10"), price(PRODUCT_B, "20")], []))

    delta = tracker.delta([], [price(PRODUCT_A, "11"), price(PRODUCT_B, "20")], [])

    assert list(delta.offers) == [PRODUCT_A]
    assert delta.offers[PRODUCT_A].prices == ((PRICE_TYPE, Decimal("11")),)


def test_tracker_vanished_offer_resets_stock() -> None:
    tracker = CatalogTracker()
    tracker.commit(tracker.delta([], [], [stock(PRODUCT_A, "5")]))

    delta = tracker.delta([], [], [])

    assert delta.offers == {PRODUCT_A: OfferState(PRODUCT_A, None)}


def test_tracker_without_commit_repeats_changes() -> None:
    tracker = CatalogTracker()
    tracker.commit(tracker.delta([product(PRODUCT_A)], [], []))
    changed = [product(PRODUCT_A, version="AAAAAgAAAAA=")]

    tracker.delta(changed, [], [])
    delta = tracker.delta(changed, [], [])

    assert [row.ref_key for row in delta.products] == [PRODUCT_A]


def test_tracker_reset_makes_full() -> None:
    tracker = CatalogTracker()
    tracker.commit(tracker.delta([product(PRODUCT_A)], [], []))

    tracker.reset()
    delta = tracker.delta([product(PRODUCT_A)], [], [])

    assert delta.full is True
    assert tracker.primed is False


def test_orders_watermark_subtracts_margin() -> None:
    first = datetime(2025, 3, 10, 4, 0, tzinfo=UTC)
    later = datetime(2025, 3, 12, 4, 0, tzinfo=UTC)

    since = orders_watermark([later, first], timedelta(hours=2))

    assert since == datetime(2025, 3, 10, 2, 0, tzinfo=UTC)


def test_orders_watermark_without_orders_is_none() -> None:
    assert orders_watermark([], timedelta(days=1)) is None


# --- profile choice ----------------------------------------------------------------------


def test_choose_profile_prefers_first_candidate() -> None:
    published = [
        "InformationRegister_ЦеныНоменклатуры",
        "InformationRegister_ЦеныНоменклатуры25",
    ]

    profile = choose_profile(published)

    assert profile.require(Role.PRICE).entity == "InformationRegister_ЦеныНоменклатуры25"


def test_choose_profile_missing_role_names_entity() -> None:
    profile = choose_profile(["Catalog_Номенклатура"])

    with pytest.raises(ODataProfileError) as caught:
        profile.require(Role.ORDER)

    assert caught.value.retryable is False
    assert "publish Document_ЗаказКлиента" in str(caught.value)
    assert "Document_ЗаказПокупателя" in str(caught.value)
    assert caught.value.role == "order"


def test_choose_profile_empty_composition_says_so() -> None:
    profile = choose_profile([])

    with pytest.raises(ODataProfileError) as caught:
        profile.require(Role.CATALOG)

    assert "composition is empty" in str(caught.value)


def test_profile_json_round_trip() -> None:
    profile = choose_profile(
        ["Catalog_Номенклатура", "Document_ЗаказПокупателя", "AccumulationRegister_ЗапасыНаСкладах"]
    )

    restored = ODataProfile.from_json(json.loads(json.dumps(profile.to_json())))

    assert restored == profile


def test_profile_from_malformed_json_raises() -> None:
    with pytest.raises(ValueError):
        ODataProfile.from_json({"choices": {"order": {"unknown": 1}}, "published_count": 1})


def test_published_names_rejects_missing_value() -> None:
    with pytest.raises(ODataResponseError):
        published_names({"odata.metadata": "x"})


# --- probing against the emulator --------------------------------------------------------


@pytest.mark.parametrize(
    ("configuration", "role", "entity"),
    [
        pytest.param(None, Role.ORDER, "Document_ЗаказКлиента", id="ut114-order"),
        pytest.param(
            UT_11_5, Role.PRICE, "InformationRegister_ЦеныНоменклатуры25", id="ut115-price"
        ),
        pytest.param(UNF, Role.ORDER, "Document_ЗаказПокупателя", id="unf-order"),
        pytest.param(UNF, Role.STOCK, "AccumulationRegister_ЗапасыНаСкладах", id="unf-stock"),
    ],
)
async def test_probe_profile_picks_published_name(
    nursery: trio.Nursery,
    configuration: EmulatedConfiguration | None,
    role: Role,
    entity: str,
) -> None:
    emulator = await serve(nursery, configuration=configuration)

    async with open_probed_client(emulator) as client:
        profile = client.profile

    assert profile is not None
    assert profile.require(role).entity == entity
    assert emulator.requests[""] == 1


async def test_probe_profile_hidden_order_blocks_create(nursery: trio.Nursery) -> None:
    emulator = await serve(nursery, hidden=("Document_ЗаказКлиента",))

    async with open_probed_client(emulator) as client:
        with pytest.raises(ODataProfileError) as caught:
            await client.create_order(sample_order(emulator, "WEB-1"))

    assert "publish Document_ЗаказКлиента" in str(caught.value)
    assert emulator.requests["Document_ЗаказКлиента"] == 0


async def test_unf_stock_reads_warehouse_dimension(nursery: trio.Nursery) -> None:
    emulator = await serve(nursery, configuration=UNF)

    async with open_probed_client(emulator) as client:
        rows = await client.fetch_stock()

    assert rows
    assert {row.warehouse_id for row in rows} <= set(emulator.data.warehouses)


async def test_unf_order_uses_its_table_part(nursery: trio.Nursery) -> None:
    emulator = await serve(nursery, configuration=UNF)

    async with open_probed_client(emulator) as client:
        created = await client.create_order(sample_order(emulator, "WEB-7"))

    document = emulator.orders[created.ref_key]
    assert len(document["Запасы"]) == 1
    assert "Товары" not in document


async def test_ut115_prices_read_from_new_register(nursery: trio.Nursery) -> None:
    emulator = await serve(nursery, configuration=UT_11_5)

    async with open_probed_client(emulator) as client:
        rows = await client.fetch_prices()

    assert rows
    assert emulator.requests["InformationRegister_ЦеныНоменклатуры25"] == 1


# --- reading -----------------------------------------------------------------------------


async def test_fetch_products_carry_data_version(
    emulator: ODataBranchEmulator, client: ODataClient
) -> None:
    products = await client.fetch_products()

    expected = {row["Ref_Key"]: row["DataVersion"] for row in emulator.data.catalog}
    assert {row.ref_key: row.data_version for row in products} == expected


async def test_fetch_hub_orders_since_renders_local_time(
    emulator: ODataBranchEmulator, client: ODataClient
) -> None:
    # 20:00 UTC is 03:00 the next day in Novosibirsk, the date 1C stores.
    early = await client.create_order(
        sample_order(emulator, "WEB-1", datetime(2025, 3, 10, 20, 0, tzinfo=UTC))
    )
    late = await client.create_order(
        sample_order(emulator, "WEB-2", datetime(2025, 3, 10, 22, 0, tzinfo=UTC))
    )

    found = await client.fetch_hub_orders_since(datetime(2025, 3, 10, 21, 0, tzinfo=UTC))

    assert set(found) == {"WEB-2"}
    assert found["WEB-2"].ref_key == late.ref_key
    assert early.ref_key not in {ref.ref_key for ref in found.values()}


async def test_fetch_hub_orders_since_skips_foreign_documents(
    emulator: ODataBranchEmulator, client: ODataClient
) -> None:
    await client.create_order(sample_order(emulator, "WEB-3", datetime(2025, 3, 10, tzinfo=UTC)))
    async with httpx.AsyncClient(auth=(USERNAME, PASSWORD)) as raw:
        await raw.post(
            f"{emulator.base_url}Document_ЗаказКлиента?$format=json",
            json={ORDER_NUMBER_FIELD: "", "Date": "2025-03-11T10:00:00"},
        )

    found = await client.fetch_hub_orders_since(datetime(2025, 3, 1, tzinfo=UTC))

    assert list(found) == ["WEB-3"]


async def test_fetch_hub_orders_since_reads_all_pages(nursery: trio.Nursery) -> None:
    emulator = await serve(nursery)
    numbers = [f"WEB-{index}" for index in range(5)]

    async with open_probed_client(emulator, page_size=2) as client:
        for number in numbers:
            await client.create_order(sample_order(emulator, number))
        before = emulator.requests["Document_ЗаказКлиента"]

        found = await client.fetch_hub_orders_since(datetime(2025, 3, 1, tzinfo=UTC))

    assert sorted(found) == numbers
    assert emulator.requests["Document_ЗаказКлиента"] - before == 3


async def test_every_get_sends_select(respx_mock: respx.MockRouter) -> None:
    base = "http://127.0.0.1:9/ut/odata/standard.odata/"
    order = {
        "Ref_Key": PRODUCT_A,
        "Number": "1",
        "Date": "2025-01-01T00:00:00",
        "Posted": False,
        "DeletionMark": False,
        "DataVersion": "AAAAAQAAAAA=",
        "Статус": "",
        ORDER_NUMBER_FIELD: "WEB-1",
    }
    route = respx_mock.route(method="GET", url__startswith=base)
    route.side_effect = lambda request: httpx.Response(
        200, json=order if "guid'" in request.url.path else {"value": []}
    )
    config = ODataConfig(base_url=base, username="hub", password="secret", tz=TZ)
    client = ODataClient(config)

    await client.fetch_products()
    await client.fetch_prices()
    await client.fetch_stock()
    await client.find_order("WEB-1")
    await client.get_order(PRODUCT_A)
    await client.fetch_hub_orders_since(datetime(2025, 1, 1, tzinfo=UTC))
    await client.aclose()

    assert route.call_count == 6
    assert all("$select" in call.request.url.params for call in route.calls)


# --- conditional update ------------------------------------------------------------------


async def test_update_order_applies_with_current_version(
    emulator: ODataBranchEmulator, client: ODataClient
) -> None:
    created = await client.create_order(sample_order(emulator, "WEB-9"))
    assert created.data_version is not None

    updated = await client.update_order(
        created.ref_key, {"Комментарий": "Отменить"}, created.data_version
    )

    assert emulator.orders[created.ref_key]["Комментарий"] == "Отменить"
    assert updated.data_version == emulator.orders[created.ref_key]["DataVersion"]
    assert updated.data_version != created.data_version


async def test_update_order_stale_version_is_conflict(
    emulator: ODataBranchEmulator, client: ODataClient
) -> None:
    created = await client.create_order(sample_order(emulator, "WEB-10"))
    await client.post_document(created.ref_key)  # posting writes a new DataVersion
    assert created.data_version is not None
    before = emulator.requests["Document_ЗаказКлиента"]

    with pytest.raises(ODataConflictError) as caught:
        await client.update_order(created.ref_key, {"Комментарий": "x"}, created.data_version)

    assert caught.value.status == 412
    assert caught.value.retryable is False
    assert emulator.requests["Document_ЗаказКлиента"] - before == 1
    assert emulator.orders[created.ref_key]["Комментарий"] != "x"


async def test_update_order_lost_reply_is_not_conflict(
    emulator: ODataBranchEmulator, client: ODataClient
) -> None:
    created = await client.create_order(sample_order(emulator, "WEB-11"))
    assert created.data_version is not None
    emulator.faults.inject(FaultKind.SERVER_ERROR, method="PATCH", after_handling=True)

    updated = await client.update_order(
        created.ref_key, {"Комментарий": "Перезвонить"}, created.data_version
    )

    assert emulator.orders[created.ref_key]["Комментарий"] == "Перезвонить"
    assert updated.data_version == emulator.orders[created.ref_key]["DataVersion"]


async def test_update_order_rejects_empty_fields(emulator: ODataBranchEmulator) -> None:
    async with open_client(emulator) as client:
        with pytest.raises(ValueError):
            await client.update_order(PRODUCT_A, {}, "AAAAAQAAAAA=")


# --- the branch actor --------------------------------------------------------------------


class ActorHarness:
    """One ODataBranchActor on a fresh database, without a hub node around it."""

    def __init__(self, db: Database, emulator: ODataBranchEmulator, actor: ODataBranchActor):
        self.db = db
        self.emulator = emulator
        self.actor = actor
        self.code = emulator.branch_code

    async def stored_profile(self) -> dict[str, Any] | None:
        text = await self.db.run(
            lambda conn: conn.fetchval(
                "SELECT profile::text FROM branch_odata_profile WHERE branch_code = $1",
                self.code,
            )
        )
        return None if text is None else dict(json.loads(text))

    async def import_counts(self) -> list[dict[str, Any]]:
        rows = await self.db.run(
            lambda conn: conn.fetch(
                "SELECT counts::text AS counts FROM import_jobs WHERE branch_code = $1 "
                "AND state = 'success' ORDER BY id",
                self.code,
            )
        )
        return [json.loads(row["counts"]) for row in rows]

    def tell(self, message: object) -> None:
        self.actor.mailbox.send_nowait(message)

    def gauge(self) -> float | None:
        return REGISTRY.get_sample_value("hub_branch_circuit_state", {"branch": self.code})

    def transitions(self, state: str) -> float:
        labels = {"branch": self.code, "state": state}
        return REGISTRY.get_sample_value("hub_branch_circuit_transitions_total", labels) or 0.0


class ActorLauncher:
    """Starter of ODataBranchActors, each on an emulated branch registered in one database."""

    def __init__(
        self, db: Database, database_url: str, data_dir: Path, nursery: trio.Nursery
    ) -> None:
        self.db = db
        self.database_url = database_url
        self.data_dir = data_dir
        self.nursery = nursery

    async def start(
        self,
        emulator: ODataBranchEmulator,
        *,
        profile: ODataProfile | None = None,
        **overrides: Any,
    ) -> ActorHarness:
        """Register the emulator as a branch, optionally store a profile, and run its actor."""
        branch = new_branch(
            code=emulator.branch_code,
            name=f"Филиал {emulator.branch_code}",
            kind="odata",
            time_zone=TIME_ZONE,
            odata_url=emulator.base_url,
            odata_username=USERNAME,
            odata_password=PASSWORD,
        )
        await self.db.transaction(branches_db.insert_branch, branch)
        if profile is not None:
            await self.db.run(insert_profile, branch.code, profile)

        values: dict[str, Any] = {"poll_interval_s": 0.3, "odata_timeout_s": 2.0}
        values.update(overrides)
        settings = node_settings(self.database_url, self.data_dir, **values)
        actor = ODataBranchActor(branch, self.db, settings, Registry(), "node-test")
        await self.nursery.start(actor.run)
        return ActorHarness(self.db, emulator, actor)

    async def start_imported(self, code: str) -> ActorHarness:
        """Run an actor on a new emulated branch and wait for its first catalog import."""
        harness = await self.start(await serve(self.nursery, code))
        await wait_imports(harness, 1)
        return harness

    async def start_unreachable(self, code: str, **circuit: Any) -> ActorHarness:
        """Run an actor on a new emulated branch that responds 503 to every request."""
        emulator = await serve(self.nursery, code)
        emulator.faults.down = True
        return await self.start(emulator, **circuit)


@pytest.fixture
async def actors(
    db: Database, database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> ActorLauncher:
    return ActorLauncher(db, database_url, tmp_path / "data", nursery)


async def insert_profile(conn: Any, branch: str, profile: ODataProfile) -> None:
    await conn.execute(
        """INSERT INTO branch_odata_profile (branch_code, profile, probed_at)
           VALUES ($1, $2::jsonb, now())""",
        branch,
        json.dumps(profile.to_json(), ensure_ascii=False),
    )


async def wait_for(predicate: Callable[[], Awaitable[bool]]) -> None:
    await wait_until(predicate, timeout_s=DEADLINE_S, interval_s=0.05)


async def wait_imports(harness: ActorHarness, count: int) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []

    async def enough() -> bool:
        jobs[:] = await harness.import_counts()
        return len(jobs) >= count

    await wait_for(enough)
    return jobs


async def wait_polls(harness: ActorHarness, polls: int) -> None:
    """Wait until `polls` more catalog reads began, so every poll before them finished."""
    entity = "Catalog_Номенклатура"
    target = harness.emulator.requests[entity] + polls

    async def polled() -> bool:
        return harness.emulator.requests[entity] >= target

    await wait_for(polled)


async def wait_circuit_open(harness: ActorHarness) -> None:
    async def opened() -> bool:
        return harness.gauge() == CIRCUIT_OPEN

    await wait_for(opened)


async def test_actor_stores_probed_profile(nursery: trio.Nursery, actors: ActorLauncher) -> None:
    emulator = await serve(nursery, "AP1", configuration=UNF)
    harness = await actors.start(emulator)

    jobs = await wait_imports(harness, 1)

    stored = await harness.stored_profile()
    assert stored is not None
    assert stored["choices"]["order"]["entity"] == "Document_ЗаказПокупателя"
    assert stored["choices"]["stock"]["entity"] == "AccumulationRegister_ЗапасыНаСкладах"
    assert jobs[0]["stock"] > 0


async def test_actor_reuses_stored_profile(nursery: trio.Nursery, actors: ActorLauncher) -> None:
    emulator = await serve(nursery, "AP2")
    harness = await actors.start(emulator, profile=choose_profile(list(emulator.published)))

    await wait_imports(harness, 1)

    assert emulator.requests[""] == 0


async def test_actor_resync_probes_again(actors: ActorLauncher) -> None:
    harness = await actors.start_imported("AP3")
    emulator = harness.emulator
    probes = emulator.requests[""]

    harness.tell(BranchControl("resync"))
    jobs = await wait_imports(harness, 2)

    assert emulator.requests[""] == probes + 1
    assert jobs[1]["products"] == len(emulator.data.catalog) - 3  # groups merge separately


async def test_actor_unpublished_entity_probes_again(
    nursery: trio.Nursery, actors: ActorLauncher
) -> None:
    emulator = await serve(nursery, "AP4")
    # A profile from before the base went back to the old price register.
    stale = choose_profile([*emulator.published, "InformationRegister_ЦеныНоменклатуры25"])
    harness = await actors.start(emulator, profile=stale)

    jobs = await wait_imports(harness, 1)

    stored = await harness.stored_profile()
    assert emulator.requests["InformationRegister_ЦеныНоменклатуры25"] >= 1
    assert emulator.requests[""] == 1
    assert stored is not None
    assert stored["choices"]["price"]["entity"] == "InformationRegister_ЦеныНоменклатуры"
    assert jobs[0]["prices"] > 0


async def test_actor_unchanged_poll_imports_nothing(actors: ActorLauncher) -> None:
    harness = await actors.start_imported("AI1")

    await wait_polls(harness, 2)

    assert len(await harness.import_counts()) == 1


async def test_actor_changed_product_imported_alone(actors: ActorLauncher) -> None:
    harness = await actors.start_imported("AI2")
    emulator = harness.emulator
    goods = [row for row in emulator.data.catalog if not row["IsFolder"]]

    emulator.touch_product(goods[0]["Ref_Key"], Description="Мёд акациевый, 500 г")
    jobs = await wait_imports(harness, 2)

    name = await harness.db.run(
        lambda conn: conn.fetchval(
            "SELECT name FROM products WHERE branch_code = $1 AND external_id = $2",
            harness.code,
            goods[0]["Ref_Key"],
        )
    )
    assert jobs[1]["products"] == 1
    assert jobs[1]["offers"] == 0
    assert "deactivated" not in jobs[1]
    assert name == "Мёд акациевый, 500 г"


async def test_actor_changed_stock_imported_alone(actors: ActorLauncher) -> None:
    harness = await actors.start_imported("AI3")
    emulator = harness.emulator
    key = next(iter(emulator.data.stock))

    emulator.data.stock[key]["ВНаличии"] += 7
    jobs = await wait_imports(harness, 2)

    assert jobs[1]["products"] == 0
    assert jobs[1]["offers"] == 1


async def test_actor_circuit_open_makes_no_calls(actors: ActorLauncher) -> None:
    harness = await actors.start_unreachable(
        "AC1", circuit_failure_threshold=2, circuit_open_base_s=60, circuit_open_max_s=60
    )
    emulator = harness.emulator

    await wait_circuit_open(harness)
    calls = sum(emulator.requests.values())
    for _ in range(3):
        harness.tell(Wake())
        await trio.sleep(0.2)

    assert sum(emulator.requests.values()) == calls
    assert harness.gauge() == CIRCUIT_OPEN
    assert harness.transitions("open") == 1


async def test_actor_half_open_sends_one_trial(actors: ActorLauncher) -> None:
    harness = await actors.start_unreachable(
        "AC2", circuit_failure_threshold=1, circuit_open_base_s=0.2, circuit_open_max_s=0.4
    )
    emulator = harness.emulator
    snapshots: list[tuple[int, float]] = []

    def snapshot_when_open(openings: float) -> Callable[[], Awaitable[bool]]:
        # Reads the gauge, the counter and the emulator in one step: while the circuit is
        # open no trial call is on its way, so the counts belong together.
        async def check() -> bool:
            if harness.gauge() != CIRCUIT_OPEN or harness.transitions("open") < openings:
                return False
            snapshots.append((sum(emulator.requests.values()), harness.transitions("open")))
            return True

        return check

    await wait_for(snapshot_when_open(2))
    await wait_for(snapshot_when_open(snapshots[0][1] + 3))

    (calls_before, opens_before), (calls_after, opens_after) = snapshots
    assert opens_after - opens_before >= 3
    assert calls_after - calls_before == opens_after - opens_before
    assert harness.transitions("half_open") >= opens_after - 1


async def test_actor_circuit_closes_after_recovery(actors: ActorLauncher) -> None:
    harness = await actors.start_unreachable(
        "AC3", circuit_failure_threshold=1, circuit_open_base_s=0.2, circuit_open_max_s=0.4
    )

    await wait_circuit_open(harness)
    harness.emulator.faults.down = False
    jobs = await wait_imports(harness, 1)

    assert harness.gauge() == CIRCUIT_CLOSED
    assert harness.transitions("closed") == 1
    assert jobs[0]["products"] > 0


# --- order statuses through a hub node ---------------------------------------------------


async def test_status_poll_reads_since_watermark(
    node: NodeContext, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    emulator = await start_emulator(nursery, "AS1")
    code = await add_odata_branch(node, emulator)
    number = await place_order(api, code, await first_priced_offer(api, code))
    await wait_status(api, number, "confirmed")

    document = next(doc for doc in emulator.orders.values() if doc[ORDER_NUMBER_FIELD] == number)
    document["DeletionMark"] = True
    document["DataVersion"] = "AAAAZAAAAAA="  # a manager's write changes the version
    await wait_status(api, number, "cancelled")

    created_at, watermark = await node.db.run(
        lambda conn: conn.fetchrow(
            """SELECT o.created_at, p.orders_watermark FROM orders o
                 JOIN branch_odata_profile p ON p.branch_code = o.branch_code
                WHERE o.number = $1""",
            number,
        )
    )
    assert watermark == created_at - ORDER_DATE_MARGIN


async def wait_status(api: httpx.AsyncClient, number: str, status: str) -> None:
    async def reached() -> bool:
        return await order_status(api, number) == status

    await wait_until(reached, timeout_s=DEADLINE_S, interval_s=0.2)
