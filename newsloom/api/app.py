"""The ASGI application of `newsloom serve`: the JSON API, the web page, health and metrics."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
import psycopg
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from psycopg_pool import PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from newsloom import db
from newsloom.api import openapi, pages
from newsloom.api.auth import PUBLIC_PATHS, Keys, session_secret
from newsloom.api.context import TEMPLATES, ServerContext, context_of
from newsloom.api.cursors import Cursors
from newsloom.api.errors import ApiError
from newsloom.api.queries import Recent
from newsloom.api.routes import Json, api_routes
from newsloom.settings import Settings, get_settings

log = logging.getLogger(__name__)


class Metrics:
    """Requests by route and status, and their durations, in a registry of this app's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "newsloom_api_requests_total",
            "HTTP requests answered.",
            ["route", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "newsloom_api_request_seconds",
            "Time to answer a request.",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )


def is_json_path(path: str) -> bool:
    return path.startswith("/api/") or path in ("/healthz", "/metrics")


class AccessAndMetrics:
    """With keys configured: the API and /metrics need `Authorization: Bearer KEY` (else a
    401 JSON), a web page a session holding a key (else the login page). Counts every
    answer by route template and status."""

    def __init__(self, app: ASGIApp, keys: Keys, metrics: Metrics) -> None:
        self.app, self.keys, self.metrics = app, keys, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_counted(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            refusal = self.refusal(Request(scope))
            if refusal is not None:
                await refusal(scope, receive, send_counted)
            else:
                await self.app(scope, receive, send_counted)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.seconds.labels(route).observe(time.perf_counter() - started)

    def refusal(self, request: Request) -> Response | None:
        if not self.keys.required:
            return None
        path = request.url.path
        if path.startswith(PUBLIC_PATHS):
            return None
        if is_json_path(path):
            if self.keys.bearer_ok(request.headers.get("authorization")):
                return None
            return Json(
                {"status": 401, "message": "send a valid API key as `Authorization: Bearer KEY`"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="newsloom"'},
            )
        if self.keys.digest_known(str(request.session.get("key", ""))):
            return None
        return RedirectResponse(f"/login?{_next_param(request)}", status_code=303)


def _next_param(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return urlencode({"next": target})


def error_response(request: Request, status: int, message: str) -> Response:
    if is_json_path(request.url.path):
        return Json({"status": status, "message": message}, status_code=status)
    return context_of(request).templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(request, exc.status, exc.message)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {
        404: f"nothing at {request.url.path}",
        405: f"{request.method} is not allowed here: the API only reads (GET)",
    }
    return error_response(request, exc.status_code, message.get(exc.status_code, exc.detail))


async def on_database_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return error_response(
            request,
            503,
            "the query took too long and was stopped: narrow it (a shorter period, more filters)",
        )
    log.warning("database unavailable: %s", exc)
    return error_response(request, 503, "the database is not available; try again shortly")


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error answering %s", request.url.path)
    return error_response(request, 500, "internal error")


def healthz(request: Request) -> Response:
    with context_of(request).connection() as conn:
        db.ping(conn)
    return Json({"status": "ok"})


def metrics_page(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


def openapi_json(request: Request) -> Response:
    return Json(openapi.document())


def docs_page(request: Request) -> Response:
    return context_of(request).templates.TemplateResponse(
        request, "docs.html", {"doc": openapi.document()}
    )


def favicon(request: Request) -> Response:
    return Response(status_code=204)


def from_environment() -> Starlette:
    """The application on the environment's settings: what each of several worker
    processes of `newsloom serve` runs."""
    return create_app(get_settings())


def create_app(settings: Settings, pool: db.Pool | None = None) -> Starlette:
    """The application; it opens a read-only pool on DATABASE_URL unless given one."""
    if pool is None:
        pool = db.make_read_pool(
            str(settings.database_url), settings.api_pool_size, settings.api_query_timeout
        )
    keys, secret = Keys(settings.api_keys), session_secret(settings)
    templates = pages.make_templates(TEMPLATES, keys)
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Handlers run in worker threads and each holds one pool connection at a time: as
        # many threads as connections, so requests wait for a connection in the event loop,
        # not in the pool (threads woken and sent back to sleep, each time taking the GIL,
        # were a fifth of the server's CPU time for searches at 20 clients).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_pool_size
        yield
        pool.close()  # at shutdown: the server's connections end with it

    app = Starlette(
        lifespan=lifespan,
        routes=[
            *api_routes(),
            Route("/api/v1/openapi.json", openapi_json),
            Route("/api/v1/docs", docs_page),
            Route("/healthz", healthz),
            Route("/metrics", metrics_page),
            Route("/favicon.ico", favicon),
            *pages.page_routes(),
        ],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=secret,
                session_cookie="newsloom_session",
                same_site="strict",
                max_age=7 * 24 * 3600,
            ),
            Middleware(AccessAndMetrics, keys=keys, metrics=metrics),
        ],
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_error,
            psycopg.OperationalError: on_database_error,
            PoolTimeout: on_database_error,
            Exception: on_unexpected,
        },
    )
    app.state.context = ServerContext(
        settings=settings,
        pool=pool,
        keys=keys,
        cursors=Cursors(secret),
        templates=templates,
        recent=Recent(60.0),
        latest_page=Recent(1.0),
    )
    app.state.metrics = metrics
    return app
