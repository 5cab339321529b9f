"""The Quart-Trio application: shop/app API, CMS admin API, 1C exchange, health and metrics."""

from __future__ import annotations

import time
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from api.exchange import exchange_blueprint
from api.messages import pick_language
from api.problems import problem
from api.routes import api_blueprint
from tentorium_hub import metrics
from tentorium_hub.errors import (
    ActorNotFound,
    AskTimeout,
    ConflictError,
    HubError,
    MailboxFull,
    NotFoundError,
    StorageError,
    ValidationError,
)
from tentorium_hub.logs import get_logger
from tentorium_hub.node import NodeContext

log = get_logger("api")


def create_app(ctx: NodeContext) -> QuartTrio:
    """Build the app bound to a running node."""
    app = QuartTrio("tentorium_hub")
    app.config["MAX_CONTENT_LENGTH"] = ctx.settings.exchange_max_upload_bytes
    app.config["BODY_TIMEOUT"] = 600
    app.extensions["hub"] = ctx
    app.register_blueprint(api_blueprint)
    app.register_blueprint(exchange_blueprint)
    _install_hooks(app)
    _install_error_handlers(app)
    return app


def _install_hooks(app: QuartTrio) -> None:
    @app.before_request
    async def start_timer() -> None:
        request.started = time.perf_counter()  # type: ignore[attr-defined]

    @app.after_request
    async def observe(response: Response) -> Response:
        started = getattr(request, "started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule else "unmatched"
            metrics.HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response


def _install_error_handlers(app: QuartTrio) -> None:
    def lang() -> str:
        return pick_language(request.headers.get("Accept-Language"))

    @app.errorhandler(ValidationError)
    async def on_validation(exc: ValidationError) -> Response:
        errors = [{"field": exc.field, "message": str(exc)}] if exc.field else None
        return problem(
            422,
            exc.code or "invalid_field",
            lang(),
            params=_params(exc),
            fallback=str(exc),
            errors=errors,
        )

    @app.errorhandler(NotFoundError)
    async def on_not_found(exc: NotFoundError) -> Response:
        return problem(404, exc.code or "not_found", lang(), params=_params(exc), fallback=str(exc))

    @app.errorhandler(ConflictError)
    async def on_conflict(exc: ConflictError) -> Response:
        return problem(409, exc.code or "conflict", lang(), params=exc.params, fallback=str(exc))

    @app.errorhandler(AskTimeout)
    @app.errorhandler(ActorNotFound)
    @app.errorhandler(MailboxFull)
    async def on_overload(exc: HubError) -> Response:
        log.warning("api.actor_unavailable", path=request.path, error=str(exc))
        return problem(503, "overloaded", lang(), fallback=str(exc), headers={"Retry-After": "5"})

    @app.errorhandler(StorageError)
    async def on_storage(exc: StorageError) -> Response:
        log.error("api.storage_error", path=request.path, error=str(exc))
        return problem(
            503, "storage_unavailable", lang(), fallback=str(exc), headers={"Retry-After": "10"}
        )

    @app.errorhandler(HTTPException)
    async def on_http(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            status, "internal"
        )
        params = {
            "path": request.path,
            "method": request.method,
            "limit": app.config["MAX_CONTENT_LENGTH"],
        }
        return problem(status, code, lang(), params=params, fallback=exc.description or "")

    @app.errorhandler(HubError)
    async def on_hub_error(exc: HubError) -> Response:
        log.error("api.unhandled_hub_error", path=request.path, error=str(exc))
        return problem(500, "internal", lang(), fallback=str(exc))

    @app.errorhandler(Exception)
    async def on_unexpected(exc: Exception) -> Response:
        log.error("api.internal_error", path=request.path, exc_info=exc)
        return problem(500, "internal", lang())


def _params(exc: HubError) -> dict[str, Any]:
    params = dict(exc.params)
    params.setdefault("path", request.path)
    return params


async def serve(
    ctx: NodeContext, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the app on settings.http_host:http_port; report the bound port when listening."""
    app = create_app(ctx)
    config = Config()
    config.bind = [f"{ctx.settings.http_host}:{ctx.settings.http_port}"]
    config.accesslog = None
    config.errorlog = None
    # 1C can pause between exchange requests; keep its connection open meanwhile.
    config.keep_alive_timeout = 75
    config.graceful_timeout = 10
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(_serve_app, app, config)
        port = int(binds[0].rsplit(":", 1)[1])
        log.info("http.listening", url=binds[0])
        task_status.started(port)


async def _serve_app(
    app: QuartTrio, config: Config, *, task_status: trio.TaskStatus[list[str]]
) -> None:
    await hypercorn_serve(app, config, task_status=task_status)
