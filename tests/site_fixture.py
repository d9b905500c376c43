"""A loopback website for the tests: realistic article pages, RSS/Atom feeds, OPML, and
an HTTP server whose routes, failures and request log the tests control."""

from __future__ import annotations

import gzip
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import lru_cache
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from near_duplicates import corpus

FIXTURES = Path(__file__).parent / "fixtures"

# Text that surrounds the article on the page and must never reach `articles.text`.
BOILERPLATE_MARKERS = (
    "Accept cookies",
    "Share on Facebook",
    "Sign up for our newsletter",
    "Related articles",
    "Support The Daily Loom",
    "Upvote",
    "View all comments",
    "All rights reserved",
    "This is exactly what I have been saying",
    "Most read",
)


@dataclass(frozen=True)
class FeedItem:
    url: str
    title: str
    published: datetime | None = None
    summary: str = ""
    guid: str | None = None
    updated: datetime | None = None  # Atom only; the publication time when None


def seed_article() -> tuple[str, list[str]]:
    """(title, body paragraphs) of the real article in fixtures/seed-article.txt.

    The file is a scrape: its first line is residue and its tail (from the Patreon
    appeal on) is the page's boilerplate, kept out of the body here.
    """
    lines = [line.strip() for line in (FIXTURES / "seed-article.txt").read_text().splitlines()]
    lines = [line for line in lines if line and line.lower() != "in ,"]
    title, body = lines[0], lines[1:]
    end = next(i for i, line in enumerate(body) if line.startswith("Help us grow"))
    return title, body[:end]


def article_html(
    title: str,
    paragraphs: list[str],
    *,
    author: str | None = None,
    published: str | None = None,
    canonical: str | None = None,
    site_name: str = "The Daily Loom",
    lang: str = "en",
    image: str | None = None,
    tags: tuple[str, ...] = (),
    related: tuple[str, ...] = (
        "Arab unity and Russian unity – the Donbass and Kurdistan case study",
        "Here’s what Russia has accomplished in Syria over the last two years",
    ),
) -> str:
    """A news page as sites really serve them: the article amid menus, banners, appeals,
    related links and a comments section."""
    e = escape
    head = [
        f"<title>{e(title)} | {e(site_name)}</title>",
        '<meta charset="utf-8">',
        f'<meta name="description" content="{e(paragraphs[0][:150])}">',
        f'<meta property="og:title" content="{e(title)}">',
        f'<meta property="og:site_name" content="{e(site_name)}">',
    ]
    if canonical:
        head += [
            f'<link rel="canonical" href="{e(canonical)}">',
            f'<meta property="og:url" content="{e(canonical)}">',
        ]
    if author:
        head.append(f'<meta name="author" content="{e(author)}">')
    if published:
        head.append(f'<meta property="article:published_time" content="{e(published)}">')
    if image:
        head.append(f'<meta property="og:image" content="{e(image)}">')
    head += [f'<meta property="article:tag" content="{e(t)}">' for t in tags]
    menu = "".join(
        f'<li><a href="/{s.lower()}/">{s}</a></li>'
        for s in (
            "Home",
            "World",
            "Politics",
            "Business",
            "Technology",
            "Science",
            "Opinion",
            "Sport",
            "Culture",
            "Video",
        )
    )
    byline = (
        (
            f'<p class="byline">By <a rel="author" href="/authors/x">{e(author)}</a>'
            + (
                f' · <time datetime="{e(published)}">{e(published[:10])}</time>'
                if published
                else ""
            )
            + "</p>"
        )
        if author
        else ""
    )
    body = "\n".join(f"<p>{e(p)}</p>" for p in paragraphs)
    related_links = "".join(
        f'<li><a href="/related/{i}">{e(t)}</a></li>' for i, t in enumerate(related)
    )
    most_read = "".join(
        f'<li><a href="/popular/{i}">Popular story number {i} everyone is reading</a></li>'
        for i in range(5)
    )
    return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
{chr(10).join(head)}
</head>
<body>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience.
  <button>Accept cookies</button> <button>Manage preferences</button></div>
<header class="site-header"><a class="logo" href="/">{e(site_name)}</a>
  <nav class="main-nav"><ul>{menu}</ul></nav>
  <form class="search" action="/search"><input name="q" placeholder="Search"></form></header>
