"""Import benchmark: the hub's CommerceML import against a bare lxml + COPY baseline.

One run generates a catalog of N products with the 1C emulator (import0_1.xml and
offers0_1.xml), then, on one PostgreSQL server and in a fresh database per repeat, measures:

- hub: `tentorium_hub.importer.import_file` for import0_1.xml, then offers0_1.xml, into one
  branch, inside trio with the storage module, as the exchange endpoint runs it;
- baseline: `lxml.etree.iterparse` over the same files extracting the same fields, and
  `copy_records_to_table` of the same rows into plain tables (no keys, no indexes).

Each measurement runs in its own child process, so its peak RSS (VmHWM) is its own. Wall
time covers the import only, not interpreter start-up or the connection.

    python -m loadtests.bench_import --products 100000

The server is an embedded PostgreSQL in a temporary folder unless BENCH_DATABASE_URL
names one; the benchmark creates and drops its own databases on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from lxml import etree

from loadtests.sampling import (
    machine_busy_s,
    mb,
    process_cpu_s,
    reset_peak_rss,
    run_in_work_dir,
    status_kb,
)

DEFAULT_PRODUCTS = 100_000
DEFAULT_REPEATS = 3
DEFAULT_TIMEOUT_S = 3_600.0
# Same batch size as tentorium_hub.importer.BATCH_ITEMS, so both sides make as many COPYs.
BATCH_ROWS = 5_000
RATIO_GOAL = 2.0
PEAK_RSS_GOAL_MB = 300.0

BRANCH = "bench"
TEMPLATE = "bench_import_template"
BRANCH_TZ = ZoneInfo("Europe/Moscow")
CATALOG_FILES = ("import0_1.xml", "offers0_1.xml")
CHILD_URL_VARIABLE = "BENCH_CHILD_DATABASE_URL"
REPO_ROOT = Path(__file__).resolve().parents[1]

# Merge steps of tentorium_hub.storage.catalog timed one by one in every hub run.
MERGE_STEPS = (
    "_merge_simple",
    "_merge_products",
    "_deactivate_missing",
    "_merge_offers",
    "_merge_prices",
    "_merge_stock",
    "clear_stage",
)


# --------------------------------------------------------------------------------------
# Database server and databases


@contextlib.contextmanager
def bench_server(work_dir: Path) -> Iterator[str]:
    """Yield the URL of BENCH_DATABASE_URL, or of an embedded server stopped at the end."""
    from tentorium_hub.storage import start_embedded, stop_embedded

    configured_url = os.environ.get("BENCH_DATABASE_URL")
    if configured_url:
        yield configured_url
        return
    url = start_embedded(work_dir)
    try:
        yield url
    finally:
        stop_embedded(work_dir)


def run_trio(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    import trio

    return trio.run(fn, *args)


async def recreate_database(server_url: str, name: str, template: str | None = None) -> str:
    """Drop and create database `name` (from `template`); return its URL."""
    from tentorium_hub.storage import open_database
    from tentorium_hub.storage.admin import create_database, drop_database, with_database

    async with open_database(server_url, max_size=1) as admin:
        await admin.run(drop_database, name)
        await admin.run(create_database, name, template)
    return with_database(server_url, name)


async def drop_bench_database(server_url: str, name: str) -> None:
    from tentorium_hub.storage import open_database
    from tentorium_hub.storage.admin import drop_database

    async with open_database(server_url, max_size=1) as admin:
        await admin.run(drop_database, name)


async def prepare_template(server_url: str) -> None:
    """Create a migrated database holding the benchmark branch, cloned for every repeat."""
    from tentorium_hub.branches import new_branch
    from tentorium_hub.storage import apply_migrations, open_database
    from tentorium_hub.storage.branches import insert_branch

    url = await recreate_database(server_url, TEMPLATE)
    branch = new_branch(
        code=BRANCH,
        name="Import benchmark",
        kind="commerceml",
        exchange_login="bench",
        exchange_password="bench-password",
    )
    async with open_database(url, max_size=1) as db:
        await db.run(apply_migrations)
        await db.run(insert_branch, branch)


# --------------------------------------------------------------------------------------
# Hub side (child process)


@dataclass
class PhaseTimer:
    """Wall seconds spent inside wrapped functions, keyed by name."""

    seconds: dict[str, float] = field(default_factory=dict)

    def wrap_async(self, name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self._add(name, time.perf_counter() - started)

        return timed

    def wrap_sync(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add(name, time.perf_counter() - started)

        return timed

    def _add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


def instrument_hub(timer: PhaseTimer) -> None:
    """Time the COPY, the merge and each merge step by wrapping module attributes.

    The importer looks these functions up on their modules at call time, so the wrappers
    see every call. `_Batcher.next_batch` is private; when it is renamed, the worker-thread
    phase is simply not reported.
    """
    from tentorium_hub import importer
    from tentorium_hub.storage import catalog as catalog_db

    catalog_db.stage_rows = timer.wrap_async("copy_stage", catalog_db.stage_rows)
    catalog_db.merge_import = timer.wrap_async("merge_transaction", catalog_db.merge_import)
    for name in MERGE_STEPS:
        if hasattr(catalog_db, name):
            setattr(catalog_db, name, timer.wrap_async(f"merge.{name}", getattr(catalog_db, name)))
    batcher = getattr(importer, "_Batcher", None)
    if batcher is not None and hasattr(batcher, "next_batch"):
        batcher.next_batch = timer.wrap_sync("parse_and_rows_thread", batcher.next_batch)


async def import_one_file(
    db: Any, path: Path, size_bytes: int, session_id: uuid.UUID
) -> dict[str, int]:
    """Import one file the way ExchangeService._run_job does: job row, clear, import, finish."""
    from tentorium_hub.importer import import_file
    from tentorium_hub.storage import catalog as catalog_db
    from tentorium_hub.storage import exchange as exchange_db

    job_id, _ = await db.run(
        exchange_db.start_import_job, BRANCH, session_id, path.name, "bench", size_bytes
    )
    await db.run(catalog_db.clear_stage, job_id)
    result = await import_file(db, branch=BRANCH, path=path, job_id=job_id, tz=BRANCH_TZ)
    await db.run(exchange_db.finish_import_job, job_id, "success", result.summary_ru(), {})
    return dict(result.counts)


async def hub_import(url: str, files: list[tuple[Path, int]]) -> dict[str, Any]:
    from tentorium_hub.settings import Settings
    from tentorium_hub.storage import catalog as catalog_db
    from tentorium_hub.storage import open_database

    settings = Settings(database_url=url)
    timer = PhaseTimer()
    instrument_hub(timer)
    async with open_database(
        url, min_size=settings.db_pool_min_size, max_size=settings.db_pool_max_size
    ) as db:
        rss_before_kb = status_kb("VmRSS")
        peak_reset = reset_peak_rss()
        cpu_before = process_cpu_s()
        started = time.perf_counter()
        session_id = uuid.uuid4()
        counts = {
            path.name: await import_one_file(db, path, size, session_id) for path, size in files
        }
        wall_s = time.perf_counter() - started
        cpu_s = process_cpu_s() - cpu_before
        peak_kb = status_kb("VmHWM")
        stored = await db.run(catalog_db.catalog_counts, BRANCH)
    return {
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "rss_before_mb": mb(rss_before_kb),
        "peak_rss_mb": mb(peak_kb),
        "import_peak_over_before_mb": mb(peak_kb - rss_before_kb),
        "peak_reset": peak_reset,
        "phases_s": timer.seconds,
        "counts": counts,
        "stored": stored,
    }


def measure_hub(url: str, catalog_dir: Path) -> dict[str, Any]:
    from tentorium_hub.logs import configure_logging

    configure_logging(level="info", fmt="json")
    files = [(catalog_dir / name, (catalog_dir / name).stat().st_size) for name in CATALOG_FILES]
    result: dict[str, Any] = run_trio(hub_import, url, files)
    return result


# --------------------------------------------------------------------------------------
# Baseline side (child process): bare lxml and COPY, no hub code

BASELINE_TABLES = {
    "groups": "external_id text, name text, parent_id text, deleted boolean",
    "price_types": "external_id text, name text, currency text",
    "warehouses": "external_id text, name text",
    "products": (
        "external_id text, sku text, name text, group_id text, unit text, description text,"
        " barcode text, deleted boolean, properties jsonb, pictures jsonb"
    ),
    "offers": (
        "external_id text, product_id text, characteristic_id text, name text,"
        " characteristics jsonb, stock_total numeric, deleted boolean"
    ),
    "prices": "offer_id text, price_type_id text, amount numeric(18, 2), currency text",
    "stock": "offer_id text, warehouse_id text, quantity numeric",
}
RECORD_TAGS = ("Группа", "ТипЦены", "Склад", "Товар", "Предложение")


def baseline_table(kind: str) -> str:
    return f"baseline_{kind}"


class BaselineReader:
    """The minimum a CommerceML importer must do: read the fields the hub stores."""

    def __init__(self, namespace: str) -> None:
        self._ns = f"{{{namespace}}}" if namespace else ""

    def q(self, name: str) -> str:
        return self._ns + name

    def text(self, elem: etree._Element, name: str) -> str | None:
        value = elem.findtext(self._ns + name)
        return None if value is None else value.strip()

    def rows(self, elem: etree._Element) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """Rows (table kind, values) of a completed record element; none for others."""
        name = elem.tag.rpartition("}")[2]
        parent = elem.getparent()
        parent_name = "" if parent is None else parent.tag.rpartition("}")[2]
        if name == "Предложение":
            yield from self.offer_rows(elem)
        elif name == "Товар" and parent_name == "Товары":
            yield "products", self.product_row(elem)
        elif name == "Группа":
            yield "groups", self.group_row(elem)
        elif name == "ТипЦены":
            row = (self.id(elem), self.text(elem, "Наименование"), self.text(elem, "Валюта"))
            yield "price_types", row
        elif name == "Склад" and parent_name == "Склады":
            yield "warehouses", (self.id(elem), self.text(elem, "Наименование"))

    def id(self, elem: etree._Element) -> str:
        return (elem.findtext(self._ns + "Ид") or "").strip().lower()

    def deleted(self, elem: etree._Element) -> bool:
        flag = self.text(elem, "ПометкаУдаления")
        return elem.get("Статус") == "Удален" or flag == "true"

    def group_row(self, elem: etree._Element) -> tuple[Any, ...]:
        owner = elem.getparent().getparent()
        parent_id = self.id(owner) if owner.tag == self.q("Группа") else None
        return (self.id(elem), self.text(elem, "Наименование"), parent_id, self.deleted(elem))

    def product_row(self, elem: etree._Element) -> tuple[Any, ...]:
        properties = {
            (entry.findtext(self.q("Ид")) or "").strip().lower(): self.text(entry, "Значение")
            for entry in elem.iterfind(f"{self.q('ЗначенияСвойств')}/{self.q('ЗначенияСвойства')}")
        }
        pictures = [(p.text or "").strip() for p in elem.iterfind(self.q("Картинка"))]
        group = elem.findtext(f"{self.q('Группы')}/{self.q('Ид')}")
        return (
            self.id(elem),
            self.text(elem, "Артикул"),
            self.text(elem, "Наименование"),
            None if group is None else group.strip().lower(),
            self.text(elem, "БазоваяЕдиница"),
            self.text(elem, "Описание"),
            self.text(elem, "Штрихкод"),
            self.deleted(elem),
            json.dumps(properties, ensure_ascii=False),
            json.dumps(pictures, ensure_ascii=False),
        )

    def offer_rows(self, elem: etree._Element) -> Iterator[tuple[str, tuple[Any, ...]]]:
        offer_id = self.id(elem)
        product_id, _, characteristic_id = offer_id.partition("#")
        characteristics = {
            self.text(entry, "Наименование"): self.text(entry, "Значение")
            for entry in elem.iterfind(
                f"{self.q('ХарактеристикиТовара')}/{self.q('ХарактеристикаТовара')}"
            )
        }
        total = self.text(elem, "Количество")
        yield (
            "offers",
            (
                offer_id,
                product_id,
                characteristic_id or None,
                self.text(elem, "Наименование"),
                json.dumps(characteristics, ensure_ascii=False),
                None if total is None else Decimal(total.replace(",", ".")),
                self.deleted(elem),
            ),
        )
        for price in elem.iterfind(f"{self.q('Цены')}/{self.q('Цена')}"):
            amount = (self.text(price, "ЦенаЗаЕдиницу") or "").replace(",", ".")
            row = (offer_id, self.id_of(price, "ИдТипаЦены"), Decimal(amount))
            yield "prices", (*row, self.text(price, "Валюта"))
        for store in elem.iterfind(self.q("Склад")):
            quantity = Decimal((store.get("КоличествоНаСкладе") or "0").replace(",", "."))
            yield "stock", (offer_id, (store.get("ИдСклада") or "").strip().lower(), quantity)

    def id_of(self, elem: etree._Element, name: str) -> str:
        return (elem.findtext(self._ns + name) or "").strip().lower()


def document_namespace(path: Path) -> str:
    """Return the namespace URI of the root element ("" for 2.04/2.05 files without one)."""
    for _, root in etree.iterparse(str(path), events=("start",)):
        return root.tag.partition("}")[0].lstrip("{") if "}" in root.tag else ""
    return ""


def baseline_records(path: Path) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """Yield (table kind, row) for every record of `path`, freeing elements as it goes."""
    reader = BaselineReader(document_namespace(path))
    tags = [reader.q(name) for name in RECORD_TAGS]
    bulky = (reader.q("Товар"), reader.q("Предложение"))
    for _, elem in etree.iterparse(str(path), events=("end",), tag=tags, remove_comments=True):
        yield from reader.rows(elem)
        if elem.tag in bulky:
            elem.clear(keep_tail=True)
            parent = elem.getparent()
            while parent is not None and elem.getprevious() is not None:
                del parent[0]


async def create_baseline_tables(conn: asyncpg.Connection) -> None:
    for kind, columns in BASELINE_TABLES.items():
        await conn.execute(f"DROP TABLE IF EXISTS {baseline_table(kind)}")
        await conn.execute(f"CREATE TABLE {baseline_table(kind)} (branch_code text, {columns})")


async def copy_pending(
    conn: asyncpg.Connection, pending: dict[str, list[tuple[Any, ...]]], timer: PhaseTimer
) -> None:
    started = time.perf_counter()
    for kind, rows in pending.items():
        if rows:
            await conn.copy_records_to_table(baseline_table(kind), records=rows)
            rows.clear()
    timer.seconds["copy"] = timer.seconds.get("copy", 0.0) + time.perf_counter() - started


async def baseline_load(conn: asyncpg.Connection, catalog_dir: Path, timer: PhaseTimer) -> None:
    pending: dict[str, list[tuple[Any, ...]]] = {kind: [] for kind in BASELINE_TABLES}
    waiting = 0
    for name in CATALOG_FILES:
        for kind, row in baseline_records(catalog_dir / name):
            pending[kind].append((BRANCH, *row))
            waiting += 1
            if waiting >= BATCH_ROWS:
                await copy_pending(conn, pending, timer)
                waiting = 0
    await copy_pending(conn, pending, timer)


async def baseline_import(url: str, catalog_dir: Path) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        await create_baseline_tables(conn)
        timer = PhaseTimer()
        rss_before_kb = status_kb("VmRSS")
        peak_reset = reset_peak_rss()
        cpu_before = process_cpu_s()
        started = time.perf_counter()
        await baseline_load(conn, catalog_dir, timer)
        wall_s = time.perf_counter() - started
        cpu_s = process_cpu_s() - cpu_before
        peak_kb = status_kb("VmHWM")
        stored = {
            kind: int(await conn.fetchval(f"SELECT count(*) FROM {baseline_table(kind)}"))
            for kind in BASELINE_TABLES
        }
    finally:
        await conn.close()
    timer.seconds["parse_and_rows"] = wall_s - timer.seconds.get("copy", 0.0)
    return {
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "rss_before_mb": mb(rss_before_kb),
        "peak_rss_mb": mb(peak_kb),
        "import_peak_over_before_mb": mb(peak_kb - rss_before_kb),
        "peak_reset": peak_reset,
        "phases_s": timer.seconds,
        "stored": stored,
    }


def measure_baseline(url: str, catalog_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = asyncio.run(baseline_import(url, catalog_dir))
    return result


# --------------------------------------------------------------------------------------
# Profile (child process): the CPU side of the hub import, without the database


def hub_batches(catalog_dir: Path) -> int:
    """Run the importer's worker-thread side (parse, rows, JSON) over both files; return rows."""
    from connectors.commerceml.parser import iter_document
    from tentorium_hub.importer import ImportResult, _Batcher

    rows = 0
    for name in CATALOG_FILES:
        with (catalog_dir / name).open("rb") as source:
            items = iter_document(source, tz=BRANCH_TZ, filename=name)
            batcher = _Batcher(items, 1, ImportResult())
            while (batch := batcher.next_batch()) is not None:
                rows += len(batch)
    return rows


