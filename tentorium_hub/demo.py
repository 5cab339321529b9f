"""`tentorium-hub demo`: the hub end to end with emulated 1C branches on loopback.

It starts the database (embedded unless DATABASE_URL is set), a hub node, OData branch
emulators and CommerceML 1C clients. It exchanges a catalog through `/1c/exchange`, places
orders through the HTTP API and waits until every order is confirmed by its 1C. Then it
prints and writes a summary. The exit code is non-zero when an order was lost or duplicated.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import trio

from connectors.commerceml.archive import safe_extract_zip
from connectors.emulator.catalog import write_catalog
from connectors.emulator.commerceml_client import CommerceMLEmulator, EmulatorError, FileResult
from connectors.emulator.odata_server import ODataBranchEmulator
from tentorium_hub.branches import new_branch
from tentorium_hub.domain.secrets import hash_token, new_token
from tentorium_hub.logs import configure_logging
from tentorium_hub.node import NodeContext, run_node, shutdown
from tentorium_hub.settings import Settings
from tentorium_hub.storage import branches as branches_db
from tentorium_hub.storage import catalog as catalog_db
from tentorium_hub.storage import tokens as tokens_db

TIME_ZONES = (
    "Europe/Moscow",
    "Asia/Yekaterinburg",
    "Asia/Novosibirsk",
    "Europe/Kaliningrad",
    "Asia/Vladivostok",
    "Asia/Almaty",
    "Europe/Samara",
    "Asia/Krasnoyarsk",
)
EXCHANGE_PASSWORD = "demo-exchange-secret"
ODATA_USER = "hub"
ODATA_PASSWORD = "demo-odata-secret"
CONFIRMED = ("confirmed", "paid", "shipped")
FIRST_NAMES = ("Анна", "Ирина", "Ольга", "Сергей", "Дмитрий", "Наталья", "Елена", "Алексей")
LAST_NAMES = ("Иванова", "Петров", "Смирнова", "Кузнецов", "Попова", "Соколов", "Лебедева")


@dataclass
class DemoOptions:
    branches: int = 4
    orders: int = 100
    commerceml_dir: Path | None = None
    summary_json: Path | None = None
    timeout_s: float = 600.0


@dataclass
class DemoBranch:
    code: str
    kind: str
    time_zone: str
    odata: ODataBranchEmulator | None = None
    client: CommerceMLEmulator | None = None
    files: list[FileResult] = field(default_factory=list)
    offers: list[str] = field(default_factory=list)
    placed: list[str] = field(default_factory=list)


@dataclass
class DemoRun:
    options: DemoOptions
    branches: list[DemoBranch] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    placed: dict[str, str] = field(default_factory=dict)  # order number -> branch
    counts: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


def _progress(text: str) -> None:
    if sys.stderr.isatty():
        print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)
    else:
        print(text, file=sys.stderr, flush=True)


async def run_demo(settings: Settings, options: DemoOptions) -> int:
    """Run the demo; return the process exit code."""
    if options.branches < 1 or options.orders < 0:
        print("error: --branches must be at least 1 and --orders not negative", file=sys.stderr)
        return 2
    configure_logging(level="warning", fmt="console" if sys.stderr.isatty() else "json")
    demo_settings = settings.model_copy(
        update={
            "http_port": 0,
            "poll_interval_s": 3.0,
            "retry_base_s": 0.2,
            "retry_max_s": 5.0,
            "lease_renew_interval_s": 1.0,
            "exchange_step_s": 1.0,
        }
    )
    run = DemoRun(options)
    with tempfile.TemporaryDirectory(prefix="hub-demo-") as scratch:
        files = _catalog_files(options.commerceml_dir, Path(scratch))
        async with trio.open_nursery() as nursery:
            await _start_odata_emulators(run, nursery)
            ctx: NodeContext = await nursery.start(
                lambda task_status: run_node(demo_settings, task_status=task_status)
            )
            await _drive(ctx, run, files)
            await shutdown(ctx, nursery.cancel_scope)
            nursery.cancel_scope.cancel()
    summary = _summary(run, run.counts)
    _print_summary(run, summary)
    if options.summary_json:
        options.summary_json.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    ok = (
        summary["orders_delivered"] == summary["orders_placed"]
        and summary["orders_duplicated"] == 0
        and not summary["errors"]
    )
    return 0 if ok else 1


def _catalog_files(directory: Path | None, scratch: Path) -> list[Path]:
    """List the files every CommerceML branch exchanges, classifier and goods first."""
    if directory is None:
        return write_catalog(scratch / "generated", products=300, seed=7)
    if not directory.is_dir():
        raise SystemExit(f"error: --commerceml-dir {directory} is not a folder")
    found: list[Path] = []
    for path in sorted(directory.rglob("*")):
        if path.suffix.lower() == ".xml":
            found.append(path)
        elif path.suffix.lower() == ".zip":
            target = scratch / "unzipped" / path.stem
            target.mkdir(parents=True)
            safe_extract_zip(path, target, max_total_bytes=1 << 30, max_ratio=200)
            found.extend(sorted(target.rglob("*.xml")))
    return sorted(found, key=_exchange_order)


def _exchange_order(path: Path) -> tuple[str, int, str]:
    name = path.name.lower()
    rank = next(
        (
            i
            for i, p in enumerate(
                ("import", "group", "products", "offers", "prices", "rests", "remainders")
            )
            if name.startswith(p)
        ),
        9,
    )
    return str(path.parent), rank, name


async def _start_odata_emulators(run: DemoRun, nursery: trio.Nursery) -> None:
    for index in range(run.options.branches):
        kind = "commerceml" if index % 2 == 0 else "odata"
        # Sample files and the generated catalog come from different 1C bases, so each
        # gets its own branches; a re-run of the same kind reuses them.
        prefix = "SMPL" if run.options.commerceml_dir is not None else "DEMO"
        code = f"{prefix}-{'CML' if kind == 'commerceml' else 'OD'}-{index + 1:02d}"
        branch = DemoBranch(code, kind, TIME_ZONES[index % len(TIME_ZONES)])
        if kind == "odata":
            branch.odata = ODataBranchEmulator(
                branch_code=code,
                tz=ZoneInfo(branch.time_zone),
                username=ODATA_USER,
                password=ODATA_PASSWORD,
                products=40,
                seed=index,
            )
            await nursery.start(branch.odata.serve)
        run.branches.append(branch)


async def _drive(ctx: NodeContext, run: DemoRun, files: list[Path]) -> None:
    token = new_token()
    await ctx.db.run(tokens_db.insert_token, f"demo-{ctx.node_id}", hash_token(token), ["admin"])
    for branch in run.branches:
        # Files from unrelated 1C bases share one branch here, so a full snapshot of one
        # must not hide the goods of another.
        record = _branch_record(branch, mixed_sources=run.options.commerceml_dir is not None)
        await ctx.db.run(branches_db.upsert_branch, record)
    if ctx.leases is not None:
        await ctx.leases.sync()
    base = f"http://127.0.0.1:{ctx.http_port}"
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as api:
        await _exchange_catalogs(run, base, files)
        await _wait_for_offers(ctx, run, api)
        await _place_orders(run, api)
        await _wait_for_confirmation(ctx, run, base)
    run.counts = await ctx.db.run(_final_counts, [b.code for b in run.branches], list(run.placed))


async def _final_counts(conn: Any, branches: list[str], numbers: list[str]) -> dict[str, int]:
    counts = {"products": 0, "offers": 0}
    for code in branches:
        for key, value in (await catalog_db.catalog_counts(conn, code)).items():
            counts[key] += value
    counts["statuses"] = int(
        await conn.fetchval(
            """SELECT count(DISTINCT o.id) FROM orders o JOIN order_status_history h
               ON h.order_id = o.id AND h.source = '1c'
            WHERE o.number = ANY($1::text[])""",
            numbers,
        )
    )
    return counts


def _branch_record(branch: DemoBranch, mixed_sources: bool) -> Any:
    if branch.kind == "odata":
        assert branch.odata is not None
        return new_branch(
            code=branch.code,
            name=f"Демо-филиал {branch.code}",
            kind="odata",
            time_zone=branch.time_zone,
            odata_url=branch.odata.base_url,
            odata_username=ODATA_USER,
            odata_password=ODATA_PASSWORD,
        )
    return new_branch(
        code=branch.code,
        name=f"Демо-филиал {branch.code}",
        kind="commerceml",
        time_zone=branch.time_zone,
        exchange_login=branch.code.lower(),
        exchange_password=EXCHANGE_PASSWORD,
        file_limit_bytes=256 * 1024,
        deactivate_missing=not mixed_sources,
    )


async def _exchange_catalogs(run: DemoRun, base: str, files: list[Path]) -> None:
    for branch in run.branches:
        if branch.kind != "commerceml":
            continue
        http = httpx.AsyncClient(timeout=120)
        branch.client = CommerceMLEmulator(
            base_url=f"{base}/1c/exchange",
            login=branch.code.lower(),
            password=EXCHANGE_PASSWORD,
            http=http,
            tz=ZoneInfo(branch.time_zone),
        )
        _progress(f"[{branch.code}] catalog exchange: {len(files)} files")
        try:
            branch.files = await branch.client.exchange_catalog(files)
        except EmulatorError as exc:
            run.errors.append(f"{branch.code}: catalog exchange failed: {exc}")
            continue
        for result in branch.files:
            if result.status != "success":
                run.errors.append(f"{branch.code}: {result.filename}: {result.message}")
        done = sum(r.status == "success" for r in branch.files)
        _progress(f"[{branch.code}] catalog exchange: {done}/{len(files)} files imported")
        if sys.stderr.isatty():
            print(file=sys.stderr)


async def _wait_for_offers(ctx: NodeContext, run: DemoRun, api: httpx.AsyncClient) -> None:
    """Collect priced offers per branch; OData branches fill theirs on the first poll."""
    for branch in run.branches:
        deadline = trio.current_time() + 60
        while not branch.offers and trio.current_time() < deadline:
            branch.offers = await _priced_offers(api, branch.code)
            if not branch.offers:
                await trio.sleep(0.5)
        if not branch.offers:
            run.errors.append(f"{branch.code}: no priced offers after the catalog exchange")


async def _priced_offers(api: httpx.AsyncClient, code: str) -> list[str]:
    offers: list[str] = []
    after = 0
    while True:
        page = (
            await api.get("/api/v1/products", params={"branch": code, "after": after, "limit": 500})
        ).json()
        for item in page.get("items", []):
            offers += [v["offer_id"] for v in item["variants"] if v["price"] is not None]
        if not page.get("next_after"):
            return offers
        after = page["next_after"]


async def _place_orders(run: DemoRun, api: httpx.AsyncClient) -> None:
    targets = [b for b in run.branches if b.offers]
    if not targets:
        return
    rng = random.Random(42)
    limiter = trio.CapacityLimiter(8)
    placed = 0

    async def place(index: int) -> None:
        nonlocal placed
        branch = targets[index % len(targets)]
        body = _order_body(branch, rng, index)
        async with limiter:
            response = await api.post(
                "/api/v1/orders",
                json=body,
                headers={"Idempotency-Key": f"demo-{time.time_ns()}-{index}"},
            )
        if response.status_code != 201:
            run.errors.append(f"order {index}: HTTP {response.status_code}: {response.text[:200]}")
            return
        number = response.json()["number"]
        branch.placed.append(number)
        run.placed[number] = branch.code
        placed += 1
        if placed % 25 == 0 or placed == run.options.orders:
            _progress(f"orders placed: {placed}/{run.options.orders}")

    async with trio.open_nursery() as nursery:
        for index in range(run.options.orders):
            nursery.start_soon(place, index)
    if sys.stderr.isatty():
        print(file=sys.stderr)


def _order_body(branch: DemoBranch, rng: random.Random, index: int) -> dict[str, Any]:
    lines = [
        {"offer_id": rng.choice(branch.offers), "quantity": rng.randint(1, 3)}
        for _ in range(rng.randint(1, 3))
    ]
    if index % 10 == 0:
        lines.append({"offer_id": lines[0]["offer_id"], "quantity": 1, "gift": True})
    name = f"{rng.choice(LAST_NAMES)} {rng.choice(FIRST_NAMES)}"
    return {
        "branch": branch.code,
        "customer": {
            "id": f"D{rng.randint(100000, 999999)}",
            "name": name,
            "phone": "+7 900 000-00-00",
            "email": "distributor@example.invalid",
        },
        "lines": lines,
        "delivery_cost": "250.00" if index % 3 == 0 else "0",
        "comment": "Демонстрационный заказ",
    }


async def _wait_for_confirmation(ctx: NodeContext, run: DemoRun, base: str) -> None:
    """Run the CommerceML sale exchanges until every order is confirmed, or time out."""
    deadline = trio.current_time() + run.options.timeout_s
    numbers = list(run.placed)
    confirmed, last_printed = 0, -1
    while trio.current_time() < deadline:
        for branch in run.branches:
            if branch.client is not None and branch.placed:
                try:
                    await branch.client.exchange_sale()
                except EmulatorError as exc:
                    run.errors.append(f"{branch.code}: sale exchange failed: {exc}")
                    return
        confirmed = await ctx.db.run(_count_confirmed, numbers)
        if confirmed != last_printed:
            _progress(f"orders confirmed by 1C: {confirmed}/{len(numbers)}")
            last_printed = confirmed
        if confirmed >= len(numbers):
            break
        await trio.sleep(0.5)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if confirmed < len(numbers):
        run.errors.append(
            f"timed out after {run.options.timeout_s:.0f} s: "
            f"{len(numbers) - confirmed} of {len(numbers)} orders not confirmed by 1C"
        )


async def _count_confirmed(conn: Any, numbers: list[str]) -> int:
    return int(
        await conn.fetchval(
            """SELECT count(*) FROM orders
                WHERE number = ANY($1::text[]) AND status = ANY($2::text[])""",
            numbers,
            list(CONFIRMED),
        )
    )


def _summary(run: DemoRun, counts: dict[str, Any]) -> dict[str, Any]:
    delivered = 0
    duplicated = 0
    per_branch = []
    for branch in run.branches:
        placed = set(branch.placed)
        if branch.client is not None:
            # The parser normalises 1C ids to lower case, hub numbers are upper case.
            received = {site_id.lower() for site_id in branch.client.received}
            got = {n for n in placed if n.lower() in received}
            dups = branch.client.duplicates
        else:
            assert branch.odata is not None
            creations: Counter[str] = branch.odata.creations
            got = {n for n in placed if creations.get(n, 0) >= 1}
            dups = sum(max(0, creations.get(n, 0) - 1) for n in placed)
        delivered += len(got)
        duplicated += dups
        per_branch.append(
            {
                "code": branch.code,
                "kind": branch.kind,
                "time_zone": branch.time_zone,
                "orders_placed": len(placed),
                "orders_delivered": len(got),
                "orders_duplicated": dups,
                "files": [
                    {
                        "file": r.filename,
                        "status": r.status,
                        "message": r.message,
                        "seconds": round(r.seconds, 3),
                    }
                    for r in branch.files
                ],
            }
        )
    files_ok = sum(r.status == "success" for b in run.branches for r in b.files)
    return {
        "branches": len(run.branches),
        "files_imported": files_ok,
        "products": counts.get("products", 0),
        "offers": counts.get("offers", 0),
        "orders_placed": len(run.placed),
        "orders_delivered": delivered,
        "orders_duplicated": duplicated,
        "statuses_received": counts.get("statuses", 0),
        "errors": run.errors,
        "seconds": round(time.monotonic() - run.started, 1),
        "per_branch": per_branch,
    }


def _print_summary(run: DemoRun, summary: dict[str, Any]) -> None:
    print()
    print(f"{'branch':<14}{'kind':<12}{'time zone':<20}{'placed':>8}{'delivered':>11}{'dups':>6}")
    for b in summary["per_branch"]:
        print(
            f"{b['code']:<14}{b['kind']:<12}{b['time_zone']:<20}{b['orders_placed']:>8}"
            f"{b['orders_delivered']:>11}{b['orders_duplicated']:>6}"
        )
    files = [f for b in summary["per_branch"] for f in b["files"]]
    if files:
        print()
        print(f"{'file':<60}{'result':<10}seconds")
        first = next(b for b in summary["per_branch"] if b["files"])
        for f in first["files"]:
            print(f"{f['file'][:58]:<60}{f['status']:<10}{f['seconds']}")
    print()
    for key in (
        "branches",
        "files_imported",
        "products",
        "offers",
        "orders_placed",
        "orders_delivered",
        "orders_duplicated",
        "statuses_received",
        "seconds",
    ):
        print(f"{key:<20}{summary[key]}")
    for error in summary["errors"]:
        print(f"error: {error}")
