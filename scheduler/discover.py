"""Find a site's feed from its home page: the page itself, its <link rel="alternate">,
or the paths where feeds usually are; and the site's sitemaps (robots.txt `Sitemap:`
lines, then the paths where news sitemaps usually are)."""

from __future__ import annotations

from urllib.parse import urljoin

import httpx
from lxml import html as lxml_html

from newsloom import web
from newsloom.errors import NewsloomError, Permanent, Transient
from newsloom.scheduler import sources
from newsloom.scheduler.poll import ACCEPT, SourceRules, read_document
from newsloom.settings import Settings

FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/rdf+xml",
    "application/feed+json",
    "application/xml",
    "text/xml",
)
COMMON_PATHS = (
    "/feed",
    "/rss",
    "/rss.xml",
    "/feed.xml",
    "/atom.xml",
    "/index.xml",
    "/feeds/posts/default",
    "/?feed=rss2",
    "/feed.json",
)
NEWS_SITEMAP_PATHS = ("/news-sitemap.xml", "/sitemap_news.xml")
MAX_PROPOSED_SITEMAPS = 10


def discover_feed(client: httpx.Client, url: str, settings: Settings) -> tuple[str, str | None]:
    """(feed URL, feed title) for a feed's or a site's URL; NewsloomError if none is found."""
    resp = web.get(
        client, url, settings, max_bytes=settings.max_feed_bytes, headers={"Accept": ACCEPT}
    )
    title = _feed_title(resp.body, resp.url, settings)
    if title is not None:
        return resp.url, title or None
    candidates = _alternate_links(resp.body, resp.url) + [
        urljoin(resp.url, p) for p in COMMON_PATHS
    ]
    for candidate in dict.fromkeys(candidates):
        try:
            found = web.get(
                client,
                candidate,
                settings,
                max_bytes=settings.max_feed_bytes,
                headers={"Accept": ACCEPT},
            )
        except (Permanent, Transient, httpx.TransportError):
            continue
        title = _feed_title(found.body, found.url, settings)
        if title is not None:
            return found.url, title or None
    sitemaps = discover_sitemaps(client, url, settings)
    raise NewsloomError(
        f"no RSS, Atom or JSON feed found at {url} (tried its <link> tags and "
        f"{', '.join(COMMON_PATHS)})"
        + (
            f"; its sitemaps: {', '.join(sitemaps)} (add one with `newsloom feeds add URL`)"
            if sitemaps
            else ""
        )
    )


def discover_sitemaps(client: httpx.Client, url: str, settings: Settings) -> list[str]:
    """The site's sitemaps: those its robots.txt lists, and news sitemaps at usual paths."""
    found: list[str] = []
    try:
        robots = web.get(client, urljoin(url, "/robots.txt"), settings, max_bytes=500_000)
        for line in robots.body.decode("utf-8", "replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip().lower() == "sitemap" and value.strip():
                found.append(urljoin(robots.url, value.strip()))
    except (Permanent, Transient, httpx.HTTPError):
        pass
    for path in NEWS_SITEMAP_PATHS:
        candidate = urljoin(url, path)
        if candidate not in found and _is_sitemap(client, candidate, settings):
            found.append(candidate)
    return list(dict.fromkeys(found))[:MAX_PROPOSED_SITEMAPS]


def _is_sitemap(client: httpx.Client, url: str, settings: Settings) -> bool:
    try:
        resp = web.get(client, url, settings, max_bytes=settings.max_sitemap_bytes)
        body = sources.ungzip(resp.body, settings.max_sitemap_bytes)
    except (Permanent, Transient, httpx.HTTPError):
        return False
    return sources.sniff(body) in sources.SITEMAP_KINDS


def _feed_title(body: bytes, url: str, settings: Settings) -> str | None:
    """The source's title ('' if it has none) when `body` is a feed or a sitemap, else None."""
    try:
        doc = read_document(body, url, "", SourceRules(), settings)
    except Permanent:
        return None
    return doc.title or ""


def _alternate_links(body: bytes, base: str) -> list[str]:
    try:
        tree = lxml_html.fromstring(body)
    except (ValueError, lxml_html.etree.ParserError):
        return []
    links = []
    for link in tree.xpath("//link[@href]"):
        rel = (link.get("rel") or "").lower().split()
        if "alternate" in rel and (link.get("type") or "").lower().split(";")[0] in FEED_TYPES:
            links.append(urljoin(base, link.get("href").strip()))
    return links
