"""Poll one feed: a conditional GET, then feedparser. No database, no queue."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import urljoin

import feedparser
import httpx

from newsloom import web
from newsloom.errors import Permanent
from newsloom.settings import Settings

ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, "
          "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1")


class FeedEntry(NamedTuple):
    url: str
    published_at: datetime | None
    updated_at: datetime | None  # the entry's last update, else its publication


@dataclass(frozen=True)
class PollResult:
    not_modified: bool
    etag: str | None
    last_modified: str | None
    entries: list[FeedEntry] = field(default_factory=list)
    rejected_links: int = 0       # entries whose link is missing or not http(s)
    ttl_seconds: float | None = None
    max_age_seconds: float | None = None  # Cache-Control: max-age


def poll_feed(client: httpx.Client, url: str, settings: Settings, *, etag: str | None = None,
              last_modified: str | None = None) -> PollResult:
    headers = {"Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    resp = web.get(client, url, settings, max_bytes=settings.max_feed_bytes, headers=headers)
    max_age = _max_age(resp.headers.get("cache-control"))
    if resp.status == 304:
        return PollResult(True, etag, last_modified, max_age_seconds=max_age)
    parsed = feedparser.parse(resp.body, response_headers={
        "content-type": resp.headers.get("content-type", ""), "content-location": resp.url})
    if not parsed.get("version"):
        raise Permanent("not_a_feed", "no RSS or Atom document")
    if parsed.bozo and not parsed.entries:
        # A feed cut short still yields what parsed before the break; nothing did here.
        raise Permanent("malformed_feed", str(parsed.get("bozo_exception", ""))[:300])
    entries, seen, rejected = [], set(), 0
    for entry in parsed.entries:
        link = _entry_link(entry, resp.url)
        if link is None:
            rejected += 1
        elif link not in seen:
            seen.add(link)
            entries.append(FeedEntry(link, _entry_date(entry, "published_parsed", "updated_parsed"),
                                     _entry_date(entry, "updated_parsed", "published_parsed")))
    return PollResult(False, resp.headers.get("etag"), resp.headers.get("last-modified"),
                      entries, rejected, _ttl(parsed), max_age)


def _entry_link(entry, feed_url: str) -> str | None:
    link = (entry.get("link") or "").strip()
    if not link:
        return None
    link = urljoin(feed_url, link)
    if not web.is_http_url(link) or " " in link:
        return None
    return link


def _entry_date(entry, *keys: str) -> datetime | None:
    """The first of `keys` the entry has. (`in` first: feedparser's get() of a missing
    updated_parsed answers published_parsed, with a deprecation warning.)"""
    struct = next((entry[key] for key in keys
                   if key in entry and entry[key]), None)  # noqa: RUF019 - see above
    if not struct:
        return None
    return datetime.fromtimestamp(calendar.timegm(struct), tz=UTC)


def _ttl(parsed) -> float | None:
    ttl = parsed.feed.get("ttl")
    try:
        return float(ttl) * 60 if ttl else None
    except ValueError:
        return None


def _max_age(cache_control: str | None) -> float | None:
    for directive in (cache_control or "").split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() == "max-age" and value.strip().isdigit():
            return float(value)
    return None
