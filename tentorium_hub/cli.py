"""`tentorium-hub` command line: run, demo, migrate, branches, tokens, import-commerceml."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pydantic
import trio

from tentorium_hub import __version__
from tentorium_hub.branches import change_branch, new_branch
from tentorium_hub.domain.secrets import hash_token, new_token
from tentorium_hub.errors import ConflictError, HubError
from tentorium_hub.exchange import ExchangeService
from tentorium_hub.logs import configure_logging
from tentorium_hub.node import open_storage, run_node
from tentorium_hub.settings import Settings
from tentorium_hub.storage import branches as branches_db
from tentorium_hub.storage import stop_embedded
from tentorium_hub.storage import tokens as tokens_db

TOKEN_SCOPES = ("shop", "admin")
DATA_DIR_HELP = "folder of the embedded database and uploads (default ./var; env HUB_DATA_DIR)"

# Every subcommand also takes --data-dir after its name (`demo --data-dir X`).
_COMMON = argparse.ArgumentParser(add_help=False)
_COMMON.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=DATA_DIR_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tentorium-hub",
        description="Integration hub between branch 1C bases, the shop, the app and the CMS.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", parents=[_COMMON], help="run a hub node (actors, HTTP API, 1C exchange)"
    )
    run.add_argument("--host", help="HTTP bind address (default 127.0.0.1; env HUB_HTTP_HOST)")
    run.add_argument(
        "--port", type=int, help="HTTP port (default 8080; 0 picks a free one; env HUB_HTTP_PORT)"
    )

    sub.add_parser("migrate", parents=[_COMMON], help="apply database migrations and exit")
    sub.add_parser(
        "stop-database",
        parents=[_COMMON],
        help="stop the embedded PostgreSQL of the data folder (it outlives hub commands)",
    )

    _add_demo_parser(sub)
    _add_branch_parsers(sub)

    tokens = sub.add_parser("tokens", parents=[_COMMON], help="API tokens").add_subparsers(
        dest="action", required=True
    )
    create = tokens.add_parser("create", parents=[_COMMON], help="create a token and print it once")
    create.add_argument("--name", required=True, help="who uses the token, e.g. shop-backend")
    create.add_argument(
        "--scope",
        action="append",
        choices=TOKEN_SCOPES,
        help="shop (catalog and orders) or admin (everything); repeatable",
    )
    tokens.add_parser("list", parents=[_COMMON], help="list tokens (never their values)")

    imp = sub.add_parser(
        "import-commerceml",
        parents=[_COMMON],
        help="import CommerceML files into a branch, through the same code path as the 1C exchange",
    )
    imp.add_argument("--branch", required=True, help="branch code")
    imp.add_argument("files", nargs="+", type=Path, help="XML or zip files, in import order")
    return parser


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo", parents=[_COMMON], help="run the hub with emulated 1C branches end to end"
    )
    demo.add_argument("--branches", type=int, default=4, help="emulated branches (default 4)")
    demo.add_argument("--orders", type=int, default=100, help="orders to place (default 100)")
    demo.add_argument(
        "--commerceml-dir",
        type=Path,
        help="import every CommerceML file of this folder (default: a generated catalog)",
    )
    demo.add_argument("--summary-json", type=Path, help="write the run summary as JSON here")
    demo.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait for every order to come back confirmed (default 600)",
    )


def _add_branch_parsers(sub: argparse._SubParsersAction) -> None:
    branches = sub.add_parser("branches", parents=[_COMMON], help="manage branches").add_subparsers(
        dest="action", required=True
    )
    add = branches.add_parser("add", parents=[_COMMON], help="add a branch")
    add.add_argument("--code", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--kind", required=True, choices=("commerceml", "odata"))
    add.add_argument(
        "--time-zone",
        default="Europe/Moscow",
        help="IANA zone of the branch's 1C server (default Europe/Moscow)",
    )
    add.add_argument("--currency", default="RUB")
    add.add_argument("--login", help="CommerceML: the login 1C sends")
    add.add_argument(
        "--password-env",
        help="CommerceML: read the password from this variable (asked interactively when omitted)",
    )
    add.add_argument(
        "--no-zip",
        action="store_true",
        help="CommerceML: reply zip=no to 1C (uploads arrive unpacked)",
    )
    add.add_argument("--file-limit-bytes", type=int, default=4 * 1024 * 1024)
    add.add_argument("--price-type", help="name or Ид of the selling price type")
    add.add_argument("--old-price-type", help="name or Ид of the strikethrough price type")
    add.add_argument(
        "--keep-missing",
        action="store_true",
        help="do not hide goods that a full catalog snapshot leaves out",
    )
    _add_export_arguments(add, defaults=True)
    add.add_argument("--odata-url", help="OData: .../odata/standard.odata/")
    add.add_argument("--odata-user")
    add.add_argument("--odata-password-env", help="OData: read the password from this variable")
    branches.add_parser("list", parents=[_COMMON], help="list branches with their health")
    for action, text in (
        ("pause", "stop exchanging with a branch (orders stay queued)"),
        ("resume", "resume a paused branch"),
        ("resync", "poll an OData branch fully now"),
    ):
        control = branches.add_parser(action, parents=[_COMMON], help=text)
        control.add_argument("--code", required=True)
    remove = branches.add_parser(
        "remove", parents=[_COMMON], help="deactivate a branch (orders and history stay)"
    )
    remove.add_argument("--code", required=True)
    update = branches.add_parser(
        "update",
        parents=[_COMMON],
        help="change a branch's order export profile; options left out stay as they are",
    )
    update.add_argument("--code", required=True)
    _add_export_arguments(update, defaults=False)


def _add_export_arguments(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """Add the options of the order export profile; `update` gives no defaults."""

    def default(value: str) -> str | None:
        return value if defaults else None

    parser.add_argument(
        "--export-version",
        default=default("2.05"),
        help="CommerceML version of the order documents 1C receives (default 2.05)",
    )
    parser.add_argument(
        "--export-encoding",
        default=default("utf-8"),
        choices=("utf-8", "windows-1251"),
        help="encoding of the order documents 1C receives (default utf-8)",
    )
    parser.add_argument(
        "--export-style",
        choices=("requisites", "elements"),
        help="order flags as requisites only, or also as elements (2.09+); "
        "default: elements for 2.09, 2.10 and 3.1",
    )
    parser.add_argument(
        "--export-delivery",
        default=default("line"),
        choices=("line", "requisite"),
        help="delivery as a service line or as the requisite Стоимость доставки (default line)",
    )
    parser.add_argument(
        "--export-delivery-id",
        default=default("ORDER_DELIVERY"),
        help="Ид of the delivery line, e.g. the 1C service item's Ид (default ORDER_DELIVERY)",
    )
    parser.add_argument(
        "--export-discounts",
        default=default("lines"),
        choices=("lines", "document"),
        help="discounts on each line or on the whole document (default lines)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if getattr(args, "host", None):
        overrides["http_host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["http_port"] = args.port
    return Settings(**overrides)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except pydantic.ValidationError as exc:
        for detail in exc.errors():
            name = "HUB_" + "_".join(str(part) for part in detail["loc"]).upper()
            name = "DATABASE_URL" if name == "HUB_DATABASE_URL" else name
            value = detail.get("input")
            print(f"error: {name}={value!r} is invalid: {detail['msg']}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    try:
        return trio.run(_dispatch, args, settings)
    except (HubError, BaseExceptionGroup) as exc:
        error = _hub_error(exc)
        if error is None:
            raise
        print(f"error: {_with_option_names(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# Branch fields that validation messages name, and the options a CLI user typed for them.
_OPTION_NAMES = {
    "export_schema_version": "--export-version",
    "export_encoding": "--export-encoding",
    "export_style": "--export-style",
    "export_delivery_id": "--export-delivery-id",
    "export_delivery": "--export-delivery",
    "export_discounts": "--export-discounts",
    "exchange_login": "--login",
    "exchange_password": "--password-env",
    "odata_url": "--odata-url",
}


def _with_option_names(message: str) -> str:
    """Replace the branch field names in `message` with the CLI options that set them."""
    # The table lists a longer name before a name that it starts with.
    for field, option in _OPTION_NAMES.items():
        message = message.replace(field, option)
    return message


def _hub_error(exc: BaseException) -> HubError | None:
    """Return the HubError inside `exc`, unwrapping the groups trio nurseries raise."""
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _hub_error(inner)
            if found is not None:
                return found
    return None


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "run":
        await run_node(settings)
        return 0
    if args.command == "demo":
        from tentorium_hub.demo import DemoOptions, run_demo

        options = DemoOptions(
            branches=args.branches,
            orders=args.orders,
            commerceml_dir=args.commerceml_dir,
            summary_json=args.summary_json,
            timeout_s=args.timeout,
        )
        return await run_demo(settings, options)
    if args.command == "stop-database":
        stopped = await trio.to_thread.run_sync(stop_embedded, settings.data_dir)
        print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
        return 0
    async with open_storage(settings) as db:
        if args.command == "migrate":
            print("database schema is up to date")
            return 0
        if args.command == "branches":
            return await _branches(db, args)
        if args.command == "tokens":
            return await _tokens(db, args)
        if args.command == "import-commerceml":
            return await _import(db, settings, args)
    return 2


async def _branches(db, args: argparse.Namespace) -> int:
    if args.action == "list":
        for row in await db.run(branches_db.branch_health):
            last = row["last_success_at"].isoformat() if row["last_success_at"] else "never"
            print(
                f"{row['code']:<12} {row['kind']:<11} {row['time_zone']:<22} "
                f"last_success={last} failures={row['consecutive_failures']} "
                f"pending={row['pending_outbox']}{' PAUSED' if row['paused'] else ''}"
            )
        return 0
    if args.action in ("pause", "resume"):
        await db.run(branches_db.set_paused, args.code, args.action == "pause")
        print(f"branch {args.code} {'paused' if args.action == 'pause' else 'resumed'}")
        return 0
    if args.action == "resync":
        await db.run(branches_db.request_resync, args.code)
        print(f"branch {args.code}: full resync requested; its node polls it within seconds")
        return 0
    if args.action == "remove":
        await db.run(branches_db.deactivate_branch, args.code)
        print(f"branch {args.code} deactivated")
        return 0
    if args.action == "update":
        return await _update_branch(db, args)
    password = None
    if args.kind == "commerceml":
        password = _secret(args.password_env, f"exchange password for {args.login}: ")
    odata_password = (
        _secret(args.odata_password_env, "OData password: ") if args.kind == "odata" else None
    )
    branch = new_branch(
        code=args.code,
        name=args.name,
        kind=args.kind,
        time_zone=args.time_zone,
        currency=args.currency,
        exchange_login=args.login,
        exchange_password=password,
        zip_enabled=not args.no_zip,
        file_limit_bytes=args.file_limit_bytes,
        price_type=args.price_type,
        old_price_type=args.old_price_type,
        deactivate_missing=not args.keep_missing,
        export_schema_version=args.export_version,
        export_encoding=args.export_encoding,
        export_style=args.export_style,
        export_delivery=args.export_delivery,
        export_delivery_id=args.export_delivery_id,
        export_discounts=args.export_discounts,
        odata_url=args.odata_url,
        odata_username=args.odata_user,
        odata_password=odata_password,
    )
    try:
        await db.transaction(branches_db.insert_branch, branch)
    except ConflictError:
        raise HubError(
            f"branch {branch.code!r} or exchange login {branch.exchange_login!r} already "
            "exists; choose another code or login (a removed branch keeps its code)"
        ) from None
    print(f"branch {branch.code} added ({branch.kind})")
    return 0


async def _update_branch(db, args: argparse.Namespace) -> int:
    options = {
        "export_schema_version": args.export_version,
        "export_encoding": args.export_encoding,
        "export_style": args.export_style,
        "export_delivery": args.export_delivery,
        "export_delivery_id": args.export_delivery_id,
        "export_discounts": args.export_discounts,
    }
    changes = {name: value for name, value in options.items() if value is not None}
    if not changes:
        raise HubError("nothing to change; give at least one --export-... option")

    branch = await change_branch(db, args.code, changes)
    print(
        f"branch {branch.code}: export {branch.export_schema_version} {branch.export_encoding}, "
        f"style={branch.export_style} delivery={branch.export_delivery} "
        f"({branch.export_delivery_id}) discounts={branch.export_discounts}; "
        "its node restarts the branch to use it"
    )
    return 0


def _secret(env_name: str | None, prompt: str) -> str:
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise HubError(
                f"environment variable {env_name} is empty or unset; export the secret there"
            )
        return value
    return getpass.getpass(prompt)


async def _tokens(db, args: argparse.Namespace) -> int:
    if args.action == "list":
        for row in await db.run(tokens_db.list_tokens):
            state = "revoked" if row["revoked_at"] else "active"
            print(f"{row['id']:>4} {row['name']:<24} {','.join(row['scopes']):<12} {state}")
        return 0
    token = new_token()
    scopes = sorted(set(args.scope or ["shop"]))
    await db.run(tokens_db.insert_token, args.name, hash_token(token), scopes)
    print(token)
    print(f"# token for {args.name!r} with scopes {scopes}; it is shown only once", file=sys.stderr)
    return 0


async def _import(db, settings: Settings, args: argparse.Namespace) -> int:
    service = ExchangeService(db, settings, node_id=settings.node_id)
    failed = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        for path in args.files:
            if not path.is_file():
                print(f"{path}: file not found", file=sys.stderr)
                failed += 1
                continue
            status, message = await import_local_file(service, args.branch, path)
            print(f"{path.name}: {status}: {message}")
            failed += status != "success"
        nursery.cancel_scope.cancel()
    return 1 if failed else 0


async def import_local_file(service: ExchangeService, branch: str, path: Path) -> tuple[str, str]:
    """Feed one local file through the exchange steps 1C would use: file, then import."""
    session = await service.open_local_session(branch, "catalog")
    reply = await service.receive_file(session, path.name, _read_chunks(path), "ru")
    if reply.status != "success":
        return reply.status, " ".join(reply.lines)
    names = [path.name]
    if path.suffix.lower() == ".zip":
        names = await trio.to_thread.run_sync(_xml_names_in_zip, path)
    message = ""
    for name in names:
        while True:
            reply = await service.import_step(session, name, "ru")
            if reply.status != "progress":
                break
        message = " ".join(reply.lines)
        if reply.status != "success":
            return reply.status, f"{name}: {message}"
    return "success", message


async def _read_chunks(path: Path) -> AsyncIterator[bytes]:
    async with await trio.open_file(path, "rb") as handle:
        while chunk := await handle.read(1 << 20):
            yield chunk


def _xml_names_in_zip(path: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.lower().endswith(".xml")]
    # Classifier and goods before offers, as 1C sends them.
    return sorted(names, key=lambda n: (not n.lower().startswith("import"), n))
