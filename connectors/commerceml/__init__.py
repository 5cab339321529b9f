"""I/O-free CommerceML core: values, streaming reader, order writers, safe paths and zips."""

from .archive import is_zip, safe_extract_zip
from .model import (
    DELIVERY_LINE_ID,
    CatalogItem,
    DocumentHeader,
    DocumentKind,
    Group,
    Offer,
    OfferError,
    OrderDocument,
    OrderLine,
    Price,
    PriceType,
    Product,
    Property,
    StockLevel,
    Unit,
    Warehouse,
)
from .parser import Source, detect_kind, iter_document
from .paths import MAX_SEGMENT_BYTES, sanitize_filename
from .values import normalize_id, parse_bool, parse_datetime, parse_money, parse_quantity
from .writer import Customer, ExportOrder, render_orders, render_status_updates

__all__ = [
    "DELIVERY_LINE_ID",
    "MAX_SEGMENT_BYTES",
    "CatalogItem",
    "Customer",
    "DocumentHeader",
    "DocumentKind",
    "ExportOrder",
    "Group",
    "Offer",
    "OfferError",
    "OrderDocument",
    "OrderLine",
    "Price",
    "PriceType",
    "Product",
    "Property",
    "Source",
    "StockLevel",
    "Unit",
    "Warehouse",
    "detect_kind",
    "is_zip",
    "iter_document",
    "normalize_id",
    "parse_bool",
    "parse_datetime",
    "parse_money",
    "parse_quantity",
    "render_orders",
    "render_status_updates",
    "safe_extract_zip",
    "sanitize_filename",
]
