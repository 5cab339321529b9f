"""structlog set-up: JSON lines for machines, a coloured console when a person watches."""

from __future__ import annotations

import logging
import sys

import structlog


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time of the call, not at configuration.

    Test runners and embedding programs swap sys.stderr; a logger bound to the old stream
    would fail with "I/O operation on closed file" once that stream is closed.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(*, level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and the standard library root logger once per process."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.types.Processor
    if use_console:
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)

    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=_CurrentStderr())


def get_logger(name: str, **context: object) -> structlog.typing.FilteringBoundLogger:
    """A lazy logger: it reads the configuration at each call, so module-level loggers
    created before `configure_logging` still follow it."""
    return structlog.get_logger(logger_name=name, **context)
