"""Latency benchmark: order confirmation time on healthy OData branches, with and without faults.

One hub node (`tentorium_hub.node.run_node`, poll interval 60 s, HTTP on a free port) serves
12 OData branches and 1 CommerceML branch. The OData branches' 1C bases are
`ODataBranchEmulator`s served in this process, on the node's own trio loop. That costs the
node some CPU, which is acceptable here because this benchmark measures latency, not CPU.

- Phase A, no faults: N orders go round-robin to 2 OData branches through the HTTP API,
  one every `--order-interval-s`.
- Phase B, faults: 10 of the 12 OData emulators are down (HTTP 503) with orders queued for
  them, and a CommerceML catalog of `--catalog-products` products is uploaded through
  `/1c/exchange` by `CommerceMLEmulator` in a child process. The child keeps the archive
  building off the node's loop. Meanwhile the same N orders go to the 2 healthy branches.

For each order the benchmark records the time from the API's 201 reply to the moment the
order's status in the database is "confirmed". It reads the status with one query every
`--poll-ms` milliseconds, so each latency is rounded up by at most that interval. The goal
is a p95 latency in phase B within 2 times that of phase A.

    python -m loadtests.bench_latency --orders 60 --catalog-products 50000

The server is an embedded PostgreSQL in a temporary folder unless BENCH_DATABASE_URL
names one. The benchmark creates and drops its own database `bench_latency` on it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import trio

from loadtests.bench_import import (
    bench_server,
    drop_bench_database,
    machine_busy_s,
    process_cpu_s,
    recreate_database,
    server_version,
    source_revision,
)

DATABASE = "bench_latency"
ODATA_BRANCHES = 12
HEALTHY_BRANCHES = 2
ORDERS_PER_DOWN_BRANCH = 2
CML_CODE = "CML01"
CML_PASSWORD = "exchange-secret-1"
BRANCH_TZ = "Europe/Moscow"
EMULATOR_PRODUCTS = 20
P95_RATIO_GOAL = 2.0
CATALOG_IMPORT_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------------------
# CommerceML child process


async def exchange_catalog(base_url: str, login: str, catalog_dir: Path) -> dict[str, Any]:
    import httpx

    from connectors.emulator.commerceml_client import CommerceMLEmulator

    files = [catalog_dir / "import0_1.xml", catalog_dir / "offers0_1.xml"]
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=300) as http:
        emulator = CommerceMLEmulator(
            base_url=base_url, login=login, password=CML_PASSWORD, http=http
        )
        results = await emulator.exchange_catalog(files)
    return {
        "exchange_s": round(time.perf_counter() - started, 2),
        "files": [
            {"status": r.status, "seconds": round(r.seconds, 2), "message": r.message[:500]}
            for r in results
        ],
    }


def exchange_main(argv: list[str]) -> None:
    """Entry point of the child process that plays the CommerceML branch's 1C."""
    parser = argparse.ArgumentParser(prog="bench_latency exchange-catalog")
    parser.add_argument("--url", required=True, help="the hub's /1c/exchange URL")
    parser.add_argument("--login", required=True, help="the branch's exchange login")
    parser.add_argument("--dir", type=Path, required=True, help="folder of the catalog files")
    args = parser.parse_args(argv)
    print(json.dumps(trio.run(exchange_catalog, args.url, args.login, args.dir)))


# --------------------------------------------------------------------------------------
# Node set-up


@dataclass
class Bench:
    """The running node, its API client and the OData emulators."""

    ctx: Any
    api: Any
    emulators: list[Any]
    offers: dict[str, str] = field(default_factory=dict)


async def start_emulators(nursery: trio.Nursery) -> list[Any]:
    from connectors.emulator.odata_server import ODataBranchEmulator

    emulators = []
    for index in range(ODATA_BRANCHES):
        emulator = ODataBranchEmulator(
            branch_code=f"OD{index:02d}", tz=ZoneInfo(BRANCH_TZ), products=EMULATOR_PRODUCTS
        )
        await nursery.start(emulator.serve)
        emulators.append(emulator)
    return emulators


async def insert_branches(ctx: Any, emulators: list[Any]) -> None:
    from actors.messages import Wake
    from tentorium_hub.branches import new_branch
    from tentorium_hub.storage import branches as branches_db

    branches = [
        new_branch(
            code=emulator.branch_code,
            name=f"Latency benchmark branch {emulator.branch_code}",
            kind="odata",
            time_zone=BRANCH_TZ,
            odata_url=emulator.base_url,
            odata_username="hub",
            odata_password="secret",
        )
        for emulator in emulators
    ]
    branches.append(
        new_branch(
            code=CML_CODE,
            name="Latency benchmark CommerceML branch",
            kind="commerceml",
            time_zone=BRANCH_TZ,
            exchange_login=CML_CODE.lower(),
            exchange_password=CML_PASSWORD,
        )
    )
    for branch in branches:
        await ctx.db.transaction(branches_db.insert_branch, branch)
    ctx.registry.tell_nowait("leases", Wake())


