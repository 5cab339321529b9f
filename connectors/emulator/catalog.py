"""Generator of realistic CommerceML 2.0x catalogs (import0_1.xml, offers0_1.xml) as 1C 8 writes.

The goods are those of a company selling honey products, balms, creams, cosmetics and teas.
Every product is built from its own `random.Random` seeded with `(seed, index)`, so a product's
id, name, prices and stock do not depend on how many products the catalog has, and the same
seed always gives byte-identical files. The files are written element by element through
`lxml.etree.xmlfile`, so memory stays flat for 100,000 products.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import uuid
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

from lxml import etree

__all__ = [
    "IMPORT_FILENAME",
    "OFFERS_FILENAME",
    "GeneratedCatalog",
    "generate_catalog",
    "picture_paths",
    "write_catalog",
]

IMPORT_FILENAME = "import0_1.xml"
OFFERS_FILENAME = "offers0_1.xml"

NAMESPACE_2 = "urn:1C.ru:commerceml_2"
XS_NAMESPACE = "http://www.w3.org/2001/XMLSchema"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"
UTF8_BOM = b"\xef\xbb\xbf"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'

# 2.04 and 2.05 files carry no namespace; 2.07 and 2.08 use urn:1C.ru:commerceml_2. Versions
# 2.09+ split the exchange into other files (prices___, rests___), which this generator does
# not write.
SUPPORTED_SCHEMA_VERSIONS = frozenset({"2.04", "2.05", "2.07", "2.08"})

# ДатаФормирования of generated files unless the caller passes one: a fixed instant keeps the
# output identical for a seed.
DEFAULT_GENERATED_AT = datetime(2024, 3, 1, 6, 0, 0, tzinfo=UTC)
DEFAULT_TZ = ZoneInfo("Europe/Moscow")

RETAIL_PRICE_TYPE = "Розничная"
OLD_PRICE_TYPE = "Старая цена"  # strikethrough price shown next to the retail one
CURRENCY = "RUB"
VOLUME_AXIS = "Объём"
# Volume characteristic and its price factor against the 100 ml offer.
VOLUMES: tuple[tuple[str, Decimal], ...] = (("100 мл", Decimal("1")), ("250 мл", Decimal("2.2")))
CENT = Decimal("0.01")

OWNER_NAME = "ООО «Медовая пасека»"
OWNER_INN = "7701000000"
OWNER_KPP = "770101001"
SERIES_PROPERTY = "Серия"
SERIES_VALUES = ("Классическая линия", "Пчелиная линия", "Таёжная линия", "Детская линия")
WAREHOUSE_NAMES = (
    "Основной склад",
    "Склад Москва",
    "Склад Казань",
    "Склад Новосибирск",
    "Склад Екатеринбург",
    "Склад Краснодар",
)

ADDITIVES = (
    "маточным молочком",
    "прополисом",
    "пергой",
    "кедровым орехом",
    "облепихой",
    "клюквой",
    "имбирём",
    "корицей",
    "малиной",
    "черникой",
)
COSMETIC_ADDITIVES = (
    "пчелиным воском",
    "прополисом",
    "маточным молочком",
    "маслом облепихи",
    "экстрактом ромашки",
    "пчелиным ядом",
    "живицей кедра",
    "алоэ вера",
    "мёдом и овсом",
)
BALM_NAMES = (
    "Медовый спас",
    "Пчелиная сила",
    "Таёжный",
    "Сибирское здоровье",
    "Медовая заря",
    "Алтайский",
    "Живица",
    "Целебный сот",
    "Пасека",
    "Лесной сбор",
)


@dataclass(frozen=True, slots=True)
class _Subgroup:
    """A second-level group with the words its product names are built from."""

    name: str
    code: str  # short Latin code used in Артикул
    templates: tuple[str, ...]  # "{a}" and "{b}" are filled from words_a and words_b
    words_a: tuple[str, ...]
    words_b: tuple[str, ...] = ("",)
    sizes: tuple[str, ...] = ("",)  # appended after a comma to products without variants
    price_rub: tuple[int, int] = (200, 1500)  # retail price range in whole rubles
    has_volume: bool = False  # may be sold in 100 ml / 250 ml variants


GROUP_TREE: tuple[tuple[str, tuple[_Subgroup, ...]], ...] = (
    (
        "Продукты пчеловодства",
        (
            _Subgroup(
                "Мёд натуральный",
                "MN",
                ("Мёд {a}",),
                (
                    "липовый",
                    "гречишный",
                    "цветочный",
                    "акациевый",
                    "донниковый",
                    "каштановый",
                    "горный",
                    "таёжный",
                    "луговой",
                    "кипрейный",
                ),
                sizes=("250 г", "500 г", "1 кг"),
                price_rub=(350, 1900),
            ),
            _Subgroup(
                "Крем-мёд",
                "KM",
                ("Крем-мёд с {a}", "Крем-мёд «Десерт» с {a}"),
                ADDITIVES,
                sizes=("120 г", "250 г"),
                price_rub=(290, 990),
            ),
            _Subgroup(
                "Прополис и перга",
                "PP",
                ("{a} {b}",),
                ("Перга", "Прополис", "Пыльца цветочная", "Маточное молочко"),
                ("в сотах", "в гранулах", "в мёде", "натуральная"),
                sizes=("30 г", "50 г", "100 г"),
                price_rub=(450, 2900),
            ),
        ),
    ),
    (
        "Бальзамы",
        (
            _Subgroup(
                "Бальзамы на мёде",
                "BM",
                ("Бальзам «{a}»", "Бальзам медовый «{a}»"),
                BALM_NAMES,
                price_rub=(690, 2400),
                has_volume=True,
            ),
            _Subgroup(
                "Бальзамы для тела",
                "BT",
                ("Бальзам для {a} «{b}»",),
                ("тела", "суставов", "ног", "рук", "спины"),
                BALM_NAMES,
                price_rub=(390, 1400),
                has_volume=True,
            ),
        ),
    ),
    (
        "Косметика",
        (
            _Subgroup(
                "Кремы для лица",
                "KL",
                ("Крем для лица {a} с {b}",),
                ("дневной", "ночной", "увлажняющий", "питательный", "омолаживающий"),
                COSMETIC_ADDITIVES,
                price_rub=(450, 2200),
                has_volume=True,
            ),
            _Subgroup(
                "Кремы для тела",
                "KT",
                ("Крем для {a} с {b}",),
                ("тела", "рук", "ног", "лица и шеи"),
                COSMETIC_ADDITIVES,
                price_rub=(290, 1300),
                has_volume=True,
            ),
            _Subgroup(
                "Уход за волосами",
                "UV",
                ("{a} с {b}",),
                ("Шампунь", "Бальзам-ополаскиватель", "Маска для волос"),
                COSMETIC_ADDITIVES,
                price_rub=(320, 1100),
                has_volume=True,
            ),
        ),
    ),
    (
        "Гигиена",
        (
            _Subgroup(
                "Зубные пасты",
                "ZP",
                ("Зубная паста «{a}»",),
                (
                    "Прополис",
                    "Мёд и мята",
                    "Кедровая",
                    "Отбеливающая",
                    "Детская медовая",
                    "Хвойная",
                    "Травяная",
                ),
                sizes=("75 мл", "100 мл"),
                price_rub=(190, 560),
            ),
            _Subgroup(
                "Мыло",
                "MY",
                ("Мыло натуральное «{a}»", "Мыло с {b}"),
                ("Медовое", "Дёгтевое", "Овсяное", "Облепиховое"),
                COSMETIC_ADDITIVES,
                sizes=("90 г", "120 г"),
                price_rub=(120, 390),
            ),
        ),
    ),
    (
        "Чаи и фитосборы",
        (
            _Subgroup(
                "Чаи",
                "CH",
                ("Чай {a} с {b}",),
                ("травяной", "зелёный", "чёрный", "иван-чай"),
                ("чабрецом", "мятой", "шиповником", "липовым цветом", "иван-чаем", "мелиссой"),
                sizes=("50 г", "100 г", "20 пакетиков"),
                price_rub=(150, 690),
            ),
            _Subgroup(
                "Фитосборы",
                "FS",
                ("Фитосбор «{a}»",),
                (
                    "Таёжный",
                    "Успокоительный",
                    "Грудной",
                    "Желудочный",
                    "Витаминный",
                    "Сибирский",
                    "Алтайские травы",
                ),
                sizes=("50 г", "100 г"),
                price_rub=(180, 790),
            ),
        ),
    ),
)
SUBGROUPS: tuple[_Subgroup, ...] = tuple(sub for _, subs in GROUP_TREE for sub in subs)
VOLUME_SUBGROUPS: tuple[_Subgroup, ...] = tuple(sub for sub in SUBGROUPS if sub.has_volume)
BENEFITS = (
    "Поддерживает иммунитет в холодное время года.",
    "Подходит для ежедневного применения.",
    "Натуральный состав без консервантов.",
    "Произведено на собственной пасеке.",
    "Рекомендуется курсом по 30 дней.",
    "Бережно ухаживает за чувствительной кожей.",
)


@dataclass(frozen=True)
class GeneratedCatalog:
    """A generated catalog in memory: the two XML files and what they contain.

    `pictures` maps a picture's path inside the exchange (`import_files/xx/….png`) to its bytes.
    """

    import_xml: bytes
    offers_xml: bytes
    products: int
    offers: int
    groups: int
    warehouses: int
    price_types: int
    pictures: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _OfferSpec:
    external_id: str  # "<product>" or "<product>#<characteristic>"
    sku: str
    name: str
    volume: str | None
    retail: Decimal
    old_price: Decimal | None
    stock: tuple[int, ...]  # one quantity per warehouse, in pieces


@dataclass(frozen=True, slots=True)
class _ProductSpec:
    external_id: str
    sku: str
    name: str
    barcode: str
    group_id: str
    description: str
    series_value_id: str
    picture: str | None
    offers: tuple[_OfferSpec, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything both files need, fixed before the first product is written."""

    seed: int
    products: int
    variants_every: int
    pictures_every: int
    warehouses: tuple[tuple[str, str], ...]  # (Ид, Наименование)
    schema_version: str
    namespace: str | None
    generated_at: str  # ДатаФормирования in the branch's local time
    classifier_id: str
    owner_id: str
    series_property_id: str
    retail_price_type_id: str
    old_price_type_id: str

    def guid(self, kind: str, key: object) -> str:
        return _guid(self.seed, kind, key)


