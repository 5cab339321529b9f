"""Bearer-token authentication with scopes (`shop` for the shop and app, `admin` for the CMS)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

from quart import g, request

from api.context import hub
from api.messages import pick_language
from api.problems import problem
from tentorium_hub.domain.secrets import hash_token
from tentorium_hub.storage import tokens as tokens_db

SCOPES = ("shop", "admin")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def require(scope: str) -> Callable[[F], F]:
    """Reject requests without a live token; `admin` tokens may do everything."""

    def decorate(view: F) -> F:
        @wraps(view)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            lang = pick_language(request.headers.get("Accept-Language"))
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return problem(
                    401,
                    "unauthorized",
                    lang,
                    headers={"WWW-Authenticate": 'Bearer realm="tentorium-hub"'},
                )
            info = await hub().db.run(tokens_db.find_token, hash_token(token.strip()))
            if info is None:
                return problem(
                    401,
                    "unauthorized",
                    lang,
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            if scope not in info.scopes and "admin" not in info.scopes:
                return problem(403, "forbidden", lang, params={"scope": scope})
            g.token = info
            return await view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
