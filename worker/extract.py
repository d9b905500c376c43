"""Extract stage: article text and metadata from HTML with trafilatura.

The settings were chosen on the evaluation set in tests/fixtures/extraction (figures in
the README): comments left out and trafilatura's precision mode, which drops more of the
page around the article; a headline repeated as the text's first line is removed. When
precision mode finds too little (it drops link-heavy paragraphs), recall mode is tried.
The page is parsed once; the metadata stage (worker/metadata.py) reads the same tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import py3langid
import trafilatura
from lxml.html import HtmlElement
from trafilatura.settings import Document
from trafilatura.utils import load_html

from newsloom.errors import Permanent
from newsloom.worker import metadata

# The metadata stage's version is part of it, so `newsloom reprocess` fills what it adds.
METADATA_VERSION = 2
EXTRACTOR = f"trafilatura {trafilatura.__version__}; metadata {METADATA_VERSION}"
# Keep the time of day and the zone when the page gives them (the default keeps the day only).
_DATE_PARAMS = {
    "original_date": True,
    "extensive_search": True,
    "outputformat": "%Y-%m-%dT%H:%M:%S%z",
}
# When the structured data dates the article, htmldate's search of the whole page is skipped.
_QUICK_DATE_PARAMS = {**_DATE_PARAMS, "extensive_search": False}


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
    date_params = _QUICK_DATE_PARAMS if found.has_time else _DATE_PARAMS
    doc, text = _extract_text(tree, url, date_params, favor_precision=True)
    if len(text) < min_chars:  # empty or implausibly short: the fallback
        # trafilatura copies the tree it is given, so the parsed tree serves again.
        doc, text = _extract_text(tree, url, date_params, favor_recall=True)
    if doc is None or len(text) < min_chars:
        raise Permanent("no_text", f"{len(text)} characters of article text")
    meta = metadata.reconcile(
        found,
        title=doc.title,
        author=doc.author,
        date=doc.date,
        sitename=doc.sitename,
        fetched_at=fetched_at,
        entry_published_at=entry_published_at,
    )
    return Extracted(
        title=meta.title,
        author=", ".join(meta.authors) or doc.author,
        authors=meta.authors,
        published_at=meta.published_at,
        published_at_source=meta.published_at_source,
        modified_at=meta.modified_at,
        language=py3langid.classify(text)[0],
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


def _extract_text(
    tree: HtmlElement,
    url: str,
    date_params: dict[str, object],
    *,
    favor_precision: bool = False,
    favor_recall: bool = False,
) -> tuple[Document | None, str]:
    """(trafilatura's document, its text)."""
    doc = trafilatura.bare_extraction(
        tree,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        date_extraction_params=date_params,
        favor_precision=favor_precision,
        favor_recall=favor_recall,
    )
    assert not isinstance(doc, dict)  # as_dict=False
    if doc is None or not doc.text:
        return doc, ""
    return doc, _without_headline(doc.text, doc.title)


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