<main>
<article class="post">
  <h1 class="entry-title">{e(title)}</h1>
  {byline}
  <div class="share-buttons"><a href="#">Share on Facebook</a> <a href="#">Tweet</a>
    <a href="#">Email</a> <a href="#">Print</a></div>
  <div class="entry-content">
{body}
  </div>
  <aside class="support-box"><h3>Help us grow.</h3>
    <p>Support The Daily Loom on Patreon! Independent journalism needs readers like you.</p>
    <p class="disclaimer">The statements, views and opinions expressed in this column are solely
    those of the author and do not necessarily represent those of {e(site_name)}.</p></aside>
</article>
<section class="related"><h2>Related articles</h2><ul>{related_links}</ul></section>
<section id="comments" class="comments"><h2>What do you think?</h2>
  <div class="votes">17 points <button>Upvote</button> <button>Downvote</button></div>
  <div class="comment-form">Notify of <select><option>new follow-up comments</option></select></div>
  <div class="comment"><span class="comment-author">reader42</span>
    <p>This is exactly what I have been saying for years, nobody listens.</p></div>
  <div class="comment"><span class="comment-author">skeptic</span>
    <p>Source? I would like to see the full statement before drawing conclusions.</p></div>
  <a href="#comments">View all comments</a> · Inline Feedbacks</section>
</main>
<aside class="sidebar"><h3>Most read</h3><ol>{most_read}</ol></aside>
<footer class="site-footer">
  <form class="newsletter"><p>Sign up for our newsletter</p><input type="email"><button>Subscribe</button></form>
  <p>© 2017 {e(site_name)}. All rights reserved. <a href="/privacy">Privacy</a> · <a href="/terms">Terms</a></p>
</footer>
</body>
</html>"""


def _rfc822(when: datetime | None) -> str:
    return format_datetime(when) if when else ""


def rss2(items: list[FeedItem], *, title: str, link: str, ttl: int | None = None) -> str:
    entries = "".join(
        f"<item><title>{escape(i.title)}</title><link>{escape(i.url)}</link>"
        f'<guid isPermaLink="false">{escape(i.guid or i.url)}</guid>'
        + (f"<pubDate>{_rfc822(i.published)}</pubDate>" if i.published else "")
        + f"<description>{escape(i.summary)}</description></item>\n"
        for i in items
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>{escape(link)}</link>"
        f"<description>{escape(title)}</description>"
        + (f"<ttl>{ttl}</ttl>" if ttl else "")
        + f"\n{entries}</channel></rss>\n"
    )


def rss1(items: list[FeedItem], *, title: str, link: str) -> str:
    seq = "".join(f'<rdf:li rdf:resource="{escape(i.url)}"/>' for i in items)
    entries = "".join(
        f'<item rdf:about="{escape(i.url)}"><title>{escape(i.title)}</title>'
        f"<link>{escape(i.url)}</link>"
        + (f"<dc:date>{i.published.isoformat()}</dc:date>" if i.published else "")
        + f"<description>{escape(i.summary)}</description></item>\n"
        for i in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<channel rdf:about="{escape(link)}"><title>{escape(title)}</title>'
        f"<link>{escape(link)}</link><description>{escape(title)}</description>"
        f"<items><rdf:Seq>{seq}</rdf:Seq></items></channel>\n{entries}</rdf:RDF>\n"
    )


def atom(items: list[FeedItem], *, title: str, link: str) -> str:
    entries = "".join(
        f'<entry><title>{escape(i.title)}</title><link rel="alternate" href="{escape(i.url)}"/>'
        f"<id>{escape(i.guid or i.url)}</id>"
        + (
            f"<updated>{(i.updated or i.published).isoformat()}</updated>"
            f"<published>{i.published.isoformat()}</published>"
            if i.published
            else ""
        )
        + f"<summary>{escape(i.summary)}</summary></entry>\n"
        for i in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f'<title>{escape(title)}</title><link href="{escape(link)}"/><id>{escape(link)}</id>'
        f"<updated>2024-01-01T00:00:00Z</updated>\n{entries}</feed>\n"
    )


def opml(feeds: list[tuple[str, str]]) -> str:
    outlines = "".join(
        f'<outline type="rss" text="{escape(t)}" title="{escape(t)}" '
        f'xmlUrl="{escape(u)}" htmlUrl="{escape(u)}"/>\n'
        for u, t in feeds
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0"><head><title>Feeds</title>'
        f'</head><body><outline text="News" title="News">\n{outlines}</outline></body></opml>\n'
    )


def _w3c(when: datetime | None) -> str:
    return when.isoformat() if when else ""


def sitemap(items: list[FeedItem], *, news: bool = False) -> str:
    """A sitemap of the items' URLs (lastmod from `published`); with `news`, a Google
    News sitemap (publication date and title in news:news)."""
    ns = ' xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"' if news else ""
    urls = "".join(
        f"<url><loc>{escape(i.url)}</loc>"
        + (f"<lastmod>{_w3c(i.published)}</lastmod>" if i.published and not news else "")
        + (
            "<news:news><news:publication><news:name>The Daily Loom</news:name>"
            "<news:language>en</news:language></news:publication>"
            f"<news:publication_date>{_w3c(i.published)}</news:publication_date>"
            f"<news:title>{escape(i.title)}</news:title></news:news>"
            if news
            else ""
        )
        + "</url>\n"
        for i in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"{ns}>\n{urls}</urlset>\n'
    )


def sitemap_index(sitemaps: list[tuple[str, datetime | None]]) -> str:
    entries = "".join(
        f"<sitemap><loc>{escape(url)}</loc>"
        + (f"<lastmod>{_w3c(when)}</lastmod>" if when else "")
        + "</sitemap>\n"
        for url, when in sitemaps
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex '
        f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{entries}</sitemapindex>\n'
    )


def section_page(links: list[tuple[str, str]], *, title: str = "World") -> str:
    """A section front: navigation, the section's story links, a footer."""
    stories = "".join(
        f'<li><a href="{escape(url)}">{escape(text)}</a></li>\n' for url, text in links
    )
    return (
        f"<!DOCTYPE html><html><head><title>{escape(title)}</title></head><body>"
        '<nav><a href="/">Home</a> <a href="/world/">World</a> <a href="/about">About</a>'
        f"</nav><main><h1>{escape(title)}</h1><ul>\n{stories}</ul></main>"
        '<footer><a href="/privacy">Privacy</a></footer></body></html>\n'
    )


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with the query string
    headers: dict[str, str]
    at: float  # when it reached this host: the kernel's receive time, time.time()'s clock


