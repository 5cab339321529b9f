"""The CommerceML "Обмен с сайтом" protocol, server side, independent of the web framework.

1C drives the exchange: `checkauth` opens a session, `init` starts a transfer, `file`
appends uploaded chunks, `import` processes a file step-wise, and for orders `query` and
`success` hand over new orders. The HTTP layer turns each request into one call here and
writes the returned `Reply` as plain text. The CLI uses the same calls for local files.
"""

from __future__ import annotations

import base64
import functools
import re
import secrets
import shutil
import time
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

import trio

from connectors.commerceml import archive, paths, writer
from connectors.commerceml.model import OrderLine
from tentorium_hub import metrics
from tentorium_hub.domain.secrets import hash_token, verify_password
from tentorium_hub.errors import CommerceMLError, StorageError
from tentorium_hub.importer import ImportResult, import_file
from tentorium_hub.logs import get_logger
from tentorium_hub.settings import Settings
from tentorium_hub.storage import Database
from tentorium_hub.storage import branches as branches_db
from tentorium_hub.storage import catalog as catalog_db
from tentorium_hub.storage import exchange as exchange_db
from tentorium_hub.storage import outbox as outbox_db
from tentorium_hub.storage.branches import Branch
from tentorium_hub.storage.outbox import ExportOrder

COOKIE_NAME = "TH_EXCHANGE"
JANITOR_INTERVAL_S = 600.0
EXCHANGE_TYPES = ("catalog", "sale")
log = get_logger("exchange")


@dataclass(frozen=True)
class Reply:
    """A protocol reply: a keyword line plus free text, or an XML body for `query`."""

    status: str  # success | progress | failure, or "xml" for a query body
    lines: tuple[str, ...] = ()
    body: bytes | None = None
    content_type: str = "text/plain; charset=utf-8"

    def render(self) -> bytes:
        if self.body is not None:
            return self.body
        return ("\n".join((self.status, *self.lines)) + "\n").encode("utf-8")


def failure(message_ru: str, message_en: str, lang: str) -> Reply:
    return Reply("failure", (message_en if lang == "en" else message_ru,))


@dataclass
class Session:
    id: uuid.UUID
    branch: Branch
    exchange_type: str
    protocol_version: str | None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.branch.time_zone)


@dataclass
class _Job:
    done: trio.Event = field(default_factory=trio.Event)
    started: float = field(default_factory=time.monotonic)
    state: str = "running"
    message: str = ""


