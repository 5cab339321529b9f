"""PostgreSQL storage: the only package that talks to the database.

Query functions live in the submodules (`orders`, `catalog`, `branches`, ...) as asyncio
coroutines taking an asyncpg connection; callers run them through `Database.run` or
`Database.transaction`.
"""

from tentorium_hub.storage.database import Database, open_database, redact_url
from tentorium_hub.storage.embedded import start_embedded, stop_embedded
from tentorium_hub.storage.migrate import apply_migrations

__all__ = [
    "Database",
    "apply_migrations",
    "open_database",
    "redact_url",
    "start_embedded",
    "stop_embedded",
]
