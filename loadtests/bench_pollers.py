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
    python -m loadtests.bench_pollers --branches 1100 --duration-s 120 --profile py-spy
    python -m loadtests.bench_pollers serve-emulators --count 1100 --port 0

With `--profile`, the window is also profiled: cProfile on the trio thread's CPU clock, or
py-spy sampling the threads that hold the GIL. Either slows the hub, so the CPU figures of a
profiled run are higher than those of a plain run.

The server is an embedded PostgreSQL in a temporary folder unless BENCH_DATABASE_URL
names one; the benchmark creates and drops its own database on it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
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
    recreate_database,
    server_version,
    source_revision,
)
from loadtests.sampling import (
    child_pids,
    cpu_delta,
    cpu_of,
    machine_busy_s,
    mb,
    other_process_cpu_s,
    process_cpu_split_s,
    run_in_work_dir,
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
PROFILERS = ("cprofile", "py-spy")
PY_SPY_RATE_HZ = 100
PROFILE_LINES = 30


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
    # Collections of the cyclic garbage collector, by generation, their CPU seconds and
    # the longest one in wall seconds, during which the trio loop is blocked.
    gc_collections: list[int] = field(default_factory=lambda: [0] * len(gc.get_stats()))
    gc_cpu_s: float = 0.0
    gc_max_pause_s: float = 0.0


@contextlib.contextmanager
def counting_gc(window: Window) -> Iterator[None]:
    """Count the garbage collector's runs and CPU time while the block runs."""
    started: list[tuple[float, float]] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append((time.thread_time(), time.perf_counter()))
        elif started:
            cpu_s, wall_s = started.pop()
            window.gc_cpu_s += time.thread_time() - cpu_s
            window.gc_max_pause_s = max(window.gc_max_pause_s, time.perf_counter() - wall_s)
            window.gc_collections[info["generation"]] += 1

    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)


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
    return [postmaster, *child_pids(postmaster)]


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

    hub_user_s: float
    hub_system_s: float
    machine_busy_s: float
    polls: dict[str, float]
    emulator_cpu_s: float
    postgres_cpu_s: dict[int, float]
    wall_s: float
    database_now: Any


def read_counters(emulator_pid: int, pg_pids: list[int]) -> Readings:
    user_s, system_s = process_cpu_split_s()
    return Readings(
        hub_user_s=user_s,
        hub_system_s=system_s,
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
    profile: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(probe_lag, window)
        nursery.start_soon(sample_rss, window)
        with profiled(args, profile), counting_gc(window):
            await trio.sleep(args.duration_s)
        nursery.cancel_scope.cancel()
    after = read_counters(emulator_pid, postgres_pids(args.work_dir))
    imports: dict[str, int] | None = None
    health: dict[str, int] | None = None
    if db is not None:
        imports = await db.run(import_counts, before.database_now)
        health = await db.run(health_counts)
    summary = summarize_window(args, before, after, window, imports, health)
    if profile:
        summary["profile"] = profile
    return summary


# --------------------------------------------------------------------------------------
# Profiling


@contextlib.contextmanager
def profiled(args: argparse.Namespace, result: dict[str, Any]) -> Iterator[None]:
    """Profile the hub process while the block runs, with `args.profile`; fill `result`."""
    if args.profile is None:
        yield
        return

    if args.profile == "cprofile":
        # The trio thread runs the actors, asyncpg's asyncio loop and the HTTP clients, and
        # its CPU clock leaves out the time it waits in epoll.
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        try:
            yield
        finally:
            profile.disable()
        result.update(cprofile_summary(profile, args.work_dir / "pollers.pstats"))
        return

    output = args.work_dir / "pollers-py-spy.txt"
    sampler = start_py_spy(output, args.duration_s)
    try:
        yield
    finally:
        sampler.wait(timeout=60)
    result.update(py_spy_summary(output))


def cprofile_summary(profile: cProfile.Profile, path: Path) -> dict[str, Any]:
    """Save the profile to `path`; return the top functions by own and by cumulative time."""
    profile.dump_stats(path)
    tables = {}
    for order in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(profile, stream=buffer).sort_stats(order).print_stats(PROFILE_LINES)
        tables[order] = buffer.getvalue()
    return {"tool": "cprofile", "file": str(path), **tables}


def start_py_spy(output: Path, duration_s: float) -> subprocess.Popen[bytes]:
    """Start py-spy on this process for `duration_s`, sampling only threads that hold the GIL.

    A thread in a system call (socket I/O, epoll) releases the GIL, so those samples are left
    out. What remains is close to the Python code's CPU time.
    """
    command = ["py-spy", "record", "--pid", str(os.getpid()), "--rate", str(PY_SPY_RATE_HZ)]
    command += ["--duration", str(max(1, round(duration_s))), "--gil"]
    command += ["--format", "raw", "--output", str(output)]
    log_file = output.with_suffix(".log").open("wb")
    return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)


def py_spy_summary(path: Path) -> dict[str, Any]:
    """Read py-spy's collapsed stacks; return the top frames by own and inclusive samples."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        # A frame reads "function (file:line)". Dropping the line number merges the lines.
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        total += samples
        own[frames[-1]] += samples
        inclusive.update(dict.fromkeys(frames, samples))

    def table(counter: collections.Counter[str]) -> str:
        rows = counter.most_common(PROFILE_LINES)
        return "\n".join(f"{100 * n / max(1, total):5.1f} %  {frame}" for frame, n in rows)

    return {
        "tool": "py-spy",
        "file": str(path),
        "samples": total,
        "own": table(own),
        "inclusive": table(inclusive),
    }


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
    user_s = after.hub_user_s - before.hub_user_s
    system_s = after.hub_system_s - before.hub_system_s
    return {
        "window_s": round(wall, 1),
        "hub_cpu_pct_of_one_core": round(100 * (user_s + system_s) / wall, 2),
        "hub_cpu_user_system_pct": [round(100 * user_s / wall, 2), round(100 * system_s / wall, 2)],
        "hub_cpu_ms_per_poll": round(1000 * (user_s + system_s) / max(1, polls["succeeded"]), 2),
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
        "gc": {
            "collections_by_generation": window.gc_collections,
            "cpu_pct_of_one_core": round(100 * window.gc_cpu_s / wall, 2),
            "max_pause_ms": round(1000 * window.gc_max_pause_s, 1),
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
    if "profile" in window:
        print("profiled run: the profiler's own cost is in the CPU figures")
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
    parser.add_argument(
        "--profile",
        choices=PROFILERS,
        help="also profile the hub over the window; the output goes to the work folder",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.branches < 1 or args.duration_s <= 0:
        parser.error("--branches must be at least 1 and --duration-s above 0")

    if args.profile == "py-spy" and shutil.which("py-spy") is None:
        parser.error("--profile py-spy needs the py-spy program on PATH: pip install py-spy")

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
    run_in_work_dir(args, "bench-pollers-", run_benchmark, print_summary)


if __name__ == "__main__":
    main()