class ExchangeService:
    """Server side of the CommerceML exchange for every branch."""

    def __init__(self, db: Database, settings: Settings, *, node_id: str) -> None:
        self._db = db
        self._settings = settings
        self._node_id = node_id
        self._jobs: dict[int, _Job] = {}
        self._branch_locks: dict[str, trio.Lock] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host background imports and clean up stale sessions until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                await trio.sleep(JANITOR_INTERVAL_S)
                await self.clean_up()

    async def clean_up(self) -> None:
        """Drop expired sessions and the upload folders left untouched for the TTL."""
        ttl = self._settings.exchange_session_ttl_s
        try:
            expired = await self._db.run(exchange_db.expire_sessions, ttl)
        except StorageError as exc:
            log.warning("exchange.cleanup_failed", error=str(exc))
            return
        removed = await trio.to_thread.run_sync(_remove_stale_dirs, self._settings.uploads_dir, ttl)
        if expired or removed:
            log.info("exchange.cleaned_up", sessions=len(expired), folders=removed)

    # -- authentication and sessions ------------------------------------------------

    async def checkauth(self, exchange_type: str, authorization: str | None, lang: str) -> Reply:
        branch = await self._authenticate(authorization)
        if branch is None:
            return failure(
                "Неверный логин или пароль обмена. Проверьте настройки узла обмена в 1С.",
                "Invalid exchange login or password; check the exchange node settings in 1C.",
                lang,
            )
        if branch.paused:
            return failure(
                f"Обмен с филиалом {branch.code} приостановлен администратором хаба. "
                "Повторите обмен после возобновления.",
                f"Exchange with branch {branch.code} is paused by a hub administrator; "
                "retry after it is resumed.",
                lang,
            )
        token = secrets.token_urlsafe(24)
        session_id = await self._db.run(
            exchange_db.create_session, branch.code, exchange_type, hash_token(token)
        )
        log.info(
            "exchange.checkauth", branch=branch.code, type=exchange_type, session=str(session_id)
        )
        lines = [COOKIE_NAME, token, f"sessid={token}"]
        if exchange_type == "catalog":
            lines.append(f"timestamp={int(time.time())}")
        return Reply("success", tuple(lines))

    async def _authenticate(self, authorization: str | None) -> Branch | None:
        credentials = parse_basic(authorization)
        if credentials is None:
            return None
        login, password = credentials
        branch = await self._db.run(branches_db.find_branch_by_login, login)
        if branch is None or not branch.exchange_password_hash:
            return None
        ok = await trio.to_thread.run_sync(verify_password, password, branch.exchange_password_hash)
        return branch if ok else None

    async def resolve_session(
        self, exchange_type: str, token: str | None, authorization: str | None
    ) -> Session | None:
        """Find the session by cookie or `sessid`; with only Basic, open a new one."""
        if token:
            found = await self._db.run(
                exchange_db.find_session, hash_token(token), self._settings.exchange_session_ttl_s
            )
            if found is not None:
                session_id, code, version = found
                found_branch = await self._db.run(branches_db.get_branch, code)
                return Session(session_id, found_branch, exchange_type, version)
        branch = await self._authenticate(authorization)
        if branch is None:
            return None
        new_token = secrets.token_urlsafe(24)
        session_id = await self._db.run(
            exchange_db.create_session, branch.code, exchange_type, hash_token(new_token)
        )
        return Session(session_id, branch, exchange_type, None)

    async def open_local_session(self, branch_code: str, exchange_type: str) -> Session:
        """Open a session for files handed over locally (the CLI), not by 1C over HTTP."""
        branch = await self._db.run(branches_db.get_branch, branch_code)
        token = secrets.token_urlsafe(24)
        session_id = await self._db.run(
            exchange_db.create_session, branch.code, exchange_type, hash_token(token)
        )
        session = Session(session_id, branch, exchange_type, "local")
        await trio.to_thread.run_sync(_reset_dir, self.session_dir(session))
        return session

    def session_dir(self, session: Session) -> Path:
        return self._settings.uploads_dir / session.branch.code / str(session.id)

    # -- init and file ------------------------------------------------------------------

    async def init(self, session: Session, version: str | None, token: str | None) -> Reply:
        """Start a transfer: empty this session's folder and tell 1C how to send files."""
        folder = self.session_dir(session)
        await trio.to_thread.run_sync(_reset_dir, folder)
        if version:
            await self._db.run(exchange_db.set_protocol_version, session.id, version)
            session.protocol_version = version
        lines = [
            f"zip={'yes' if session.branch.zip_enabled else 'no'}",
            f"file_limit={session.branch.file_limit_bytes}",
        ]
        if version:
            lines += [f"sessid={token or ''}", f"version={_answer_version(version)}"]
        return Reply(lines[0], tuple(lines[1:]))

    async def receive_file(
        self, session: Session, raw_filename: str, chunks: AsyncIterator[bytes], lang: str
    ) -> Reply:
        """Append one uploaded chunk to `filename` inside the session folder."""
        try:
            relative = paths.sanitize_filename(raw_filename)
        except CommerceMLError as exc:
            return failure(exc.message_ru, str(exc), lang)
        target = self.session_dir(session) / relative
        written = await self._append(target, chunks, session)
        if written is None:
            limit = self._settings.exchange_max_upload_bytes
            return failure(
                f"Файл {raw_filename} больше допустимого размера {limit} байт. "
                "Уменьшите размер выгрузки (порцию) в настройках обмена 1С.",
                f"File {raw_filename!r} exceeds the {limit} byte upload limit; "
                "reduce the portion size in the 1C exchange settings.",
                lang,
            )
        if session.exchange_type == "sale" and not session.protocol_version:
            # Classic sale flow: 1C expects the uploaded order changes processed now.
            if not _is_xml_name(relative) and not archive.is_zip(target):
                return Reply("success")
            # 1C cuts files above file_limit into several `file` requests and does not say
            # which one is the last, so import only once the document is whole.
            if not await trio.to_thread.run_sync(_looks_complete, target):
                return Reply("success", (f"Получена часть файла: {written} байт",))
            return await self._import_now(session, relative, lang)
        return Reply("success", (f"Получено байт: {written}",))

    async def _append(
        self, target: Path, chunks: AsyncIterator[bytes], session: Session
    ) -> int | None:
        """Append the request body to `target`; None (and nothing kept) when over the limit.

        The body goes to a part file first and is appended only once it arrived whole, so a
        connection dropped mid-upload leaves the file as it was before the request.
        """
        limit = self._settings.exchange_max_upload_bytes
        existing = await trio.to_thread.run_sync(_prepare_append, target)
        part = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        written = 0
        try:
            async with await trio.open_file(part, "wb") as handle:
                async for chunk in chunks:
                    written += len(chunk)
                    if existing + written > limit:
                        log.warning(
                            "exchange.upload_too_large",
                            branch=session.branch.code,
                            file=target.name,
                            limit=limit,
                        )
                        return None
                    await handle.write(chunk)
            await trio.to_thread.run_sync(_append_part, part, target)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(functools.partial(part.unlink, missing_ok=True))
        return written

    # -- import ---------------------------------------------------------------------------

    async def import_step(self, session: Session, raw_filename: str, lang: str) -> Reply:
        """Process one `mode=import` request: progress while work remains, then the result."""
        try:
            relative = paths.sanitize_filename(raw_filename)
        except CommerceMLError as exc:
            return failure(exc.message_ru, str(exc), lang)
        folder = self.session_dir(session)
        target = folder / relative
        if not target.exists():
            unpacked = await self._unpack_archives(session, lang)
            if unpacked is not None:
                return unpacked
            return failure(
                f"Файл {raw_filename} не найден среди загруженных в этом сеансе. "
                "Повторите обмен: сначала mode=file, затем mode=import.",
                f"File {raw_filename!r} was not uploaded in this session; "
                "upload it with mode=file before mode=import.",
                lang,
            )
        _, job = await self._ensure_job(session, relative, target)
        with trio.move_on_after(self._settings.exchange_step_s):
            await job.done.wait()
        if job.state == "running":
            waited = int(time.monotonic() - job.started)
            return Reply("progress", (f"Идёт загрузка {raw_filename}: {waited} с",))
        if job.state == "success":
            return Reply("success", (job.message,))
        return Reply("failure", (job.message,))

    async def _unpack_archives(self, session: Session, lang: str) -> Reply | None:
        """Unpack uploaded zips on the first `import`, replying progress so 1C repeats it."""
        folder = self.session_dir(session)
        zips = [p for p in folder.glob("*") if p.is_file() and archive.is_zip(p)]
        if not zips:
            return None
        for path in zips:
            try:
                extract = functools.partial(
                    archive.safe_extract_zip,
                    path,
                    folder,
                    max_total_bytes=self._settings.exchange_max_upload_bytes,
                    max_ratio=self._settings.exchange_max_unzip_ratio,
                )
                await trio.to_thread.run_sync(extract)
            except CommerceMLError as exc:
                log.warning(
                    "exchange.unzip_failed",
                    branch=session.branch.code,
                    file=path.name,
                    error=str(exc),
                )
                await trio.to_thread.run_sync(path.unlink)
                return failure(exc.message_ru, str(exc), lang)
            await trio.to_thread.run_sync(path.unlink)
        names = ", ".join(p.name for p in zips)
        return Reply("progress", (f"Архив {names} распакован",))

    async def _ensure_job(
        self, session: Session, relative: PurePosixPath, target: Path
    ) -> tuple[int, _Job]:
        size = await trio.to_thread.run_sync(lambda: target.stat().st_size)
        job_id, created = await self._db.run(
            exchange_db.start_import_job,
            session.branch.code,
            session.id,
            str(relative),
            self._node_id,
            size,
        )
        job = self._jobs.get(job_id)
        if job is not None:
            return job_id, job
        stored = await self._db.run(exchange_db.get_import_job, job_id)
        job = _Job()
        self._jobs[job_id] = job
        if not created and stored.get("state") in ("success", "failure"):
            # 1C repeated `import` after the hub replied to it, perhaps after a restart.
            job.state, job.message = stored["state"], stored["message"] or ""
            job.done.set()
            return job_id, job
        assert self._nursery is not None, "ExchangeService.run() must be started first"
        self._nursery.start_soon(self._run_job, session, relative, target, job_id, job)
        return job_id, job

    async def _run_job(
        self, session: Session, relative: PurePosixPath, target: Path, job_id: int, job: _Job
    ) -> None:
        branch = session.branch.code
        lock = self._branch_locks.setdefault(branch, trio.Lock())
        started = time.monotonic()
        async with lock:
            try:
                # A job restarted after a crash may have staged rows from its first run.
                await self._db.run(catalog_db.clear_stage, job_id)
                result = await import_file(
                    self._db, branch=branch, path=target, job_id=job_id, tz=session.tz
                )
            except CommerceMLError as exc:
                await self._finish(
                    session,
                    relative,
                    job_id,
                    job,
                    "failure",
                    exc.message_ru,
                    {},
                    started,
                    error=str(exc),
                )
                return
            except (StorageError, OSError) as exc:
                await self._finish(
                    session,
                    relative,
                    job_id,
                    job,
                    "failure",
                    f"Внутренняя ошибка сервера при загрузке {relative}: повторите обмен позже.",
                    {},
                    started,
                    error=str(exc),
                )
                return
        await self._keep_pictures(session)
        await self._finish(
            session, relative, job_id, job, "success", result.summary_ru(), _counts(result), started
        )

    async def _finish(
        self,
        session: Session,
        relative: PurePosixPath,
        job_id: int,
        job: _Job,
        state: str,
        message: str,
        counts: dict[str, int],
        started: float,
        *,
        error: str | None = None,
    ) -> None:
        seconds = time.monotonic() - started
        branch = session.branch.code
        with trio.CancelScope(shield=True):
            await self._db.run(exchange_db.finish_import_job, job_id, state, message, counts)
            await self._db.run(
                exchange_db.log_exchange,
                branch,
                direction="in",
                step="import",
                result=state,
                filename=str(relative),
                size_bytes=_size(self.session_dir(session) / relative),
                duration_s=seconds,
                error=error,
                counts=counts,
            )
            if state == "success":
                when = await self._db.run(branches_db.record_success, branch)
                metrics.record_branch_success(branch, when.timestamp())
            else:
                failures = await self._db.run(branches_db.record_failure, branch, error or message)
                metrics.record_branch_failure(branch, failures)
        metrics.record_exchange("commerceml", "import", state, seconds)
        emit = log.info if state == "success" else log.warning
        emit(
            "exchange.import_done" if state == "success" else "exchange.import_failed",
            branch=branch,
            file=str(relative),
            seconds=round(seconds, 3),
            counts=counts,
            error=error,
        )
        job.state, job.message = state, message
        job.done.set()

    async def _import_now(self, session: Session, relative: PurePosixPath, lang: str) -> Reply:
        """Classic sale flow: process the uploaded order file inside the `file` request."""
        target = self.session_dir(session) / relative
        if archive.is_zip(target):
            unpacked = await self._unpack_archives(session, lang)
            if unpacked is not None and unpacked.status == "failure":
                return unpacked
            xml_files = sorted(self.session_dir(session).rglob("*.xml"))
        else:
            xml_files = [target]
        for path in xml_files:
            rel = PurePosixPath(path.relative_to(self.session_dir(session)).as_posix())
            _, job = await self._ensure_job(session, rel, path)
            await job.done.wait()
            if job.state != "success":
                return Reply("failure", (job.message,))
        return Reply("success", ("Статусы заказов загружены",))

    async def _keep_pictures(self, session: Session) -> None:
        source = self.session_dir(session) / "import_files"
        if not source.is_dir():
            return
        dest = self._settings.pictures_dir / session.branch.code / "import_files"
        await trio.to_thread.run_sync(lambda: shutil.copytree(source, dest, dirs_exist_ok=True))

    # -- orders to 1C ----------------------------------------------------------------------

    async def query(self, session: Session) -> Reply:
        """Return the pending orders of the branch as a CommerceML document."""
        started = time.monotonic()
        branch = session.branch
        exports = await self._db.transaction(
            outbox_db.offer_for_session, branch.code, session.id, self._settings.delivery_batch_size
        )
        body = writer.render_orders(
            [to_writer_order(e) for e in exports],
            tz=session.tz,
            profile=export_profile(branch),
        )
        seconds = time.monotonic() - started
        await self._db.run(
            exchange_db.log_exchange,
            branch.code,
            direction="out",
            step="query",
            result="success",
            size_bytes=len(body),
            duration_s=seconds,
            counts={"orders": len(exports)},
        )
        metrics.record_exchange("commerceml", "query", "success", seconds)
        log.info("exchange.query", branch=branch.code, orders=len(exports))
        content_type = f"application/xml; charset={branch.export_encoding}"
        return Reply("xml", body=body, content_type=content_type)

    async def success(self, session: Session) -> Reply:
        """1C stored the orders of the last `query`: mark them delivered."""
        count = await self._db.transaction(
            outbox_db.confirm_session, session.branch.code, session.id
        )
        when = await self._db.run(branches_db.record_success, session.branch.code)
        metrics.record_branch_success(session.branch.code, when.timestamp())
        await self._db.run(
            exchange_db.log_exchange,
            session.branch.code,
            direction="out",
            step="success",
            result="success",
            counts={"orders": count},
        )
        log.info("exchange.success", branch=session.branch.code, orders=count)
        return Reply("success", (f"Подтверждено заказов: {count}",))


