"""Map OData failures (httpx errors, HTTP statuses, 1C `odata.error` bodies) onto `ConnectorError`.

Every failure of the OData connector is classified here and nowhere else, so the retry
decision (`retryable`) and the wording of messages stay consistent.
"""

from __future__ import annotations

import json
from collections.abc import Collection

import httpx

from tentorium_hub.errors import ConnectorError

__all__ = [
    "ODATA_ERROR_TEXTS",
    "ODataAccessError",
    "ODataConflictError",
    "ODataError",
    "ODataNotFoundError",
    "ODataProfileError",
    "ODataResponseError",
    "ODataTransportError",
    "error_from_exception",
    "error_from_response",
    "invalid_json_error",
    "invalid_row_error",
    "is_not_published",
]

# Internal error codes of the 1C:Enterprise 8.3 standard OData interface (platform manual,
# section 17.4.10 "Ошибочные ситуации"). 1C sends the code as a string.
ODATA_ERROR_TEXTS: dict[str, str] = {
    "0": "the feature is not supported",
    "1": "a string could not be parsed",
    "2": "invalid request format",
    "3": "the requested representation is not supported",
    "4": "invalid property value",
    "5": "a required property value is missing",
    "6": "invalid URL",
    "7": "a part of the entity key is missing",
    "8": "entity type not found",
    "9": "entity instance not found",
    "10": "property not found",
    "11": "method not found",
    "12": "a required method argument is missing",
    "13": "table-part rows cannot be created directly",
    "14": "query option parse error",
    "15": "an entity with this key already exists",
    "16": "the property could not be assigned",
    "17": "the object does not support the data load mode",
    "18": "the object has two properties with the same name",
    "19": "the HTTP method is not allowed here",
    "20": "access rights error",
    "21": "unimplemented function or wrong function arguments",
}

ACCESS_RIGHTS_CODE = "20"
NOT_PUBLISHED_CODE = "8"
INSTANCE_NOT_FOUND_CODE = "9"

# 408 and 429 ask the client to come back later. 501 is a 5xx that does not heal by itself
# because 1C returns it for attribute types the OData interface cannot read.
RETRYABLE_4XX = frozenset({408, 429})
PERMANENT_5XX = frozenset({501})

PUBLICATION_HINT = (
    "check the OData publication on the branch web server and the hub's 1C user credentials"
)
NOT_PUBLISHED_HINT = (
    "the object is probably not published in the OData composition; enable it in the branch "
    "base with УстановитьСоставСтандартногоИнтерфейсаOData()"
)
ACCESS_HINT = "give the hub's 1C user rights on this object or fix the credentials"