def hub_parse_only(catalog_dir: Path) -> int:
    from connectors.commerceml.parser import iter_document

    return sum(1 for name in CATALOG_FILES for _ in iter_document(catalog_dir / name, tz=BRANCH_TZ))


def baseline_parse_only(catalog_dir: Path) -> int:
    return sum(1 for name in CATALOG_FILES for _ in baseline_records(catalog_dir / name))


def timed(fn: Callable[[Path], int], catalog_dir: Path) -> dict[str, float]:
    started = time.perf_counter()
    count = fn(catalog_dir)
    return {"seconds": time.perf_counter() - started, "records": count}


def profile_top(catalog_dir: Path, out_dir: Path, tool: str) -> str:
    """Profile `hub_batches`; write the full output under `out_dir`, return its head."""
    if tool == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
        hub_batches(catalog_dir)
        profiler.stop()
        text = profiler.output_text(unicode=True, color=False, show_all=False)
        (out_dir / "profile_pyinstrument.txt").write_text(text)
        return "\n".join(text.splitlines()[:80])
    profile = cProfile.Profile()
    profile.runcall(hub_batches, catalog_dir)
    profile.dump_stats(out_dir / "profile.pstats")
    buffer = io.StringIO()
    pstats.Stats(profile, stream=buffer).sort_stats("tottime").print_stats(30)
    return buffer.getvalue()


