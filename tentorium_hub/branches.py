"""Creating and validating branch records, shared by the CLI and the admin API."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tentorium_hub.domain.secrets import hash_password
from tentorium_hub.errors import ValidationError
from tentorium_hub.storage import Database
from tentorium_hub.storage import branches as branches_db
from tentorium_hub.storage.branches import Branch

# Versions the order writer produces; 1C's exchange module reads the one it is set up for.
EXPORT_SCHEMA_VERSIONS = ("2.03", "2.04", "2.05", "2.07", "2.08", "2.09", "2.10", "3.1")
# Versions whose documents carry ПометкаУдаления as an element (the "elements" style).
ELEMENT_STYLE_VERSIONS = ("2.09", "2.10", "3.1")
EXPORT_STYLES = ("requisites", "elements")
EXPORT_DELIVERY = ("line", "requisite")
EXPORT_DISCOUNTS = ("lines", "document")


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
    export_style: str | None = None,
    export_delivery: str = "line",
    export_delivery_id: str = "ORDER_DELIVERY",
    export_discounts: str = "lines",
    odata_url: str | None = None,
    odata_username: str | None = None,
    odata_password: str | None = None,
) -> Branch:
    """Validate the settings of a new branch and hash its exchange password."""
    check_time_zone(time_zone)
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
    style = export_style or default_style(export_schema_version)
    check_export_options(
        export_schema_version, export_encoding, style, export_delivery, export_discounts
    )
    check_delivery_id(export_delivery_id)
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
        export_style=style,
        export_delivery=export_delivery,
        export_delivery_id=export_delivery_id.strip(),
        export_discounts=export_discounts,
        odata_url=odata_url,
        odata_username=odata_username,
        odata_password=odata_password,
    )


async def change_branch(db: Database, code: str, changes: dict[str, Any]) -> Branch:
    """Validate and store an editor's `changes` to branch `code` in one transaction."""

    async def save(conn: Any) -> Branch:
        updated = changed_branch(await branches_db.get_branch(conn, code), changes)
        await branches_db.update_branch(conn, updated)
        return updated

    return await db.transaction(save)


def changed_branch(branch: Branch, changes: dict[str, Any]) -> Branch:
    """Apply an editor's `changes` to `branch` and validate the result.

    A new export_schema_version without an export_style also resets the style to that
    version's default, so that a move from 2.10 to 2.05 does not leave an invalid style.
    """
    if "time_zone" in changes:
        check_time_zone(changes["time_zone"])
    if "export_schema_version" in changes and "export_style" not in changes:
        changes = {**changes, "export_style": default_style(changes["export_schema_version"])}
    if "export_delivery_id" in changes:
        check_delivery_id(changes["export_delivery_id"])
        changes = {**changes, "export_delivery_id": changes["export_delivery_id"].strip()}
    updated = replace(branch, **changes)
    check_export_options(
        updated.export_schema_version,
        updated.export_encoding,
        updated.export_style,
        updated.export_delivery,
        updated.export_discounts,
    )
    return updated


def default_style(version: str) -> str:
    return "elements" if version in ELEMENT_STYLE_VERSIONS else "requisites"


def check_time_zone(time_zone: str) -> None:
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"time zone {time_zone!r} is unknown; use an IANA name such as 'Asia/Yekaterinburg'",
            field="time_zone",
        ) from None


def check_delivery_id(delivery_id: str) -> None:
    if not delivery_id.strip():
        raise ValidationError(
            "export_delivery_id is empty; give the Ид of the 1C service item for delivery, "
            "or leave the default ORDER_DELIVERY",
            field="export_delivery_id",
        )


def check_export_options(
    version: str, encoding: str, style: str, delivery: str, discounts: str
) -> None:
    """Reject an order export profile that the writer cannot produce or 1C cannot read."""
    if version not in EXPORT_SCHEMA_VERSIONS:
        raise ValidationError(
            f"export schema version {version!r} is not supported; "
            f"use one of {', '.join(EXPORT_SCHEMA_VERSIONS)}",
            field="export_schema_version",
        )
    if encoding not in ("utf-8", "windows-1251"):
        raise ValidationError(
            f"export encoding {encoding!r} is invalid; use 'utf-8' or 'windows-1251'",
            field="export_encoding",
        )
    choices = (
        ("export_style", style, EXPORT_STYLES),
        ("export_delivery", delivery, EXPORT_DELIVERY),
        ("export_discounts", discounts, EXPORT_DISCOUNTS),
    )
    for name, value, allowed in choices:
        if value not in allowed:
            raise ValidationError(
                f"{name} {value!r} is invalid; use one of {', '.join(allowed)}", field=name
            )
    if style == "elements" and version not in ELEMENT_STYLE_VERSIONS:
        raise ValidationError(
            f"export_style 'elements' needs CommerceML 2.09 or later, but the export version "
            f"is {version!r}; set export_schema_version to 2.09, 2.10 or 3.1, or use "
            "export_style 'requisites'",
            field="export_style",
        )
