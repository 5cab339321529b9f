"""Poller benchmark: CPU and memory of one hub node that polls N OData branches.

The node is built with `tentorium_hub.node.run_node` (poll interval 60 s, HTTP on a free
port) against a fresh database that lists N OData branches. The branches' 1C bases are
OData emulators served by a separate process on one loopback socket, so the CPU measured
here is the hub's alone. After a warm-up in which every branch has polled once, the
benchmark measures over `--duration-s`:

- the hub process's CPU (user + system, all threads) as a percentage of one core;
- its RSS (sampled every few seconds) and peak RSS (VmHWM);
- the polls done (import jobs recorded) against the polls expected (N * duration / interval);
- how late the trio loop wakes a 100 ms sleeper, a sign of saturation;
- for context, the CPU of the emulator process and of the embedded PostgreSQL.

    python -m loadtests.bench_pollers --branches 1100 --duration-s 180
    python -m loadtests.bench_pollers serve-emulators --count 1100 --port 0

The server is an embedded PostgreSQL in a temporary folder unless BENCH_DATABASE_URL
names one; the benchmark creates and drops its own database on it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import trio

from loadtests.bench_import import (
    REPO_ROOT,
    bench_server,
    drop_bench_database,
    machine_busy_s,
    mb,
    other_process_cpu_s,
    process_cpu_s,
    recreate_database,
    server_version,
    source_revision,
    status_kb,
)

DEFAULT_BRANCHES = 1_100
DEFAULT_DURATION_S = 180.0
DEFAULT_POLL_INTERVAL_S = 60.0
# The emulator's own default catalog size per branch.
DEFAULT_PRODUCTS_PER_BRANCH = 20
CPU_GOAL_PCT = 10.0
RSS_GOAL_MB = 400.0

DATABASE = "bench_pollers"
ODATA_USER = "hub"
ODATA_PASSWORD = "secret"
BRANCH_TZ = "Europe/Moscow"
SAMPLE_EVERY_S = 5.0
LAG_PROBE_S = 0.1
EMULATOR_START_TIMEOUT_S = 300.0


def branch_code(index: int) -> str:
    return f"b{index:05d}"


# --------------------------------------------------------------------------------------
# Emulator process


async def serve_emulators(count: int, port: int, products: int, lifetime_s: float) -> None:
    """Serve `count` emulators on one socket; print the origin as JSON, stop after `lifetime_s`."""
    from connectors.emulator.odata_server import ODataBranchEmulator, serve_branches

    tz = ZoneInfo(BRANCH_TZ)
    emulators = [
        ODataBranchEmulator(
            branch_code=branch_code(i),
            username=ODATA_USER,
            password=ODATA_PASSWORD,
            tz=tz,
            products=products,
        )
        for i in range(count)
    ]
    with trio.move_on_after(lifetime_s):
        async with trio.open_nursery() as nursery:
            origin = await nursery.start(
                lambda task_status: serve_branches(
                    emulators, host="127.0.0.1", port=port, task_status=task_status
                )
            )
            print(json.dumps({"origin": origin, "count": count}), flush=True)


def emulators_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench_pollers serve-emulators",
        description="Serve many OData branch emulators on one loopback socket.",
    )
    parser.add_argument("--count", type=int, required=True, help="emulated branches")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free)")
    parser.add_argument(
        "--products", type=int, default=DEFAULT_PRODUCTS_PER_BRANCH, help="goods per branch"
    )
    parser.add_argument(
        "--lifetime-s", type=float, default=3_600.0, help="stop by itself after this many seconds"
    )
    args = parser.parse_args(argv)
    trio.run(serve_emulators, args.count, args.port, args.products, args.lifetime_s)


@contextlib.contextmanager
def emulator_process(args: argparse.Namespace) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start the emulator process, yield it with its origin, terminate it at the end."""
    command = [sys.executable, "-m", "loadtests.bench_pollers", "serve-emulators"]
    command += ["--count", str(args.branches), "--products", str(args.products_per_branch)]
    command += ["--lifetime-s", str(args.timeout_s)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    log_file = (args.work_dir / "emulators.log").open("wb")
    process = subprocess.Popen(
        command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log_file
    )
    try:
        origin = read_origin(process)
        yield process, origin
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def read_origin(process: subprocess.Popen[bytes]) -> str:
    """Wait for the emulator process to print its origin line."""
    assert process.stdout is not None
    deadline = time.monotonic() + EMULATOR_START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator process exited with code {process.wait()}")
        with contextlib.suppress(ValueError):
            origin: str = json.loads(line)["origin"]
            return origin
    raise TimeoutError(
        f"the emulator process printed no origin within {EMULATOR_START_TIMEOUT_S} s"
    )


# --------------------------------------------------------------------------------------
# Database set-up


async def prepare_database(server_url: str, origin: str, count: int) -> str:
    """A migrated database listing `count` OData branches served at `origin`; return its URL."""
    from tentorium_hub.branches import new_branch
    from tentorium_hub.storage import apply_migrations, open_database
    from tentorium_hub.storage.branches import insert_branch

    url = await recreate_database(server_url, DATABASE)
    branches = [
        new_branch(
            code=branch_code(i),
            name=f"Poller benchmark branch {i}",
            kind="odata",
            time_zone=BRANCH_TZ,
            odata_url=f"{origin}/{branch_code(i)}/odata/standard.odata/",
            odata_username=ODATA_USER,
            odata_password=ODATA_PASSWORD,
        )
        for i in range(count)
    ]

    async def insert_all(conn: Any) -> None:
        for branch in branches:
            await insert_branch(conn, branch)

    async with open_database(url, max_size=1) as db:
        await db.run(apply_migrations)
        await db.transaction(insert_all)
    return url


async def import_counts(conn: Any, since: Any) -> dict[str, int]:
    """Catalog imports the pollers recorded as import jobs since `since` (database time)."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE state = 'success') AS succeeded,
                  count(*) FILTER (WHERE state = 'failure') AS failed
             FROM import_jobs WHERE filename = 'odata-poll' AND started_at >= $1""",
        since,
    )
    return {key: int(row[key]) for key in ("succeeded", "failed")}


