"""RFC 9457 problem details: every API error is `application/problem+json`."""

from __future__ import annotations

import json
from typing import Any

from quart import Response

from api.messages import render

PROBLEM_TYPE_BASE = "https://tentorium-hub.invalid/problems/"


def problem(
    status: int,
    code: str,
    lang: str,
    *,
    params: dict[str, Any] | None = None,
    fallback: str = "",
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build a problem response; `detail` is in the client's language, `code` is stable."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": render(code, lang, params or {}, fallback),
    }
    if errors:
        body["errors"] = errors
    return Response(
        json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/problem+json",
        headers=headers,
    )