Handler = Callable[[Request], tuple[int, dict[str, str], bytes]]


@dataclass
class _Route:
    handler: Handler
    delay: float = 0.0


# Kernel receive timestamps on the listening socket, inherited by every connection: a
# request's time is when its bytes reached the host, not when a handler thread of this busy
# process got round to reading them (which, under load, shrank or widened gaps by 10 ms+).
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def _arrival_time(connection: socket.socket) -> float:
    """When the next request's first bytes arrived (peeked, so the parser still reads
    them); now, if the kernel gives no timestamp. Assumes no pipelining (no client here
    sends a request before the last response)."""
    try:
        _, ancillary, _, _ = connection.recvmsg(1, socket.CMSG_SPACE(16), socket.MSG_PEEK)
    except OSError:
        return time.time()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return seconds + nanoseconds / 1e9
    return time.time()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        super().server_bind()

    def handle_error(self, request, client_address) -> None:
        pass  # clients hanging up mid-response is what several tests do on purpose


class FixtureSite:
    """A threaded HTTP server on 127.0.0.1 (or another loopback `host`; ephemeral port)
    serving registered routes.

    Routes match on the path without its query string, so `/a?utm_source=x` serves `/a`.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        site = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            arrived = 0.0

            def handle_one_request(self) -> None:
                self.arrived = _arrival_time(self.connection)
                super().handle_one_request()

            def do_GET(self) -> None:
                request = Request("GET", self.path, dict(self.headers), self.arrived)
                with site._lock:
                    site.requests.append(request)
                    route = site._routes.get(urlsplit(self.path).path)
                if route is None:
                    status, headers, body = 404, {"Content-Type": "text/plain"}, b"not found"
                else:
                    if route.delay:
                        time.sleep(route.delay)
                    status, headers, body = route.handler(request)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if "Content-Length" not in headers:
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if status != 304:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (size caps do that on purpose)

            def log_message(self, *args) -> None:
                pass

        self._server = _QuietServer((host, 0), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def add(
        self,
        path: str,
        body: str | bytes,
        *,
        content_type: str = "text/html; charset=utf-8",
        status: int = 200,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        gzip_body: bool = False,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> None:
        """Serve a fixed response; with `etag` / `last_modified`, answer 304 when they match."""
        payload = body.encode() if isinstance(body, str) else body
        fixed = {"Content-Type": content_type, **(headers or {})}
        if gzip_body:
            payload, fixed["Content-Encoding"] = gzip.compress(payload), "gzip"
        if etag:
            fixed["ETag"] = etag
        if last_modified:
            fixed["Last-Modified"] = last_modified

        def handler(request: Request) -> tuple[int, dict[str, str], bytes]:
            if (etag and request.headers.get("If-None-Match") == etag) or (
                last_modified
                and not etag
                and request.headers.get("If-Modified-Since") == last_modified
            ):
                return 304, {k: v for k, v in fixed.items() if k in ("ETag", "Last-Modified")}, b""
            return status, fixed, payload

        self.add_handler(path, handler, delay=delay)

    def add_handler(self, path: str, handler: Handler, *, delay: float = 0.0) -> None:
        with self._lock:
            self._routes[path] = _Route(handler, delay)

    def hits(self, path: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if urlsplit(r.path).path == path)

    def start(self) -> FixtureSite:
        if self._thread is None:
            # A short poll interval: stop() (each test's teardown) waits for one poll.
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FixtureSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_SENTENCE_END = re.compile(r"(?<=[.!?”])\s+(?=[A-Z“\"])")


@lru_cache(maxsize=1)
def _story_corpus() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(titles, sentences) of the story corpus in fixtures/stories: real news prose."""
    stories = corpus()
    return (
        tuple(story.title for story in stories),
        tuple(
            sentence
            for story in stories
            for paragraph in story.paragraphs
            for sentence in _SENTENCE_END.split(paragraph)
        ),
    )