def export_profile(branch: Branch) -> writer.ExportProfile:
    """Return the branch's settings for the order documents its 1C reads."""
    return writer.ExportProfile(
        schema_version=branch.export_schema_version,
        encoding=branch.export_encoding,
        style=branch.export_style,  # type: ignore[arg-type]
        delivery=branch.export_delivery,  # type: ignore[arg-type]
        delivery_item_id=branch.export_delivery_id,
        discounts=branch.export_discounts,  # type: ignore[arg-type]
    )


def to_writer_order(export: ExportOrder) -> writer.ExportOrder:
    customer = export.customer
    lines = tuple(
        OrderLine(
            external_id=ln.offer_id,
            name=ln.name,
            quantity=ln.quantity,
            price=ln.price,
            amount=ln.amount,
            discount=ln.discount,
        )
        for ln in export.lines
    )
    return writer.ExportOrder(
        site_id=export.number,
        number=export.number,
        created_at=export.created_at.astimezone(UTC),
        currency=export.currency,
        total=export.total,
        customer=writer.Customer(
            id=str(customer.get("id") or customer.get("distributor_id") or export.number),
            name=str(customer.get("name") or "Покупатель"),
            phone=customer.get("phone"),
            email=customer.get("email"),
            address=customer.get("address"),
        ),
        lines=lines,
        comment=export.comment,
        delivery_cost=export.delivery_cost,
    )


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """Decode an HTTP Basic `Authorization` header; 1C sends UTF-8 logins."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    login, sep, password = decoded.partition(":")
    return (login, password) if sep else None


def _answer_version(requested: str) -> str:
    # The hub reads every version from 2.03 to 3.1; echoing the request keeps 1C's
    # newer modules on the flow they asked for.
    return requested


def _prepare_append(target: Path) -> int:
    """Create the target's folder; return how many bytes earlier chunks already wrote."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.stat().st_size if target.exists() else 0