@functools.cache
def _seed_namespace(seed: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"tentorium-hub-emulator/{seed}")


def _guid(seed: int, kind: str, key: object) -> str:
    """Return a GUID that stays the same for the same seed, kind and key."""
    return str(uuid.uuid5(_seed_namespace(seed), f"{kind}/{key}"))


def _make_plan(
    *,
    seed: int,
    products: int,
    variants_every: int,
    pictures_every: int,
    warehouses: int,
    schema_version: str,
    generated_at: datetime,
    tz: ZoneInfo,
) -> _Plan:
    if products < 0:
        raise ValueError(f"products must be >= 0, got {products!r}")
    if variants_every < 0 or pictures_every < 0 or warehouses < 0:
        raise ValueError(
            "variants_every, pictures_every and warehouses must be >= 0, got "
            f"{variants_every!r}, {pictures_every!r}, {warehouses!r}"
        )
    if schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        raise ValueError(
            f"schema_version {schema_version!r} is not supported; "
            f"use one of {sorted(SUPPORTED_SCHEMA_VERSIONS)}"
        )
    if generated_at.tzinfo is None:
        raise ValueError(f"generated_at must be time-zone aware, got {generated_at!r}")

    store_names = [
        WAREHOUSE_NAMES[i] if i < len(WAREHOUSE_NAMES) else f"Склад №{i + 1}"
        for i in range(warehouses)
    ]
    namespace = None if schema_version in ("2.04", "2.05") else NAMESPACE_2
    return _Plan(
        seed=seed,
        products=products,
        variants_every=variants_every,
        pictures_every=pictures_every,
        warehouses=tuple((_guid(seed, "warehouse", i), n) for i, n in enumerate(store_names)),
        schema_version=schema_version,
        namespace=namespace,
        generated_at=generated_at.astimezone(tz).replace(tzinfo=None).isoformat("T", "seconds"),
        classifier_id=_guid(seed, "classifier", 0),
        owner_id=_guid(seed, "owner", 0),
        series_property_id=_guid(seed, "property", SERIES_PROPERTY),
        retail_price_type_id=_guid(seed, "price-type", RETAIL_PRICE_TYPE),
        old_price_type_id=_guid(seed, "price-type", OLD_PRICE_TYPE),
    )


