"""Tests of the 1C CommerceML emulator against a recording stand-in server on 127.0.0.1.

The stand-in replies like a minimal exchange endpoint and records every request (method,
query, headers, body), so the tests check the request sequence the emulator produces.
"""

from __future__ import annotations

import io
import math
import random
import re
import urllib.parse
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from connectors.commerceml.model import OrderDocument, OrderLine
from connectors.commerceml.parser import iter_document
from connectors.commerceml.writer import Customer, ExportOrder, render_orders
from connectors.emulator.catalog import picture_paths, write_catalog
from connectors.emulator.commerceml_client import (
    CommerceMLEmulator,
    EmulatorError,
    FailureReply,
    FileResult,
)

MOSCOW = ZoneInfo("Europe/Moscow")
COOKIE_NAME = "HUBSESSID"
ZIP_NAME = re.compile(r"^v8_[0-9a-f]{4}_[0-9a-f]{2}\.zip$")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
StartServer = Callable[["StandIn"], Awaitable[str]]
Step = tuple[str, str, str | None]  # method, mode, filename


@dataclass
class Recorded:
    method: str
    raw_query: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def mode(self) -> str:
        return self.params.get("mode", "")

    @property
    def filename(self) -> str | None:
        return self.params.get("filename")


@dataclass
class StandIn:
    """A recording exchange endpoint; each field sets how it replies."""

    zip: bool = False
    file_limit: int = 4096
    progress_replies: int = 0  # `progress` replies to each file's import before the final one
    import_reply: str = "success\nimported"
    init_status: int = 200
    echo_version: bool = True  # reply `version=` to an init that sends one
    query_bodies: list[bytes] = field(default_factory=list)  # one per `query`, in order
    success_reply: str = "success"
    requests: list[Recorded] = field(default_factory=list)
    files: dict[str, bytearray] = field(default_factory=dict)
    _sessions: int = 0
    _import_calls: dict[str, int] = field(default_factory=dict)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return

        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        raw_query = scope["query_string"].decode("ascii")
        record = Recorded(
            method=scope["method"],
            raw_query=raw_query,
            params=dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True)),
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body=bytes(body),
        )
        self.requests.append(record)

        status, content_type, reply = self._reply(record)
        headers = [(b"content-type", content_type.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": reply})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _reply(self, record: Recorded) -> tuple[int, str, bytes]:
        text = "text/plain; charset=utf-8"
        if record.mode == "checkauth":
            self._sessions += 1
            reply = f"success\n{COOKIE_NAME}\nvalue{self._sessions}\nsessid=tok{self._sessions}\n"
            return 200, text, reply.encode()
        if record.mode == "init":
            reply = f"zip={'yes' if self.zip else 'no'}\nfile_limit={self.file_limit}\n"
            if "version" in record.params and self.echo_version:
                reply += f"sessid=tok{self._sessions}\nversion=2.09\n"
            return self.init_status, text, reply.encode()
        if record.mode == "file":
            self.files.setdefault(record.filename or "", bytearray()).extend(record.body)
            return 200, text, b"success\n"
        if record.mode == "import":
            return 200, text, self._import_reply(record.filename or "").encode()
        if record.mode == "query":
            return 200, "application/xml", self.query_bodies.pop(0)
        if record.mode == "success":
            return 200, text, self.success_reply.encode()
        return 200, text, b"failure\nunknown mode"

    def _import_reply(self, filename: str) -> str:
        calls = self._import_calls.get(filename, 0) + 1
        self._import_calls[filename] = calls
        if calls <= self.progress_replies:
            return f"progress\nstep {calls}"
        return self.import_reply

    def steps(self) -> list[Step]:
        return [(r.method, r.mode, r.filename) for r in self.requests]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture
def start_server(nursery: trio.Nursery) -> StartServer:
    async def start(app: StandIn) -> str:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.errorlog = None
        binds = await nursery.start(
            partial(serve, app, config, shutdown_trigger=trio.sleep_forever)  # type: ignore[arg-type]
        )
        return f"{binds[0]}/1c/exchange"

    return start


def make_emulator(url: str, http: httpx.AsyncClient, **options: Any) -> CommerceMLEmulator:
    return CommerceMLEmulator(
        base_url=url,
        login="branch-017",
        password="secret",
        http=http,
        rng=random.Random(1),
        progress_pause_s=0,
        **options,
    )


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("catalog")
    write_catalog(directory, products=40, seed=2, pictures_every=15)
    return directory


def catalog_files(directory: Path) -> list[Path]:
    return [directory / "import0_1.xml", directory / "offers0_1.xml"]


def expected_uploads(path: Path, name: str, limit: int) -> list[Step]:
    return [("POST", "file", name)] * math.ceil(path.stat().st_size / limit)


async def run_catalog(
    app: StandIn,
    start_server: StartServer,
    http: httpx.AsyncClient,
    catalog_dir: Path,
    **options: Any,
) -> list[FileResult]:
    url = await start_server(app)
    emulator = make_emulator(url, http, **options)
    return await emulator.exchange_catalog(
        catalog_files(catalog_dir), pictures=picture_paths(catalog_dir)
    )


# ---- catalog, zip=no ----------------------------------------------------------------------


async def test_catalog_plain_request_sequence(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(zip=False, file_limit=4096)
    await run_catalog(app, start_server, http, catalog_dir)
    import_xml, offers_xml = catalog_files(catalog_dir)
    pictures = picture_paths(catalog_dir)

    expected: list[Step] = [
        ("GET", "checkauth", None),
        ("GET", "checkauth", None),
        ("GET", "init", None),
    ]
    expected += expected_uploads(import_xml, "import0_1.xml", 4096)
    for picture in pictures:
        member = picture.relative_to(catalog_dir).as_posix()
        expected += expected_uploads(picture, member, 4096)
    expected += [("GET", "import", "import0_1.xml")]
    expected += [("GET", "checkauth", None), ("GET", "init", None)]
    expected += expected_uploads(offers_xml, "offers0_1.xml", 4096)
    expected += [("GET", "import", "offers0_1.xml")]

    assert len(pictures) == 3
    assert app.steps() == expected


async def test_catalog_plain_results(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(zip=False, file_limit=4096)
    results = await run_catalog(app, start_server, http, catalog_dir)
    import_xml, offers_xml = catalog_files(catalog_dir)
    picture_bytes = sum(p.stat().st_size for p in picture_paths(catalog_dir))

    assert [r.filename for r in results] == ["import0_1.xml", "offers0_1.xml"]
    assert [r.status for r in results] == ["success", "success"]
    assert [r.message for r in results] == ["imported", "imported"]
    assert results[0].bytes_sent == import_xml.stat().st_size + picture_bytes
    assert results[1].bytes_sent == offers_xml.stat().st_size
    assert sum(r.requests for r in results) == len(app.requests)


async def test_catalog_chunks_within_file_limit(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(zip=False, file_limit=3000)
    await run_catalog(app, start_server, http, catalog_dir)
    uploads = [r for r in app.requests if r.mode == "file"]

    assert len(uploads) > 10
    assert all(len(r.body) <= 3000 for r in uploads)
    assert all(r.method == "POST" for r in uploads)


async def test_catalog_chunks_reassemble_exactly(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(zip=False, file_limit=3000)
    await run_catalog(app, start_server, http, catalog_dir)

    for path in catalog_files(catalog_dir) + picture_paths(catalog_dir):
        name = path.name if path.suffix == ".xml" else path.relative_to(catalog_dir).as_posix()
        assert bytes(app.files[name]) == path.read_bytes(), name


async def test_catalog_picture_names_keep_slashes(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(zip=False, file_limit=100_000)
    await run_catalog(app, start_server, http, catalog_dir)
    picture_queries = [r.raw_query for r in app.requests if (r.filename or "").endswith(".png")]

    assert picture_queries
    assert all("filename=import_files/" in query for query in picture_queries)


async def test_catalog_only_file_uses_post(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(zip=False)
    await run_catalog(app, start_server, http, catalog_dir)

    assert {r.method for r in app.requests if r.mode == "file"} == {"POST"}
    assert {r.method for r in app.requests if r.mode != "file"} == {"GET"}


async def test_catalog_upload_is_raw_body(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(zip=False, file_limit=1_000_000)
    await run_catalog(app, start_server, http, catalog_dir)
    first_upload = next(r for r in app.requests if r.mode == "file")

    assert first_upload.body.startswith(b"\xef\xbb\xbf<?xml")
    assert "multipart" not in first_upload.headers.get("content-type", "")


async def test_catalog_basic_auth_on_checkauth_only(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn()
    await run_catalog(app, start_server, http, catalog_dir)
    checkauth = [r for r in app.requests if r.mode == "checkauth"]
    others = [r for r in app.requests if r.mode != "checkauth"]

    assert all(r.headers.get("authorization", "").startswith("Basic ") for r in checkauth)
    assert all("authorization" not in r.headers for r in others)


async def test_catalog_cookie_from_latest_checkauth(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn()
    await run_catalog(app, start_server, http, catalog_dir)
    sent: list[tuple[str | None, str]] = []
    checkauths = 0

    for record in app.requests:
        if record.mode == "checkauth":
            checkauths += 1
            continue
        sent.append((record.headers.get("cookie"), f"{COOKIE_NAME}=value{checkauths}"))

    assert sent
    assert all(cookie == expected for cookie, expected in sent)


async def test_catalog_second_checkauth_sends_cookie(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn()
    await run_catalog(app, start_server, http, catalog_dir)

    assert "cookie" not in app.requests[0].headers
    assert app.requests[1].headers.get("cookie") == f"{COOKIE_NAME}=value1"


async def test_catalog_user_agent_is_1c(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn()
    await run_catalog(app, start_server, http, catalog_dir)

    assert {r.headers.get("user-agent") for r in app.requests} == {"1C+Enterprise/8.3"}


async def test_catalog_classic_flow_sends_no_sessid(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn()
    await run_catalog(app, start_server, http, catalog_dir)

    assert all("sessid" not in r.params for r in app.requests)
    assert all("version" not in r.params for r in app.requests)


async def test_catalog_sessid_with_protocol_version(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn()
    await run_catalog(app, start_server, http, catalog_dir, protocol_version="3.1")
    inits = [r for r in app.requests if r.mode == "init"]
    after_checkauth = [r for r in app.requests if r.mode != "checkauth"]

    assert all(r.params.get("version") == "3.1" for r in inits)
    assert all(r.params.get("sessid", "").startswith("tok") for r in after_checkauth)
    assert all("sessid" not in r.params for r in app.requests if r.mode == "checkauth")
    assert inits[0].raw_query.startswith("type=catalog&mode=init&sessid=")


# ---- catalog, zip=yes ---------------------------------------------------------------------


async def test_catalog_zip_request_sequence(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(zip=True, file_limit=1_000_000)
    await run_catalog(app, start_server, http, catalog_dir)
    steps = [(method, mode) for method, mode, _ in app.steps()]

    assert steps == [
        ("GET", "checkauth"),
        ("GET", "checkauth"),
        ("GET", "init"),
        ("POST", "file"),
        ("GET", "import"),
        ("GET", "checkauth"),
        ("GET", "init"),
        ("POST", "file"),
        ("GET", "import"),
    ]


async def test_catalog_zip_names_temporary_archive(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(zip=True, file_limit=1_000_000)
    await run_catalog(app, start_server, http, catalog_dir)
    archives = [r.filename or "" for r in app.requests if r.mode == "file"]
    imports = [r.filename for r in app.requests if r.mode == "import"]

    assert all(ZIP_NAME.match(name) for name in archives)
    assert archives[0] != archives[1]
    assert archives[0][:8] == archives[1][:8]  # same v8_<4 hex> prefix in one 1C process
    assert imports == ["import0_1.xml", "offers0_1.xml"]


async def test_catalog_zip_contains_cycle_files(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(zip=True, file_limit=1_000_000)
    await run_catalog(app, start_server, http, catalog_dir)
    archives = [r.filename or "" for r in app.requests if r.mode == "file"]
    first = zipfile.ZipFile(io.BytesIO(bytes(app.files[archives[0]])))
    second = zipfile.ZipFile(io.BytesIO(bytes(app.files[archives[1]])))
    pictures = sorted(p.relative_to(catalog_dir).as_posix() for p in picture_paths(catalog_dir))
    import_xml, offers_xml = catalog_files(catalog_dir)

    assert sorted(first.namelist()) == sorted(["import0_1.xml", *pictures])
    assert second.namelist() == ["offers0_1.xml"]
    assert first.read("import0_1.xml") == import_xml.read_bytes()
    assert second.read("offers0_1.xml") == offers_xml.read_bytes()


async def test_catalog_zip_chunks_reassemble(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(zip=True, file_limit=1024)
    await run_catalog(app, start_server, http, catalog_dir)
    uploads = [r for r in app.requests if r.mode == "file"]
    names = list(dict.fromkeys(r.filename for r in uploads))
    import_xml = catalog_files(catalog_dir)[0]

    assert len(names) == 2
    assert len(uploads) > 2
    assert all(len(r.body) <= 1024 for r in uploads)
    archive = zipfile.ZipFile(io.BytesIO(bytes(app.files[names[0] or ""])))
    assert archive.testzip() is None
    assert archive.read("import0_1.xml") == import_xml.read_bytes()


# ---- import replies -------------------------------------------------------------------------


async def test_catalog_import_repeats_through_progress(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(progress_replies=3)
    results = await run_catalog(app, start_server, http, catalog_dir)
    imports = [r.filename for r in app.requests if r.mode == "import"]

    assert imports == ["import0_1.xml"] * 4 + ["offers0_1.xml"] * 4
    assert [r.status for r in results] == ["success", "success"]


async def test_catalog_progress_cap_fails_file(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(progress_replies=1_000)
    results = await run_catalog(app, start_server, http, catalog_dir, max_import_requests=5)

    assert len(results) == 1  # the exchange stops at the first failed file, like 1C
    assert results[0].status == "failure"
    assert "5 requests" in results[0].message
    assert sum(r.mode == "import" for r in app.requests) == 5


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param("Successfully processed file: import0_1.xml", id="sentence"),
        pytest.param("<html><body>502 Bad Gateway</body></html>", id="html"),
        pytest.param("", id="empty"),
        pytest.param("OK\nimported", id="other-keyword"),
    ],
)
async def test_catalog_unknown_first_line_is_failure(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path, reply: str
) -> None:
    app = StandIn(import_reply=reply)
    results = await run_catalog(app, start_server, http, catalog_dir)

    assert len(results) == 1
    assert results[0].status == "failure"
    assert "Получен неизвестный статус импорта" in results[0].message


async def test_catalog_failure_reply_is_recorded(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(import_reply="failure\nГруппа не найдена")
    results = await run_catalog(app, start_server, http, catalog_dir)

    assert [r.status for r in results] == ["failure"]
    assert results[0].message == "Группа не найдена"


async def test_catalog_http_error_raises(
    start_server: StartServer, http: httpx.AsyncClient, catalog_dir: Path
) -> None:
    app = StandIn(init_status=500)

    with pytest.raises(EmulatorError, match="HTTP 500"):
        await run_catalog(app, start_server, http, catalog_dir)


async def test_catalog_empty_file_sends_one_post(
    start_server: StartServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    empty = tmp_path / "import0_1.xml"
    empty.write_bytes(b"")
    app = StandIn()
    url = await start_server(app)
    await make_emulator(url, http).exchange_catalog([empty])
    uploads = [r for r in app.requests if r.mode == "file"]

    assert len(uploads) == 1
    assert uploads[0].body == b""


# ---- sale -----------------------------------------------------------------------------------


def site_order(site_id: str, number: str) -> ExportOrder:
    line = OrderLine(
        external_id="5c44ee68-dc17-11e8-960e-001c4252ed46",
        name="Крем-мёд с прополисом, 250 г",
        quantity=Decimal("2"),
        price=Decimal("450.50"),
        amount=Decimal("901.00"),
    )
    return ExportOrder(
        site_id=site_id,
        number=number,
        created_at=datetime(2024, 5, 1, 9, 15, tzinfo=UTC),
        currency="RUB",
        total=Decimal("901.00"),
        customer=Customer(
            id="c-1", name="Иванова Мария", phone="+79000000000", email=None, address=None
        ),
        lines=(line,),
    )


def query_body(*orders: ExportOrder) -> bytes:
    return render_orders(orders, tz=MOSCOW)


def uploaded_statuses(app: StandIn) -> list[OrderDocument]:
    names = [r.filename or "" for r in app.requests if r.mode == "file"]
    documents: list[OrderDocument] = []
    for name in dict.fromkeys(names):
        items = iter_document(io.BytesIO(bytes(app.files[name])), tz=MOSCOW)
        documents += [item for item in items if isinstance(item, OrderDocument)]
    return documents


async def test_sale_classic_request_sequence(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    app = StandIn(query_bodies=[query_body(site_order("hub-1001", "1001"))])
    url = await start_server(app)
    await make_emulator(url, http).exchange_sale()
    steps = app.steps()

    assert steps[:5] == [
        ("GET", "checkauth", None),
        ("GET", "checkauth", None),
        ("GET", "init", None),
        ("GET", "query", None),
        ("GET", "success", None),
    ]
    assert [(method, mode) for method, mode, _ in steps[5:]] == [("POST", "file")]
    assert re.fullmatch(r"orders-\d{14}\.xml", steps[5][2] or "")


async def test_sale_new_flow_imports_status_file(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    app = StandIn(query_bodies=[query_body(site_order("hub-1001", "1001"))], progress_replies=2)
    url = await start_server(app)
    await make_emulator(url, http, protocol_version="2.08").exchange_sale()
    upload = next(r for r in app.requests if r.mode == "file")
    imports = [r for r in app.requests if r.mode == "import"]

    assert app.requests[2].params.get("version") == "2.08"
    assert [r.filename for r in imports] == [upload.filename] * 3
    assert all(r.params.get("sessid", "").startswith("tok") for r in app.requests[2:])


async def test_sale_without_version_echo_uses_classic_flow(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    body = query_body(site_order("hub-1001", "1001"))
    app = StandIn(query_bodies=[body], echo_version=False)
    url = await start_server(app)
    await make_emulator(url, http, protocol_version="2.08").exchange_sale()

    assert app.steps()[-1][:2] == ("POST", "file")
    assert all(r.mode != "import" for r in app.requests)


async def test_sale_stores_offered_orders(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    body = query_body(site_order("hub-1001", "1001"), site_order("hub-1002", "1002"))
    app = StandIn(query_bodies=[body])
    url = await start_server(app)
    emulator = make_emulator(url, http)
    result = await emulator.exchange_sale()
    stored = emulator.received["hub-1001"]

    assert (result.offered, result.new, result.duplicates) == (2, 2, 0)
    assert sorted(emulator.received) == ["hub-1001", "hub-1002"]
    assert stored.number == "1001"
    assert stored.total == Decimal("901.00")
    assert stored.lines == 1
    assert stored.times_offered == 1
    assert stored.confirmed_at_query == 1


async def test_sale_status_file_reports_1c_numbers(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    body = query_body(site_order("hub-1001", "1001"), site_order("hub-1002", "1002"))
    app = StandIn(query_bodies=[body])
    url = await start_server(app)
    result = await make_emulator(url, http).exchange_sale()
    statuses = uploaded_statuses(app)

    assert result.statuses_sent == 2
    assert [s.site_id for s in statuses] == ["hub-1001", "hub-1002"]
    assert all(re.fullmatch(r"ЦБ-\d{6}", s.number_1c or "") for s in statuses)
    assert len({s.number_1c for s in statuses}) == 2
    assert all(s.posted is True for s in statuses)
    assert all(s.status_text == "Открыт" for s in statuses)
    assert all(s.date_1c is not None for s in statuses)


async def test_sale_elements_dialect_round_trips(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    app = StandIn(query_bodies=[query_body(site_order("hub-1001", "1001"))])
    url = await start_server(app)
    await make_emulator(url, http).exchange_sale(status_dialect="elements")
    raw = next(bytes(data) for data in app.files.values())
    statuses = uploaded_statuses(app)

    assert "<Номер1С>".encode() in raw
    assert statuses[0].number_1c is not None
    assert statuses[0].number_1c.startswith("ЦБ-")


async def test_sale_reoffered_confirmed_order_is_duplicate(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    order = site_order("hub-1001", "1001")
    app = StandIn(query_bodies=[query_body(order), query_body(order)])
    url = await start_server(app)
    emulator = make_emulator(url, http)
    first = await emulator.exchange_sale()
    second = await emulator.exchange_sale()

    assert (first.new, first.duplicates) == (1, 0)
    assert (second.new, second.duplicates) == (0, 1)
    assert emulator.duplicates == 1
    assert emulator.received["hub-1001"].times_offered == 2
    assert emulator.received["hub-1001"].confirmed_at_query == 1


async def test_sale_statuses_sent_once(start_server: StartServer, http: httpx.AsyncClient) -> None:
    order = site_order("hub-1001", "1001")
    app = StandIn(query_bodies=[query_body(order), query_body(order)])
    url = await start_server(app)
    emulator = make_emulator(url, http)
    first = await emulator.exchange_sale()
    second = await emulator.exchange_sale()

    assert first.statuses_sent == 1
    assert second.statuses_sent == 0
    assert sum(r.mode == "file" for r in app.requests) == 1


async def test_sale_unconfirmed_order_is_not_duplicate(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    order = site_order("hub-1001", "1001")
    app = StandIn(query_bodies=[query_body(order), query_body(order)], success_reply="failure\nБД")
    url = await start_server(app)
    emulator = make_emulator(url, http)
    with pytest.raises(FailureReply):
        await emulator.exchange_sale()
    app.success_reply = "success"
    second = await emulator.exchange_sale()

    assert (second.new, second.duplicates) == (0, 0)
    assert emulator.received["hub-1001"].confirmed_at_query == 2
    assert second.statuses_sent == 1


async def test_sale_empty_root_means_no_orders(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    app = StandIn(query_bodies=[query_body()])
    url = await start_server(app)
    emulator = make_emulator(url, http)
    result = await emulator.exchange_sale()

    assert (result.offered, result.new, result.statuses_sent) == (0, 0, 0)
    assert emulator.received == {}
    assert all(r.mode != "file" for r in app.requests)


async def test_sale_failure_on_success_raises(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    app = StandIn(query_bodies=[query_body()], success_reply="failure\nнет сессии")
    url = await start_server(app)

    with pytest.raises(FailureReply, match="нет сессии"):
        await make_emulator(url, http).exchange_sale()


async def test_sale_failure_instead_of_xml_raises(
    start_server: StartServer, http: httpx.AsyncClient
) -> None:
    app = StandIn(query_bodies=[b"failure\nOrders are locked"])
    url = await start_server(app)

    with pytest.raises(FailureReply, match="Orders are locked"):
        await make_emulator(url, http).exchange_sale()


async def test_sale_broken_xml_raises(start_server: StartServer, http: httpx.AsyncClient) -> None:
    app = StandIn(query_bodies=["<КоммерческаяИнформация><Документ>".encode()])
    url = await start_server(app)

    with pytest.raises(EmulatorError, match="query"):
        await make_emulator(url, http).exchange_sale()