def poll_metrics() -> dict[str, float]:
    """Read the hub's poll counters and poll duration sum from its Prometheus registry."""
    from prometheus_client import REGISTRY

    def sample(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    poll = {"kind": "odata", "step": "poll"}
    return {
        "succeeded": sample("hub_exchange_results_total", {**poll, "result": "success"}),
        "failed": sample("hub_exchange_results_total", {**poll, "result": "failure"}),
        "duration_sum_s": sample("hub_exchange_duration_seconds_sum", poll),
        "duration_count": sample("hub_exchange_duration_seconds_count", poll),
    }


async def health_counts(conn: Any) -> dict[str, int]:
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE last_success_at IS NOT NULL) AS polled,
                  count(*) FILTER (WHERE consecutive_failures > 0) AS failing
             FROM branch_health"""
    )
    return {"polled": int(row["polled"]), "failing": int(row["failing"])}


async def database_now(conn: Any) -> Any:
    return await conn.fetchval("SELECT now()")


# --------------------------------------------------------------------------------------
# Measurement


@dataclass
class Window:
    """Samples taken during the measurement window."""

    rss_kb: list[int] = field(default_factory=list)
    lags_s: list[float] = field(default_factory=list)


async def probe_lag(window: Window) -> None:
    """Record how much later than requested each 100 ms sleep returns."""
    while True:
        due = trio.current_time() + LAG_PROBE_S
        await trio.sleep(LAG_PROBE_S)
        window.lags_s.append(max(0.0, trio.current_time() - due))


async def sample_rss(window: Window) -> None:
    while True:
        window.rss_kb.append(status_kb("VmRSS"))
        await trio.sleep(SAMPLE_EVERY_S)


def postgres_pids(work_dir: Path) -> list[int]:
    """Return the pids of the embedded postmaster and its children (none for BENCH_DATABASE_URL)."""
    pid_file = work_dir / "pg" / "postmaster.pid"
    if os.environ.get("BENCH_DATABASE_URL") or not pid_file.exists():
        return []
    postmaster = int(pid_file.read_text().split()[0])
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rpartition(")")[2].split()
                if int(stat[1]) == postmaster:
                    pids.append(int(entry.name))
    return pids


def cpu_of(pids: list[int]) -> dict[int, float]:
    seconds: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            seconds[pid] = other_process_cpu_s(pid)
    return seconds


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two readings, by processes alive at the second one.

    A process that started in between counts with all its CPU time. A process that exited
    in between is missed, so the result can be low when connections are replaced.
    """
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


async def wait_for_first_polls(db: Any, count: int, timeout_s: float) -> dict[str, Any]:
    """Wait until every branch has polled successfully once (or the warm-up times out)."""
    started = trio.current_time()
    health: dict[str, int] = {}
    with trio.move_on_after(timeout_s):
        while True:
            health = await db.run(health_counts)
            if health["polled"] >= count:
                break
            await trio.sleep(2.0)
    warmup_s = trio.current_time() - started
    print(f"warm-up: {health} after {warmup_s:.0f} s", flush=True)
    return {"warmup_s": round(warmup_s, 1), **health}


