"""JSON endpoints for the shop, the app and the CMS, plus health, metrics and OpenAPI."""

from __future__ import annotations

import json
import mimetypes
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic
import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Blueprint, Response, g, request

from actors.messages import Availability, BranchControl, OrderAccepted, Wake
from api.auth import require
from api.context import hub
from api.encoding import json_response
from api.messages import pick_language
from api.openapi import build_openapi
from api.problems import problem
from api.schemas import BranchCreate, BranchUpdate, OrderCreate
from connectors.commerceml.paths import sanitize_filename
from tentorium_hub.branches import change_branch, new_branch
from tentorium_hub.domain.orders import request_fingerprint
from tentorium_hub.errors import CommerceMLError, ConflictError, MailboxFull
from tentorium_hub.logs import get_logger
from tentorium_hub.storage import branches as branches_db
from tentorium_hub.storage import catalog as catalog_db
from tentorium_hub.storage import exchange as exchange_db
from tentorium_hub.storage import orders as orders_db
from tentorium_hub.storage.branches import Branch

api_blueprint = Blueprint("api", __name__)
log = get_logger("api")
MAX_JSON_BYTES = 1024 * 1024


def _lang() -> str:
    return pick_language(request.headers.get("Accept-Language"))


async def _read_json() -> tuple[dict[str, Any] | None, Response | None]:
    """Parse the body with exact decimals; return (body, None) or (None, problem)."""
    raw = await request.get_data(cache=False)
    if len(raw) > MAX_JSON_BYTES:
        return None, problem(413, "payload_too_large", _lang(), params={"limit": MAX_JSON_BYTES})
    try:
        body = json.loads(raw or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, problem(400, "invalid_body", _lang(), params={"error": str(exc)})
    if not isinstance(body, dict):
        return None, problem(
            400, "invalid_body", _lang(), params={"error": "expected a JSON object"}
        )
    return body, None


def _validation_problem(exc: pydantic.ValidationError) -> Response:
    errors = [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
        for err in exc.errors()
    ]
    first = errors[0]
    return problem(
        422,
        "invalid_field",
        _lang(),
        errors=errors,
        params={"field": first["field"], "error": first["message"]},
    )


# -- catalog --------------------------------------------------------------------------


@api_blueprint.get("/api/v1/products")
@require("shop")
async def list_products() -> Response:
    branch = request.args.get("branch", "").strip()
    if not branch:
        return problem(
            422,
            "invalid_query",
            _lang(),
            params={"field": "branch", "error": "обязателен код филиала / branch code is required"},
        )
    try:
        limit = int(request.args.get("limit", "100"))
        after = int(request.args.get("after", "0"))
    except ValueError:
        return problem(
            422,
            "invalid_query",
            _lang(),
            params={"field": "limit/after", "error": "ожидается целое число / integer expected"},
        )
    if not 1 <= limit <= 500:
        return problem(
            422,
            "invalid_query",
            _lang(),
            params={"field": "limit", "error": "от 1 до 500 / from 1 to 500"},
        )
    await hub().db.run(branches_db.get_branch, branch)
    items = await hub().db.run(catalog_db.list_products, branch, after_id=after, limit=limit)
    next_after = items[-1]["id"] if len(items) == limit else None
    return json_response({"items": items, "next_after": next_after})


@api_blueprint.get("/api/v1/availability")
@require("shop")
async def availability() -> Response:
    """Stock of the given offers in a branch, in total and per warehouse."""
    branch = request.args.get("branch", "").strip()
    offers = [o.strip() for o in request.args.getlist("offer") if o.strip()]
    if not branch or not offers or len(offers) > 500:
        return problem(
            422,
            "invalid_query",
            _lang(),
            params={
                "field": "branch/offer",
                "error": "нужны branch и от 1 до 500 параметров offer / "
                "branch and 1 to 500 offer parameters are required",
            },
        )
    await hub().db.run(branches_db.get_branch, branch)
    answer = await hub().registry.ask("stock", Availability(branch, tuple(offers)), timeout_s=5)
    assert isinstance(answer, dict)
    missing = [o for o in offers if o not in answer]
    return json_response({"branch": branch, "items": answer, "unknown_offers": missing})


# -- orders ---------------------------------------------------------------------------


@api_blueprint.post("/api/v1/orders")
@require("shop")
async def create_order() -> Response:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 200:
        return problem(400, "idempotency_key_missing", _lang())
    body, error = await _read_json()
    if error is not None:
        return error
    try:
        order = OrderCreate.model_validate(body)
    except pydantic.ValidationError as exc:
        return _validation_problem(exc)
    ctx = hub()
    order_request = orders_db.OrderRequest(
        branch_code=order.branch,
        customer=order.customer.model_dump(),
        lines=tuple(orders_db.LineRequest(ln.offer_id, ln.quantity, ln.gift) for ln in order.lines),
        comment=order.comment,
        delivery_cost=order.delivery_cost,
        discount=order.discount,
        idempotency_key=key,
        fingerprint=request_fingerprint(json.loads(json.dumps(body, default=str))),
        token_id=g.token.id,
    )
    order_id, created = await ctx.db.transaction(orders_db.create_order, order_request)
    if created:
        log.info("order.accepted", order=str(order_id), branch=order.branch)
        await _notify_order_actor(order_id, order.branch)
    stored = await ctx.db.run(orders_db.get_order, str(order_id))
    headers = {"Location": f"/api/v1/orders/{order_id}"}
    return json_response(_order_view(stored), status=201 if created else 200, headers=headers)


async def _notify_order_actor(order_id: Any, branch: str) -> None:
    # The order is committed; a lost wake-up only delays delivery to the next poll.
    try:
        await hub().registry.tell("orders", OrderAccepted(order_id, branch))
    except MailboxFull:
        log.warning("order.wakeup_dropped", order=str(order_id), branch=branch)


@api_blueprint.get("/api/v1/orders/<order_ref>")
@require("shop")
async def get_order(order_ref: str) -> Response:
    stored = await hub().db.run(orders_db.get_order, order_ref)
    return json_response(_order_view(stored))


def _order_view(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": order["id"],
        "number": order["number"],
        "branch": order["branch_code"],
        "status": order["status"],
        "currency": order["currency"],
        "total": order["total"],
        "delivery_cost": order["delivery_cost"],
        "discount": order["discount"],
        "customer": order["customer"],
        "comment": order["comment"],
        "number_1c": order["number_1c"],
        "status_1c": order["status_1c"],
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
        "lines": [
            {
                k: ln[k]
                for k in ("line_no", "offer_id", "name", "quantity", "price", "discount", "amount")
            }
            for ln in order["lines"]
        ],
        "history": order["history"],
    }


# -- branches ---------------------------------------------------------------------------


@api_blueprint.get("/api/v1/branches")
@require("shop")
async def list_branches() -> Response:
    rows = await hub().db.run(branches_db.branch_health)
    return json_response({"items": rows})


@api_blueprint.post("/api/v1/branches")
@require("admin")
async def create_branch() -> Response:
    body, error = await _read_json()
    if error is not None:
        return error
    try:
        data = BranchCreate.model_validate(body)
    except pydantic.ValidationError as exc:
        return _validation_problem(exc)
    branch = await trio.to_thread.run_sync(lambda: new_branch(**data.model_dump()))
    try:
        await hub().db.transaction(branches_db.insert_branch, branch)
    except ConflictError:
        return problem(409, "branch_exists", _lang(), params={"branch": data.code})
    hub().registry.tell_nowait("leases", Wake())
    log.info("branch.created", branch=branch.code, kind=branch.kind)
    return json_response({"code": branch.code, "kind": branch.kind}, status=201)


@api_blueprint.patch("/api/v1/branches/<code>")
@require("admin")
async def update_branch(code: str) -> Response:
    body, error = await _read_json()
    if error is not None:
        return error
    try:
        data = BranchUpdate.model_validate(body)
    except pydantic.ValidationError as exc:
        return _validation_problem(exc)
    changes = data.model_dump(exclude_unset=True)
    branch = await change_branch(hub().db, code, changes)
    # The lease keeper restarts the branch's actor when its row changes.
    hub().registry.tell_nowait("leases", Wake())
    log.info("branch.updated", branch=code, fields=sorted(changes))
    return json_response(_branch_settings(branch))


def _branch_settings(branch: Branch) -> dict[str, Any]:
    hidden = {"exchange_password_hash", "odata_password"}
    return {name: getattr(branch, name) for name in Branch.__slots__ if name not in hidden}


@api_blueprint.delete("/api/v1/branches/<code>")
@require("admin")
async def remove_branch(code: str) -> Response:
    await hub().db.run(branches_db.deactivate_branch, code)
    hub().registry.tell_nowait("leases", Wake())
    log.info("branch.removed", branch=code)
    return Response(status=204)


@api_blueprint.post("/api/v1/branches/<code>/<action>")
@require("admin")
async def control_branch(code: str, action: str) -> Response:
    if action not in ("pause", "resume", "resync"):
        return problem(404, "not_found", _lang(), params={"path": request.path})
    if action != "resync":
        await hub().db.run(branches_db.set_paused, code, action == "pause")
    else:
        await hub().db.run(branches_db.get_branch, code)
    hub().registry.tell_nowait(f"branch:{code}", BranchControl(action))
    log.info("branch.control", branch=code, action=action)
    return json_response({"code": code, "action": action}, status=202)


@api_blueprint.get("/api/v1/branches/<code>/exchanges")
@require("shop")
async def branch_exchanges(code: str) -> Response:
    await hub().db.run(branches_db.get_branch, code)
    rows = await hub().db.run(exchange_db.recent_exchanges, code, 100)
    return json_response({"items": rows})


# -- pictures -----------------------------------------------------------------------------


@api_blueprint.get("/pictures/<code>/<path:relative>")
async def picture(code: str, relative: str) -> Response:
    """Serve a product picture 1C uploaded (import_files/...); public, like a shop CDN."""
    path = await trio.to_thread.run_sync(_picture_path, hub().settings.pictures_dir, code, relative)
    if path is None:
        return problem(404, "not_found", _lang(), params={"path": request.path})
    data = await trio.Path(path).read_bytes()
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Response(
        data, content_type=content_type, headers={"Cache-Control": "public, max-age=86400"}
    )


def _picture_path(root: Path, code: str, relative: str) -> Path | None:
    try:
        clean = sanitize_filename(relative)
    except CommerceMLError:
        return None
    base = (root / code).resolve()
    path = (base / clean).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


# -- operations -------------------------------------------------------------------------


@api_blueprint.get("/healthz")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@api_blueprint.get("/readyz")
async def readyz() -> Response:
    ctx = hub()
    try:
        with trio.fail_after(2):
            await ctx.db.run(_ping)
    except Exception as exc:  # any failure here means "not ready", reported as such
        return json_response({"status": "unavailable", "database": str(exc)}, status=503)
    if not ctx.ready.is_set():
        return json_response({"status": "starting"}, status=503)
    return json_response({"status": "ready", "node": ctx.node_id})


async def _ping(conn: Any) -> int:
    return int(await conn.fetchval("SELECT 1"))


@api_blueprint.get("/metrics")
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)


@api_blueprint.get("/openapi.json")
async def openapi() -> Response:
    return json_response(build_openapi())
