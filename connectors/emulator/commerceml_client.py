"""1C 8.3 side of CommerceML "Обмен с сайтом": an HTTP client that drives `/1c/exchange`.

It reproduces the request sequence of a real 1C 8.3 exchange job, as an nginx access log of
one (User-Agent `1C+Enterprise/8.3`) shows it:

- `checkauth` with HTTP Basic, twice at the start of an exchange and once at the start of
  each later catalog cycle, then the cookie from reply lines 2–3 on every request;
- GET for every mode except `file`, which POSTs the raw bytes in pieces of at most
  `file_limit` bytes;
- one `checkauth → init → file… → import…` cycle per catalog XML;
- with `zip=yes`, one archive per cycle under a temporary name such as `v8_1065_3a.zip`;
- `import` repeated while the reply's first line is `progress`.

The first line of a reply decides the outcome: `success`, `progress` or `failure`. Anything
else is a failure, which 1C reports as "Получен неизвестный статус импорта".
"""

from __future__ import annotations

import io
import random
import tempfile
import time
import urllib.parse
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Literal
from zoneinfo import ZoneInfo

import httpx
import trio

from connectors.commerceml.model import OrderDocument
from connectors.commerceml.parser import iter_document
from connectors.commerceml.writer import render_status_updates
from tentorium_hub.errors import CommerceMLError
from tentorium_hub.logs import get_logger

__all__ = [
    "CommerceMLEmulator",
    "EmulatorError",
    "FailureReply",
    "FileResult",
    "ReceivedOrder",
    "SaleResult",
    "StatusDialect",
]

log = get_logger("connectors.emulator.commerceml")

# Pause between two `import` requests after a `progress` reply, so that a hub replying
# `progress` quickly is not polled in a tight loop.
DEFAULT_PROGRESS_PAUSE_S = 0.2
# Cap on `import` requests for one file; a hub that never leaves `progress` fails the file.
DEFAULT_MAX_IMPORT_REQUESTS = 1000
# The 1C status text an order gets when 1C stores it from `query`.
NEW_ORDER_STATUS = "Открыт"
UNKNOWN_STATUS_RU = "Получен неизвестный статус импорта"
DEFAULT_TZ = ZoneInfo("Europe/Moscow")
StatusDialect = Literal["requisites", "elements"]
_KEYWORDS = frozenset({"success", "progress", "failure"})
_BOM = "\ufeff"
_PREVIEW_CHARS = 200


class EmulatorError(Exception):
    """An exchange step failed: transport error, HTTP status other than 200, or a bad reply."""


class FailureReply(EmulatorError):
    """The hub replied `failure`, or with a first line that is not a protocol keyword."""

    def __init__(self, mode: str, message: str) -> None:
        super().__init__(f"mode={mode}: {message}")
        self.mode = mode
        self.message = message


@dataclass
class FileResult:
    """Outcome of one catalog cycle (one XML file, with its pictures if any)."""

    filename: str
    status: str  # "success" or "failure"
    message: str  # reply lines after the first, or the reason of the failure
    seconds: float
    bytes_sent: int  # request bodies of all `file` POSTs of the cycle
    requests: int  # HTTP requests of the cycle, checkauth included


@dataclass
class ReceivedOrder:
    """A site order 1C stored from `query`."""

    site_id: str
    number: str
    total: Decimal
    lines: int
    times_offered: int  # how many `query` replies contained it
    confirmed_at_query: int  # 1-based `query` count whose `success` confirmed it; 0 = not yet


@dataclass(frozen=True)
class SaleResult:
    """Counts of one sale exchange."""

    offered: int  # Документ elements in the `query` reply
    new: int  # orders stored for the first time
    duplicates: int  # orders offered again after their `success` had been sent
    statuses_sent: int  # orders in the uploaded status file


@dataclass
class _Session:
    """State of one `checkauth … init` session; counters cover the current cycle."""

    exchange_type: str
    cookie: str | None = None  # "name=value"
    sessid: str | None = None
    zip: bool = False
    file_limit: int = 0
    server_version: str | None = None
    requests: int = 0
    bytes_sent: int = 0


@dataclass
class _Upload:
    """Files of one catalog cycle: the XML and the pictures uploaded with it."""

    xml: Path
    pictures: list[tuple[str, Path]] = field(default_factory=list)  # (exchange path, file)


def _first_line_and_rest(text: str) -> tuple[str, str]:
    lines = text.removeprefix(_BOM).replace("\r\n", "\n").split("\n")
    return lines[0].strip(), "\n".join(line.strip() for line in lines[1:]).strip()


