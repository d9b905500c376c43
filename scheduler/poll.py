"""Poll one source: a conditional GET, then the parser for its kind (scheduler/sources.py),
the child sitemaps of an index, and the feed's rules (include, exclude, since, hosts).
No database, no queue."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit

import httpx

from newsloom import web
from newsloom.errors import Permanent, Transient
from newsloom.scheduler import sources
from newsloom.scheduler.sources import SITEMAP_KINDS, ChildSitemap, FeedEntry, Notes
from newsloom.settings import Settings

__all__ = ["ACCEPT", "FeedEntry", "PollResult", "SourceRules", "make_rules", "poll_feed"]

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, "
    "application/feed+json, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
MAX_INDEX_DEPTH = 3  # index -> index -> index -> sitemap, no deeper
FUTURE_SLACK = timedelta(days=1)  # clocks and time zones; later dates are wrong
_FAR_PAST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SourceRules:
    """A feed's keys from the feeds file, ready for a poll."""

    type: str | None = None  # feed, sitemap or page; None: detect
    include: re.Pattern[str] | None = None  # keep only URLs it matches (any host)
    exclude: re.Pattern[str] | None = None  # drop URLs it matches
    since: datetime | None = None  # sitemaps: leave out URLs dated before
    read_until: datetime | None = None  # sitemap indexes: children dated so far were read


def make_rules(
    source_type: str | None,
    include: str | None,
    exclude: str | None,
    since_seconds: float | None,
    *,
    first_polled_at: datetime | None = None,
    read_until: datetime | None = None,
) -> SourceRules:
    """A feed's keys for a poll. The `since` cutoff is fixed at the first poll, so later
    polls do not take the archive the first one left out either."""
    since = None
    if since_seconds is not None:
        since = (first_polled_at or datetime.now(UTC)) - timedelta(seconds=since_seconds)
    return SourceRules(
        type=source_type,
        include=_compiled(include),
        exclude=_compiled(exclude),
        since=since,
        read_until=read_until,
    )


