"""Read one source document of any kind into entries: RSS 0.9x/1.0/2.0, Atom and RDF
(feedparser), JSON Feed 1.0/1.1, XML sitemaps, sitemap indexes, Google News sitemaps
(lxml iterparse: no tree is built, so memory stays flat) and HTML section pages.

Pure parsing: no HTTP, no database. What a document leaves out (bad dates, URLs over
the cap, a cut-short document) is counted in `Notes`, which ends up on the feed row.
"""

from __future__ import annotations

import calendar
import io
import json
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urldefrag, urljoin, urlsplit

import feedparser
from lxml import etree
from lxml import html as lxml_html

from newsloom.errors import Permanent

SITEMAP_KINDS = ("sitemap", "news_sitemap", "sitemap_index")
# The spec's version URL; some producers (and gofeed's tests) write the bare number.
_JSON_FEED_VERSION = re.compile(r"^(?:https?://jsonfeed\.org/version/)?1(?:\.([01]))?/?$")
GZIP_MAGIC = b"\x1f\x8b"


class FeedEntry(NamedTuple):
    url: str
    published_at: datetime | None
    updated_at: datetime | None  # the entry's last update, else its publication
    title: str | None = None


class ChildSitemap(NamedTuple):
    url: str
    lastmod: datetime | None


class Notes(Counter[str]):
    """What a poll left out, by reason: `other_host=3, bad_date=1`."""

    def describe(self) -> str | None:
        return ", ".join(f"{reason}={count}" for reason, count in sorted(self.items())) or None


@dataclass
class Document:
    kind: str  # rss20, atom10, rss10, json11, sitemap, news_sitemap, sitemap_index, page...
    entries: list[FeedEntry] = field(default_factory=list)
    children: list[ChildSitemap] = field(default_factory=list)  # a sitemap index's sitemaps
    rejected_links: int = 0  # entries whose link is missing or not http(s)
    ttl_seconds: float | None = None
    notes: Notes = field(default_factory=Notes)
    title: str | None = None  # the feed's own title


def ungzip(body: bytes, max_bytes: int) -> bytes:
    """The body inflated when it is gzip (a .xml.gz served as such), capped at `max_bytes`."""
    if not body.startswith(GZIP_MAGIC):
        return body
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise Permanent("bad_gzip", str(exc)) from None
    if len(inflated) > max_bytes:
        raise Permanent("too_large", f"more than {max_bytes} bytes once inflated")
    if not inflater.eof:
        raise Permanent(
            "truncated_gzip", f"the gzip stream stops after {len(body)} bytes, before its end"
        )
    return inflated


def sniff(body: bytes) -> str:
    """What the document is: json, sitemap, sitemap_index, html, or xml (a feed, maybe)."""
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] == b"{":
        return "json"
    root = _xml_root(body)
    if root in ("urlset", "sitemapindex"):
        return "sitemap_index" if root == "sitemapindex" else "sitemap"
    lowered = head[:512].lower()
    if root == "html" or (root is None and (b"<html" in lowered or b"<!doctype html" in lowered)):
        return "html"
    return "xml"


def _xml_root(body: bytes) -> str | None:
    try:
        for _, elem in etree.iterparse(
            io.BytesIO(body), events=("start",), resolve_entities=False, no_network=True
        ):
            return etree.QName(elem).localname.lower()
    except etree.XMLSyntaxError:
        return None
    return None


# --- RSS, Atom, RDF ---------------------------------------------------------------------


def parse_feed(body: bytes, url: str, content_type: str = "") -> Document:
    parsed = feedparser.parse(
        body, response_headers={"content-type": content_type, "content-location": url}
    )
    if not parsed.get("version"):
        raise Permanent("not_a_feed", "no RSS, Atom, JSON Feed or sitemap document")
    problem = parsed.get("bozo_exception")
    if parsed.bozo and not parsed.entries and not isinstance(problem, _HARMLESS):
        # A feed cut short still yields what parsed before the break; nothing did here.
        raise Permanent("malformed_feed", str(problem or "")[:300])
    doc = Document(parsed.version, ttl_seconds=_ttl(parsed), title=parsed.feed.get("title"))
    for entry in parsed.entries:
        # FeedBurner's origLink is the article; `link` is its click-counting redirect.
        # feedparser already falls back to a permalink guid and resolves xml:base.
        link = absolute_link(entry.get("feedburner_origlink") or entry.get("link"), url)
        if link is None:
            doc.rejected_links += 1
            continue
        for key in ("published", "updated"):
            if key in entry and entry[key] and not entry.get(f"{key}_parsed"):
                doc.notes["bad_date"] += 1
        doc.entries.append(
            FeedEntry(
                link,
                _struct_date(entry, "published_parsed", "updated_parsed"),
                _struct_date(entry, "updated_parsed", "published_parsed"),
                (entry.get("title") or "").strip() or None,
            )
        )
    return doc


# A served type that is not XML's, a charset declared wrong: the document still parsed.
_HARMLESS = (feedparser.NonXMLContentType, feedparser.CharacterEncodingOverride)


def _struct_date(entry: Any, *keys: str) -> datetime | None:
    """The first of `keys` the entry has. (`in` first: feedparser's get() of a missing
    updated_parsed answers published_parsed, with a deprecation warning.)"""
    struct = next((entry[key] for key in keys if entry.get(key)), None)
    if not struct:
        return None
    return datetime.fromtimestamp(calendar.timegm(struct), tz=UTC)


def _ttl(parsed: Any) -> float | None:
    ttl = parsed.feed.get("ttl")
    try:
        return float(ttl) * 60 if ttl else None
    except ValueError:
        return None


