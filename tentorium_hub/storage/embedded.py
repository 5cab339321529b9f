"""The embedded PostgreSQL server (pgserver) used when no DATABASE_URL is set."""

from __future__ import annotations

import os
import signal
import time
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


def stop_embedded(data_dir: Path, *, timeout_s: float = 30.0) -> bool:
    """Stop the embedded server in `data_dir/pg` if it runs; return whether it was running.

    Sends SIGINT, PostgreSQL's "fast shutdown" (roll back open transactions, checkpoint,
    exit), to the postmaster named in postmaster.pid, then waits for it to exit.
    """
    pid_file = data_dir.resolve() / "pg" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    raise StorageError(f"embedded PostgreSQL (pid {pid}) did not stop within {timeout_s} s")


def _runtime_dir() -> Path:
    path = Path("/tmp") / f"tentorium-hub-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path
