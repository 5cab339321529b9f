"""The OpenAPI 3.1 document of the HTTP API, with request schemas taken from pydantic."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from api.schemas import BranchCreate, BranchUpdate, OrderCreate
from tentorium_hub import __version__

_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem_responses(*codes: int) -> dict[str, Any]:
    return {
        str(code): {
            "description": "Problem details (RFC 9457)",
            "content": {"application/problem+json": {"schema": _PROBLEM}},
        }
        for code in codes
    }


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


@cache
def build_openapi() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(OrderCreate, "validation"), (BranchCreate, "validation"), (BranchUpdate, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    schemas = defs.get("$defs", {})
    schemas["Problem"] = {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "code": {"type": "string"},
            "detail": {"type": "string", "description": "Russian unless Accept-Language: en"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    paths: dict[str, Any] = {
        "/api/v1/products": {
            "get": {
                "summary": "Products of a branch with price, old price, stock and variants",
                "security": bearer,
                "parameters": [
                    {
                        "name": "branch",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "description": "next_after of the previous page",
                        "schema": {"type": "integer"},
                    },
                ],
                "responses": {
                    "200": _json("A page of products"),
                    **_problem_responses(401, 404, 422),
                },
            }
        },
        "/api/v1/orders": {
            "post": {
                "summary": "Place an order; a repeated Idempotency-Key and body return it again",
                "security": bearer,
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 200},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/OrderCreate"}}
                    },
                },
                "responses": {
                    "201": _json("Order recorded"),
                    "200": _json("Repeated request: the stored order"),
                    **_problem_responses(400, 401, 409, 422, 503),
                },
            }
        },
        "/api/v1/orders/{order}": {
            "get": {
                "summary": "An order with status and status history, by id or number",
                "security": bearer,
                "parameters": [_path_param("order")],
                "responses": {"200": _json("The order"), **_problem_responses(401, 404)},
            }
        },
        "/api/v1/branches": {
            "get": {
                "summary": "Branches with sync health",
                "security": bearer,
                "responses": {"200": _json("Branches"), **_problem_responses(401)},
            },
            "post": {
                "summary": "Create a branch (admin)",
                "security": bearer,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/BranchCreate"}
                        }
                    },
                },
                "responses": {"201": _json("Created"), **_problem_responses(401, 403, 409, 422)},
            },
        },
        "/api/v1/branches/{code}": {
            "patch": {
                "summary": "Change a branch's settings, e.g. its order export profile (admin)",
                "security": bearer,
                "parameters": [_path_param("code")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/BranchUpdate"}
                        }
                    },
                },
                "responses": {
                    "200": _json("The branch's settings, without secrets"),
                    **_problem_responses(401, 403, 404, 422),
                },
            },
            "delete": {
                "summary": "Deactivate a branch (admin); its orders stay",
                "security": bearer,
                "parameters": [_path_param("code")],
                "responses": {
                    "204": {"description": "Deactivated"},
                    **_problem_responses(401, 403, 404),
                },
            },
        },
        "/api/v1/branches/{code}/{action}": {
            "post": {
                "summary": "pause, resume or resync a branch (admin)",
                "security": bearer,
                "parameters": [
                    _path_param("code"),
                    {
                        "name": "action",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": ["pause", "resume", "resync"]},
                    },
                ],
                "responses": {"202": _json("Accepted"), **_problem_responses(401, 403, 404)},
            }
        },
        "/api/v1/branches/{code}/exchanges": {
            "get": {
                "summary": "The last exchanges of a branch",
                "security": bearer,
                "parameters": [_path_param("code")],
                "responses": {"200": _json("Exchanges"), **_problem_responses(401, 404)},
            }
        },
        "/1c/exchange": {
            "get": {
                "summary": 'CommerceML 2 exchange with 1C ("Обмен с сайтом"); POST for mode=file',
                "description": "Plain text; its first line is success, progress or failure.",
                "parameters": [
                    {
                        "name": "type",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "enum": ["catalog", "sale"]},
                    },
                    {"name": "mode", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "filename", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "Protocol reply",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/v1/availability": {
            "get": {
                "summary": "Stock of offers in a branch, in total and per warehouse",
                "security": bearer,
                "parameters": [
                    {
                        "name": "branch",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "offer",
                        "in": "query",
                        "required": True,
                        "description": "offer_id from /products; repeat for up to 500 offers",
                        "schema": {"type": "array", "items": {"type": "string"}, "maxItems": 500},
                        "explode": True,
                    },
                ],
                "responses": {"200": _json("Quantities"), **_problem_responses(401, 404, 422, 503)},
            }
        },
        "/pictures/{code}/{path}": {
            "get": {
                "summary": "A product picture 1C uploaded (import_files/...); no token needed",
                "parameters": [
                    _path_param("code"),
                    _path_param("path"),
                ],
                "responses": {"200": {"description": "The image"}, **_problem_responses(404)},
            }
        },
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json("Alive")}}},
        "/readyz": {
            "get": {
                "summary": "Readiness (database reachable, tree started)",
                "responses": {"200": _json("Ready"), "503": _json("Not ready")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "Text exposition format"}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "tentorium_hub API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