@dataclass
class Readings:
    """Counters read at one instant, for the differences over the window."""

    hub_cpu_s: float
    machine_busy_s: float
    polls: dict[str, float]
    emulator_cpu_s: float
    postgres_cpu_s: dict[int, float]
    wall_s: float
    database_now: Any


def read_counters(emulator_pid: int, pg_pids: list[int]) -> Readings:
    return Readings(
        hub_cpu_s=process_cpu_s(),
        machine_busy_s=machine_busy_s(),
        polls=poll_metrics(),
        emulator_cpu_s=other_process_cpu_s(emulator_pid),
        postgres_cpu_s=cpu_of(pg_pids),
        wall_s=time.monotonic(),
        database_now=None,
    )


async def measure_window(
    db: Any | None, args: argparse.Namespace, emulator_pid: int
) -> dict[str, Any]:
    """Measure CPU, RSS, loop lag and polls over `args.duration_s` (database counts need `db`)."""
    pg_pids = postgres_pids(args.work_dir)
    window = Window()
    before = read_counters(emulator_pid, pg_pids)
    if db is not None:
        before.database_now = await db.run(database_now)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(probe_lag, window)
        nursery.start_soon(sample_rss, window)
        await trio.sleep(args.duration_s)
        nursery.cancel_scope.cancel()
    after = read_counters(emulator_pid, postgres_pids(args.work_dir))
    imports: dict[str, int] | None = None
    health: dict[str, int] | None = None
    if db is not None:
        imports = await db.run(import_counts, before.database_now)
        health = await db.run(health_counts)
    return summarize_window(args, before, after, window, imports, health)


def summarize_window(
    args: argparse.Namespace,
    before: Readings,
    after: Readings,
    window: Window,
    imports: dict[str, int] | None,
    health: dict[str, int] | None,
) -> dict[str, Any]:
    wall = after.wall_s - before.wall_s
    lags = sorted(window.lags_s)
    polls = {key: after.polls[key] - before.polls[key] for key in after.polls}
    mean_poll_s = polls.pop("duration_sum_s") / max(1.0, polls.pop("duration_count"))
    return {
        "window_s": round(wall, 1),
        "hub_cpu_pct_of_one_core": round(100 * (after.hub_cpu_s - before.hub_cpu_s) / wall, 2),
        "hub_rss_mb": {
            "max": mb(max(window.rss_kb)),
            "median": mb(statistics.median(window.rss_kb)),
            "last": mb(window.rss_kb[-1]),
        },
        "hub_peak_rss_mb": mb(status_kb("VmHWM")),
        "machine_busy_pct_of_one_core": round(
            100 * (after.machine_busy_s - before.machine_busy_s) / wall, 1
        ),
        "emulator_cpu_pct": round(100 * (after.emulator_cpu_s - before.emulator_cpu_s) / wall, 2),
        "postgres_cpu_pct": round(
            100 * cpu_delta(before.postgres_cpu_s, after.postgres_cpu_s) / wall, 2
        )
        if before.postgres_cpu_s
        else None,
        "loop_lag_ms": {
            "median": round(1000 * statistics.median(lags), 2),
            "p99": round(1000 * lags[min(len(lags) - 1, int(0.99 * len(lags)))], 2),
            "max": round(1000 * lags[-1], 2),
        },
        "polls": {key: int(value) for key, value in polls.items()},
        "mean_poll_s": round(mean_poll_s, 3),
        "catalog_imports": imports,
        "polls_expected": round(args.branches * wall / args.poll_interval_s),
        "health_at_end": health,
    }


# --------------------------------------------------------------------------------------
# Driver


def hub_settings(url: str, args: argparse.Namespace) -> Any:
    from tentorium_hub.settings import Settings

    return Settings(
        database_url=url,
        data_dir=args.work_dir / "data",
        http_port=0,
        poll_interval_s=args.poll_interval_s,
        log_format="json",
        log_level=args.log_level,
    )


@dataclass
class NodeHandle:
    """The running node's context, once `run_node` reports it started."""

    ready: trio.Event = field(default_factory=trio.Event)
    ctx: Any = None


async def start_node(nursery: trio.Nursery, settings: Any, handle: NodeHandle) -> None:
    from tentorium_hub.node import run_node

    handle.ctx = await nursery.start(
        lambda task_status: run_node(settings, handle_signals=False, task_status=task_status)
    )
    handle.ready.set()


async def wait_for_start(handle: NodeHandle, timeout_s: float) -> dict[str, Any]:
    """Wait for the node to start every branch actor; a node that cannot is measured anyway."""
    started = trio.current_time()
    with trio.move_on_after(timeout_s):
        await handle.ready.wait()
    startup_s = round(trio.current_time() - started, 1)
    print(f"node start: {'done' if handle.ready.is_set() else 'not done'} after {startup_s} s")
    return {"node_start_s": startup_s, "node_started": handle.ready.is_set()}