class ODataError(ConnectorError):
    """A failed OData call to a branch's 1C base.

    `status` is the HTTP status (None when no response arrived), `code` the `odata.error` code
    string of 1C, `server_message` the text 1C sent with it.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        code: str | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status
        self.code = code
        self.server_message = server_message


class ODataTransportError(ODataError):
    """No HTTP response arrived: timeout, refused or dropped connection."""


class ODataAccessError(ODataError):
    """Credentials were rejected or the 1C user lacks rights (HTTP 401/403, 1C code 20)."""


class ODataNotFoundError(ODataError):
    """The entity set or the entity instance does not exist (HTTP 404, 1C code 8 or 9)."""


class ODataConflictError(ODataError):
    """The object changed since it was read (HTTP 412 on an `If-Match: <DataVersion>` write)."""


class ODataResponseError(ODataError):
    """A response that is not the JSON the connector expects (HTML page, invalid JSON, bad row)."""


class ODataProfileError(ODataError):
    """The branch publishes none of the hub's candidate entity names for a role it needs.

    `role` is the hub's name for the object (order, stock, ...); `candidates` are the
    entity names tried, the one to publish first.
    """

    def __init__(self, message: str, *, role: str, candidates: tuple[str, ...]) -> None:
        super().__init__(message, retryable=False)
        self.role = role
        self.candidates = candidates


def is_not_published(error: ODataError) -> bool:
    """Tell whether 1C rejected the entity set itself (code 8, or 404 without code 9).

    Such a reply usually means the object left the OData composition or the branch's
    configuration names it differently, so the hub should read the service document again.
    """
    if not isinstance(error, ODataNotFoundError):
        return False
    return error.code == NOT_PUBLISHED_CODE or (
        error.status == 404 and error.code != INSTANCE_NOT_FOUND_CODE
    )


def error_from_exception(
    exc: httpx.RequestError, *, operation: str, timeout_s: float
) -> ODataError:
    """Map an httpx exception raised before any response arrived."""
    if isinstance(exc, httpx.TimeoutException):
        message = f"{operation} timed out after {timeout_s} s ({type(exc).__name__})"
        return ODataTransportError(message, retryable=True)

    if isinstance(exc, httpx.TransportError):
        message = f"{operation} failed: connection error {type(exc).__name__}: {exc}"
        return ODataTransportError(message, retryable=True)

    # DecodingError and TooManyRedirects: the server responded, but with a broken or looping
    # response that a repeat will not fix.
    message = f"{operation} failed: {type(exc).__name__}: {exc}"
    return ODataResponseError(message, retryable=False)


def error_from_response(
    response: httpx.Response, *, operation: str, expected: Collection[int]
) -> ODataError | None:
    """Classify a response; return None when it has an expected status and a usable body."""
    status = response.status_code
    content_type = response.headers.get("content-type", "").lower()
    if status not in expected:
        # An HTML page with a 2xx status (200 where a POST expects 201) is the web server's
        # login or maintenance page, not a reply of 1C, so it is classified as one.
        if status < 300 and looks_like_html(response.content, content_type):
            return html_page_error(status, operation=operation)
        code, server_message = parse_error_body(response.content)
        return error_from_status(status, code, server_message, operation=operation)

    if not response.content:
        return None

    if "json" in content_type:
        return None

    if looks_like_html(response.content, content_type):
        return html_page_error(status, operation=operation)

    message = (
        f"{operation} returned content type {content_type!r} instead of JSON; "
        "the server ignored $format=json"
    )
    return ODataResponseError(message, retryable=False, status=status)


def looks_like_html(body: bytes, content_type: str) -> bool:
    """Tell an HTML page by its content type or, without one, by a leading `<`."""
    if "html" in content_type:
        return True
    return body.lstrip()[:1] == b"<" and "xml" not in content_type and "json" not in content_type


def html_page_error(status: int, *, operation: str) -> ODataResponseError:
    """Map an HTML page received instead of JSON.

    1C behind Apache or IIS sends an HTML login or maintenance page with HTTP 200 when the
    publication is being updated or the credentials do not fit. Updates end within minutes,
    so the call is worth repeating. A page that persists is a configuration error, and the
    message names what the admin should check.
    """
    message = f"{operation} returned an HTML page with HTTP {status} instead of JSON: "
    return ODataResponseError(message + PUBLICATION_HINT, retryable=True, status=status)


def error_from_status(
    status: int, code: str | None, server_message: str | None, *, operation: str
) -> ODataError:
    """Map an unexpected HTTP status and the optional `odata.error` code onto an error class."""
    error_class, retryable, hint = classify_status(status, code)
    message = f"{operation} failed: {describe_failure(status, code, server_message)}"
    if hint:
        message += f"; {hint}"
    return error_class(
        message, retryable=retryable, status=status, code=code, server_message=server_message
    )


def classify_status(status: int, code: str | None) -> tuple[type[ODataError], bool, str | None]:
    """Return the error class, whether a repeat may succeed, and a hint for the admin."""
    if status in (401, 403) or code == ACCESS_RIGHTS_CODE:
        return ODataAccessError, False, ACCESS_HINT

    if code == NOT_PUBLISHED_CODE or (status == 404 and code != INSTANCE_NOT_FOUND_CODE):
        return ODataNotFoundError, False, NOT_PUBLISHED_HINT

    if code == INSTANCE_NOT_FOUND_CODE:
        return ODataNotFoundError, False, None

    if status == 412:
        return ODataConflictError, False, "the object changed in 1C; read it again"

    retryable = status in RETRYABLE_4XX or (status >= 500 and status not in PERMANENT_5XX)
    return ODataError, retryable, None


def describe_failure(status: int, code: str | None, server_message: str | None) -> str:
    """Build the readable reason: HTTP status, 1C code with its meaning, and 1C's own text."""
    parts = [f"HTTP {status}"]
    if code is not None:
        meaning = ODATA_ERROR_TEXTS.get(code, "unknown code")
        parts.append(f"1C error code {code} ({meaning})")

    reason = ", ".join(parts)
    if server_message:
        reason += f": {server_message}"
    return reason


def parse_error_body(body: bytes) -> tuple[str | None, str | None]:
    """Extract `code` and the message text from a JSON `odata.error` body, if it is one."""
    try:
        document = json.loads(body)
    except ValueError:
        return None, None

    if not isinstance(document, dict):
        return None, None

    error = document.get("odata.error")
    if not isinstance(error, dict):
        return None, None

    code = error.get("code")
    message = error.get("message")
    if isinstance(message, dict):
        message = message.get("value")
    code_text = None if code is None else str(code)
    return code_text, message if isinstance(message, str) else None


def invalid_json_error(operation: str, exc: ValueError) -> ODataResponseError:
    """Map a JSON parse failure of a 2xx body.

    A body cut short by a proxy or by a 1C restart is the usual cause, so a repeat may succeed.
    """
    message = f"{operation} returned invalid JSON: {exc}"
    return ODataResponseError(message, retryable=True)


def invalid_row_error(entity: str, problem: str) -> ODataResponseError:
    """Map a row that lacks a field or has one of the wrong type.

    A branch whose configuration names fields differently sends the same rows every time,
    so a repeat will not help.
    """
    message = f"unexpected {entity} row from 1C OData: {problem}"
    return ODataResponseError(message, retryable=False)