def _check_keyword(mode: str, text: str) -> tuple[str, str]:
    """Return (keyword, message) of a plain-text reply; raise FailureReply on failure."""
    keyword, message = _first_line_and_rest(text)
    if keyword == "failure":
        raise FailureReply(mode, message or "failure without a reason")
    if keyword not in _KEYWORDS:
        raise FailureReply(mode, f"{UNKNOWN_STATUS_RU}: {text[:_PREVIEW_CHARS]!r}")
    return keyword, message


def _check_init_reply(text: str) -> dict[str, str]:
    """Return the `key=value` lines of an `init` reply, which has no keyword line on success."""
    first, message = _first_line_and_rest(text)
    if first == "failure":
        raise FailureReply("init", message or "failure without a reason")

    values: dict[str, str] = {}
    for line in text.removeprefix(_BOM).splitlines():
        key, sep, value = line.strip().partition("=")
        if sep:
            values[key] = value
    limit = values.get("file_limit", "")
    if not limit.isdigit() or int(limit) <= 0:
        raise EmulatorError(f"init: file_limit must be a positive integer, got {text!r}")
    return values


def _status_schema_version(dialect: str, protocol_version: str | None) -> str:
    """Return ВерсияСхемы of the status file: 2.05 for requisites, 2.09+ for elements."""
    if dialect == "requisites":
        return "2.05"
    if protocol_version is not None and (
        protocol_version.startswith("3") or protocol_version >= "2.09"
    ):
        return protocol_version
    return "2.10"


def _order_total(document: OrderDocument) -> Decimal:
    if document.total is not None:
        return document.total
    return sum((line.amount for line in document.lines), Decimal("0"))


def _picture_member(path: Path) -> str:
    """Return the exchange path of a picture: its part from `import_files/` on.

    Files outside an `import_files` folder go to `import_files/<first two name chars>/`,
    the layout 1C uses.
    """
    parts = path.parts
    if "import_files" in parts:
        start = len(parts) - 1 - parts[::-1].index("import_files")
        return "/".join(parts[start:])
    return f"import_files/{path.name[:2]}/{path.name}"


def _build_archive(upload: _Upload) -> IO[bytes]:
    """Pack the XML and its pictures into a temporary zip and return it rewound."""
    archive = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it after the upload
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(upload.xml, upload.xml.name)
        for member, path in upload.pictures:
            zf.write(path, member)
    archive.seek(0)
    return archive


def _build_archive_from_bytes(name: str, data: bytes) -> IO[bytes]:
    archive = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it after the upload
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    archive.seek(0)
    return archive


