"""Extract stage: article text and metadata from HTML with trafilatura.

The settings were chosen on the evaluation set in tests/fixtures/extraction (figures in
the README): comments left out and trafilatura's precision mode, which drops more of the
page around the article; a headline repeated as the text's first line is removed. When
precision mode finds too little (it drops link-heavy paragraphs), recall mode is tried.
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

EXTRACTOR = f"trafilatura {trafilatura.__version__}"
# Keep the time of day and the zone when the page gives them (the default keeps the day only).
_DATE_PARAMS = {"original_date": True, "extensive_search": True,
                "outputformat": "%Y-%m-%dT%H:%M:%S%z"}


@dataclass(frozen=True)
class Extracted:
    title: str | None
    author: str | None
    published_at: datetime | None
    language: str | None
    text: str
    site_name: str | None
    description: str | None
    image_url: str | None
    tags: list[str]           # the page's tags and categories, in order, once each
    declared_url: str | None  # rel=canonical, else og:url, as written in the page


def extract(html: bytes | str, url: str, min_chars: int = 200) -> Extracted:
    tree = load_html(html)
    if tree is None:
        raise Permanent("no_text", "unparseable HTML")
    declared_url = _declared_url(tree)
    doc, text = _extract_text(tree, url, favor_precision=True)
    if len(text) < min_chars:  # empty or implausibly short: the fallback
        doc, text = _extract_text(tree, url, favor_recall=True)  # trafilatura copies the tree
    if doc is None or len(text) < min_chars:
        raise Permanent("no_text", f"{len(text)} characters of article text")
    return Extracted(
        title=doc.title, author=doc.author, published_at=_parse_date(doc.date),
        language=py3langid.classify(text)[0], text=text, site_name=doc.sitename,
        description=doc.description, image_url=doc.image,
        tags=_tags(doc.categories, doc.tags), declared_url=declared_url)


def _extract_text(tree: HtmlElement, url: str, *, favor_precision: bool = False,
                  favor_recall: bool = False) -> tuple[Document | None, str]:
    """(trafilatura's document, its text without a leading copy of the headline)."""
    doc = trafilatura.bare_extraction(
        tree, url=url, with_metadata=True, include_comments=False, include_tables=True,
        date_extraction_params=_DATE_PARAMS, favor_precision=favor_precision,
        favor_recall=favor_recall)
    assert not isinstance(doc, dict)  # as_dict=False
    if doc is None or not doc.text:
        return doc, ""
    lines = doc.text.strip().split("\n")
    if doc.title and lines[0].strip().casefold() == doc.title.strip().casefold():
        lines = lines[1:]
    return doc, "\n".join(lines).strip()


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


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # A page date without a zone is taken as UTC: the best guess that stays comparable.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
