"""The embedded PostgreSQL server (pgserver) used when no DATABASE_URL is set."""

from __future__ import annotations

import os
from pathlib import Path

from tentorium_hub.errors import StorageError


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the embedded server in `data_dir/pg` and return its URL.

    Blocking: call it through `trio.to_thread.run_sync`. The server keeps running when
    the hub is killed, and the next start on the same folder attaches to it.
    """
    # pgserver keeps its lock file in the runtime folder; without XDG_RUNTIME_DIR it
    # warns on every start, so point it at a folder we own.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(_runtime_dir()))
    import pgserver

    pg_dir = data_dir.resolve() / "pg"
    pg_dir.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(pg_dir, cleanup_mode=None)
    except Exception as exc:  # pgserver raises plain Exceptions from initdb/pg_ctl
        raise StorageError(
            f"embedded PostgreSQL failed to start in {pg_dir}: {exc}; "
            f"see {pg_dir / 'log'} or set DATABASE_URL to an existing server"
        ) from exc
    return str(server.get_uri())


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded server in `data_dir/pg` if it runs."""
    import pgserver

    pg_dir = data_dir.resolve() / "pg"
    if not (pg_dir / "PG_VERSION").exists():
        return
    server = pgserver.get_server(pg_dir, cleanup_mode="stop")
    server.cleanup()


def _runtime_dir() -> Path:
    path = Path("/tmp") / f"tentorium-hub-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path
