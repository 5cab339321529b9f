"""Streaming CommerceML reader: turns a 1C exchange file into the plain records of model.py.

The reader walks the file with `lxml.etree.iterparse` and builds one record each time a
record element (Группы, Свойство, ТипЦены, Склад, ЕдиницаИзмерения, Товар, Предложение,
Документ, Контейнер, Контрагент) is complete, then clears that element and its earlier
siblings. Memory therefore stays flat however many goods, offers, orders or counterparties
a file contains. Only the group tree of a classifier and one 3.1 Контейнер (an order with
its payments and shipments) are kept whole, so that parents can be yielded before their
children and payments can be attached to their order.

Element names are matched by local name, so the same code reads files without a namespace
(2.03-2.05), with `urn:1C.ru:commerceml_2` (2.07-2.10), `urn:1C.ru:commerceml_208` and
`urn:1C.ru:commerceml_3` (3.x). The encoding comes from the XML declaration; a UTF-8 BOM
is accepted.

A DOCTYPE is rejected. CommerceML is defined by XML schemas, not a DTD, so exchange files
have none, and rejecting it rules out entity expansion (billion laughs) and external
entities. Two checks do this. The bytes before the root tag are scanned as they are read,
before libxml2 parses them. The parsed document info is checked at the root tag in case the
scan missed one (a DOCTYPE behind a comment that contains `<`, or a UTF-16 file).
Entities are not resolved, no DTD is loaded and no network access is allowed in any case.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO
from xml.sax.saxutils import unescape

from lxml import etree

from tentorium_hub.errors import CommerceMLError
from tentorium_hub.logs import get_logger

from .model import (
    DELIVERY_LINE_ID,
    CatalogItem,
    Counterparty,
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
    SubordinateDocument,
    SubordinateKind,
    Unit,
    Warehouse,
    XmlValue,
)
from .values import (
    normalize_id,
    parse_bool,
    parse_datetime,
    parse_money,
    parse_quantity,
)

__all__ = ["Source", "detect_kind", "iter_document"]

Source = BinaryIO | str | os.PathLike[str]

_NumberParser = Callable[[str], Decimal]

_log = get_logger("commerceml.parser")

_ROOT = "КоммерческаяИнформация"

# Catalog sections: each one opens with a DocumentHeader carrying its СодержитТолькоИзменения.
_SECTIONS = {
    "Классификатор": DocumentKind.CLASSIFIER,
    "Каталог": DocumentKind.CATALOG,
    "ПакетПредложений": DocumentKind.OFFERS,
    "ИзмененияПакетаПредложений": DocumentKind.OFFERS,
}

# ИзмененияПакетаПредложений is a change set by definition (CommerceML 2.10), so it counts
# as a delta when the attribute is absent.
_DELTA_SECTIONS = frozenset({"ИзмененияПакетаПредложений"})

_ROOT_CHILD_KINDS = {
    "Документ": DocumentKind.ORDERS,
    "Контейнер": DocumentKind.ORDERS,
    "Контрагенты": DocumentKind.COUNTERPARTIES,
}

# The only elements whose start or end iter_document acts on: the root, its children and the
# record elements. libxml2 still builds every subtree, but only these become Python events,
# which halves the parse time of a large catalog (measured in loadtests/bench_import.py).
_EVENT_TAGS = tuple(
    "{*}" + name
    for name in (
        _ROOT,
        *_SECTIONS,
        *_ROOT_CHILD_KINDS,
        "Группы",
        "Свойство",
        "ТипЦены",
        "Склад",
        "ЕдиницаИзмерения",
        "Товар",
        "Предложение",
        "Контрагент",
    )
)

# The prolog (XML declaration, comments, DOCTYPE) of a real file fits in far fewer bytes.
_PROLOG_SCAN_BYTES = 64 * 1024

# The first tag that is not `<?...` or `<!...` is the root element.
_ROOT_TAG = re.compile(rb"<[^?!]")

_ORDER_OPERATION = "заказ товара"

# ХозОперация of the documents 1C enters on the basis of an order, in lower case. The names
# come from the ХозОперация enumeration of the CommerceML 2.10 schema, which calls a cash
# payment "Выплата наличных денег" and a bank transfer "Выплата безналичных денег".
# "Эквайринговая операция" (a card payment) is not in the schema, but the 1C-Bitrix
# exchange module uses it in 3.1 containers. Any other operation (Счет на оплату, Возврат
# товара...) is logged and skipped.
_SUBORDINATE_OPERATIONS = {
    "выплата наличных денег": SubordinateKind.PAYMENT,
    "выплата безналичных денег": SubordinateKind.PAYMENT,
    "эквайринговая операция": SubordinateKind.PAYMENT,
    "отпуск товара": SubordinateKind.SHIPMENT,
}

# Requisite that marks a payment or shipment as complete. The value "false" means not yet.
_COMPLETED_REQUISITES = {
    SubordinateKind.PAYMENT: "Оплачен",
    SubordinateKind.SHIPMENT: "Отгружен",
}

_DELETED_STATUS = "удален"
_SERVICE_TYPE = "услуга"
_FILE_CAPTION_REQUISITE = "ОписаниеФайла"

# Extra entities for the double-escaped names some exports contain (`&amp;quot;JVC&amp;quot;`
# reaches us as `&quot;JVC&quot;`); `unescape` handles &amp;, &lt; and &gt; itself.
_NAME_ENTITIES = {"&quot;": '"', "&apos;": "'"}


@dataclass(frozen=True, slots=True)
class _Context:
    """Branch time zone and file name, shared by the record builders for values and errors."""

    tz: tzinfo
    filename: str


class _BadValue(Exception):
    """A value of one record that cannot be parsed; becomes an OfferError or a CommerceMLError."""

    def __init__(self, what: str, what_ru: str, value: str | None, reason: str) -> None:
        super().__init__(f"invalid {what} {value!r}: {reason}")
        self.what = what
        self.what_ru = what_ru
        self.value = value


# --------------------------------------------------------------------------------------
# Public entry points


def iter_document(
    source: Source, *, tz: tzinfo, filename: str | None = None
) -> Iterator[CatalogItem]:
    """Yield the records of a CommerceML file in document order, a DocumentHeader first.

    `source` is a path or a binary stream (left open). `tz` is the branch's time zone,
    applied to dates without an offset; all datetimes come out aware in UTC. `filename`
    names the file in errors (default: the path's or stream's name).

    Headers: one DocumentHeader opens every catalog section (Классификатор, Каталог,
    ПакетПредложений, ИзмененияПакетаПредложений) before any of its records, with
    `section` set and `only_changes` from that section's СодержитТолькоИзменения. A section
    without the attribute keeps the value of the section before it (False at the start
    of a file), except ИзмененияПакетаПредложений, which is a delta. A file without catalog
    sections (orders, counterparties, an empty query response) gets one header before its first
    record. So the first item is always a header, and the importer receives `only_changes`
    before the goods or offers it applies to.

    An offer whose price or quantity cannot be parsed is yielded as OfferError in place of
    the Offer, and reading continues. Raises CommerceMLError for malformed XML (naming the
    line and column), a DOCTYPE, a root other than КоммерческаяИнформация, and a broken
    value in any other record.
    """
    name = filename or _describe(source)
    context = _Context(tz=tz, filename=name)
    reader = _Reader(context)

    with _opened(source) as stream:
        for event, elem in _xml_events(stream, name, tags=_EVENT_TAGS):
            if event == "start":
                yield from reader.on_start(elem)
            else:
                yield from reader.on_end(elem)


def detect_kind(source: Source, *, tz: tzinfo) -> DocumentKind:
    """Tell what a file carries from its content, reading only as far as needed.

    Offers, orders and counterparties are recognised at their first section. A catalog is
    recognised at its first Товар, so a classifier-only file is read to its end, with
    memory kept flat. A seekable stream is returned to its position. `tz` is unused and
    kept for symmetry with `iter_document`. Raises CommerceMLError like `iter_document`.
    """
    del tz
    name = _describe(source)
    with _opened(source) as stream:
        position = stream.tell() if stream.seekable() else None
        try:
            return _scan_kind(stream, name)
        finally:
            if position is not None:
                stream.seek(position)


# --------------------------------------------------------------------------------------
# XML plumbing


@contextmanager
def _opened(source: Source) -> Iterator[BinaryIO]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as stream:
            yield stream
    else:
        yield source


def _describe(source: Source) -> str:
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    name = getattr(source, "name", None)
    return Path(name).name if isinstance(name, str) else "<stream>"


class _PrologGuard:
    """Read-through wrapper that raises CommerceMLError on a DOCTYPE before the root tag."""

    def __init__(self, stream: BinaryIO, filename: str) -> None:
        self._stream = stream
        self._filename = filename
        self._head = b""
        self._scanning = True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if self._scanning:
            self._inspect(data)
        return data

    def _inspect(self, data: bytes) -> None:
        self._head += data
        root = _ROOT_TAG.search(self._head)
        prolog = self._head if root is None else self._head[: root.start()]
        if b"<!DOCTYPE" in prolog:
            raise _doctype_error(self._filename)
        if root is not None or len(self._head) > _PROLOG_SCAN_BYTES or not data:
            self._scanning = False
            self._head = b""


def _xml_events(
    stream: BinaryIO, filename: str, *, tags: Sequence[str] | None = None
) -> Iterator[tuple[str, etree._Element]]:
    events = etree.iterparse(
        _PrologGuard(stream, filename),
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        tag=tags,
    )
    checked = False
    while True:
        try:
            event, elem = next(events)
        except StopIteration:
            # With a tag filter a file may produce no event at all: check its root anyway.
            if not checked and events.root is not None:
                _check_root(events.root, filename)
            return
        except etree.XMLSyntaxError as exc:
            raise _syntax_error(exc, filename) from exc

        if not checked:
            _check_root(elem, filename)
            checked = True
        yield event, elem


def _doctype_error(filename: str) -> CommerceMLError:
    return CommerceMLError(
        f"{filename}: a DOCTYPE declaration is not allowed in CommerceML (entity "
        "expansion and external entities are refused)",
        message_ru=(
            f"Файл {filename} содержит объявление DOCTYPE, которого не бывает в CommerceML; "
            "такой файл не обрабатывается из соображений безопасности. "
            "Выгрузите файл заново из 1С."
        ),
        filename=filename,
    )


def _check_root(root: etree._Element, filename: str) -> None:
    if root.getroottree().docinfo.doctype:
        raise _doctype_error(filename)

    name = _local(root)
    if name != _ROOT:
        raise CommerceMLError(
            f"{filename}: root element is <{name}>, expected <{_ROOT}>",
            message_ru=(
                f"Файл {filename} не является файлом CommerceML: корневой элемент <{name}> "
                f"вместо <{_ROOT}>. Проверьте, что 1С выгружает данные в формате CommerceML, "
                "и выгрузите файл заново."
            ),
            filename=filename,
        )


def _syntax_error(exc: etree.XMLSyntaxError, filename: str) -> CommerceMLError:
    line, column = exc.position
    return CommerceMLError(
        f"{filename}: malformed XML at line {line}, column {column}: {exc.msg}",
        message_ru=(
            f"Файл {filename} повреждён: ошибка XML в строке {line}, столбце {column} "
            f"({exc.msg}). Выгрузите файл заново."
        ),
        filename=filename,
    )


def _local(elem: etree._Element) -> str:
    tag = elem.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _parent_name(elem: etree._Element | None, levels: int = 1) -> str | None:
    for _ in range(levels):
        if elem is None:
            return None
        elem = elem.getparent()
    return None if elem is None else _local(elem)


def _children(elem: etree._Element, name: str) -> Iterator[etree._Element]:
    # "{*}" matches the name in any namespace or none, inside libxml2.
    return elem.iterchildren("{*}" + name)


def _child(elem: etree._Element, name: str) -> etree._Element | None:
    return next(_children(elem, name), None)


def _raw_text(elem: etree._Element, name: str) -> str | None:
    """Stripped own text of the first child `name`: None when absent, "" when empty."""
    child = _child(elem, name)
    if child is None:
        return None
    return (child.text or "").strip()


def _text(elem: etree._Element, name: str) -> str | None:
    """Stripped own text of the first child `name`, or None when absent or blank."""
    return _raw_text(elem, name) or None


def _name_text(elem: etree._Element) -> str:
    return _clean_name(_raw_text(elem, "Наименование") or "")


def _clean_name(text: str) -> str:
    return unescape(text, _NAME_ENTITIES) if "&" in text else text


def _release(elem: etree._Element) -> None:
    """Free a handled element and the siblings before it (the lxml iterparse idiom)."""
    elem.clear()
    parent = elem.getparent()
    if parent is None:
        return
    while elem.getprevious() is not None:
        del parent[0]


# --------------------------------------------------------------------------------------
# Event dispatch


class _Reader:
    """Turns iterparse events into records, tracking the headers already yielded."""

    def __init__(self, context: _Context) -> None:
        self._context = context
        self._schema_version = ""
        self._generated_at: datetime | None = None
        self._only_changes = False
        self._header_sent = False

    def on_start(self, elem: etree._Element) -> Iterator[CatalogItem]:
        parent = elem.getparent()
        if parent is None:
            self._read_root(elem)
            return
        if parent.getparent() is not None:
            return

        name = _local(elem)
        section = _SECTIONS.get(name)
        if section is not None:
            self._only_changes = self._section_only_changes(elem, name)
            yield self._header(section)
        elif not self._header_sent:
            yield self._header(_ROOT_CHILD_KINDS.get(name))

    def on_end(self, elem: etree._Element) -> Iterator[CatalogItem]:
        if elem.getparent() is None:
            if not self._header_sent:
                yield self._header(None)
            return

        records = _build_records(elem, self._context)
        if records is None:
            return
        if not self._header_sent:
            yield self._header(None)
        yield from records
        _release(elem)

    def _read_root(self, root: etree._Element) -> None:
        self._schema_version = (root.get("ВерсияСхемы") or "").strip()
        raw_date = root.get("ДатаФормирования")
        try:
            self._generated_at = parse_datetime(raw_date, self._context.tz)
        except ValueError:
            # The generation time is informational; a broken one must not stop an import.
            _log.warning(
                "commerceml.header_date_invalid", filename=self._context.filename, value=raw_date
            )

    def _section_only_changes(self, elem: etree._Element, name: str) -> bool:
        raw = elem.get("СодержитТолькоИзменения")
        if raw is None:
            return True if name in _DELTA_SECTIONS else self._only_changes
        try:
            return parse_bool(raw)
        except ValueError as exc:
            raise _record_error(self._context, elem, str(exc), f"неверный признак «{raw}»") from exc

    def _header(self, section: DocumentKind | None) -> DocumentHeader:
        self._header_sent = True
        return DocumentHeader(
            schema_version=self._schema_version,
            generated_at=self._generated_at,
            only_changes=self._only_changes,
            section=section,
        )


def _build_records(elem: etree._Element, context: _Context) -> list[CatalogItem] | None:
    """Build the records of a completed element, or None when it is not a record element.

    The parent check keeps look-alikes apart: Склад in Склады is a warehouse but inside an
    offer it is a stock row, and Товар in a Каталог is a product but an order line in a
    Документ. A Документ inside a 3.1 Контейнер is read when its Контейнер is complete,
    because the payments and shipments after the order belong to it.
    """
    name = _local(elem)
    parent = _parent_name(elem)
    grandparent = _parent_name(elem, 2)
    if name == "Группы" and parent == "Классификатор":
        return list(_read_groups(elem, None, context))
    if name == "Свойство" and parent == "Свойства" and grandparent == "Классификатор":
        return [_read_property(elem, context)]
    if name == "ТипЦены" and parent == "ТипыЦен" and grandparent in _SECTIONS:
        return [_read_price_type(elem, context)]
    if name == "Склад" and parent == "Склады" and grandparent in _SECTIONS:
        return [_read_warehouse(elem, context)]
    if name == "ЕдиницаИзмерения" and parent == "ЕдиницыИзмерения" and grandparent in _SECTIONS:
        return [_read_unit(elem)]
    if _is_catalog_product(elem, name):
        return [_read_product(elem, context)]
    if name == "Предложение" and parent == "Предложения":
        return [_read_offer(elem, context)]
    if name == "Документ" and grandparent is None:
        document = _read_document(elem, context)
        return [] if document is None else [document]
    if name == "Контейнер" and grandparent is None:
        return list(_read_container(elem, context))
    if name == "Контрагент" and parent == "Контрагенты" and _parent_name(elem, 3) is None:
        return [_read_counterparty(elem, context)]
    return None


def _is_catalog_product(elem: etree._Element, name: str) -> bool:
    return name == "Товар" and _parent_name(elem) == "Товары" and _parent_name(elem, 2) == "Каталог"


def _scan_kind(stream: BinaryIO, filename: str) -> DocumentKind:
    seen_classifier = False
    seen_catalog = False

    for event, elem in _xml_events(stream, filename):
        if event == "end":
            _release(elem)
            continue

        name = _local(elem)
        parent = elem.getparent()
        if parent is not None and parent.getparent() is None:
            if name in _SECTIONS and _SECTIONS[name] is DocumentKind.OFFERS:
                return DocumentKind.OFFERS
            if name in _ROOT_CHILD_KINDS:
                return _ROOT_CHILD_KINDS[name]
            seen_classifier = seen_classifier or name == "Классификатор"
            seen_catalog = seen_catalog or name == "Каталог"
        elif _is_catalog_product(elem, name):
            return DocumentKind.CATALOG

    if seen_classifier:
        return DocumentKind.CLASSIFIER
    return DocumentKind.CATALOG if seen_catalog else DocumentKind.EMPTY


# --------------------------------------------------------------------------------------
# Classifier records


def _read_groups(
    groups: etree._Element, parent_id: str | None, context: _Context
) -> Iterator[Group]:
    """Yield a group tree parents first, so an importer can link each child on arrival."""
    for group in _children(groups, "Группа"):
        external_id = _required_id(group, context, "group", "группа")
        yield Group(
            external_id=external_id,
            name=_name_text(group),
            parent_id=parent_id,
            deleted=_deleted(group, context),
        )

        nested = _child(group, "Группы")
        if nested is not None:
            yield from _read_groups(nested, external_id, context)


def _read_property(elem: etree._Element, context: _Context) -> Property:
    values: dict[str, str] = {}
    variants = _child(elem, "ВариантыЗначений")
    if variants is not None:
        for entry in _children(variants, "Справочник"):
            value_id = normalize_id(_raw_text(entry, "ИдЗначения") or "")
            if value_id:
                values[value_id] = _raw_text(entry, "Значение") or ""

    return Property(
        external_id=_required_id(elem, context, "property", "свойство"),
        name=_name_text(elem),
        values=values,
        value_type=_text(elem, "ТипЗначений"),
        deleted=_deleted(elem, context),
    )


def _read_price_type(elem: etree._Element, context: _Context) -> PriceType:
    return PriceType(
        external_id=_required_id(elem, context, "price type", "тип цен"),
        name=_name_text(elem),
        currency=_text(elem, "Валюта"),
        deleted=_deleted(elem, context),
    )


def _read_warehouse(elem: etree._Element, context: _Context) -> Warehouse:
    return Warehouse(
        external_id=_required_id(elem, context, "warehouse", "склад"),
        name=_name_text(elem),
        deleted=_deleted(elem, context),
    )


def _read_unit(elem: etree._Element) -> Unit:
    external_id = _text(elem, "Ид")
    return Unit(
        code=_text(elem, "Код") or "",
        name=_text(elem, "НаименованиеКраткое"),
        full_name=_text(elem, "НаименованиеПолное"),
        external_id=None if external_id is None else normalize_id(external_id),
    )


# --------------------------------------------------------------------------------------
# Catalog records


def _read_product(elem: etree._Element, context: _Context) -> Product:
    """Build a Product from a Каталог/Товары/Товар element.

    Repeated requisites keep their first value in `requisites`, except ОписаниеФайла
    (`path#caption`, one per picture), which fills `picture_captions`.
    """
    property_values = _read_property_values(elem)
    requisites, captions = _read_product_requisites(elem)
    group_ids = _child(elem, "Группы")

    return Product(
        external_id=_required_id(elem, context, "product", "товар"),
        name=_name_text(elem),
        sku=_text(elem, "Артикул"),
        group_ids=()
        if group_ids is None
        else tuple(normalize_id(child.text or "") for child in _children(group_ids, "Ид")),
        unit=_read_unit_text(elem),
        description=_text(elem, "Описание"),
        barcode=_text(elem, "Штрихкод"),
        deleted=_deleted(elem, context),
        properties={key: values[0] for key, values in property_values.items()},
        requisites=requisites,
        pictures=tuple(
            text for child in _children(elem, "Картинка") if (text := (child.text or "").strip())
        ),
        property_values=property_values,
        characteristics=_read_characteristics(elem),
        picture_captions=captions,
    )


def _read_unit_text(elem: etree._Element) -> str | None:
    """БазоваяЕдиница: the short name (2.x text), else the code (3.1 text or 2.x Код)."""
    unit = _child(elem, "БазоваяЕдиница")
    if unit is None:
        return None
    text = (unit.text or "").strip()
    return text or (unit.get("Код") or "").strip() or None


def _read_property_values(elem: etree._Element) -> dict[str, tuple[str, ...]]:
    result: dict[str, list[str]] = {}
    values = _child(elem, "ЗначенияСвойств")
    if values is None:
        return {}

    for entry in _children(values, "ЗначенияСвойства"):
        property_id = normalize_id(_raw_text(entry, "Ид") or "")
        if not property_id:
            continue
        texts = [(value.text or "").strip() for value in _children(entry, "Значение")]
        if not texts:
            texts = [(value.text or "").strip() for value in _children(entry, "ИдЗначения")]
        result.setdefault(property_id, []).extend(texts or [""])
    return {key: tuple(texts) for key, texts in result.items()}


def _read_requisites(elem: etree._Element) -> list[tuple[str, str]]:
    requisites = _child(elem, "ЗначенияРеквизитов")
    if requisites is None:
        return []

    pairs: list[tuple[str, str]] = []
    for entry in _children(requisites, "ЗначениеРеквизита"):
        name = _raw_text(entry, "Наименование")
        if name:
            pairs.append((name, _raw_text(entry, "Значение") or ""))
    return pairs


def _first_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in pairs:
        result.setdefault(name, value)
    return result


def _read_product_requisites(elem: etree._Element) -> tuple[dict[str, str], dict[str, str]]:
    pairs = _read_requisites(elem)
    captions: dict[str, str] = {}
    for name, value in pairs:
        if name == _FILE_CAPTION_REQUISITE and "#" in value:
            path, _, caption = value.partition("#")
            captions[path.strip()] = caption.strip()
    return _first_values(pairs), captions


def _read_characteristics(elem: etree._Element) -> dict[str, str]:
    container = _child(elem, "ХарактеристикиТовара")
    if container is None:
        return {}

    result: dict[str, str] = {}
    for entry in _children(container, "ХарактеристикаТовара"):
        name = _raw_text(entry, "Наименование")
        if name:
            result[name] = _raw_text(entry, "Значение") or ""
    return result


def _required_id(elem: etree._Element, context: _Context, what: str, what_ru: str) -> str:
    external_id = normalize_id(_raw_text(elem, "Ид") or "")
    if not external_id:
        raise _record_error(context, elem, f"{what} without Ид", f"{what_ru} без Ид")
    return external_id


def _is_deleted(elem: etree._Element) -> bool:
    """Deletion in any of its shapes: Статус="Удален" (2.07/2.08) or <ПометкаУдаления> (2.09+)."""
    if (elem.get("Статус") or "").strip().lower() == _DELETED_STATUS:
        return True

    raw = _raw_text(elem, "ПометкаУдаления")
    try:
        return parse_bool(raw)
    except ValueError as exc:
        raise _BadValue("deletion mark", "ПометкаУдаления", raw, str(exc)) from exc


def _deleted(elem: etree._Element, context: _Context) -> bool:
    try:
        return _is_deleted(elem)
    except _BadValue as exc:
        raise _record_error(
            context, elem, str(exc), f"значение «{exc.value}» в поле «{exc.what_ru}» не распознано"
        ) from exc


# --------------------------------------------------------------------------------------
# Offers


def _read_offer(elem: etree._Element, context: _Context) -> Offer | OfferError:
    external_id = normalize_id(_raw_text(elem, "Ид") or "")
    if not external_id:
        return _offer_error(elem, context, "", _BadValue("Ид", "Ид", "", "the offer has no Ид"))

    product_id, _, characteristic_id = external_id.partition("#")
    try:
        prices = _read_prices(elem)
        stock_total, stock = _read_stock(elem)
        deleted = _is_deleted(elem)
    except _BadValue as exc:
        return _offer_error(elem, context, external_id, exc)

    return Offer(
        external_id=external_id,
        product_id=product_id,
        characteristic_id=characteristic_id or None,
        name=_clean_name(_text(elem, "Наименование") or "") or None,
        sku=_text(elem, "Артикул"),
        prices=prices,
        stock_total=stock_total,
        stock=stock,
        characteristics=_read_characteristics(elem),
        deleted=deleted,
    )


def _read_prices(elem: etree._Element) -> tuple[Price, ...] | None:
    container = _child(elem, "Цены")
    if container is None:
        return None

    prices: list[Price] = []
    for price in _children(container, "Цена"):
        amount = _number(_raw_text(price, "ЦенаЗаЕдиницу"), parse_money, "price", "цена")
        prices.append(
            Price(
                price_type_id=normalize_id(_raw_text(price, "ИдТипаЦены") or ""),
                amount=amount,
                currency=_text(price, "Валюта"),
                unit=_text(price, "Единица"),
            )
        )
    return tuple(prices)


def _read_stock(elem: etree._Element) -> tuple[Decimal | None, tuple[StockLevel, ...] | None]:
    """Read stock in the three shapes 1C uses; see Offer for what None means.

    1. <Количество> in the offer: the total (2.04+).
    2. <Склад ИдСклада="…" КоличествоНаСкладе="…"/> children: per warehouse (2.07/2.08).
    3. <Остатки><Остаток><Склад><Ид/><Количество/></Склад></Остаток></Остатки> (2.09+/3.x);
       an Остаток with a bare <Количество> and no Склад is a total.

    `stock` is None unless the offer has at least one warehouse row.
    """
    total_text = _text(elem, "Количество")
    total = (
        None
        if total_text is None
        else _number(total_text, parse_quantity, "quantity", "количество")
    )
    rows = [_read_attribute_stock(row) for row in _children(elem, "Склад")]

    balances = _child(elem, "Остатки")
    if balances is not None:
        for balance in _children(balances, "Остаток"):
            rows.extend(_read_element_stock(store) for store in _children(balance, "Склад"))
            bare = _text(balance, "Количество")
            if bare is not None and total is None:
                total = _number(bare, parse_quantity, "quantity", "количество")

    return total, tuple(rows) if rows else None


def _read_attribute_stock(store: etree._Element) -> StockLevel:
    if store.get("ИдСклада") is None:
        return _read_element_stock(store)
    return StockLevel(
        warehouse_id=normalize_id(store.get("ИдСклада") or ""),
        quantity=_number(store.get("КоличествоНаСкладе"), parse_quantity, "stock", "остаток"),
    )


def _read_element_stock(store: etree._Element) -> StockLevel:
    return StockLevel(
        warehouse_id=normalize_id(_raw_text(store, "Ид") or ""),
        quantity=_number(_raw_text(store, "Количество"), parse_quantity, "stock", "остаток"),
    )


def _number(raw: str | None, parse: _NumberParser, what: str, what_ru: str) -> Decimal:
    if raw is None:
        raise _BadValue(what, what_ru, raw, "the value is missing")
    try:
        return parse(raw)
    except ValueError as exc:
        raise _BadValue(what, what_ru, raw, str(exc)) from exc


def _offer_error(
    elem: etree._Element, context: _Context, external_id: str, exc: _BadValue
) -> OfferError:
    line = elem.sourceline
    shown = "" if exc.value is None else exc.value
    return OfferError(
        external_id=external_id,
        message=(f"{context.filename}, line {line}: offer {external_id!r} skipped: {exc}"),
        message_ru=(
            f"Предложение {external_id or '(без Ид)'} пропущено: значение «{shown}» в поле "
            f"«{exc.what_ru}» не распознано (файл {context.filename}, строка {line}). "
            "Исправьте значение в 1С и выгрузите предложения заново."
        ),
    )


# --------------------------------------------------------------------------------------
# Order documents


def _read_document(
    elem: etree._Element, context: _Context, beside: Sequence[SubordinateDocument] = ()
) -> OrderDocument | None:
    """Build an OrderDocument, or None for a document that is not an order.

    Status fields come from either dialect. The element dialect (2.09+) has Номер1С, Дата1С
    and ПометкаУдаления. The requisite dialect has Номер по 1С, Дата по 1С, Проведен,
    ПометкаУдаления, Дата оплаты по 1С, Дата отгрузки по 1С, Отменен and Статус заказа.
    When both carry a field, the element wins. Payments and shipments come from the
    order's ПодчиненныеДокументы (2.10) and from `beside`, the ones next to it in a 3.1
    Контейнер.
    """
    operation = _text(elem, "ХозОперация")
    if not _is_order_operation(operation):
        # NOTE: a payment or shipment outside an order or a Контейнер is not linked to its
        # order. Only 2.10 nesting and 3.1 containers link them.
        _log.debug("commerceml.document_skipped", filename=context.filename, operation=operation)
        return None

    site_id = _required_id(elem, context, "document", "документ")
    requisites = _first_values(_read_requisites(elem))
    subordinates = (*_read_nested_subordinates(elem, context), *beside)
    try:
        return _build_document(elem, site_id, requisites, subordinates, context)
    except _BadValue as exc:
        raise _record_error(
            context,
            elem,
            f"document {site_id!r}: {exc}",
            f"документ {site_id}: значение «{exc.value}» в поле «{exc.what_ru}» не распознано",
        ) from exc


def _is_order_operation(operation: str | None) -> bool:
    # A Документ without ХозОперация has always been read as an order.
    return operation is None or operation.lower() == _ORDER_OPERATION


def _element_or_requisite(
    elem: etree._Element, requisites: dict[str, str], element_name: str, requisite_name: str
) -> str | None:
    return _text(elem, element_name) or requisites.get(requisite_name, "").strip() or None


def _build_document(
    elem: etree._Element,
    site_id: str,
    requisites: dict[str, str],
    subordinates: tuple[SubordinateDocument, ...],
    context: _Context,
) -> OrderDocument:
    def requisite_or_element(element_name: str, requisite_name: str) -> str | None:
        return _element_or_requisite(elem, requisites, element_name, requisite_name)

    total_text = _text(elem, "Сумма")
    total = None if total_text is None else _number(total_text, parse_money, "total", "сумма")
    deleted = _optional_flag(
        requisite_or_element("ПометкаУдаления", "ПометкаУдаления"), "пометка удаления"
    )
    cancelled = _optional_flag(requisites.get("Отменен"), "отменён")
    goods = _child(elem, "Товары")
    lines = () if goods is None else tuple(map(_read_order_line, _children(goods, "Товар")))
    paid_at = _date(requisites.get("Дата оплаты по 1С"), context, "дата оплаты по 1С")
    shipped_at = _date(requisites.get("Дата отгрузки по 1С"), context, "дата отгрузки по 1С")

    return OrderDocument(
        site_id=site_id,
        number=_text(elem, "Номер"),
        date=_document_date(_text(elem, "Дата"), _text(elem, "Время"), context),
        currency=_text(elem, "Валюта"),
        total=total,
        number_1c=requisite_or_element("Номер1С", "Номер по 1С"),
        date_1c=_date(requisite_or_element("Дата1С", "Дата по 1С"), context, "дата по 1С"),
        posted=_optional_flag(requisite_or_element("Проведен", "Проведен"), "проведён"),
        paid_at=paid_at or _latest_date(subordinates, SubordinateKind.PAYMENT),
        shipped_at=shipped_at or _latest_date(subordinates, SubordinateKind.SHIPMENT),
        cancelled=bool(cancelled),
        deleted=bool(deleted),
        status_text=requisites.get("Статус заказа", "").strip() or None,
        requisites=requisites,
        lines=lines,
        subordinates=subordinates,
    )


def _latest_date(
    subordinates: Sequence[SubordinateDocument], kind: SubordinateKind
) -> datetime | None:
    # The latest date, because with partial payments or shipments the order is complete
    # only with the last one.
    dates = [s.date for s in subordinates if s.kind is kind and s.effective and s.date]
    return max(dates, default=None)


# --------------------------------------------------------------------------------------
# Payments and shipments of an order


def _read_container(container: etree._Element, context: _Context) -> Iterator[OrderDocument]:
    """Yield the orders of a 3.1 Контейнер, each with the payments and shipments beside it.

    1C puts one order and the documents entered on its basis into one Контейнер. A
    payment or shipment goes to the order its Основание names, else to the only order.
    A Контейнер without an order gives a status-only OrderDocument per Основание.
    """
    orders: list[etree._Element] = []
    subordinates: list[SubordinateDocument] = []
    for document in _children(container, "Документ"):
        if _is_order_operation(_text(document, "ХозОперация")):
            orders.append(document)
        elif (subordinate := _read_subordinate(document, context)) is not None:
            subordinates.append(subordinate)

    if not orders:
        yield from _status_only_documents(subordinates, context)
        return

    beside = _assign_to_orders(orders, subordinates, context)
    for order, attached in zip(orders, beside, strict=True):
        document = _read_document(order, context, attached)
        if document is not None:
            yield document


def _assign_to_orders(
    orders: list[etree._Element], subordinates: list[SubordinateDocument], context: _Context
) -> list[list[SubordinateDocument]]:
    keys = [_order_keys(order) for order in orders]
    assigned: list[list[SubordinateDocument]] = [[] for _ in orders]
    for subordinate in subordinates:
        index = next((i for i, key in enumerate(keys) if subordinate.basis_id in key), None)
        if index is None and len(orders) == 1:
            index = 0
        if index is None:
            _log.warning(
                "commerceml.subordinate_unattached",
                filename=context.filename,
                document=subordinate.external_id,
                basis=subordinate.basis_id,
            )
            continue
        assigned[index].append(subordinate)
    return assigned


def _order_keys(order: etree._Element) -> set[str]:
    """The values an Основание may use for this order: its Ид and its Номер."""
    texts = (_raw_text(order, "Ид"), _raw_text(order, "Номер"))
    return {normalize_id(text) for text in texts if text}


def _status_only_documents(
    subordinates: list[SubordinateDocument], context: _Context
) -> Iterator[OrderDocument]:
    # NOTE: Основание is matched against the site order's Ид, as the 1C-Bitrix site module
    # reads it. A 1C that writes its own order number there leaves the order unknown.
    grouped: dict[str, list[SubordinateDocument]] = {}
    for subordinate in subordinates:
        if not subordinate.basis_id:
            _log.warning(
                "commerceml.subordinate_unattached",
                filename=context.filename,
                document=subordinate.external_id,
                basis=None,
            )
            continue
        grouped.setdefault(subordinate.basis_id, []).append(subordinate)

    for site_id, found in grouped.items():
        yield OrderDocument(
            site_id=site_id,
            number=None,
            date=None,
            currency=None,
            total=None,
            paid_at=_latest_date(found, SubordinateKind.PAYMENT),
            shipped_at=_latest_date(found, SubordinateKind.SHIPMENT),
            subordinates=tuple(found),
        )


def _read_nested_subordinates(
    order: etree._Element, context: _Context
) -> list[SubordinateDocument]:
    nested = _child(order, "ПодчиненныеДокументы")
    if nested is None:
        return []

    result: list[SubordinateDocument] = []
    for entry in _children(nested, "ПодчиненныйДокумент"):
        subordinate = _read_subordinate(entry, context)
        if subordinate is not None:
            result.append(subordinate)
    return result


def _read_subordinate(elem: etree._Element, context: _Context) -> SubordinateDocument | None:
    """Build a payment or shipment, or None (logged) for any other ХозОперация."""
    operation = _text(elem, "ХозОперация") or ""
    kind = _SUBORDINATE_OPERATIONS.get(operation.lower())
    if kind is None:
        # Info, not debug: an operation the hub does not know may be one it should learn.
        _log.info(
            "commerceml.document_skipped",
            filename=context.filename,
            operation=operation,
            document=_text(elem, "Ид"),
        )
        return None

    external_id = _required_id(elem, context, "document", "документ")
    requisites = _first_values(_read_requisites(elem))
    try:
        subordinate = _build_subordinate(elem, kind, operation, requisites, context)
    except _BadValue as exc:
        raise _record_error(
            context,
            elem,
            f"{kind} document {external_id!r}: {exc}",
            f"документ {external_id}: значение «{exc.value}» в поле «{exc.what_ru}» не распознано",
        ) from exc

    if subordinate.effective and subordinate.date is None:
        _log.warning(
            "commerceml.subordinate_undated", filename=context.filename, document=external_id
        )
    return subordinate


def _build_subordinate(
    elem: etree._Element,
    kind: SubordinateKind,
    operation: str,
    requisites: dict[str, str],
    context: _Context,
) -> SubordinateDocument:
    def requisite_or_element(element_name: str, requisite_name: str) -> str | None:
        return _element_or_requisite(elem, requisites, element_name, requisite_name)

    amount_text = _text(elem, "Сумма")
    day = _text(elem, "Дата") or _text(elem, "Дата1С")
    completed_name = _COMPLETED_REQUISITES[kind]
    basis = _text(elem, "Основание")

    return SubordinateDocument(
        kind=kind,
        external_id=normalize_id(_raw_text(elem, "Ид") or ""),
        operation=operation,
        number=_text(elem, "Номер"),
        number_1c=requisite_or_element("Номер1С", "Номер по 1С"),
        date=_document_date(day, _text(elem, "Время"), context),
        amount=None if amount_text is None else _number(amount_text, parse_money, "sum", "сумма"),
        posted=_optional_flag(requisite_or_element("Проведен", "Проведен"), "проведён"),
        deleted=bool(
            _optional_flag(
                requisite_or_element("ПометкаУдаления", "ПометкаУдаления"), "пометка удаления"
            )
        ),
        cancelled=bool(_optional_flag(requisites.get("Отменен"), "отменён")),
        completed=_optional_flag(requisites.get(completed_name), completed_name.lower()),
        basis_id=None if basis is None else normalize_id(basis),
    )


def _document_date(day: str | None, clock: str | None, context: _Context) -> datetime | None:
    # Дата contains the date and Время the time, but a few producers put both into Дата.
    if day is None:
        return None
    text = day if clock is None or ":" in day else f"{day} {clock}"
    return _date(text, context, "дата")


def _date(text: str | None, context: _Context, what_ru: str) -> datetime | None:
    try:
        return parse_datetime(text, context.tz)
    except ValueError as exc:
        raise _BadValue("date", what_ru, text, str(exc)) from exc


def _optional_flag(text: str | None, what_ru: str) -> bool | None:
    if text is None or not text.strip():
        return None
    try:
        return parse_bool(text)
    except ValueError as exc:
        raise _BadValue("flag", what_ru, text, str(exc)) from exc


def _read_order_line(line: etree._Element) -> OrderLine:
    raw_id = _raw_text(line, "Ид") or ""
    is_delivery = raw_id.upper() == DELIVERY_LINE_ID
    quantity = _number(_raw_text(line, "Количество"), parse_quantity, "quantity", "количество")
    price = _number(_raw_text(line, "ЦенаЗаЕдиницу"), parse_money, "price", "цена")
    amount_text = _text(line, "Сумма")
    requisites = _first_values(_read_requisites(line))

    return OrderLine(
        external_id=DELIVERY_LINE_ID if is_delivery else normalize_id(raw_id),
        name=_name_text(line),
        quantity=quantity,
        price=price,
        amount=price * quantity
        if amount_text is None
        else _number(amount_text, parse_money, "amount", "сумма"),
        unit=_read_unit_text(line),
        discount=_read_discount(line),
        is_service=is_delivery
        or requisites.get("ТипНоменклатуры", "").strip().lower() == _SERVICE_TYPE,
    )


def _read_discount(line: etree._Element) -> Decimal:
    discounts = _child(line, "Скидки")
    if discounts is None:
        return Decimal(0)

    total = Decimal(0)
    for discount in _children(discounts, "Скидка"):
        amount = _text(discount, "Сумма")
        if amount is not None:
            total += _number(amount, parse_money, "discount", "скидка")
    return total


# --------------------------------------------------------------------------------------
# Counterparties


def _read_counterparty(elem: etree._Element, context: _Context) -> Counterparty:
    """Build a Counterparty from a Контрагенты/Контрагент element of a counterparties file.

    ИНН, КПП and the full name are direct children in 2.09 files. The 2.x schema also
    allows them inside РеквизитыЮрЛица (organisations) or РеквизитыФизЛица (persons).
    """
    external_id = _required_id(elem, context, "counterparty", "контрагент")
    sources = [elem]
    sources += [
        details
        for name in ("РеквизитыЮрЛица", "РеквизитыФизЛица")
        if (details := _child(elem, name)) is not None
    ]
    full_name = _first_text(sources, "ОфициальноеНаименование") or _first_text(
        sources, "ПолноеНаименование"
    )
    full_name = None if full_name is None else _clean_name(full_name)

    return Counterparty(
        external_id=external_id,
        name=_name_text(elem) or full_name or "",
        full_name=full_name,
        inn=_first_text(sources, "ИНН"),
        kpp=_first_text(sources, "КПП"),
        deleted=_deleted(elem, context),
        raw=_element_fields(elem),
    )


def _first_text(elements: Sequence[etree._Element], name: str) -> str | None:
    for elem in elements:
        text = _text(elem, name)
        if text:
            return text
    return None


def _element_fields(elem: etree._Element) -> dict[str, XmlValue]:
    """Map the attributes and children of `elem` to XmlValue, see model.XmlValue.

    Own text next to attributes or children is kept under "#text".
    """
    fields: dict[str, XmlValue] = {
        "@" + str(name).rpartition("}")[2]: value for name, value in elem.attrib.items()
    }
    text = (elem.text or "").strip()
    if text and (len(elem) or elem.attrib):
        fields["#text"] = text

    for child in elem.iterchildren(tag=etree.Element):
        name = _local(child)
        value = _element_value(child)
        existing = fields.get(name)
        if existing is None:
            fields[name] = value
        elif isinstance(existing, list):
            existing.append(value)
        else:
            fields[name] = [existing, value]
    return fields


def _element_value(elem: etree._Element) -> XmlValue:
    # libxml2 limits the nesting depth (huge_tree is off), which bounds this recursion.
    if len(elem) == 0 and not elem.attrib:
        return (elem.text or "").strip()
    return _element_fields(elem)


def _record_error(
    context: _Context, elem: etree._Element, message: str, message_ru: str
) -> CommerceMLError:
    line = elem.sourceline
    return CommerceMLError(
        f"{context.filename}, line {line}: {message}",
        message_ru=(
            f"Файл {context.filename}, строка {line}: {message_ru}. "
            "Исправьте данные в 1С и выгрузите файл заново."
        ),
        filename=context.filename,
    )
