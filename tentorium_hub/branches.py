"""Creating and validating branch records, shared by the CLI and the admin API."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tentorium_hub.domain.secrets import hash_password
from tentorium_hub.errors import ValidationError
from tentorium_hub.storage.branches import Branch


def new_branch(
    *,
    code: str,
    name: str,
    kind: str,
    time_zone: str = "Europe/Moscow",
    currency: str = "RUB",
    exchange_login: str | None = None,
    exchange_password: str | None = None,
    zip_enabled: bool = True,
    file_limit_bytes: int = 4 * 1024 * 1024,
    price_type: str | None = None,
    old_price_type: str | None = None,
    deactivate_missing: bool = True,
    odata_url: str | None = None,
    odata_username: str | None = None,
    odata_password: str | None = None,
) -> Branch:
    """Validate the settings of a new branch and hash its exchange password."""
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"time zone {time_zone!r} is unknown; use an IANA name such as 'Asia/Yekaterinburg'",
            field="time_zone",
        ) from None
    if kind == "commerceml" and not (exchange_login and exchange_password):
        raise ValidationError(
            "a CommerceML branch needs exchange_login and exchange_password: 1C logs in with them",
            field="exchange_login",
        )
    if kind == "odata" and not odata_url:
        raise ValidationError(
            "an OData branch needs odata_url, e.g. http://host/base/odata/standard.odata/",
            field="odata_url",
        )
    if kind not in ("commerceml", "odata"):
        raise ValidationError(
            f"kind {kind!r} is invalid; use 'commerceml' or 'odata'", field="kind"
        )
    return Branch(
        code=code,
        name=name,
        kind=kind,
        time_zone=time_zone,
        currency=currency,
        active=True,
        paused=False,
        exchange_login=exchange_login,
        exchange_password_hash=hash_password(exchange_password) if exchange_password else None,
        zip_enabled=zip_enabled,
        file_limit_bytes=file_limit_bytes,
        price_type=price_type,
        old_price_type=old_price_type,
        deactivate_missing=deactivate_missing,
        odata_url=odata_url,
        odata_username=odata_username,
        odata_password=odata_password,
    )
