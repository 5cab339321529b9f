"""The entity names one branch publishes, picked from candidate lists via the service document.

Branch bases run different configurations and releases (УТ 11.4 and 11.5, УНФ), and each
names the same object differently: the customer order is `Document_ЗаказКлиента` in УТ
and `Document_ЗаказПокупателя` in УНФ. The hub reads the service document (GET on the
publication's base URL lists the published entity sets) and takes, for every role, the
first candidate the branch publishes. A candidate also carries the field names that
differ along with the entity name, such as the warehouse dimension of a stock register.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from connectors.odata.errors import ODataProfileError, invalid_row_error

__all__ = [
    "CANDIDATES",
    "EntityChoice",
    "ODataProfile",
    "Role",
    "choose_profile",
    "published_names",
]


class Role(enum.StrEnum):
    """Purpose an entity set serves in the hub."""

    CATALOG = "catalog"
    ORDER = "order"
    STOCK = "stock"
    PRICE = "price"


ROLE_TEXTS = {
    Role.CATALOG: "goods catalog",
    Role.ORDER: "customer order document",
    Role.STOCK: "stock register",
    Role.PRICE: "price register",
}


@dataclass(frozen=True)
class EntityChoice:
    """One way configurations publish an object: the entity set and the names tied to it."""

    entity: str
    configurations: str  # for messages and logs only, e.g. "УТ 11"
    lines_field: str | None = None  # order: the table part with the goods lines
    warehouse_dimension: str | None = None  # stock: the dimension that is the warehouse
    quantity_resource: str | None = None  # stock: the resource with the quantity on hand


# Candidates per role, the preferred one first. A branch that publishes several gets the
# first. NOTE: the УНФ names (ЗаказПокупателя with table part Запасы, ЗапасыНаСкладах with
# СтруктурнаяЕдиница and Количество) and the 11.5 register ЦеныНоменклатуры25 are taken from
# integrators' descriptions, not from a real УНФ or УТ 11.5 base.
CANDIDATES: Mapping[Role, tuple[EntityChoice, ...]] = {
    Role.CATALOG: (EntityChoice("Catalog_Номенклатура", "УТ 11, УНФ"),),
    Role.ORDER: (
        EntityChoice("Document_ЗаказКлиента", "УТ 11", lines_field="Товары"),
        EntityChoice("Document_ЗаказПокупателя", "УНФ", lines_field="Запасы"),
    ),
    Role.STOCK: (
        EntityChoice(
            "AccumulationRegister_ТоварыНаСкладах",
            "УТ 11",
            warehouse_dimension="Склад",
            quantity_resource="ВНаличии",
        ),
        EntityChoice(
            "AccumulationRegister_ЗапасыНаСкладах",
            "УНФ",
            warehouse_dimension="СтруктурнаяЕдиница",
            quantity_resource="Количество",
        ),
    ),
    # УТ 11.5 keeps the old register after an upgrade but writes new prices to the "25"
    # one, so the "25" register wins when both are published.
    Role.PRICE: (
        EntityChoice("InformationRegister_ЦеныНоменклатуры25", "УТ 11.5"),
        EntityChoice("InformationRegister_ЦеныНоменклатуры", "УТ 11.4, УНФ"),
    ),
}

COMPOSITION_HINT = (
    "enable it in the branch base with УстановитьСоставСтандартногоИнтерфейсаOData() "
    "or the БСП form of the OData composition"
)


@dataclass(frozen=True)
class ODataProfile:
    """The entity sets chosen for one branch; a role without a candidate is absent."""

    choices: Mapping[Role, EntityChoice]
    published_count: int

    def has(self, role: Role) -> bool:
        return role in self.choices

    def require(self, role: Role) -> EntityChoice:
        """Return the choice for `role`; raise ODataProfileError naming what to publish."""
        choice = self.choices.get(role)
        if choice is not None:
            return choice
        raise missing_role_error(role, self.published_count)

    def to_json(self) -> dict[str, Any]:
        """Build the JSON document stored in `branch_odata_profile.profile`."""
        choices = {str(role): asdict(choice) for role, choice in self.choices.items()}
        return {"choices": choices, "published_count": self.published_count}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ODataProfile:
        """Read a stored profile; a malformed one raises ValueError so the caller re-probes."""
        try:
            choices = {
                Role(role): EntityChoice(**fields) for role, fields in document["choices"].items()
            }
            return cls(choices, int(document["published_count"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"stored OData profile is malformed: {exc!r}") from exc


def missing_role_error(role: Role, published_count: int) -> ODataProfileError:
    candidates = CANDIDATES[role]
    names = " or ".join(f"{c.entity} ({c.configurations})" for c in candidates)
    message = (
        f"the branch's OData service document lists no {ROLE_TEXTS[role]}: "
        f"publish {names} in the OData composition; {COMPOSITION_HINT}"
    )
    if published_count == 0:
        message = "the OData composition is empty (no entity sets are published); " + message
    return ODataProfileError(
        message, role=str(role), candidates=tuple(c.entity for c in candidates)
    )


def published_names(document: object) -> list[str]:
    """Read entity set names from a JSON service document (`{"value": [{"name": …}, …]}`)."""
    entries = document.get("value") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise invalid_row_error("service document", "the response has no 'value' array")

    names: list[str] = []
    for entry in entries:
        name = None
        if isinstance(entry, Mapping):
            name = entry.get("name") or entry.get("url")
        if not isinstance(name, str):
            raise invalid_row_error("service document", f"entry without a name: {entry!r}")
        names.append(name)
    return names


def choose_profile(published: Collection[str]) -> ODataProfile:
    """Pick, for every role, the first candidate in `published`."""
    available = set(published)
    choices: dict[Role, EntityChoice] = {}
    for role, candidates in CANDIDATES.items():
        for candidate in candidates:
            if candidate.entity in available:
                choices[role] = candidate
                break
    return ODataProfile(choices, len(available))