@lru_cache(maxsize=4096)
def _compiled(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


@dataclass(frozen=True)
class PollResult:
    not_modified: bool
    etag: str | None
    last_modified: str | None
    entries: list[FeedEntry] = field(default_factory=list)
    rejected_links: int = 0  # entries whose link is missing or not http(s)
    ttl_seconds: float | None = None
    max_age_seconds: float | None = None  # Cache-Control: max-age
    kind: str | None = None
    note: str | None = None  # what the poll left out, by reason
    read_until: datetime | None = None  # an index's children dated up to this are read


def poll_feed(
    client: httpx.Client,
    url: str,
    settings: Settings,
    *,
    rules: SourceRules = SourceRules(),
    etag: str | None = None,
    last_modified: str | None = None,
) -> PollResult:
    headers = {"Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    resp = web.get(client, url, settings, max_bytes=_fetch_cap(rules, settings), headers=headers)
    max_age = _max_age(resp.headers.get("cache-control"))
    if resp.status == 304:
        return PollResult(True, etag, last_modified, max_age_seconds=max_age)
    doc = read_document(resp.body, resp.url, resp.headers.get("content-type", ""), rules, settings)
    entries, read_until = doc.entries, None
    if doc.children:
        walk = _IndexWalk(client, settings, rules, doc.notes, {url, resp.url})
        children_entries, _ = walk.read(doc.children, resp.url, depth=1)
        entries, read_until = entries + children_entries, walk.read_until
    kept = select_entries(entries, resp.url, rules, doc.kind, doc.notes)
    return PollResult(
        False,
        resp.headers.get("etag"),
        resp.headers.get("last-modified"),
        kept,
        doc.rejected_links,
        doc.ttl_seconds,
        max_age,
        doc.kind,
        doc.notes.describe(),
        read_until,
    )


def _fetch_cap(rules: SourceRules, settings: Settings) -> int:
    if rules.type in ("feed", "page"):
        return settings.max_feed_bytes
    return max(settings.max_feed_bytes, settings.max_sitemap_bytes)


def read_document(
    body: bytes, url: str, content_type: str, rules: SourceRules, settings: Settings
) -> sources.Document:
    """The document parsed as its `type`, or as what it looks like when none is set."""
    body = sources.ungzip(body, max(settings.max_feed_bytes, settings.max_sitemap_bytes))
    found = sources.sniff(body)
    as_sitemap = rules.type == "sitemap" or (rules.type is None and found in SITEMAP_KINDS)
    cap = settings.max_sitemap_bytes if as_sitemap else settings.max_feed_bytes
    if len(body) > cap:  # also once inflated
        raise Permanent("too_large", f"more than {cap} bytes")
    if rules.type == "page":
        return sources.parse_page(body, url)
    if as_sitemap:
        if found not in SITEMAP_KINDS:
            raise Permanent("not_a_sitemap", f"the document is {_describe(found)}")
        return sources.parse_sitemap(body, url, settings.max_sitemap_urls)
    if found == "html":
        raise Permanent("not_a_feed", 'an HTML page (set type = "page" to follow its links)')
    if found == "json":
        return sources.parse_json_feed(body, url)
    return sources.parse_feed(body, url, content_type)


def _describe(found: str) -> str:
    return {"html": "an HTML page", "json": "JSON"}.get(
        found, "XML but no <urlset> or <sitemapindex>"
    )


class _IndexWalk:
    """Reads the sitemaps an index lists, depth-first, each URL at most once per poll.

    Children are read oldest lastmod first (undated ones, which cannot be skipped, before
    them), and `read_until` moves to the lastmod of each top-level child read whole. The
    next poll skips children dated up to it, so a budget or a child that failed for now
    leaves the rest for the next poll instead of losing them.
    """

    def __init__(
        self,
        client: httpx.Client,
        settings: Settings,
        rules: SourceRules,
        notes: Notes,
        visited: set[str],
    ):
        self.client, self.settings, self.rules, self.notes = client, settings, rules, notes
        self.visited = visited
        self.budget = settings.sitemap_children_per_poll
        self.read_until = rules.read_until
        self.skip_until = max(rules.since or _FAR_PAST, rules.read_until or _FAR_PAST)

    def read(
        self, children: list[ChildSitemap], index_url: str, depth: int
    ) -> tuple[list[FeedEntry], bool]:
        """The children's entries, and whether every child was read or is not to be read."""
        entries: list[FeedEntry] = []
        whole = True
        for child in sorted(children, key=lambda c: c.lastmod or _FAR_PAST):
            done = True
            if child.url in self.visited:
                self.notes["sitemap_loop"] += 1
            elif not same_site(index_url, child.url):
                self.notes["child_other_host"] += 1
            elif child.lastmod and child.lastmod <= self.skip_until:
                self.notes["child_unchanged"] += 1
            elif depth > MAX_INDEX_DEPTH:
                self.notes["index_too_deep"] += 1
            elif self.budget <= 0:
                self.notes["children_left_for_later"] += 1
                done = False
            else:
                self.budget -= 1
                self.visited.add(child.url)
                found, done = self._read_child(child.url, depth)
                entries += found
            whole = whole and done
            if whole and depth == 1 and child.lastmod:
                self.read_until = max(self.read_until or _FAR_PAST, child.lastmod)
        return entries, whole

    def _read_child(self, url: str, depth: int) -> tuple[list[FeedEntry], bool]:
        try:
            resp = web.get(
                self.client,
                url,
                self.settings,
                max_bytes=self.settings.max_sitemap_bytes,
                headers={"Accept": "application/xml, text/xml;q=0.9, */*;q=0.1"},
            )
            doc = read_document(resp.body, resp.url, "", SourceRules(type="sitemap"), self.settings)
        except (Permanent, Transient, httpx.HTTPError) as exc:
            # One bad child loses only its own URLs; one that may work later is read again.
            self.notes[f"child_{getattr(exc, 'reason', None) or type(exc).__name__}"] += 1
            return [], isinstance(exc, Permanent)
        self.notes.update(doc.notes)
        if doc.rejected_links:
            self.notes["rejected_links"] += doc.rejected_links
        found, whole = self.read(doc.children, resp.url, depth + 1)
        return doc.entries + found, whole


def select_entries(
    entries: list[FeedEntry], doc_url: str, rules: SourceRules, kind: str, notes: Notes
) -> list[FeedEntry]:
    """The entries the feed's rules keep, each URL once; what is left out is counted."""
    host_bound = kind in SITEMAP_KINDS or kind == "page"
    latest = datetime.now(UTC) + FUTURE_SLACK
    kept, seen = [], set()
    for entry in entries:
        if entry.url in seen:
            continue
        seen.add(entry.url)
        if rules.exclude and rules.exclude.search(entry.url):
            notes["excluded"] += 1
            continue
        if rules.include:
            if not rules.include.search(entry.url):
                notes["not_included"] += 1
                continue
        elif host_bound and not same_site(doc_url, entry.url):
            notes["other_host"] += 1
            continue
        published, updated = (
            _not_after(entry.published_at, latest),
            _not_after(entry.updated_at, latest),
        )
        if (published, updated) != (entry.published_at, entry.updated_at):
            notes["future_date"] += 1  # the URL stays; the date, being wrong, goes
            entry = entry._replace(published_at=published, updated_at=updated)  # noqa: PLW2901 - the corrected entry is the one kept
        if (
            kind in SITEMAP_KINDS
            and rules.since
            and entry.published_at
            and entry.published_at < rules.since
        ):
            notes["older_than_since"] += 1
            continue
        kept.append(entry)
    return kept


def _not_after(when: datetime | None, latest: datetime) -> datetime | None:
    return None if when is not None and when > latest else when


def same_site(url: str, other: str) -> bool:
    """One host, or one a subdomain of the other (www.site.example and news.site.example)."""
    first, second = (_bare_host(u) for u in (url, other))
    return bool(first and second) and (
        first == second or first.endswith("." + second) or second.endswith("." + first)
    )


def _bare_host(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return host[4:] if host.startswith("www.") else host


def _max_age(cache_control: str | None) -> float | None:
    for directive in (cache_control or "").split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() == "max-age" and value.strip().isdigit():
            return float(value)
    return None
