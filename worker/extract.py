"""Extract stage: article text and metadata from HTML with trafilatura.

The settings were chosen on the evaluation set in tests/fixtures/extraction (figures in
the README): comments left out and trafilatura's precision mode, which drops more of the
page around the article; a headline repeated as the text's first line is removed. When
precision mode finds too little (it drops link-heavy paragraphs), recall mode is tried.
The page is parsed once; the metadata stage (worker/metadata.py) and trafilatura read the
same tree, and each costly search runs only when its answer can be used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import py3langid
import trafilatura
from htmldate import find_date
from lxml.html import HtmlElement
from trafilatura import metadata as tmeta
from trafilatura.external import SANITIZED_XPATH
from trafilatura.settings import Document
from trafilatura.utils import load_html

from newsloom import log
from newsloom.errors import Permanent
from newsloom.worker import metadata

logger = log.get_logger(__name__)

# The metadata stage's version is part of it, so `newsloom reprocess` fills what it adds.
METADATA_VERSION = 4
EXTRACTOR = f"trafilatura {trafilatura.__version__}; metadata {METADATA_VERSION}"
# Keep the time of day and the zone when the page gives them (the default keeps the day only).
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
# trafilatura compares its text with readability's and jusText's (unless `fast`), which
# costs as much as the extraction. They can replace a text this long, in paragraphs and
# not flagged as unclean, only when readability finds twice as much: then the comparison
# is skipped. That changed the text of 2 of the 120 pages of our evaluation sets and of 10
# of trafilatura's 990, as often for the better as for the worse (README, Quality).
COMPARISON_SKIP_CHARS = 1000
# A precision-mode text this short may be a notice or teaser that won over the article
# (a reprint notice on barrons.com): recall mode's text replaces it when RECALL_FACTOR
# times as long. On Zyte's 181 pages only that page qualifies (260 -> 3,267 characters;
# the next is 1.6 times).
SHORT_TEXT_CHARS = 500
RECALL_FACTOR = 3
# py3langid's cost grows with the text: it reads this many characters, in four pieces
# spread over a longer text. On 1,168 evaluation texts (README) that found the language of
# the whole text but once, on a page mixing German and Greek.
LANGUAGE_SAMPLE_CHARS = 2000


@dataclass(frozen=True)
class Extracted:
    title: str | None
    author: str | None  # the authors joined, else trafilatura's byline (compatibility)
    authors: list[str]  # person names
    published_at: datetime | None
    published_at_source: str | None  # where the date came from: json-ld, meta:NAME, ...
    modified_at: datetime | None
    language: str | None
    text: str
    site_name: str | None
    description: str | None
    image_url: str | None
    tags: list[str]  # the page's tags and categories, in order, once each
    declared_url: str | None  # rel=canonical, else og:url, as written in the page
    section: str | None
    keywords: list[str]
    publisher: str | None
    is_paywalled: bool


def extract(
    html: bytes | str,
    url: str,
    min_chars: int = 200,
    *,
    fetched_at: datetime | None = None,
    entry_published_at: datetime | None = None,
) -> Extracted:
    """`fetched_at` bounds the publication date (now if None); the feed or sitemap entry's
    date is the fallback when the page has none."""
    tree = load_html(html)
    if tree is None:
        raise Permanent("no_text", "unparseable HTML")
    fetched_at = fetched_at or datetime.now(UTC)
    declared_url = _declared_url(tree)
    found = metadata.from_structured_data(tree, url, fetched_at)
    doc = _trafilatura_metadata(tree, url, found)
    text = _article_text(tree, url, doc.title, min_chars)
    if not text or len(text) < min_chars:
        raise Permanent("no_text", f"{len(text)} characters of article text")
    language = _language(text)
    page_zone = metadata.site_zone(url, language)
    meta = metadata.reconcile(
        found,
        title=doc.title,
        author=doc.author,
        date=doc.date,
        sitename=doc.sitename,
        fetched_at=fetched_at,
        entry_published_at=entry_published_at,
        text=text,
        page_zone=page_zone,
    )
    meta = metadata.with_time_shown(meta, tree, page_zone)
    return Extracted(
        title=meta.title,
        author=", ".join(meta.authors) or doc.author,
        authors=meta.authors,
        published_at=meta.published_at,
        published_at_source=meta.published_at_source,
        modified_at=meta.modified_at,
        language=language,
        text=_without_headline(text, meta.title, doc.title),
        site_name=doc.sitename,
        description=doc.description,
        image_url=doc.image,
        tags=_tags(doc.categories, doc.tags),
        declared_url=declared_url,
        section=meta.section,
        keywords=meta.keywords,
        publisher=meta.publisher,
        is_paywalled=meta.is_paywalled,
    )


def _trafilatura_metadata(tree: HtmlElement, url: str, found: metadata.Metadata) -> Document:
    """trafilatura's metadata (its extract_metadata, step for step) without the searches
    whose answer would go unused: htmldate's search of the page when the structured data
    gives a time of day, the byline search when it names the authors, the licence. Those
    searches cost more than the text extraction on heavy pages."""
    doc = tmeta.examine_meta(tree)
    if doc.author and " " not in doc.author:
        doc.author = None
    try:
        doc = tmeta.extract_meta_json(tree, doc)
    except Exception:  # trafilatura guards its JSON-LD reading the same way
        logger.debug("trafilatura's JSON-LD reading failed", exc_info=True)
    doc.title = doc.title or tmeta.extract_title(tree)
    if not doc.author and not found.authors:
        doc.author = tmeta.extract_author(tree)
    doc.url = doc.url or tmeta.extract_url(tree, url)
    if not found.has_time:
        # A day in the structured data: only a time of day is looked for, in the markup.
        extensive = found.published_at is None
        doc.date = find_date(
            tree,
            url=doc.url,
            extensive_search=extensive,
            original_date=True,
            outputformat=_DATE_FORMAT,
        )
    doc.sitename = doc.sitename or tmeta.extract_sitename(tree)
    if doc.sitename:
        doc.sitename = doc.sitename.lstrip("@")
        if doc.sitename and "." not in doc.sitename and not doc.sitename[0].isupper():
            doc.sitename = doc.sitename.title()
    elif doc.url and (host := tmeta.META_URL.match(doc.url)):
        doc.sitename = host[1]
    doc.categories = doc.categories or tmeta.extract_catstags("category", tree)
    doc.tags = doc.tags or tmeta.extract_catstags("tag", tree)
    doc.clean_and_trim()
    return doc


def _article_text(tree: HtmlElement, url: str, title: str | None, min_chars: int) -> str:
    """The article's text without a first line repeating `title`: precision mode, first
    without the comparison when that cannot matter; recall mode when precision mode finds
    less than `min_chars` (it drops link-heavy paragraphs), or a short text that recall
    mode finds RECALL_FACTOR times as long."""
    text, body = _trafilatura_text(tree, url, fast=True, favor_precision=True)
    if body is None or not _comparison_cannot_matter(text, body):
        text, _ = _trafilatura_text(tree, url, favor_precision=True)
        found = len(_without_headline(text, title))
        if found < max(min_chars, SHORT_TEXT_CHARS):
            recall, _ = _trafilatura_text(tree, url, favor_recall=True)
            if found < min_chars or len(recall) >= RECALL_FACTOR * len(text):
                text = recall
    return _without_headline(text, title)


def _trafilatura_text(
    tree: HtmlElement,
    url: str,
    *,
    fast: bool = False,
    favor_precision: bool = False,
    favor_recall: bool = False,
) -> tuple[str, Any]:
    """trafilatura's text of the page without comments, and its body element (None when
    it found nothing). It works on a copy of the tree: the parsed tree serves again."""
    doc = trafilatura.bare_extraction(
        tree,
        url=url,
        fast=fast,
        favor_precision=favor_precision,
        favor_recall=favor_recall,
        include_comments=False,
        include_tables=True,
    )
    assert not isinstance(doc, dict)  # as_dict=False
    return (doc.text or "", doc.body) if doc is not None else ("", None)


def _comparison_cannot_matter(text: str, body: Any) -> bool:
    """True when trafilatura keeps this text against readability's and jusText's unless
    readability's is twice as long (its own conditions; see COMPARISON_SKIP_CHARS)."""
    return (
        len(text) >= COMPARISON_SKIP_CHARS
        and bool(body.xpath(".//p//text()"))
        and len(body.findall(".//table")) <= len(body.findall(".//p"))
        and not body.xpath(SANITIZED_XPATH)
    )


def _language(text: str) -> str:
    if len(text) > LANGUAGE_SAMPLE_CHARS:
        piece = LANGUAGE_SAMPLE_CHARS // 4
        step = (len(text) - piece) // 3
        text = "\n".join(text[i * step : i * step + piece] for i in range(4))
    return py3langid.classify(text)[0]


def _without_headline(text: str, *titles: str | None) -> str:
    """The text without a first line that repeats the headline."""
    lines = text.strip().split("\n")
    if any(t and lines[0].strip().casefold() == t.strip().casefold() for t in titles):
        lines = lines[1:]
    return "\n".join(lines).strip()


def _tags(*lists: list[str] | None) -> list[str]:
    seen = {}
    for tag in (t.strip() for values in lists for t in values or ()):
        if tag and tag.casefold() not in seen:
            seen[tag.casefold()] = tag
    return list(seen.values())


def _declared_url(tree) -> str | None:
    for xpath in ('//link[@rel="canonical"]/@href', '//meta[@property="og:url"]/@content'):
        values = [v.strip() for v in tree.xpath(xpath) if v.strip()]
        if values:
            return values[0]
    return None