async def admin_token(ctx: Any) -> str:
    from tentorium_hub.domain.secrets import hash_token, new_token
    from tentorium_hub.storage import tokens as tokens_db

    token = new_token()
    await ctx.db.run(tokens_db.insert_token, "bench", hash_token(token), ["admin"])
    return str(token)


async def priced_offer(api: Any, branch: str) -> str | None:
    page = (await api.get("/api/v1/products", params={"branch": branch})).json()
    for product in page.get("items", []):
        for variant in product["variants"]:
            if variant["price"] is not None:
                return str(variant["offer_id"])
    return None


async def wait_for_catalogs(bench: Bench, timeout_s: float) -> float:
    """Wait until every OData branch's first poll imported a priced offer, and return seconds.

    Each actor spreads its first poll over the poll interval by branch code, so this wait
    takes up to 60 s.
    """
    started = trio.current_time()
    with trio.fail_after(timeout_s):
        for emulator in bench.emulators:
            code = emulator.branch_code
            # The catalog lives in PostgreSQL, so there is no event to wait for.
            while (offer := await priced_offer(bench.api, code)) is None:  # noqa: ASYNC110
                await trio.sleep(0.2)
            bench.offers[code] = offer
    return round(trio.current_time() - started, 1)


# --------------------------------------------------------------------------------------
# Orders and their latency


async def place_order(bench: Bench, branch: str) -> str:
    body = {
        "branch": branch,
        "customer": {"id": "D100200", "name": "Иванова Анна"},
        "lines": [{"offer_id": bench.offers[branch], "quantity": 1}],
    }
    headers = {"Idempotency-Key": f"latency-{uuid.uuid4()}"}
    response = await bench.api.post("/api/v1/orders", json=body, headers=headers)
    if response.status_code != 201:
        raise RuntimeError(
            f"order for {branch} failed: HTTP {response.status_code} {response.text}"
        )
    return str(response.json()["number"])


@dataclass
class OrderClock:
    """When each order got its 201 reply and when its status was first seen "confirmed"."""

    created: dict[str, float] = field(default_factory=dict)
    confirmed: dict[str, float] = field(default_factory=dict)
    other: dict[str, str] = field(default_factory=dict)
    placed_all: trio.Event = field(default_factory=trio.Event)

    def outstanding(self) -> list[str]:
        done = self.confirmed.keys() | self.other.keys()
        return [number for number in self.created if number not in done]


async def place_orders(bench: Bench, clock: OrderClock, count: int, interval_s: float) -> None:
    healthy = [emulator.branch_code for emulator in bench.emulators[:HEALTHY_BRANCHES]]
    next_at = trio.current_time()
    for index in range(count):
        await trio.sleep_until(next_at)
        next_at += interval_s
        number = await place_order(bench, healthy[index % len(healthy)])
        clock.created[number] = trio.current_time()
    clock.placed_all.set()


async def fetch_statuses(conn: Any, numbers: list[str]) -> list[Any]:
    return list(
        await conn.fetch("SELECT number, status FROM orders WHERE number = ANY($1)", numbers)
    )


async def watch_orders(bench: Bench, clock: OrderClock, poll_s: float) -> None:
    """Read the status of every open order each `poll_s` until all are settled."""
    while not (clock.placed_all.is_set() and not clock.outstanding()):
        numbers = clock.outstanding()
        if numbers:
            rows = await bench.ctx.db.run(fetch_statuses, numbers)
            seen_at = trio.current_time()
            for row in rows:
                if row["status"] == "confirmed":
                    clock.confirmed[row["number"]] = seen_at
                elif row["status"] not in ("accepted", "delivered"):
                    clock.other[row["number"]] = row["status"]
        await trio.sleep(poll_s)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `share` of values at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def summarize_latency(
    clock: OrderClock, window: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Summarize latency in ms, of all orders or of those created inside `window` (trio clock)."""
    numbers = [
        number
        for number, created in clock.created.items()
        if window is None or window[0] <= created <= window[1]
    ]
    latencies = [
        (clock.confirmed[n] - clock.created[n]) * 1000 for n in numbers if n in clock.confirmed
    ]
    summary: dict[str, Any] = {
        "orders": len(numbers),
        "confirmed": len(latencies),
        "other_status": {n: clock.other[n] for n in numbers if n in clock.other},
    }
    if latencies:
        summary["ms"] = {
            "median": round(statistics.median(latencies), 1),
            "p95": round(percentile(latencies, 0.95), 1),
            "max": round(max(latencies), 1),
            "min": round(min(latencies), 1),
        }
    return summary


async def measure_orders(bench: Bench, args: argparse.Namespace) -> OrderClock:
    """Place `args.orders` orders and wait for them, within the phase's time limit."""
    clock = OrderClock()
    with trio.move_on_after(args.phase_timeout_s):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_orders, bench, clock, args.poll_ms / 1000)
            await place_orders(bench, clock, args.orders, args.order_interval_s)
    return clock


