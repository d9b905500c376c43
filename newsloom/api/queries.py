"""What the API and the web page both ask: parsed parameters in, rows out (SQL in
newsloom.db), so the two answer the same question the same way."""

from __future__ import annotations

import threading
import time as clock
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from newsloom import db
from newsloom.api.cursors import Cursors
from newsloom.api.errors import ApiError
from newsloom.api.params import check_range

ENTITY_PERIOD = timedelta(days=30)
TIMELINE_PERIOD = timedelta(days=90)
# Article filters that a cursor is bound to (the page size and field list may change).
ARTICLE_FILTERS = ("q", "feed", "language", "entity", "since", "until")


def articles(
    conn: db.Connection,
    values: dict[str, Any],
    cursors: Cursors,
    recent: Recent,
    *,
    limit: int,
    with_text: bool = False,
) -> tuple[list[dict], str | None]:
    """A page of articles and the cursor of the next one (None on the last page). What the
    statistics say of a search's words is kept in `recent`: they change only when the table
    is analysed."""
    filters = {k: values[k] for k in ARTICLE_FILTERS if k in values}
    if "since" in values and "until" in values and values["since"] >= values["until"]:
        raise ApiError(400, "since must be before until")
    before = cursors.read(values["cursor"], filters) if "cursor" in values else None
    feed, entity, q = values.get("feed"), values.get("entity"), values.get("q")
    facts = recent.get(("search facts", q), lambda: db.search_facts(conn, q)) if q else None
    rows = db.list_articles(
        conn,
        q=q,
        facts=facts,
        language=values.get("language"),
        feed_id=feed if isinstance(feed, int) else None,
        feed_name=feed if isinstance(feed, str) else None,
        entity_id=entity if isinstance(entity, int) else None,
        entity_name=entity if isinstance(entity, str) else None,
        since=values.get("since"),
        until=values.get("until"),
        before=before,
        with_text=with_text,
        limit=limit + 1,
    )
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, cursors.make(rows[-1]["published_at"], rows[-1]["id"], filters)


def article(conn: db.Connection, article_id: int) -> dict:
    row = db.get_article(conn, article_id)
    if row is None:
        raise ApiError(404, f"no article {article_id}")
    return row


class Recent:
    """Answers kept for a short while, for questions every visitor asks alike."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.lock = seconds, threading.Lock()
        self.answers: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self.lock:
            kept = self.answers.get(key)
        if kept and clock.monotonic() - kept[0] < self.seconds:
            return kept[1]
        answer = compute()
        with self.lock:
            if len(self.answers) > 1000:
                self.answers.clear()
            self.answers[key] = (clock.monotonic(), answer)
        return answer


def entities(
    conn: db.Connection, values: dict[str, Any], widest: float, limit: int, recent: Recent
) -> tuple[list[dict], datetime, datetime]:
    """The top entities; those of the default period (every mention of the last 30 days,
    hundreds of ms over 100,000 articles) are kept in `recent` for a while."""
    since, until = _period(values, ENTITY_PERIOD, widest)

    def compute() -> tuple[list[dict], datetime, datetime]:
        rows = db.top_entities(
            conn,
            since=since,
            until=until,
            name=values.get("q"),
            label=values.get("label"),
            limit=limit,
        )
        return rows, since, until

    if "since" in values or "until" in values:
        return compute()
    return recent.get(("entities", values.get("q"), values.get("label"), limit), compute)


def entity(conn: db.Connection, entity_id: int) -> dict:
    row = db.get_entity(conn, entity_id)
    if row is None:
        raise ApiError(404, f"no entity {entity_id}")
    return row


def timeline(
    conn: db.Connection, entity_id: int, values: dict[str, Any], widest: float
) -> tuple[dict, list[dict], datetime, datetime]:
    """An entity and its mentions per UTC day, in whole days: by default the last 90
    (today's included)."""
    found = entity(conn, entity_id)
    until = _next_midnight(values.get("until") or datetime.now(UTC))
    since = _midnight(values["since"]) if "since" in values else until - TIMELINE_PERIOD
    check_range(since, until, widest)
    return found, db.entity_timeline(conn, entity_id, since=since, until=until), since, until


def _midnight(moment: datetime) -> datetime:
    """The last UTC midnight at or before `moment`."""
    return datetime.combine(moment.astimezone(UTC).date(), time(), UTC)


def _next_midnight(moment: datetime) -> datetime:
    """The first UTC midnight at or after `moment`."""
    midnight = _midnight(moment)
    return midnight if midnight == moment else midnight + timedelta(days=1)


def _period(values: dict[str, Any], default: timedelta, widest: float) -> tuple[datetime, datetime]:
    until = values.get("until") or datetime.now(UTC)
    since = values.get("since") or until - default
    check_range(since, until, widest)
    return since, until


def feed_health(row: dict) -> str:
    if not row["active"]:
        return "inactive"
    if row["consecutive_errors"]:
        return "failing"
    return "ok" if row["last_success_at"] else "not polled yet"


def feeds(conn: db.Connection) -> list[dict]:
    """The feeds as `newsloom feeds list` shows them, each with a one-word health."""
    return [{**row, "health": feed_health(row)} for row in db.list_feeds(conn)]


def dead_letters(conn: db.Connection, values: dict[str, Any], limit: int) -> list[dict]:
    feed = values.get("feed")
    return db.list_dead_letters(
        conn,
        error=values.get("error"),
        feed=None if feed is None else str(feed),
        include_resolved=values.get("all", False),
        limit=limit,
    )
