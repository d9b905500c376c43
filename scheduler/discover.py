"""Find a site's feed from its home page: the page itself, its <link rel="alternate">,
or the paths where feeds usually are."""

from __future__ import annotations

from urllib.parse import urljoin

import feedparser
import httpx
from lxml import html as lxml_html

from newsloom import web
from newsloom.errors import NewsloomError, Permanent, Transient
from newsloom.scheduler.poll import ACCEPT
from newsloom.settings import Settings

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml",
              "application/feed+json", "application/xml", "text/xml")
COMMON_PATHS = ("/feed", "/rss", "/rss.xml", "/feed.xml", "/atom.xml", "/index.xml",
                "/feeds/posts/default", "/?feed=rss2")


def discover_feed(client: httpx.Client, url: str, settings: Settings) -> tuple[str, str | None]:
    """(feed URL, feed title) for a feed's or a site's URL; NewsloomError if none is found."""
    resp = web.get(client, url, settings, max_bytes=settings.max_feed_bytes, headers={"Accept": ACCEPT})
    title = _feed_title(resp.body)
    if title is not None:
        return resp.url, title or None
    candidates = _alternate_links(resp.body, resp.url) + [urljoin(resp.url, p) for p in COMMON_PATHS]
    for candidate in dict.fromkeys(candidates):
        try:
            found = web.get(client, candidate, settings, max_bytes=settings.max_feed_bytes,
                            headers={"Accept": ACCEPT})
        except (Permanent, Transient, httpx.TransportError):
            continue
        title = _feed_title(found.body)
        if title is not None:
            return found.url, title or None
    raise NewsloomError(f"no RSS or Atom feed found at {url} (tried its <link> tags and "
                        f"{', '.join(COMMON_PATHS)})")


def _feed_title(body: bytes) -> str | None:
    """The feed's title ('' if it has none) when `body` is a feed, else None."""
    parsed = feedparser.parse(body)
    if not parsed.get("version") or (parsed.bozo and not parsed.entries):
        return None
    return parsed.feed.get("title", "")


def _alternate_links(body: bytes, base: str) -> list[str]:
    try:
        tree = lxml_html.fromstring(body)
    except (ValueError, lxml_html.etree.ParserError):
        return []
    links = []
    for link in tree.xpath('//link[@href]'):
        rel = (link.get("rel") or "").lower().split()
        if "alternate" in rel and (link.get("type") or "").lower().split(";")[0] in FEED_TYPES:
            links.append(urljoin(base, link.get("href").strip()))
    return links
