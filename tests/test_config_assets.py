"""Checks that the operator files in config/ match the code: metric names and settings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric
from pydantic import AliasChoices
from pydantic.fields import FieldInfo

import tentorium_hub.metrics  # noqa: F401  (registers every hub metric in REGISTRY)
from tentorium_hub.settings import Settings

CONFIG_DIR = Path(__file__).parents[1] / "config"
ALERTS_FILE = CONFIG_DIR / "prometheus-alerts.yml"
DASHBOARD_FILE = CONFIG_DIR / "grafana-dashboard.json"
ENV_FILE = CONFIG_DIR / "hub.env.example"

# A hub metric name inside PromQL. A quoted label value that starts with `hub_` would match
# too, and the files use none.
METRIC_NAME = re.compile(r"\bhub_[a-z0-9_]*[a-z0-9]\b")
EXPR_LINE = re.compile(r"^(?P<indent>\s*)(?:-\s+)?expr:\s*(?P<rest>.*)$")
BLOCK_SCALAR = re.compile(r"^[|>][+-]?$")
ENV_LINE = re.compile(r"^(?P<comment>#\s?)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")

# Sample names that prometheus_client exposes for one registered family, by family type.
# A Counter created as "x_total" is registered as family "x" and exposes "x_total".
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}


def exposed_names(family: Metric) -> set[str]:
    """Return every sample name `/metrics` can show for `family`, labelled or not."""
    return {family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type]}


def registered_hub_names() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("hub_"):
            names |= exposed_names(family)
    return names


def alert_expressions(text: str) -> list[str]:
    """Extract each `expr:` value of a rules file, plain or as a `|`/`>` block scalar."""
    expressions: list[str] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = EXPR_LINE.match(line)
        if match is None:
            continue

        rest = match["rest"].strip()
        if not BLOCK_SCALAR.match(rest):
            expressions.append(rest)
            continue

        expressions.append("\n".join(block_lines(lines[index + 1 :], len(match["indent"]))))
    return expressions


def block_lines(lines: list[str], key_indent: int) -> list[str]:
    """Return the lines of a block scalar, which are indented deeper than its key."""
    block: list[str] = []
    for line in lines:
        if line.strip() and len(line) - len(line.lstrip()) <= key_indent:
            break
        block.append(line.strip())
    return block


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every panel, including panels nested in collapsed rows."""
    panels: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Return the PromQL of every panel target and of every templating variable."""
    queries = [
        target["expr"]
        for panel in dashboard_panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        queries.append(query.get("query", "") if isinstance(query, dict) else str(query or ""))
    return queries


def load_dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return loaded


def env_assignments() -> dict[str, tuple[str, bool]]:
    """Map each variable of the env example to (value, commented out)."""
    found: dict[str, tuple[str, bool]] = {}
    for line in ENV_FILE.read_text(encoding="utf-8").splitlines():
        match = ENV_LINE.match(line.strip())
        if match is not None:
            found[match["name"]] = (match["value"], match["comment"] is not None)
    return found


def env_names(name: str, field: FieldInfo) -> tuple[str, ...]:
    """Return the environment variables Settings reads for one field, preferred first."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    if isinstance(alias, str):
        return (alias,)
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return ((prefix + name).upper(),)


def documented_fields() -> list[tuple[str, str]]:
    """Return (field, variable) for each Settings field whose variable the example sets."""
    assignments = env_assignments()
    pairs: list[tuple[str, str]] = []
    for name, field in Settings.model_fields.items():
        documented = [env for env in env_names(name, field) if env in assignments]
        if documented:
            pairs.append((name, documented[0]))
    return pairs


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove every variable Settings reads, so only the test's values apply."""
    for name, field in Settings.model_fields.items():
        for env in env_names(name, field):
            monkeypatch.delenv(env, raising=False)
    return monkeypatch


# -- metric names ---------------------------------------------------------------------------


def test_alerts_every_rule_has_expr() -> None:
    text = ALERTS_FILE.read_text(encoding="utf-8")
    rule_count = len(re.findall(r"^\s*-\s+alert:", text, flags=re.MULTILINE))

    expressions = alert_expressions(text)

    assert rule_count > 0
    assert len(expressions) == rule_count
    assert all(expr.strip() for expr in expressions)