def _group_id(plan: _Plan, top: str, sub: str | None = None) -> str:
    return plan.guid("group", top if sub is None else f"{top}/{sub}")


def _top_of(subgroup: _Subgroup) -> str:
    for top, subs in GROUP_TREE:
        if subgroup in subs:
            return top
    raise LookupError(subgroup.name)


def _ean13(rng: random.Random) -> str:
    """Return an EAN-13 with the Russian 460 prefix and a valid check digit."""
    digits = "460" + "".join(str(rng.randrange(10)) for _ in range(9))
    weighted = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return digits + str((10 - weighted % 10) % 10)


def _retail_price(rng: random.Random, subgroup: _Subgroup) -> Decimal:
    rubles = rng.randint(*subgroup.price_rub)
    kopecks = rng.choice((0, 0, 0, 50, 90))
    return Decimal(rubles) + Decimal(kopecks) / 100


def _old_price(rng: random.Random, retail: Decimal) -> Decimal | None:
    """Return a strikethrough price for about one offer in three, 10–40 % above retail."""
    if rng.random() >= 1 / 3:
        return None
    markup = Decimal(rng.randint(110, 140)) / 100
    return (retail * markup).quantize(Decimal("1"))


def _stock(rng: random.Random, warehouses: int) -> tuple[int, ...]:
    # About one warehouse in seven is out of the product, as in a real branch.
    return tuple(0 if rng.random() < 0.15 else rng.randint(1, 150) for _ in range(warehouses))


