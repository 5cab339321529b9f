"""Connector to a branch's 1C standard OData interface: the hub reads goods, stock and prices
and writes customer orders."""

from connectors.odata.client import ODataClient, ODataConfig
from connectors.odata.errors import (
    ODataAccessError,
    ODataConflictError,
    ODataError,
    ODataNotFoundError,
    ODataProfileError,
    ODataResponseError,
    ODataTransportError,
)
from connectors.odata.models import (
    OrderIn,
    OrderLineIn,
    OrderRef,
    PriceRow,
    ProductRow,
    StockRow,
)
from connectors.odata.profile import ODataProfile, Role

__all__ = [
    "ODataAccessError",
    "ODataClient",
    "ODataConfig",
    "ODataConflictError",
    "ODataError",
    "ODataNotFoundError",
    "ODataProfile",
    "ODataProfileError",
    "ODataResponseError",
    "ODataTransportError",
    "OrderIn",
    "OrderLineIn",
    "OrderRef",
    "PriceRow",
    "ProductRow",
    "Role",
    "StockRow",
]