async def run_hub(url: str, args: argparse.Namespace, emulator_pid: int) -> dict[str, Any]:
    """Start a node, wait for its start and first polls, measure the window, stop the node.

    Each phase has its own time limit. When the node has not finished starting by then, the
    warm-up is skipped and the window is measured from the node's own metrics alone.
    """
    handle = NodeHandle()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(start_node, nursery, hub_settings(url, args), handle)
        result = await wait_for_start(handle, args.startup_timeout_s)
        db = handle.ctx.db if handle.ctx is not None else None
        if db is not None:
            result["warmup"] = await wait_for_first_polls(db, args.branches, args.warmup_timeout_s)
        result["rss_after_warmup_mb"] = mb(status_kb("VmRSS"))
        result["window"] = await measure_window(db, args, emulator_pid)
        nursery.cancel_scope.cancel()
    return result


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from tentorium_hub.logs import configure_logging

    report: dict[str, Any] = {
        "branches": args.branches,
        "poll_interval_s": args.poll_interval_s,
        "products_per_branch": args.products_per_branch,
        "python": sys.version.split()[0],
        "revision": source_revision(),
    }
    with bench_server(args.work_dir) as server_url, emulator_process(args) as (process, origin):
        report["postgresql"] = server_version(server_url)
        url = trio.run(prepare_database, server_url, origin, args.branches)
        try:
            # The hub's loggers write to whatever sys.stderr is at each call, so the
            # redirect covers the whole run, not only the configuration.
            log_path = args.work_dir / "hub.log"
            with log_path.open("w") as log_file, contextlib.redirect_stderr(log_file):
                configure_logging(level=args.log_level, fmt="json")
                report.update(trio.run(run_hub, url, args, process.pid))
        finally:
            trio.run(drop_bench_database, server_url, DATABASE)
    return report


def print_summary(report: dict[str, Any]) -> None:
    window = report["window"]
    cpu = window["hub_cpu_pct_of_one_core"]
    rss = window["hub_rss_mb"]["max"]
    print(json.dumps(report, indent=2, default=str))
    print(
        f"{report['branches']} branches: hub CPU {cpu} % of one core "
        f"(goal < {CPU_GOAL_PCT}: {'met' if cpu < CPU_GOAL_PCT else 'missed'}), RSS max {rss} MB "
        f"(goal < {RSS_GOAL_MB}: {'met' if rss < RSS_GOAL_MB else 'missed'}); polls "
        f"{window['polls']['succeeded']} of {window['polls_expected']} expected"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench_pollers", description=__doc__.split("\n")[0]
    )

    parser.add_argument("--branches", type=int, default=DEFAULT_BRANCHES, help="OData branches")
    parser.add_argument(
        "--duration-s", type=float, default=DEFAULT_DURATION_S, help="measurement window, seconds"
    )
    parser.add_argument(
        "--poll-interval-s",
        type=float,
        default=DEFAULT_POLL_INTERVAL_S,
        help="poll interval of every branch, seconds",
    )
    parser.add_argument(
        "--products-per-branch",
        type=int,
        default=DEFAULT_PRODUCTS_PER_BRANCH,
        help="goods in each emulated branch",
    )

    parser.add_argument(
        "--startup-timeout-s",
        type=float,
        default=600.0,
        help="maximum wait for the node to start every branch actor, seconds",
    )
    parser.add_argument(
        "--warmup-timeout-s",
        type=float,
        default=0.0,
        help="maximum wait for every branch's first poll, seconds (0: 2 intervals + 60 s)",
    )

    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="hub log level (logs go to WORK_DIR/hub.log)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="folder for logs and the embedded server (default: a new temporary one)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.branches < 1 or args.duration_s <= 0:
        parser.error("--branches must be at least 1 and --duration-s above 0")

    args.warmup_timeout_s = args.warmup_timeout_s or 2 * args.poll_interval_s + 60
    # The emulator process stops by itself after this many seconds.
    args.timeout_s = (
        EMULATOR_START_TIMEOUT_S
        + args.startup_timeout_s
        + args.warmup_timeout_s
        + args.duration_s
        + 600
    )
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve-emulators"]:
        emulators_main(argv[1:])
        return
    args = parse_args(argv)
    created = args.work_dir is None
    args.work_dir = Path(tempfile.mkdtemp(prefix="bench-pollers-")) if created else args.work_dir
    args.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        report = run_benchmark(args)
        print_summary(report)
        if args.json is not None:
            args.json.write_text(json.dumps(report, indent=2, default=str))
            print(f"results: {args.json}")
    finally:
        if created and not args.keep:
            shutil.rmtree(args.work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