_ROOT_END = re.compile(
    r"(</(\w+:)?КоммерческаяИнформация>|<(\w+:)?КоммерческаяИнформация[^<>]*/>)\s*$"
)


def _looks_complete(path: Path) -> bool:
    """Tell whether an uploaded order file is whole: a zip with its central directory, or
    an XML document that ends with its root element (in UTF-8 or windows-1251)."""
    if archive.is_zip(path):
        return zipfile.is_zipfile(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(max(0, size - 512))
        tail = handle.read()
    for encoding in ("utf-8", "cp1251"):
        if _ROOT_END.search(tail.decode(encoding, errors="ignore").rstrip("\x00")):
            return True
    return False


def _remove_stale_dirs(root: Path, ttl_s: float) -> int:
    """Remove session folders (root/<branch>/<session>) unmodified for `ttl_s` seconds."""
    if not root.is_dir():
        return 0
    cutoff = time.time() - ttl_s
    removed = 0
    for branch_dir in root.iterdir():
        if not branch_dir.is_dir():
            continue
        for session_dir in branch_dir.iterdir():
            if session_dir.is_dir() and _newest_mtime(session_dir) < cutoff:
                shutil.rmtree(session_dir, ignore_errors=True)
                removed += 1
    return removed


def _newest_mtime(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for path in folder.rglob("*"):
        newest = max(newest, path.stat().st_mtime)
    return newest


def _append_part(part: Path, target: Path) -> None:
    with part.open("rb") as source, target.open("ab") as sink:
        shutil.copyfileobj(source, sink, 1 << 20)


def _reset_dir(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _is_xml_name(relative: PurePosixPath) -> bool:
    return relative.suffix.lower() == ".xml"


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _counts(result: ImportResult) -> dict[str, int]:
    counts = dict(result.counts)
    counts["offer_errors"] = len(result.offer_errors)
    counts["statuses"] = result.statuses_applied
    counts["orders_unknown"] = result.orders_unknown
    return counts


def utc_now() -> datetime:
    return datetime.now(UTC)