# --- JSON Feed --------------------------------------------------------------------------


def parse_json_feed(body: bytes, url: str) -> Document:
    try:
        feed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Permanent("malformed_feed", f"invalid JSON: {exc}"[:300]) from None
    version = _JSON_FEED_VERSION.match(str(feed.get("version"))) if isinstance(feed, dict) else None
    if version is None:
        raise Permanent("not_a_feed", "JSON without a JSON Feed version")
    items = feed.get("items")
    title = feed.get("title")
    doc = Document(
        "json1" + (version.group(1) or "0"), title=title if isinstance(title, str) else None
    )
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            doc.rejected_links += 1
            continue
        # `url` is the item's permalink; `external_url` the page a link post points at;
        # an `id` may be the permalink too.
        link = (
            absolute_link(item.get("url"), url)
            or absolute_link(item.get("external_url"), url)
            or _absolute_id(item.get("id"))
        )
        if link is None:
            doc.rejected_links += 1
            continue
        published = w3c_date(item.get("date_published"), doc.notes)
        updated = w3c_date(item.get("date_modified"), doc.notes)
        title = item.get("title")
        doc.entries.append(
            FeedEntry(
                link,
                published or updated,
                updated or published,
                title.strip() or None if isinstance(title, str) else None,
            )
        )
    return doc


def _absolute_id(value: object) -> str | None:
    """An item id that is itself an absolute URL (ids are often just numbers)."""
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return absolute_link(value, value)
    return None


# --- sitemaps ---------------------------------------------------------------------------


def parse_sitemap(body: bytes, url: str, max_urls: int) -> Document:
    """A sitemap, a Google News sitemap or a sitemap index, read element by element.

    Past `max_urls` entries the rest are only counted (`too_many_urls`). A document cut
    short keeps what parsed before the break (`cut_short`).
    """
    doc = Document("sitemap")
    listed = 0
    items = etree.iterparse(
        io.BytesIO(body),
        events=("end",),
        tag=("{*}url", "{*}sitemap"),
        resolve_entities=False,
        no_network=True,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        for _, elem in items:
            listed += 1
            if listed <= max_urls:
                _sitemap_item(elem, url, doc)
            # Drop what was read, so memory stays flat however long the document is.
            elem.clear()
            while elem.getprevious() is not None:
                del elem.getparent()[0]
    except etree.XMLSyntaxError as exc:
        if not listed:
            raise Permanent("malformed_sitemap", str(exc)[:300]) from None
        doc.notes["cut_short"] += 1
    if listed > max_urls:
        doc.notes["too_many_urls"] += listed - max_urls
    return doc


def _sitemap_item(elem: Any, url: str, doc: Document) -> None:
    values: dict[str, str] = {}
    for child in elem:
        name = _local_name(child)
        if name == "news":  # <news:news><news:publication_date>, <news:title>
            doc.kind = "news_sitemap"
            for item in child:
                values[f"news_{_local_name(item)}"] = (item.text or "").strip()
        elif name in ("loc", "lastmod"):  # direct children only: image:loc is not the page
            values[name] = (child.text or "").strip()
    link = absolute_link(values.get("loc"), url)
    if link is None:
        doc.rejected_links += 1
        return
    lastmod = w3c_date(values.get("lastmod"), doc.notes)
    if _local_name(elem) == "sitemap":
        doc.kind = "sitemap_index"
        doc.children.append(ChildSitemap(link, lastmod))
        return
    published = w3c_date(values.get("news_publication_date"), doc.notes) or lastmod
    # updated_at stays empty: a sitemap's lastmod changes with comments and ads, and a
    # URL in the ledger is not fetched again for it.
    doc.entries.append(FeedEntry(link, published, None, values.get("news_title") or None))


def _local_name(elem: Any) -> str:
    """The tag without its namespace ('' for entities and other non-elements)."""
    return elem.tag.rpartition("}")[2] if isinstance(elem.tag, str) else ""


def w3c_date(value: object, notes: Notes) -> datetime | None:
    """A W3C datetime (2026-11-29, 2026-11-29T10:00Z, ...) in UTC; None, counted as
    `bad_date`, when malformed."""
    if not value:
        return None
    text = str(value).strip()
    if len(text) in (4, 7):  # YYYY and YYYY-MM are valid W3C dates
        text = (text + "-01-01")[:10]
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        notes["bad_date"] += 1
        return None
    if when.tzinfo is None:  # a date alone, or a time without a zone: taken as UTC
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


# --- section pages ----------------------------------------------------------------------


def parse_page(body: bytes, url: str) -> Document:
    """Every link of an HTML page, absolute (against <base href> and the page's URL)."""
    try:
        tree = lxml_html.fromstring(body)
    except (ValueError, etree.ParserError) as exc:
        raise Permanent("not_a_page", str(exc)[:300]) from None
    base = urljoin(url, (tree.xpath("string(//base/@href)") or "").strip())
    doc = Document("page")
    for anchor in tree.iter("a"):
        link = absolute_link(anchor.get("href"), base)
        if link is not None:
            title = " ".join(anchor.text_content().split())[:300]
            doc.entries.append(FeedEntry(urldefrag(link).url, None, None, title or None))
    return doc


def absolute_link(value: object, base: str) -> str | None:
    """`value` as an absolute http(s) URL against `base`; None if it cannot be one."""
    if not isinstance(value, str) or not value.strip():
        return None
    link = value.strip()
    if not link.startswith(("http://", "https://")):  # urljoin is slow; most are absolute
        link = urljoin(base, link)
    try:
        parts = urlsplit(link)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in link:
        return None
    return link