def measure_profile(catalog_dir: Path, out_dir: Path, tool: str) -> dict[str, Any]:
    return {
        "hub_parse_only": timed(hub_parse_only, catalog_dir),
        "hub_parse_rows_json": timed(hub_batches, catalog_dir),
        "baseline_parse_rows": timed(baseline_parse_only, catalog_dir),
        "profile_tool": tool,
        "profile_head": profile_top(catalog_dir, out_dir, tool),
    }


# --------------------------------------------------------------------------------------
# Driver


class BenchTimeout(Exception):
    """The run's time budget (--timeout-s) ran out."""


def run_child(kind: str, url: str, catalog_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one measurement in a child process and return the JSON it prints last."""
    remaining = args.deadline - time.monotonic()
    if remaining <= 0:
        raise BenchTimeout(f"time budget of {args.timeout_s} s ran out before the {kind} run")

    command = [sys.executable, "-m", "loadtests.bench_import", "--measure", kind]
    command += ["--catalog-dir", str(catalog_dir), "--work-dir", str(args.work_dir)]
    command += ["--profile", args.profile]

    env = {**os.environ, CHILD_URL_VARIABLE: url}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    log_path = args.work_dir / f"{kind}-{time.strftime('%H%M%S')}.log"
    busy_before, started = machine_busy_s(), time.monotonic()
    with log_path.open("wb") as log_file:
        try:
            done = subprocess.run(
                command,
                env=env,
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=log_file,
                timeout=remaining,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchTimeout(f"the {kind} run did not finish within {remaining:.0f} s") from exc
    if done.returncode != 0:
        raise RuntimeError(
            f"the {kind} run failed with exit code {done.returncode}; see {log_path}"
        )
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    # Busy cores over the child's life, its own work included: well above 1.0 means other
    # processes competed for the machine's cores during the measurement.
    busy = (machine_busy_s() - busy_before) / (time.monotonic() - started)
    result["machine_busy_cores"] = round(busy, 2)
    return result


def spread(values: list[float]) -> dict[str, float]:
    """Median, minimum, maximum, and (max - min) as a percentage of the median."""
    median = statistics.median(values)
    return {
        "median": round(median, 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "spread_pct": round(100 * (max(values) - min(values)) / median, 1) if median else 0.0,
    }


def run_repeat(
    index: int, server_url: str, catalog_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Run one repeat in a fresh database: hub and baseline, alternating which goes first."""
    name = f"bench_import_run{index}" if index >= 0 else f"bench_import_warmup{-index}"
    url = run_trio(recreate_database, server_url, name, TEMPLATE)
    order = ("hub", "baseline") if index % 2 == 0 else ("baseline", "hub")
    try:
        results = {kind: run_child(kind, url, catalog_dir, args) for kind in order}
    finally:
        run_trio(drop_bench_database, server_url, name)
    hub, base = results["hub"], results["baseline"]
    label = f"repeat {index + 1}" if index >= 0 else f"warm-up {-index} (not counted)"
    print(
        f"{label}: hub {hub['wall_s']:.1f} s, peak {hub['peak_rss_mb']} MB; "
        f"baseline {base['wall_s']:.1f} s, peak {base['peak_rss_mb']} MB; "
        f"ratio {hub['wall_s'] / base['wall_s']:.2f}",
        flush=True,
    )
    return results


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    hub = [run["hub"] for run in runs]
    base = [run["baseline"] for run in runs]
    ratios = [h["wall_s"] / b["wall_s"] for h, b in zip(hub, base, strict=True)]
    hub_time = spread([h["wall_s"] for h in hub])
    base_time = spread([b["wall_s"] for b in base])
    hub_peak = spread([h["peak_rss_mb"] for h in hub])
    ratio = hub_time["median"] / base_time["median"]
    return {
        "hub_wall_s": hub_time,
        "baseline_wall_s": base_time,
        "ratio_of_medians": round(ratio, 2),
        "ratio_per_repeat": spread(ratios),
        "hub_peak_rss_mb": hub_peak,
        "hub_import_peak_over_before_mb": spread([h["import_peak_over_before_mb"] for h in hub]),
        "baseline_peak_rss_mb": spread([b["peak_rss_mb"] for b in base]),
        "hub_cpu_s": spread([h["cpu_s"] for h in hub]),
        "baseline_cpu_s": spread([b["cpu_s"] for b in base]),
        "ratio_goal_met": ratio <= RATIO_GOAL,
        "memory_goal_met": hub_peak["max"] < PEAK_RSS_GOAL_MB,
    }


def generate(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    from connectors.emulator.catalog import write_catalog

    catalog_dir = args.work_dir / "catalog"
    started = time.perf_counter()
    paths = write_catalog(catalog_dir, products=args.products, seed=args.seed)
    info = {
        "products": args.products,
        "seed": args.seed,
        "generate_s": round(time.perf_counter() - started, 1),
        "file_mb": {path.name: mb(path.stat().st_size / 1024) for path in paths},
    }
    print(f"catalog: {info}", flush=True)
    return catalog_dir, info


def server_version(server_url: str) -> str:
    async def read() -> str:
        conn = await asyncpg.connect(server_url)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return asyncio.run(read())


def source_revision() -> str | None:
    """Return the commit under test, with "+changes" when the work tree differs from it."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+changes" if changes else "")


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    catalog_dir, catalog = generate(args)
    report: dict[str, Any] = {
        "catalog": catalog,
        "python": sys.version.split()[0],
        "revision": source_revision(),
    }
    with bench_server(args.work_dir) as server_url:
        report["postgresql"] = server_version(server_url)
        run_trio(prepare_template, server_url)
        try:
            report["warmup_runs"] = [
                run_repeat(-1 - i, server_url, catalog_dir, args) for i in range(args.warmup)
            ]
            runs = [run_repeat(i, server_url, catalog_dir, args) for i in range(args.repeats)]
            if args.profile != "none":
                report["profile"] = run_child("profile", server_url, catalog_dir, args)
        finally:
            run_trio(drop_bench_database, server_url, TEMPLATE)
    report["runs"] = runs
    report["summary"] = summarize(runs)
    return report


def print_summary(report: dict[str, Any]) -> None:
    summary = report["summary"]
    print(json.dumps(summary, indent=2))
    print(
        f"hub/baseline (medians): {summary['ratio_of_medians']} (goal <= {RATIO_GOAL}: "
        f"{'met' if summary['ratio_goal_met'] else 'missed'}); hub peak RSS max "
        f"{summary['hub_peak_rss_mb']['max']} MB (goal < {PEAK_RSS_GOAL_MB}: "
        f"{'met' if summary['memory_goal_met'] else 'missed'})"
    )
    if "profile" in report:
        print(report["profile"]["profile_head"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench_import", description=__doc__.split("\n")[0]
    )

    parser.add_argument(
        "--products", type=int, default=DEFAULT_PRODUCTS, help="products in the catalog"
    )
    parser.add_argument(
        "--repeats", type=int, default=DEFAULT_REPEATS, help="measurements of each side"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="uncounted repeats first, so WAL segment creation and cold caches skew no result",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated catalog")

    parser.add_argument(
        "--profile",
        choices=("none", "cprofile", "pyinstrument"),
        default="none",
        help="after the repeats, profile the hub's parse and staging rows (no database)",
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="time budget of the whole run, seconds",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="folder for the catalog, logs and results (default: a new temporary one)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder (catalog files included)"
    )
    parser.add_argument("--json", type=Path, help="also write the full results to this file")

    # Set by the driver for its child processes only.
    parser.add_argument("--measure", choices=("hub", "baseline", "profile"), help=argparse.SUPPRESS)
    parser.add_argument("--catalog-dir", type=Path, help=argparse.SUPPRESS)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.products < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--products and --repeats must be at least 1, --warmup at least 0")
    return args


def child_main(args: argparse.Namespace) -> None:
    url = os.environ[CHILD_URL_VARIABLE]
    if args.measure == "hub":
        result = measure_hub(url, args.catalog_dir)
    elif args.measure == "baseline":
        result = measure_baseline(url, args.catalog_dir)
    else:
        result = measure_profile(args.catalog_dir, args.work_dir, args.profile)
    print(json.dumps(result, default=str))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.measure:
        child_main(args)
        return
    args.deadline = time.monotonic() + args.timeout_s
    run_in_work_dir(args, "bench-import-", run_benchmark, print_summary)


if __name__ == "__main__":
    main()