def test_alerts_metrics_registered() -> None:
    expressions = alert_expressions(ALERTS_FILE.read_text(encoding="utf-8"))
    used = {name for expr in expressions for name in METRIC_NAME.findall(expr)}

    unknown = used - registered_hub_names()

    assert used
    assert not unknown, f"alert rules use metrics that tentorium_hub.metrics lacks: {unknown}"


def test_dashboard_metrics_registered() -> None:
    queries = dashboard_queries(load_dashboard())
    used = {name for query in queries for name in METRIC_NAME.findall(query)}

    unknown = used - registered_hub_names()

    assert used
    assert not unknown, f"dashboard queries use metrics that tentorium_hub.metrics lacks: {unknown}"


def test_exposed_names_counter_and_histogram() -> None:
    families = {family.name: family for family in REGISTRY.collect()}

    counter_names = exposed_names(families["hub_actor_crashes"])
    histogram_names = exposed_names(families["hub_exchange_duration_seconds"])

    assert "hub_actor_crashes_total" in counter_names
    assert "hub_actor_crashes" not in counter_names
    assert "hub_exchange_duration_seconds_bucket" in histogram_names
    assert "hub_exchange_duration_seconds" not in histogram_names


def test_alert_expressions_block_scalar() -> None:
    text = "      - alert: A\n        expr: |\n          up\n          == 0\n        for: 1m\n"

    expressions = alert_expressions(text)

    assert expressions == ["up\n== 0"]


# -- dashboard ----------------------------------------------------------------------------


def test_dashboard_has_panels() -> None:
    panels = dashboard_panels(load_dashboard())

    assert len(panels) > 0


@pytest.mark.parametrize("panel", dashboard_panels(load_dashboard()), ids=lambda p: str(p["id"]))
def test_dashboard_panel_has_title_and_expr(panel: dict[str, Any]) -> None:
    exprs = [target.get("expr", "") for target in panel.get("targets", [])]

    assert str(panel.get("title", "")).strip()
    assert any(expr.strip() for expr in exprs)


def test_dashboard_datasource_is_input() -> None:
    dashboard = load_dashboard()
    input_names = [item["name"] for item in dashboard.get("__inputs", [])]
    sources = [
        target["datasource"]["uid"]
        for panel in dashboard_panels(dashboard)
        for target in panel["targets"]
    ]

    assert "DS_PROMETHEUS" in input_names
    assert set(sources) == {"${DS_PROMETHEUS}"}


# -- environment example --------------------------------------------------------------------


def test_env_example_variables_are_settings() -> None:
    known = {env for name, field in Settings.model_fields.items() for env in env_names(name, field)}

    unknown = set(env_assignments()) - known

    assert not unknown, f"hub.env.example sets variables that Settings does not read: {unknown}"


def test_env_example_lists_every_setting() -> None:
    assignments = env_assignments()

    missing = [
        name
        for name, field in Settings.model_fields.items()
        if not any(env in assignments for env in env_names(name, field))
    ]

    assert not missing, f"hub.env.example lacks these Settings fields: {missing}"


def test_env_example_database_url_name() -> None:
    assert "DATABASE_URL" in env_assignments()


@pytest.mark.parametrize(("field_name", "variable"), documented_fields())
def test_env_example_value_read(
    clean_env: pytest.MonkeyPatch, field_name: str, variable: str
) -> None:
    value, _ = env_assignments()[variable]
    if not value:
        pytest.skip(f"{variable} is left unset in the example")
    clean_env.setenv(variable, value)

    read = getattr(Settings(), field_name)

    assert str(read) == value


@pytest.mark.parametrize(("field_name", "variable"), documented_fields())
def test_env_example_default_matches(
    clean_env: pytest.MonkeyPatch, field_name: str, variable: str
) -> None:
    value, commented = env_assignments()[variable]
    field = Settings.model_fields[field_name]
    if not commented:
        pytest.skip(f"{variable} is set to an example value, not its default")
    assert field.default_factory is None, f"{variable} has a generated default; leave it set"
    if value:
        clean_env.setenv(variable, value)

    # An empty value in the example means the variable is unset, which gives a None default.
    from_file = getattr(Settings(), field_name)

    assert from_file == field.default