def synthetic_article(index: int, paragraphs: int = 8) -> tuple[str, list[str]]:
    """A distinct news article for load and fault runs, deterministic per index: sentences
    of the story corpus recombined, so texts are varied prose with real-looking names that
    share little with one another (as real articles do)."""
    rng = random.Random(index)
    titles, sentences = _story_corpus()
    title = f"{rng.choice(titles)} (report {index})"
    body = [" ".join(rng.sample(sentences, rng.randint(3, 5))) for _ in range(paragraphs)]
    body[0] = f"Report {index}: " + body[0]  # no two articles share a text
    return title, body


def serve_sources_site(site: FixtureSite, stories: int = 6) -> dict[str, str]:
    """A news site without RSS: its stories are listed by a sitemap index (two child
    sitemaps, one gzip-compressed), a Google News sitemap and a section page, overlapping,
    so every story is reachable from two or three of them. Returns {story URL: title}."""
    now = datetime.now(UTC).replace(microsecond=0)
    served: dict[str, str] = {}
    items = []
    for index in range(stories):
        title, paragraphs = synthetic_article(10_000 + index)
        path = f"/world/{now:%Y/%m/%d}/story-{index}"
        site.add(path, article_html(title, paragraphs, published=now.isoformat(), canonical=None))
        served[site.url(path)] = title
        items.append(FeedItem(site.url(path), title, published=now - timedelta(hours=index)))
    half = stories // 2
    site.add("/sitemaps/part-1.xml", sitemap(items[:half]))
    site.add(
        "/sitemaps/part-2.xml.gz",
        gzip.compress(sitemap(items[half:]).encode()),
        content_type="application/gzip",
    )
    site.add(
        "/sitemap_index.xml",
        sitemap_index(
            [(site.url("/sitemaps/part-1.xml"), now), (site.url("/sitemaps/part-2.xml.gz"), now)]
        ),
    )
    site.add(
        "/news-sitemap.xml", sitemap(items[: half + 1], news=True), content_type="application/xml"
    )
    site.add("/world/", section_page([(item.url, item.title) for item in items[half - 1 :]]))
    return served