def _product_name(rng: random.Random, subgroup: _Subgroup) -> str:
    template = rng.choice(subgroup.templates)
    return template.format(a=rng.choice(subgroup.words_a), b=rng.choice(subgroup.words_b))


def _has_variants(plan: _Plan, index: int) -> bool:
    return plan.variants_every > 0 and index % plan.variants_every == plan.variants_every - 1


def _make_offers(
    plan: _Plan,
    rng: random.Random,
    *,
    index: int,
    product_id: str,
    sku: str,
    name: str,
    subgroup: _Subgroup,
) -> tuple[_OfferSpec, ...]:
    retail = _retail_price(rng, subgroup)
    store_count = len(plan.warehouses)
    if not _has_variants(plan, index):
        stock = _stock(rng, store_count)
        return (_OfferSpec(product_id, sku, name, None, retail, _old_price(rng, retail), stock),)

    offers = []
    for volume, factor in VOLUMES:
        characteristic_id = plan.guid("characteristic", f"{index}/{volume}")
        price = (retail * factor).quantize(CENT)
        offers.append(
            _OfferSpec(
                external_id=f"{product_id}#{characteristic_id}",
                sku=f"{sku}-{volume.split()[0]}",
                name=f"{name} ({volume})",
                volume=volume,
                retail=price,
                old_price=_old_price(rng, price),
                stock=_stock(rng, store_count),
            )
        )
    return tuple(offers)


def _product_spec(plan: _Plan, index: int) -> _ProductSpec:
    """Build product `index` from its own seeded generator, independent of the catalog size."""
    rng = random.Random(f"{plan.seed}/product/{index}")
    has_variants = _has_variants(plan, index)
    subgroup = rng.choice(VOLUME_SUBGROUPS if has_variants else SUBGROUPS)

    product_id = plan.guid("product", index)
    name = _product_name(rng, subgroup)
    size = rng.choice(subgroup.sizes)
    if size and not has_variants:
        name = f"{name}, {size}"
    sku = f"TN{subgroup.code}-{index + 1:06d}"

    picture = None
    if plan.pictures_every > 0 and index % plan.pictures_every == 0:
        compact = product_id.replace("-", "")
        picture_id = plan.guid("picture", index).replace("-", "")
        picture = f"import_files/{compact[:2]}/{compact}_{picture_id}.png"

    return _ProductSpec(
        external_id=product_id,
        sku=sku,
        name=name,
        barcode=_ean13(rng),
        group_id=_group_id(plan, _top_of(subgroup), subgroup.name),
        description=f"{name}. {rng.choice(BENEFITS)}",
        series_value_id=plan.guid("property-value", rng.choice(SERIES_VALUES)),
        picture=picture,
        offers=_make_offers(
            plan, rng, index=index, product_id=product_id, sku=sku, name=name, subgroup=subgroup
        ),
    )


def _iter_products(plan: _Plan) -> Iterator[_ProductSpec]:
    for index in range(plan.products):
        yield _product_spec(plan, index)