class CommerceMLEmulator:
    """One branch's 1C base, emulated as a client of the hub's `/1c/exchange` endpoint.

    `protocol_version` None gives the classic flow. A version ("2.08", "3.1") adds `sessid`
    (checkauth line 4) to every request after checkauth and `version=` to `init`. When the
    hub echoes `version=` in its `init` reply, the sale exchange uses the new flow, so
    `import` requests follow the uploaded status file. `base_url` must not carry a query
    string. Orders 1C stored are kept in `received`, keyed by the site order Ид.
    """

    def __init__(
        self,
        *,
        base_url: str,
        login: str,
        password: str,
        http: httpx.AsyncClient,
        protocol_version: str | None = None,
        tz: ZoneInfo = DEFAULT_TZ,
        rng: random.Random | None = None,
        user_agent: str = "1C+Enterprise/8.3",
        progress_pause_s: float = DEFAULT_PROGRESS_PAUSE_S,
        max_import_requests: int = DEFAULT_MAX_IMPORT_REQUESTS,
    ) -> None:
        if max_import_requests < 1:
            raise ValueError(f"max_import_requests must be >= 1, got {max_import_requests!r}")
        if progress_pause_s < 0:
            raise ValueError(f"progress_pause_s must be >= 0, got {progress_pause_s!r}")
        self._url = httpx.URL(base_url)
        self._auth = httpx.BasicAuth(login, password)
        self._http = http
        self._protocol_version = protocol_version
        self._tz = tz
        self._rng = rng if rng is not None else random.Random()
        self._user_agent = user_agent
        self._progress_pause_s = progress_pause_s
        self._max_import_requests = max_import_requests

        # 1C names its temporary files v8_<4 hex>_<hex counter>; the first part stays the
        # same within one 1C process, the counter grows.
        self._temp_prefix = f"{self._rng.randrange(0x1000, 0x10000):04x}"
        self._temp_counter = self._rng.randrange(0x10, 0x100)
        self._next_number_1c = self._rng.randrange(1, 1000)

        self.received: dict[str, ReceivedOrder] = {}
        self.duplicates = 0
        self.queries = 0  # `query` requests that returned XML
        self._documents: dict[str, OrderDocument] = {}
        # site id -> (Номер по 1С, when 1C stored the order)
        self._numbers_1c: dict[str, tuple[str, datetime]] = {}
        self._status_pending: list[str] = []  # site ids stored but not yet reported back

    # ---- HTTP plumbing -------------------------------------------------------------------

    def _build_url(
        self, session: _Session, mode: str, extra: Sequence[tuple[str, str]]
    ) -> httpx.URL:
        """Build the request URL with 1C's parameter order and unescaped `/` in file names."""
        params = [("type", session.exchange_type), ("mode", mode)]
        if session.sessid is not None and mode != "checkauth":
            params.append(("sessid", session.sessid))
        params.extend(extra)
        query = "&".join(f"{key}={urllib.parse.quote(value, safe='/')}" for key, value in params)
        return self._url.copy_with(query=query.encode("ascii"))

    async def _send(
        self,
        session: _Session,
        mode: str,
        *,
        extra: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> httpx.Response:
        """Send one request: POST with a raw body for `file`, GET for every other mode."""
        url = self._build_url(session, mode, extra)
        headers = {"User-Agent": self._user_agent}
        if session.cookie is not None:
            headers["Cookie"] = session.cookie
        # 1C sends Basic credentials on checkauth only; httpx.Auth() sends none.
        auth = self._auth if mode == "checkauth" else httpx.Auth()

        session.requests += 1
        try:
            if body is None:
                response = await self._http.get(url, headers=headers, auth=auth)
            else:
                session.bytes_sent += len(body)
                response = await self._http.post(url, headers=headers, content=body, auth=auth)
        except httpx.HTTPError as exc:
            raise EmulatorError(f"mode={mode}: request to {url} failed: {exc!r}") from exc

        if response.status_code != 200:
            preview = response.text[:_PREVIEW_CHARS]
            raise EmulatorError(f"mode={mode}: HTTP {response.status_code} from {url}: {preview!r}")
        return response

    async def _send_expecting(
        self,
        session: _Session,
        mode: str,
        *,
        extra: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> tuple[str, str]:
        """Send a request and return (keyword, message) of its plain-text reply."""
        response = await self._send(session, mode, extra=extra, body=body)
        return _check_keyword(mode, response.text)

    async def _send_expecting_success(
        self,
        session: _Session,
        mode: str,
        *,
        extra: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> str:
        keyword, message = await self._send_expecting(session, mode, extra=extra, body=body)
        if keyword != "success":
            raise FailureReply(mode, f"expected success, got {keyword!r}: {message}")
        return message

    # ---- session -------------------------------------------------------------------------

    async def _checkauth(self, session: _Session) -> None:
        response = await self._send(session, "checkauth")
        keyword, rest = _check_keyword("checkauth", response.text)
        lines = rest.split("\n") if rest else []
        if keyword != "success" or len(lines) < 2 or not lines[0]:
            raise EmulatorError(
                "checkauth: expected success, cookie name and cookie value, got "
                f"{response.text[:_PREVIEW_CHARS]!r}"
            )

        session.cookie = f"{lines[0]}={lines[1]}"
        if self._protocol_version is None:
            return  # the classic flow ignores lines after the cookie

        for line in lines[2:]:
            if line.startswith("sessid="):
                session.sessid = line.removeprefix("sessid=")
        if session.sessid is None:
            raise EmulatorError(
                f"checkauth reply has no sessid line; protocol version "
                f"{self._protocol_version!r} sends sessid on every later request"
            )

    async def _init(self, session: _Session) -> None:
        extra = [] if self._protocol_version is None else [("version", self._protocol_version)]
        response = await self._send(session, "init", extra=extra)
        values = _check_init_reply(response.text)

        session.zip = values.get("zip", "no") == "yes"
        session.file_limit = int(values["file_limit"])
        session.server_version = values.get("version")
        if self._protocol_version is not None and "sessid" in values:
            session.sessid = values["sessid"]

    async def _open_session(self, exchange_type: str, *, checkauth_times: int) -> _Session:
        session = _Session(exchange_type=exchange_type)
        for _ in range(checkauth_times):
            await self._checkauth(session)
        await self._init(session)
        return session

    # ---- uploads -------------------------------------------------------------------------

    def _temp_archive_name(self) -> str:
        # The counter stays within 0x10..0xff so the name always has two hex digits.
        step = self._rng.randint(1, 8)
        self._temp_counter = 0x10 + (self._temp_counter - 0x10 + step) % 0xF0
        return f"v8_{self._temp_prefix}_{self._temp_counter:02x}.zip"

    async def _upload_stream(self, session: _Session, filename: str, stream: IO[bytes]) -> None:
        """POST `stream` in pieces of at most file_limit bytes under the same file name.

        An empty file still goes out as one POST with an empty body.
        """
        chunk = stream.read(session.file_limit)
        while True:
            await self._send_expecting_success(
                session, "file", extra=[("filename", filename)], body=chunk
            )
            chunk = stream.read(session.file_limit)
            if not chunk:
                return

    async def _upload_path(self, session: _Session, filename: str, path: Path) -> None:
        with path.open("rb") as stream:
            await self._upload_stream(session, filename, stream)

    async def _upload_cycle_files(self, session: _Session, upload: _Upload) -> None:
        if session.zip:
            archive = await trio.to_thread.run_sync(_build_archive, upload)
            with archive:
                await self._upload_stream(session, self._temp_archive_name(), archive)
            return

        await self._upload_path(session, upload.xml.name, upload.xml)
        for member, path in upload.pictures:
            await self._upload_path(session, member, path)

    async def _import_until_done(self, session: _Session, filename: str) -> str:
        """Repeat `import` while the reply is `progress`; return the success message."""
        for attempt in range(self._max_import_requests):
            if attempt:
                await trio.sleep(self._progress_pause_s)
            keyword, message = await self._send_expecting(
                session, "import", extra=[("filename", filename)]
            )
            if keyword == "success":
                return message
            if keyword != "progress":
                raise FailureReply("import", f"unexpected reply {keyword!r} to import")
        raise FailureReply(
            "import",
            f"import of {filename!r} still replied progress after "
            f"{self._max_import_requests} requests",
        )

    # ---- catalog -------------------------------------------------------------------------

    async def exchange_catalog(
        self, files: Sequence[Path], *, pictures: Sequence[Path] = ()
    ) -> list[FileResult]:
        """Run one catalog exchange: a cycle per XML file, pictures in the first cycle.

        The first cycle opens with two `checkauth` requests and later cycles with one, as in
        the access log of a real 1C 8.3. The exchange stops at the first failed file, like
        1C, so the list may be shorter than `files`. A transport error, an HTTP status other
        than 200 or a failed checkauth/init raises EmulatorError.
        """
        results: list[FileResult] = []
        picture_members = [(_picture_member(path), path) for path in pictures]
        for index, xml in enumerate(files):
            upload = _Upload(xml=xml, pictures=picture_members if index == 0 else [])
            result = await self._catalog_cycle(upload, checkauth_times=2 if index == 0 else 1)
            results.append(result)
            if result.status != "success":
                break
        return results

    async def _catalog_cycle(self, upload: _Upload, *, checkauth_times: int) -> FileResult:
        started = time.perf_counter()
        session = await self._open_session("catalog", checkauth_times=checkauth_times)

        try:
            await self._upload_cycle_files(session, upload)
            status, message = "success", await self._import_until_done(session, upload.xml.name)
        except FailureReply as exc:
            status, message = "failure", exc.message

        result = FileResult(
            filename=upload.xml.name,
            status=status,
            message=message,
            seconds=time.perf_counter() - started,
            bytes_sent=session.bytes_sent,
            requests=session.requests,
        )
        log.info(
            "emulator.catalog_file_finished",
            filename=result.filename,
            status=result.status,
            requests=result.requests,
            bytes_sent=result.bytes_sent,
            zip=session.zip,
        )
        return result

    # ---- sale ----------------------------------------------------------------------------

    async def exchange_sale(self, *, status_dialect: StatusDialect = "requisites") -> SaleResult:
        """Run one sale exchange: query, store the orders, confirm, upload their statuses.

        Raises EmulatorError (FailureReply for a `failure` or unknown reply) on any failed step.
        """
        if status_dialect not in ("requisites", "elements"):
            raise ValueError(
                f"status_dialect must be 'requisites' or 'elements', got {status_dialect!r}"
            )
        session = await self._open_session("sale", checkauth_times=2)

        documents = await self._query(session)
        self.queries += 1
        new, duplicates = self._store_orders(documents)

        await self._send_expecting_success(session, "success")
        self._confirm_orders(documents)

        statuses_sent = await self._send_statuses(session, status_dialect)
        result = SaleResult(
            offered=len(documents), new=new, duplicates=duplicates, statuses_sent=statuses_sent
        )
        log.info(
            "emulator.sale_finished",
            offered=result.offered,
            new=result.new,
            duplicates=result.duplicates,
            statuses_sent=result.statuses_sent,
        )
        return result

    async def _query(self, session: _Session) -> list[OrderDocument]:
        response = await self._send(session, "query")
        body = response.content
        text_start = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:16]
        if not text_start:
            raise EmulatorError(
                "query: empty reply; expected CommerceML XML, "
                "with an empty root element when there are no orders"
            )
        if not text_start.startswith(b"<"):
            _check_keyword("query", response.text)
            raise FailureReply(
                "query", f"expected CommerceML XML, got {response.text[:_PREVIEW_CHARS]!r}"
            )

        try:
            items = list(iter_document(io.BytesIO(body), tz=self._tz, filename="query.xml"))
        except CommerceMLError as exc:
            raise EmulatorError(
                f"query: the reply is not a readable CommerceML document: {exc}"
            ) from exc
        return [item for item in items if isinstance(item, OrderDocument)]

    def _store_orders(self, documents: Sequence[OrderDocument]) -> tuple[int, int]:
        """Record each offered order; return (new, duplicates) for this query."""
        new = duplicates = 0
        for document in documents:
            stored = self.received.get(document.site_id)
            if stored is None:
                self.received[document.site_id] = ReceivedOrder(
                    site_id=document.site_id,
                    number=document.number or "",
                    total=_order_total(document),
                    lines=len(document.lines),
                    times_offered=1,
                    confirmed_at_query=0,
                )
                self._documents[document.site_id] = document
                self._numbers_1c[document.site_id] = (self._take_number_1c(), datetime.now(UTC))
                self._status_pending.append(document.site_id)
                new += 1
                continue

            stored.times_offered += 1
            if stored.confirmed_at_query:
                duplicates += 1
        self.duplicates += duplicates
        return new, duplicates

    def _confirm_orders(self, documents: Sequence[OrderDocument]) -> None:
        for document in documents:
            stored = self.received[document.site_id]
            if not stored.confirmed_at_query:
                stored.confirmed_at_query = self.queries

    def _take_number_1c(self) -> str:
        number = f"ЦБ-{self._next_number_1c:06d}"
        self._next_number_1c += 1
        return number

    def _status_updates(self, site_ids: Sequence[str]) -> list[OrderDocument]:
        """Build 1C's status updates for stored orders: its own number, posted, status "Открыт"."""
        updates = []
        for site_id in site_ids:
            number_1c, stored_at = self._numbers_1c[site_id]
            update = replace(
                self._documents[site_id],
                number_1c=number_1c,
                date_1c=stored_at,
                posted=True,
                status_text=NEW_ORDER_STATUS,
                requisites={},  # 1C writes its own requisites, never echoes the site's
            )
            updates.append(update)
        return updates

    async def _send_statuses(self, session: _Session, dialect: StatusDialect) -> int:
        """Upload the status file for orders not yet reported; return how many it carries."""
        pending = list(self._status_pending)
        if not pending:
            return 0

        updates = self._status_updates(pending)
        data = render_status_updates(
            updates,
            tz=self._tz,
            dialect=dialect,
            schema_version=_status_schema_version(dialect, self._protocol_version),
        )
        filename = f"orders-{datetime.now(UTC).astimezone(self._tz):%Y%m%d%H%M%S}.xml"
        await self._upload_orders_file(session, filename, data)

        if self._protocol_version is not None and session.server_version is not None:
            await self._import_until_done(session, filename)
        del self._status_pending[: len(pending)]
        return len(updates)

    async def _upload_orders_file(self, session: _Session, filename: str, data: bytes) -> None:
        # NOTE: with zip=yes the status file goes out zipped under a v8_ temporary name, as the
        # catalog files do; no access log of a real 1C sale exchange with zip=yes was available.
        if session.zip:
            archive = _build_archive_from_bytes(filename, data)
            with archive:
                await self._upload_stream(session, self._temp_archive_name(), archive)
            return

        await self._upload_stream(session, filename, io.BytesIO(data))
