"""The web page: server-rendered (Jinja2), no JavaScript; the same queries as the API."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from newsloom import db
from newsloom.api import charts, queries
from newsloom.api.auth import Keys
from newsloom.api.context import context_of
from newsloom.api.errors import ApiError
from newsloom.api.params import SINCE, UNTIL, Param, parse_query, parse_text
from newsloom.api.routes import ARTICLE_PARAMS, path_id

PAGE_SIZE = 30
FEED_CHART_HOURS = 48
MAX_FORM_BYTES = 4096


class RowEnvironment(jinja2.Environment):
    """Templates over rows (dicts): `row.field` reads the key first. Jinja's own order, the
    attribute first, raises and catches an AttributeError for every field shown (a fifth
    of the home page's time), and finds a dict's method where a key has its name (the
    API page's `item.get`: the GET operation, not `dict.get`)."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def make_templates(directory: Path, keys: Keys) -> Jinja2Templates:
    # The templates ship with the package: no file check (a stat) on every render.
    env = RowEnvironment(
        loader=jinja2.FileSystemLoader(directory), autoescape=True, auto_reload=False
    )
    env.filters["when"] = _when
    env.globals["keys_required"] = keys.required
    return Jinja2Templates(env=env)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def render(request: Request, name: str, **values: Any) -> Response:
    return context_of(request).templates.TemplateResponse(request, name, values)


def query_values(request: Request, params: tuple[Param, ...]) -> dict[str, Any]:
    # An empty search box sends `q=`: the same as no search.
    present = {k: v for k, v in request.query_params.items() if v.strip()}
    return parse_query(params, present, request.query_params.getlist)


def home(request: Request) -> Response:
    if not request.query_params:
        # The latest articles, the page nearly every visit starts at, is the same for every
        # visitor: rendered at most once a second (context.latest_page) by each process.
        latest = context_of(request).latest_page
        return HTMLResponse(latest.get("home", lambda: articles_page(request).body))
    return articles_page(request)


def articles_page(request: Request) -> Response:
    values = query_values(request, ARTICLE_PARAMS)
    context = context_of(request)
    with context.connection() as conn:
        rows, cursor = queries.articles(
            conn, values, context.cursors, context.recent, limit=PAGE_SIZE
        )
    older = None
    if cursor:
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor" and v]
        older = "/?" + urlencode([*kept, ("cursor", cursor)])
    return render(
        request,
        "home.html",
        articles=rows,
        q=values.get("q", ""),
        older=older,
        filtered=bool(values),
    )


def article(request: Request) -> Response:
    query_values(request, ())
    with context_of(request).connection() as conn:
        row = queries.article(conn, path_id(request, "article"))
    return render(request, "article.html", article=row)


ENTITY_PARAMS = (Param("q", "string", "Part of the name.", parse_text(100)),)


def entities(request: Request) -> Response:
    values = query_values(request, ENTITY_PARAMS)
    context = context_of(request)
    with context.connection() as conn:
        rows, since, until = queries.entities(
            conn, values, context.settings.api_max_range, 100, context.recent
        )
    return render(
        request, "entities.html", entities=rows, q=values.get("q", ""), since=since, until=until
    )


def entity(request: Request) -> Response:
    values = query_values(request, (SINCE, UNTIL))
    context = context_of(request)
    entity_id = path_id(request, "entity")
    with context.connection() as conn:
        found, days, _, _ = queries.timeline(
            conn, entity_id, values, context.settings.api_max_range
        )
        latest = db.list_articles(conn, entity_id=entity_id, limit=20)
    chart = charts.bar_chart(
        f"Mentions of {found['name']} per day",
        [(d["day"].isoformat(), d["mentions"]) for d in days],
    )
    return render(
        request,
        "entity.html",
        entity=found,
        chart=chart,
        articles=latest,
        total=sum(d["mentions"] for d in days),
    )


def feeds(request: Request) -> Response:
    query_values(request, ())
    with context_of(request).connection() as conn:
        rows = queries.feeds(conn)
        hourly = db.articles_per_hour(conn, FEED_CHART_HOURS)
    chart = charts.bar_chart(
        f"Articles fetched per hour, last {FEED_CHART_HOURS} hours",
        [(h["hour"].strftime("%m-%d %H:00"), h["articles"]) for h in hourly],
    )
    return render(request, "feeds.html", feeds=rows, chart=chart)


def dead_letters(request: Request) -> Response:
    query_values(request, ())
    with context_of(request).connection() as conn:
        rows = queries.dead_letters(conn, {}, 200)
    return render(request, "dead_letters.html", letters=rows)


def _safe_next(target: str | None) -> str:
    # Only a path of this site, never another site (an open redirect).
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


async def login(request: Request) -> Response:
    keys = context_of(request).keys
    target = _safe_next(request.query_params.get("next"))
    if request.method == "GET":
        return render(request, "login.html", next=target, failed=False)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ApiError(413, "the form is too large")
    form = parse_qs(body.decode("utf-8", "replace"))
    digest = keys.digest_if_valid(form.get("key", [""])[0].strip())
    if digest is None:
        response = render(request, "login.html", next=target, failed=True)
        response.status_code = 401
        return response
    request.session["key"] = digest
    return RedirectResponse(_safe_next(form.get("next", [target])[0]), status_code=303)


async def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def page_routes() -> list[Route]:
    return [
        Route("/", home, name="home"),
        Route("/articles/{id:int}", article, name="article"),
        Route("/entities", entities, name="entities"),
        Route("/entities/{id:int}", entity, name="entity"),
        Route("/feeds", feeds, name="feeds"),
        Route("/dead-letters", dead_letters, name="dead_letters"),
        Route("/login", login, methods=["GET", "POST"], name="login"),
        Route("/logout", logout, methods=["POST"], name="logout"),
    ]