def _png(rgb: tuple[int, int, int], size: int = 8) -> bytes:
    """Return a valid PNG of one solid colour, `size` pixels square."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size  # filter byte 0, then RGB pixels
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit truecolour
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def _picture_bytes(plan: _Plan, index: int) -> bytes:
    rng = random.Random(f"{plan.seed}/picture/{index}")
    return _png((rng.randrange(256), rng.randrange(256), rng.randrange(256)))


def _iter_pictures(plan: _Plan) -> Iterator[tuple[str, bytes]]:
    if plan.pictures_every <= 0:
        return
    for index in range(0, plan.products, plan.pictures_every):
        picture = _product_spec(plan, index).picture
        if picture is not None:
            yield picture, _picture_bytes(plan, index)


class _Writer:
    """Indenting element writer over `lxml.etree.xmlfile`, one tab per level like 1C."""

    def __init__(self, xf: etree._IncrementalFileWriter, namespace: str | None) -> None:
        self._xf = xf
        self._namespace = namespace
        self._depth = 0

    def _qname(self, name: str) -> str:
        return name if self._namespace is None else f"{{{self._namespace}}}{name}"

    @contextmanager
    def element(
        self,
        name: str,
        attrib: Mapping[str, str] | None = None,
        nsmap: Mapping[str | None, str] | None = None,
    ) -> Iterator[None]:
        if self._depth:
            self._xf.write("\n" + "\t" * self._depth)
        with self._xf.element(self._qname(name), dict(attrib or {}), nsmap=nsmap):
            self._depth += 1
            yield
            self._depth -= 1
            self._xf.write("\n" + "\t" * self._depth)

    def leaf(self, name: str, text: str | None, attrib: Mapping[str, str] | None = None) -> None:
        self._xf.write("\n" + "\t" * self._depth)
        with self._xf.element(self._qname(name), dict(attrib or {})):
            if text:
                self._xf.write(text)


@contextmanager
def _document(stream: BinaryIO, plan: _Plan) -> Iterator[_Writer]:
    """Open КоммерческаяИнформация with a BOM and 1C's declaration in front of it."""
    stream.write(UTF8_BOM + XML_DECLARATION + b"\n")
    root_attrib = {"ВерсияСхемы": plan.schema_version, "ДатаФормирования": plan.generated_at}
    nsmap: dict[str | None, str] = {"xs": XS_NAMESPACE, "xsi": XSI_NAMESPACE}
    if plan.namespace is not None:
        nsmap[None] = plan.namespace

    with etree.xmlfile(stream, encoding="utf-8") as xf:
        writer = _Writer(xf, plan.namespace)
        with writer.element("КоммерческаяИнформация", root_attrib, nsmap=nsmap):
            yield writer
    stream.write(b"\n")


def _write_owner(w: _Writer, plan: _Plan) -> None:
    with w.element("Владелец"):
        w.leaf("Ид", plan.owner_id)
        w.leaf("Наименование", OWNER_NAME)
        w.leaf("ОфициальноеНаименование", OWNER_NAME)
        w.leaf("ИНН", OWNER_INN)
        w.leaf("КПП", OWNER_KPP)


def _write_classifier_head(w: _Writer, plan: _Plan) -> None:
    w.leaf("Ид", plan.classifier_id)
    w.leaf("Наименование", "Классификатор (Основной каталог товаров)")
    _write_owner(w, plan)


def _write_groups(w: _Writer, plan: _Plan) -> None:
    with w.element("Группы"):
        for top, subgroups in GROUP_TREE:
            with w.element("Группа"):
                w.leaf("Ид", _group_id(plan, top))
                w.leaf("Наименование", top)
                with w.element("Группы"):
                    for sub in subgroups:
                        with w.element("Группа"):
                            w.leaf("Ид", _group_id(plan, top, sub.name))
                            w.leaf("Наименование", sub.name)


def _write_properties(w: _Writer, plan: _Plan) -> None:
    with w.element("Свойства"), w.element("Свойство"):
        w.leaf("Ид", plan.series_property_id)
        w.leaf("Наименование", SERIES_PROPERTY)
        w.leaf("ТипЗначений", "Справочник")
        with w.element("ВариантыЗначений"):
            for value in SERIES_VALUES:
                with w.element("Справочник"):
                    w.leaf("ИдЗначения", plan.guid("property-value", value))
                    w.leaf("Значение", value)


