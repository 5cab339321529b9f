"""Creating and validating branch records, shared by the CLI and the admin API."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tentorium_hub.domain.secrets import hash_password
from tentorium_hub.errors import ValidationError
from tentorium_hub.storage.branches import Branch

# Versions the order writer produces; 1C's exchange module reads the one it is set up for.
EXPORT_SCHEMA_VERSIONS = ("2.03", "2.04", "2.05", "2.07", "2.08", "2.09", "2.10", "3.1")


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
    export_schema_version: str = "2.05",
    export_encoding: str = "utf-8",
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
    if export_schema_version not in EXPORT_SCHEMA_VERSIONS:
        raise ValidationError(
            f"export schema version {export_schema_version!r} is not supported; "
            f"use one of {', '.join(EXPORT_SCHEMA_VERSIONS)}",
            field="export_schema_version",
        )
    if export_encoding not in ("utf-8", "windows-1251"):
        raise ValidationError(
            f"export encoding {export_encoding!r} is invalid; use 'utf-8' or 'windows-1251'",
            field="export_encoding",
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
        export_schema_version=export_schema_version,
        export_encoding=export_encoding,
        odata_url=odata_url,
        odata_username=odata_username,
        odata_password=odata_password,
    )
