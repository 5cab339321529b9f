"""Request bodies of the HTTP API, validated with pydantic; they also feed /openapi.json."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str | None = Field(default=None, max_length=64, description="Distributor or shop user id")
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=500)


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    offer_id: str = Field(min_length=1, max_length=200, description="offer_id from /products")
    quantity: Decimal = Field(gt=0, le=100_000, max_digits=12, decimal_places=3)
    gift: bool = Field(default=False, description="A free gift line: price 0")


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    branch: str = Field(min_length=1, max_length=32, description="Branch code")
    customer: Customer
    lines: list[OrderLineIn] = Field(min_length=1, max_length=500)
    comment: str | None = Field(default=None, max_length=2000)
    delivery_cost: Decimal = Field(default=Decimal("0"), ge=0, max_digits=12, decimal_places=2)
    discount: Decimal = Field(
        default=Decimal("0"),
        ge=0,
        max_digits=12,
        decimal_places=2,
        description="Order discount (e.g. from a promotion); spread over the paid lines",
    )


class BranchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["commerceml", "odata"]
    time_zone: str = Field(
        default="Europe/Moscow", description="IANA zone of the branch's 1C server"
    )
    currency: str = Field(default="RUB", pattern=r"^[A-Z]{3}$")
    exchange_login: str | None = Field(default=None, max_length=100)
    exchange_password: str | None = Field(default=None, min_length=8, max_length=200)
    zip_enabled: bool = True
    file_limit_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=1 << 30)
    price_type: str | None = None
    old_price_type: str | None = None
    deactivate_missing: bool = Field(
        default=True, description="Hide goods a full catalog snapshot from 1C does not list"
    )
    export_schema_version: str = Field(
        default="2.05", description="CommerceML version of the order documents sent to 1C"
    )
    export_encoding: Literal["utf-8", "windows-1251"] = "utf-8"
    export_style: Literal["requisites", "elements"] | None = Field(
        default=None,
        description="How order flags are written: 'elements' (2.09+) adds ПометкаУдаления as "
        "an element; default: 'elements' for 2.09, 2.10 and 3.1, else 'requisites'",
    )
    export_delivery: Literal["line", "requisite"] = Field(
        default="line",
        description="Delivery as a service line, or as the requisite Стоимость доставки",
    )
    export_delivery_id: str = Field(
        default="ORDER_DELIVERY",
        min_length=1,
        max_length=100,
        description="Ид of the delivery line; the 1C service item the branch maps delivery to",
    )
    export_discounts: Literal["lines", "document"] = Field(
        default="lines",
        description="Discounts on each line, or one discount on the whole document",
    )
    odata_url: str | None = None
    odata_username: str | None = None
    odata_password: str | None = None


class BranchUpdate(BaseModel):
    """Settings an editor may change on an existing branch; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=200)
    time_zone: str | None = None
    zip_enabled: bool | None = None
    file_limit_bytes: int | None = Field(default=None, ge=1024, le=1 << 30)
    price_type: str | None = None
    old_price_type: str | None = None
    deactivate_missing: bool | None = None
    export_schema_version: str | None = None
    export_encoding: Literal["utf-8", "windows-1251"] | None = None
    export_style: Literal["requisites", "elements"] | None = None
    export_delivery: Literal["line", "requisite"] | None = None
    export_delivery_id: str | None = Field(default=None, min_length=1, max_length=100)
    export_discounts: Literal["lines", "document"] | None = None