def _write_base_unit(w: _Writer) -> None:
    w.leaf("БазоваяЕдиница", "шт", {"Код": "796", "НаименованиеПолное": "Штука"})


def _write_requisites(w: _Writer, pairs: tuple[tuple[str, str], ...]) -> None:
    with w.element("ЗначенияРеквизитов"):
        for name, value in pairs:
            with w.element("ЗначениеРеквизита"):
                w.leaf("Наименование", name)
                w.leaf("Значение", value)


def _write_product(w: _Writer, plan: _Plan, product: _ProductSpec) -> None:
    with w.element("Товар"):
        w.leaf("Ид", product.external_id)
        w.leaf("Штрихкод", product.barcode)
        w.leaf("Артикул", product.sku)
        w.leaf("Наименование", product.name)
        _write_base_unit(w)
        with w.element("Группы"):
            w.leaf("Ид", product.group_id)
        w.leaf("Описание", product.description)
        if product.picture is not None:
            w.leaf("Картинка", product.picture)
        with w.element("ЗначенияСвойств"), w.element("ЗначенияСвойства"):
            w.leaf("Ид", plan.series_property_id)
            w.leaf("Значение", product.series_value_id)
        requisites = (
            ("ВидНоменклатуры", "Товар"),
            ("ТипНоменклатуры", "Товар"),
            ("Полное наименование", product.name),
        )
        _write_requisites(w, requisites)


def _write_import(stream: BinaryIO, plan: _Plan) -> None:
    with _document(stream, plan) as w:
        with w.element("Классификатор"):
            _write_classifier_head(w, plan)
            _write_groups(w, plan)
            _write_properties(w, plan)

        with w.element("Каталог", {"СодержитТолькоИзменения": "false"}):
            w.leaf("Ид", plan.classifier_id)
            w.leaf("ИдКлассификатора", plan.classifier_id)
            w.leaf("Наименование", "Основной каталог товаров")
            _write_owner(w, plan)
            with w.element("Товары"):
                for product in _iter_products(plan):
                    _write_product(w, plan, product)


