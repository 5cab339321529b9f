"""`/1c/exchange`: the HTTP face of the CommerceML exchange (1C's "Обмен с сайтом").

Every answer is HTTP 200 with a plain-text body whose first line is `success`, `progress`
or `failure` (or the XML of `mode=query`), because 1C reads the body, not the status.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from quart import Blueprint, Response, request

from api.context import hub
from api.messages import pick_language
from tentorium_hub import metrics
from tentorium_hub.errors import StorageError
from tentorium_hub.exchange import COOKIE_NAME, EXCHANGE_TYPES, Reply, Session, failure
from tentorium_hub.logs import get_logger

exchange_blueprint = Blueprint("exchange", __name__)
log = get_logger("api.exchange")
MODES = (
    "checkauth",
    "init",
    "file",
    "import",
    "query",
    "success",
    "deactivate",
    "complete",
    "info",
)


def _lang() -> str:
    if request.args.get("lang", "").lower() == "en":
        return "en"
    return pick_language(request.headers.get("Accept-Language"))


def _reply(reply: Reply) -> Response:
    response = Response(reply.render(), status=200, content_type=reply.content_type)
    if reply.status == "success" and len(reply.lines) >= 2 and reply.lines[0] == COOKIE_NAME:
        response.set_cookie(COOKIE_NAME, reply.lines[1], httponly=True, samesite="Lax")
    return response


@exchange_blueprint.route("/1c/exchange", methods=["GET", "POST"])
async def exchange() -> Response:
    started = time.perf_counter()
    exchange_type = request.args.get("type", "").strip().lower()
    mode = request.args.get("mode", "").strip().lower()
    lang = _lang()
    try:
        reply = await _dispatch(exchange_type, mode, lang)
    except StorageError as exc:
        log.error("exchange.storage_error", mode=mode, error=str(exc))
        reply = failure(
            "Сервер временно не может сохранить данные. Повторите обмен позже.",
            "The hub cannot store data right now; retry the exchange later.",
            lang,
        )
    metrics.record_exchange(
        "commerceml",
        mode or "none",
        reply.status if reply.status in ("success", "progress", "failure") else "success",
        time.perf_counter() - started,
    )
    return _reply(reply)


async def _dispatch(exchange_type: str, mode: str, lang: str) -> Reply:
    if exchange_type not in EXCHANGE_TYPES:
        return failure(
            f"Неизвестный тип обмена type={exchange_type!r}. Допустимо: catalog или sale.",
            f"Unknown exchange type={exchange_type!r}; use catalog or sale.",
            lang,
        )
    if mode not in MODES:
        return failure(
            f"Неизвестный режим mode={mode!r}. Обновите модуль обмена 1С или проверьте адрес.",
            f"Unknown mode={mode!r}; check the exchange module and the URL.",
            lang,
        )
    service = hub().exchange
    authorization = request.headers.get("Authorization")
    if mode == "checkauth":
        return await service.checkauth(exchange_type, authorization, lang)
    token = request.cookies.get(COOKIE_NAME) or request.args.get("sessid")
    session = await service.resolve_session(exchange_type, token, authorization)
    if session is None:
        return failure(
            "Сеанс обмена не найден или истёк. Начните обмен заново (mode=checkauth).",
            "No live exchange session; start again with mode=checkauth.",
            lang,
        )
    return await _run_mode(session, mode, token, lang)


async def _run_mode(session: Session, mode: str, token: str | None, lang: str) -> Reply:
    service = hub().exchange
    filename = request.args.get("filename", "")
    if mode == "init":
        return await service.init(session, request.args.get("version"), token)
    if mode in ("file", "import") and not filename:
        return failure(
            f"Не указан параметр filename для mode={mode}.",
            f"The filename parameter is missing for mode={mode}.",
            lang,
        )
    if mode == "file":
        return await service.receive_file(session, filename, _body_chunks(), lang)
    if mode == "import":
        return await service.import_step(session, filename, lang)
    if mode == "query" and session.exchange_type == "sale":
        return await service.query(session)
    if mode == "success" and session.exchange_type == "sale":
        return await service.success(session)
    # deactivate, complete and info: optional tail steps of newer 1C modules.
    return Reply("success")


async def _body_chunks() -> AsyncIterator[bytes]:
    async for chunk in request.body:
        yield chunk