# --------------------------------------------------------------------------------------
# Phases


@dataclass
class Usage:
    """CPU of this process (node, emulators and driver) and of the machine over a phase."""

    cpu_s: float = field(default_factory=process_cpu_s)
    busy_s: float = field(default_factory=machine_busy_s)
    wall: float = field(default_factory=time.monotonic)

    def since(self) -> dict[str, float]:
        wall = time.monotonic() - self.wall
        return {
            "wall_s": round(wall, 1),
            "process_cpu_pct_of_one_core": round((process_cpu_s() - self.cpu_s) / wall * 100, 1),
            "machine_busy_pct_of_one_core": round((machine_busy_s() - self.busy_s) / wall * 100, 1),
        }


async def phase_a(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    usage = Usage()
    clock = await measure_orders(bench, args)
    return {"latency": summarize_latency(clock), "usage": usage.since()}


async def queue_orders_for_down_branches(bench: Bench) -> int:
    for emulator in bench.emulators[HEALTHY_BRANCHES:]:
        emulator.faults.down = True
    placed = 0
    for emulator in bench.emulators[HEALTHY_BRANCHES:]:
        for _ in range(ORDERS_PER_DOWN_BRANCH):
            await place_order(bench, emulator.branch_code)
            placed += 1
    return placed


@dataclass
class Exchange:
    """The CommerceML child's run: trio-clock start and end, and its JSON report."""

    started: float = 0.0
    ended: float | None = None
    report: dict[str, Any] = field(default_factory=dict)


async def run_exchange(bench: Bench, args: argparse.Namespace, exchange: Exchange) -> None:
    command = [
        sys.executable,
        "-m",
        "loadtests.bench_latency",
        "exchange-catalog",
        "--url",
        f"http://127.0.0.1:{bench.ctx.http_port}/1c/exchange",
        "--login",
        CML_CODE.lower(),
        "--dir",
        str(args.work_dir / "catalog"),
    ]
    exchange.started = trio.current_time()
    result = await trio.run_process(command, capture_stdout=True, check=False)
    exchange.ended = trio.current_time()
    exchange.report = {"returncode": result.returncode}
    if result.returncode == 0:
        exchange.report.update(json.loads(result.stdout.decode().strip().splitlines()[-1]))


async def phase_b(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    queued = await queue_orders_for_down_branches(bench)
    usage = Usage()
    exchange = Exchange()
    with trio.move_on_after(max(args.phase_timeout_s, args.exchange_timeout_s)):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_exchange, bench, args, exchange)
            clock = await measure_orders(bench, args)
    ended = exchange.ended if exchange.ended is not None else trio.current_time()
    return {
        "orders_queued_for_down_branches": queued,
        "latency": summarize_latency(clock),
        "latency_during_exchange": summarize_latency(clock, (exchange.started, ended)),
        "exchange": {**exchange.report, "finished": exchange.ended is not None},
        "usage": usage.since(),
    }


async def imported_products(ctx: Any) -> int:
    return int(
        await ctx.db.run(
            lambda conn: conn.fetchval(
                "SELECT count(*) FROM products WHERE branch_code = $1", CML_CODE
            )
        )
    )


# --------------------------------------------------------------------------------------
# Driver


def hub_settings(url: str, args: argparse.Namespace) -> Any:
    from tentorium_hub.settings import Settings

    return Settings(
        database_url=url,
        data_dir=args.work_dir / "data",
        http_port=0,
        poll_interval_s=60.0,
        log_format="json",
        log_level=args.log_level,
    )


async def run_phases(url: str, args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from tentorium_hub.node import run_node

    settings = hub_settings(url, args)
    async with trio.open_nursery() as nursery:
        ctx = await nursery.start(
            lambda task_status: run_node(settings, handle_signals=False, task_status=task_status)
        )
        emulators = await start_emulators(nursery)
        await insert_branches(ctx, emulators)
        headers = {"Authorization": f"Bearer {await admin_token(ctx)}"}
        origin = f"http://127.0.0.1:{ctx.http_port}"
        async with httpx.AsyncClient(base_url=origin, headers=headers, timeout=30) as api:
            bench = Bench(ctx=ctx, api=api, emulators=emulators)
            report: dict[str, Any] = {
                "first_catalogs_s": await wait_for_catalogs(bench, CATALOG_IMPORT_TIMEOUT_S)
            }
            report["phase_a"] = await phase_a(bench, args)
            # Printed at once, so a phase B that hits its time limit still leaves phase A.
            print("phase A:", json.dumps(report["phase_a"]), flush=True)
            report["phase_b"] = await phase_b(bench, args)
            report["phase_b"]["products_imported"] = await imported_products(ctx)
        nursery.cancel_scope.cancel()
    return report


def generate_catalog(args: argparse.Namespace) -> dict[str, Any]:
    from connectors.emulator.catalog import write_catalog

    started = time.perf_counter()
    paths = write_catalog(args.work_dir / "catalog", products=args.catalog_products)
    return {
        "products": args.catalog_products,
        "generate_s": round(time.perf_counter() - started, 1),
        "file_mb": {p.name: round(p.stat().st_size / 1e6, 1) for p in paths},
    }


def p95_ratio(report: dict[str, Any]) -> float | None:
    try:
        p95_a = report["phase_a"]["latency"]["ms"]["p95"]
        p95_b = report["phase_b"]["latency"]["ms"]["p95"]
    except KeyError:
        return None
    return round(p95_b / p95_a, 2) if p95_a else None


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from tentorium_hub.logs import configure_logging

    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "revision": source_revision(),
        "orders_per_phase": args.orders,
        "order_interval_s": args.order_interval_s,
        "status_poll_ms": args.poll_ms,
    }
    report["catalog"] = generate_catalog(args)
    with bench_server(args.work_dir) as server_url:
        report["postgresql"] = server_version(server_url)
        url = trio.run(recreate_database, server_url, DATABASE)
        try:
            # The hub's loggers write to whatever sys.stderr is at each call, so the
            # redirect covers the whole run, not only the configuration.
            log_path = args.work_dir / "hub.log"
            with log_path.open("w") as log_file, contextlib.redirect_stderr(log_file):
                configure_logging(level=args.log_level, fmt="json")
                report.update(trio.run(run_phases, url, args))
        finally:
            trio.run(drop_bench_database, server_url, DATABASE)
    report["p95_ratio_b_over_a"] = p95_ratio(report)
    return report


def print_summary(report: dict[str, Any]) -> None:
    print(json.dumps(report, indent=2, default=str))
    ratio = report["p95_ratio_b_over_a"]
    if ratio is None:
        print("p95 ratio: not available, a phase confirmed no order")
        return
    verdict = "met" if ratio <= P95_RATIO_GOAL else "missed"
    print(f"p95 under faults / p95 without: {ratio} (goal <= {P95_RATIO_GOAL}: {verdict})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench_latency",
        description="Order confirmation latency on healthy OData branches, with and "
        "without faults.",
    )
    parser.add_argument("--orders", type=int, default=60, help="orders per phase")
    parser.add_argument(
        "--order-interval-s", type=float, default=0.25, help="seconds between two orders"
    )
    parser.add_argument(
        "--catalog-products", type=int, default=50_000, help="products in the CommerceML catalog"
    )
    parser.add_argument(
        "--poll-ms", type=float, default=5.0, help="milliseconds between status reads"
    )
    parser.add_argument(
        "--phase-timeout-s",
        type=float,
        default=120.0,
        help="time limit of each phase's orders, in seconds",
    )
    parser.add_argument(
        "--exchange-timeout-s",
        type=float,
        default=180.0,
        help="time limit of the CommerceML exchange in phase B, in seconds",
    )
    parser.add_argument("--log-level", default="warning", help="the hub's log level")
    parser.add_argument("--work-dir", type=Path, help="folder for data (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", type=Path, help="also write the report to this file")
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["exchange-catalog"]:
        exchange_main(argv[1:])
        return
    args = build_parser().parse_args(argv)
    temporary = args.work_dir is None
    args.work_dir = Path(tempfile.mkdtemp(prefix="bench-latency-")) if temporary else args.work_dir
    args.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        report = run_benchmark(args)
    finally:
        if temporary and not args.keep:
            shutil.rmtree(args.work_dir, ignore_errors=True)
    print_summary(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