def _price_text(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _write_price(w: _Writer, price_type_id: str, amount: Decimal) -> None:
    with w.element("Цена"):
        presentation = f"{amount:,.2f}".replace(",", " ").replace(".", ",")
        w.leaf("Представление", f"{presentation} руб. за шт")
        w.leaf("ИдТипаЦены", price_type_id)
        w.leaf("ЦенаЗаЕдиницу", _price_text(amount))
        w.leaf("Валюта", CURRENCY)
        w.leaf("Единица", "шт")
        w.leaf("Коэффициент", "1")


def _write_offer(w: _Writer, plan: _Plan, offer: _OfferSpec) -> None:
    with w.element("Предложение"):
        w.leaf("Ид", offer.external_id)
        w.leaf("Артикул", offer.sku)
        w.leaf("Наименование", offer.name)
        _write_base_unit(w)
        if offer.volume is not None:
            with w.element("ХарактеристикиТовара"), w.element("ХарактеристикаТовара"):
                w.leaf("Наименование", VOLUME_AXIS)
                w.leaf("Значение", offer.volume)
        with w.element("Цены"):
            _write_price(w, plan.retail_price_type_id, offer.retail)
            if offer.old_price is not None:
                _write_price(w, plan.old_price_type_id, offer.old_price)
        w.leaf("Количество", str(sum(offer.stock)))
        for (warehouse_id, _), quantity in zip(plan.warehouses, offer.stock, strict=True):
            w.leaf("Склад", None, {"ИдСклада": warehouse_id, "КоличествоНаСкладе": str(quantity)})


def _write_price_types(w: _Writer, plan: _Plan) -> None:
    with w.element("ТипыЦен"):
        for price_type_id, name in (
            (plan.retail_price_type_id, RETAIL_PRICE_TYPE),
            (plan.old_price_type_id, OLD_PRICE_TYPE),
        ):
            with w.element("ТипЦены"):
                w.leaf("Ид", price_type_id)
                w.leaf("Наименование", name)
                w.leaf("Валюта", CURRENCY)
                with w.element("Налог"):
                    w.leaf("Наименование", "НДС")
                    w.leaf("УчтеноВСумме", "true")


def _write_offers(stream: BinaryIO, plan: _Plan) -> int:
    """Write offers0_1.xml and return the number of Предложение elements."""
    count = 0
    with _document(stream, plan) as w:
        with w.element("Классификатор"):
            _write_classifier_head(w, plan)

        with w.element("ПакетПредложений", {"СодержитТолькоИзменения": "false"}):
            w.leaf("Ид", f"{plan.classifier_id}#")
            w.leaf("Наименование", "Пакет предложений (Основной каталог товаров)")
            w.leaf("ИдКаталога", plan.classifier_id)
            w.leaf("ИдКлассификатора", plan.classifier_id)
            _write_owner(w, plan)
            _write_price_types(w, plan)
            if plan.warehouses:
                with w.element("Склады"):
                    for warehouse_id, name in plan.warehouses:
                        with w.element("Склад"):
                            w.leaf("Ид", warehouse_id)
                            w.leaf("Наименование", name)
            with w.element("Предложения"):
                for product in _iter_products(plan):
                    for offer in product.offers:
                        _write_offer(w, plan, offer)
                        count += 1
    return count


def _group_count() -> int:
    return sum(1 + len(subs) for _, subs in GROUP_TREE)


def generate_catalog(
    *,
    products: int = 200,
    seed: int = 0,
    variants_every: int = 10,
    warehouses: int = 2,
    schema_version: str = "2.07",
    pictures_every: int = 0,
    generated_at: datetime = DEFAULT_GENERATED_AT,
    tz: ZoneInfo = DEFAULT_TZ,
) -> GeneratedCatalog:
    """Generate import0_1.xml and offers0_1.xml in memory.

    Every `variants_every`-th product is sold as two characteristics (Объём 100 мл and 250 мл)
    instead of one plain offer; 0 disables variants. Every `pictures_every`-th product, starting
    with the first, gets a `<Картинка>`; 0 disables pictures. `generated_at` (aware) is written
    as ДатаФормирования in `tz`, the branch's local time.
    """
    plan = _make_plan(
        seed=seed,
        products=products,
        variants_every=variants_every,
        pictures_every=pictures_every,
        warehouses=warehouses,
        schema_version=schema_version,
        generated_at=generated_at,
        tz=tz,
    )
    import_buffer = io.BytesIO()
    _write_import(import_buffer, plan)
    offers_buffer = io.BytesIO()
    offer_count = _write_offers(offers_buffer, plan)

    return GeneratedCatalog(
        import_xml=import_buffer.getvalue(),
        offers_xml=offers_buffer.getvalue(),
        products=products,
        offers=offer_count,
        groups=_group_count(),
        warehouses=warehouses,
        price_types=2,
        pictures=dict(_iter_pictures(plan)),
    )


def write_catalog(
    directory: Path,
    *,
    products: int,
    seed: int = 0,
    variants_every: int = 10,
    warehouses: int = 2,
    schema_version: str = "2.07",
    pictures_every: int = 0,
    generated_at: datetime = DEFAULT_GENERATED_AT,
    tz: ZoneInfo = DEFAULT_TZ,
) -> list[Path]:
    """Stream import0_1.xml and offers0_1.xml into `directory` and return their paths.

    The files are byte-identical to `generate_catalog` with the same arguments. Pictures, when
    `pictures_every` > 0, are written under `directory/import_files/`; `picture_paths` lists them.
    """
    plan = _make_plan(
        seed=seed,
        products=products,
        variants_every=variants_every,
        pictures_every=pictures_every,
        warehouses=warehouses,
        schema_version=schema_version,
        generated_at=generated_at,
        tz=tz,
    )
    directory.mkdir(parents=True, exist_ok=True)
    import_path = directory / IMPORT_FILENAME
    offers_path = directory / OFFERS_FILENAME
    with import_path.open("wb") as stream:
        _write_import(stream, plan)
    with offers_path.open("wb") as stream:
        _write_offers(stream, plan)

    for relative, data in _iter_pictures(plan):
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return [import_path, offers_path]


def picture_paths(directory: Path) -> list[Path]:
    """Return the picture files `write_catalog` wrote under `directory/import_files`, sorted."""
    root = directory / "import_files"
    if not root.is_dir():
        return []
    return sorted(path for path in root.rglob("*") if path.is_file())
