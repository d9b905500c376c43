"""Metadata stage: an article's title, dates, authors and more from the page's structured
data first (schema.org JSON-LD, microdata and RDFa attributes, OpenGraph and the usual
meta tags), reconciled with trafilatura's findings.

The values were chosen on the tuning part of tests/fixtures/metadata (figures in the README).
JSON-LD is read with the json module and the rest with XPath on the tree the extract stage
parsed once: extruct would parse each syntax again (and bring rdflib, pyrdfa3, mf2py),
costing more than the +5 ms per page this stage may add.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from dateutil import parser as dateparser
from lxml.html import HtmlElement

# A page may be fetched a little before the clock of the server that dated it.
CLOCK_SKEW = timedelta(minutes=15)
# Earlier dates are mistakes (a CMS's zero date, an archive's "founded in") unless the
# article's structured data says so; even then none before this.
EARLIEST_PLAUSIBLE = datetime(1990, 1, 1, tzinfo=UTC)
EARLIEST_STRUCTURED = datetime(1900, 1, 1, tzinfo=UTC)

_ARTICLE_TYPES = frozenset(
    {
        "article",
        "newsarticle",
        "reportagenewsarticle",
        "analysisnewsarticle",
        "opinionnewsarticle",
        "backgroundnewsarticle",
        "reviewnewsarticle",
        "askpublicnewsarticle",
        "blogposting",
        "liveblogposting",
        "socialmediaposting",
        "techarticle",
        "report",
        "scholarlyarticle",
        "satiricalarticle",
        "advertisercontentarticle",
        "medicalscholarlyarticle",
    }
)
_PERSON_TYPES = frozenset({"person"})

# Meta tags by field, most trusted first (name=, property= or itemprop=).
_PUBLISHED_META = (
    "article:published_time",
    "og:article:published_time",
    "parsely-pub-date",
    "sailthru.date",
    "pubdate",
    "publishdate",
    "publish-date",
    "publish_date",
    "dc.date.issued",
    "dcterms.issued",
    "dcterms.created",
    "dc.date",
    "cxenseparse:recs:publishtime",
    "date",
)
_MODIFIED_META = (
    "article:modified_time",
    "og:article:modified_time",
    "og:updated_time",
    "dcterms.modified",
    "dc.date.modified",
    "last-modified",
)
_AUTHOR_META = (
    "parsely-author",
    "sailthru.author",
    "author",
    "article:author",
    "byl",
    "dc.creator",
    "dcterms.creator",
)
_SECTION_META = ("article:section", "parsely-section", "og:article:section")
_KEYWORD_META = ("news_keywords", "keywords", "parsely-tags", "sailthru.tags")
_TITLE_META = ("og:title", "twitter:title", "parsely-title", "sailthru.title", "dc.title")

_WRAPPER = re.compile(r"^\s*(?:<!--|//\s*<!\[CDATA\[)|(?://\s*\]\]>|-->)\s*$")
# Zone abbreviations seen in pages' free-form dates, as UTC offsets in seconds.
_ZONES = {
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "BST": 3600,
    "CET": 3600,
    "CEST": 7200,
    "EET": 7200,
    "EEST": 10800,
    "MSK": 10800,
    "IST": 19800,
    "JST": 32400,
    "EST": -18000,
    "EDT": -14400,
    "CST": -21600,
    "CDT": -18000,
    "MST": -25200,
    "MDT": -21600,
    "PST": -28800,
    "PDT": -25200,
}
_TITLE_SEPARATORS = re.compile(r"(\s+[|\-–—:·•»]+\s+)")
_EMAIL = re.compile(r"\S+@\S+\.\w+")
_HANDLE_OR_URL = re.compile(r"(?:https?://|www\.)\S+|@\w+")
_BY = re.compile(
    r"^(?:by|von|por|par|di|da|de|door|av|af|ved|text|texte|texto|текст|"
    r"autor|autore|auteur|author|written by|reporting by)\s*:?\s+",
    re.IGNORECASE,
)
# Conjunctions in lower case only: "Bruce Y. Lee" is one name.
_SPLIT_NAMES = re.compile(r"\s*(?:[,;&|/\n]|\b(?:and|And|AND|und|et|y|e|i|og)\b)\s*")
# "Jane Doe for The Mail on Sunday", "Jane Doe, Staff Writer": the affiliation goes.
_AFFILIATION = re.compile(r"\s+(?:for|For|für|pour|para|per)\s+.*$")
# Words that mark a byline part as a role, a desk or an organisation, not a person.
_NOT_A_PERSON = re.compile(
    r"\b(?:staff|writer|reporter|editor|editors|editorial|correspondent|contributor|columnist|"
    r"news|newsroom|desk|press|agency|associated|reuters|afp|apa|dpa|epa|ansa|efe|"
    r"wire|service|services|media|team|redaktion|redacción|redação|rédaction|online|digital|"
    r"sport|sports|business|magazine|times|post|daily|journal|tribune|herald|admin|"
    r"guest|opinion|photo|photos|video|updated|published|no author|anonymous|unknown|\d)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Metadata:
    title: str | None = None
    published_at: datetime | None = None
    published_at_source: str | None = None  # e.g. "json-ld", "meta:article:published_time"
    modified_at: datetime | None = None
    authors: list[str] = field(default_factory=list)
    section: str | None = None
    keywords: list[str] = field(default_factory=list)
    publisher: str | None = None
    is_paywalled: bool = False

    @property
    def has_time(self) -> bool:
        """A publication time of day from the page's own structured data or meta tags:
        then the costlier search of the whole page for a date is not needed."""
        return self.published_at is not None and not _is_day_only(self.published_at)


def from_structured_data(tree: HtmlElement, url: str, fetched_at: datetime) -> Metadata:
    """What the page declares about its article, before any text extraction."""
    article = _article_object(_json_ld_objects(tree), url)
    meta = _meta_tags(tree)
    published, source = _first_date(
        _date_candidates(tree, article, meta, ("datePublished", "dateCreated"), _PUBLISHED_META),
        fetched_at,
    )
    modified, _ = _first_date(
        _date_candidates(tree, article, meta, ("dateModified",), _MODIFIED_META), fetched_at
    )
    declared_modified = parse_date(article.get("dateModified"))
    if source == "json-ld" and published and declared_modified and declared_modified < published:
        # The article "modified" before it was published: the publication time is a later
        # re-publication in the CMS; the earlier one is what the page shows.
        published = declared_modified
    return Metadata(
        title=_title(tree, article, meta),
        published_at=published,
        published_at_source=source if published else None,
        modified_at=modified,
        authors=_authors(article, meta),
        section=_first_text(
            article.get("articleSection"), *(meta.get(name) for name in _SECTION_META)
        ),
        keywords=_keywords(article.get("keywords"), *(meta.get(n) for n in _KEYWORD_META)),
        publisher=_first_text(_name_of(article.get("publisher")), meta.get("og:site_name")),
        is_paywalled=_is_paywalled(article, meta),
    )


def reconcile(
    found: Metadata,
    *,
    title: str | None,
    author: str | None,
    date: str | None,
    sitename: str | None,
    fetched_at: datetime,
    entry_published_at: datetime | None,
) -> Metadata:
    """Fill what the structured data left open with trafilatura's findings (title, author,
    the date htmldate found in the page), then with the feed entry's date."""
    published, source = _first_date(
        [(found.published_at_source or "", found.published_at), ("htmldate", date)], fetched_at
    )
    if published is None and entry_published_at is not None:
        published, source = _sane(entry_published_at, fetched_at, EARLIEST_PLAUSIBLE), "feed"
    return Metadata(
        title=found.title or _strip_site_name(title, sitename),
        published_at=published,
        published_at_source=source if published else None,
        modified_at=found.modified_at,
        authors=found.authors or person_names([author] if author else []),
        section=found.section,
        keywords=found.keywords,
        publisher=found.publisher or sitename,
        is_paywalled=found.is_paywalled,
    )


# --- JSON-LD ---------------------------------------------------------------------------


def _json_ld_objects(tree: HtmlElement) -> Iterator[dict]:
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        # Some sites wrap the JSON in an HTML comment or a CDATA section.
        text = _WRAPPER.sub("", script.text or "")
        try:
            data = json.loads(text, strict=False)
        except ValueError:
            continue
        yield from _flatten(data)


def _flatten(data: object) -> Iterator[dict]:
    """Every object of a JSON-LD document: arrays, @graph and mainEntity opened."""
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    elif isinstance(data, dict):
        yield data
        for key in ("@graph", "mainEntity", "itemListElement"):
            if key in data:
                yield from _flatten(data[key])


def _types(obj: dict) -> set[str]:
    kinds = obj.get("@type", ())
    return {
        str(k).rsplit("/", 1)[-1].casefold()
        for k in (kinds if isinstance(kinds, list) else [kinds])
    }


def _article_object(objects: Iterable[dict], url: str) -> dict:
    """The page's own article: of an article type, the one naming this URL first, then the
    one with the most fields."""
    articles = [o for o in objects if _types(o) & _ARTICLE_TYPES]
    if not articles:
        return {}
    path = urlsplit(url).path.rstrip("/")

    def names_page(obj: dict) -> bool:
        entity = obj.get("mainEntityOfPage")
        ids = [
            obj.get("url"),
            entity
            if isinstance(entity, str)
            else (entity or {}).get("@id")
            if isinstance(entity, dict)
            else None,
        ]
        return any(isinstance(i, str) and path and _path(i) == path for i in ids)

    return max(articles, key=lambda o: (names_page(o), len(o)))


def _path(url: str) -> str | None:
    try:
        return urlsplit(url).path.rstrip("/")
    except ValueError:  # "http://[broken"
        return None


def _name_of(value: object) -> str | None:
    if isinstance(value, list):
        return next(filter(None, map(_name_of, value)), None)
    if isinstance(value, dict):
        name = value.get("name")
        return name.strip() if isinstance(name, str) and name.strip() else None
    return value.strip() if isinstance(value, str) and value.strip() else None


# --- meta tags and microdata -----------------------------------------------------------


def _meta_tags(tree: HtmlElement) -> dict[str, str]:
    """Each meta tag's first non-empty content, by lower-cased name, property or itemprop."""
    tags: dict[str, str] = {}
    for meta in tree.iter("meta"):
        content = (meta.get("content") or "").strip()
        if not content:
            continue
        for attr in ("property", "name", "itemprop"):
            key = (meta.get(attr) or "").strip().casefold()
            if key:
                tags.setdefault(key, content)
    return tags


def _itemprop(tree: HtmlElement, name: str) -> str | None:
    """A microdata (itemprop) or RDFa (property) value outside meta tags."""
    for element in tree.xpath(
        f'//*[@itemprop="{name}" or @property="{name}" or @property="schema:{name}"]'
    ):
        value = element.get("content") or element.get("datetime") or element.text_content()
        if value and value.strip():
            return value.strip()
    return None


# --- dates -----------------------------------------------------------------------------


def parse_date(value: object) -> datetime | None:
    """A date or time as written in a page: ISO 8601 and the common free forms. A value
    without a zone is taken as UTC, the best guess that stays comparable."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:  # "Tue Nov 19 2019 03:05:46 GMT+0000 (UTC)", "19 Nov 2019 07:09 GMT"
            parsed = dateparser.parse(
                re.sub(r"\s*\(.*\)$", "", text).replace("GMT+", "+"), tzinfos=_ZONES
            )
        except (ValueError, OverflowError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _sane(value: datetime | None, fetched_at: datetime, earliest: datetime) -> datetime | None:
    if value is None or value > fetched_at + CLOCK_SKEW or value < earliest:
        return None
    return value


def _date_candidates(
    tree: HtmlElement,
    article: dict,
    meta: dict[str, str],
    properties: tuple[str, ...],
    meta_names: tuple[str, ...],
) -> Iterator[tuple[str, object]]:
    """(source, value) in order of trust; microdata last, searched only when needed."""
    for name in properties:
        yield "json-ld", article.get(name)
    for name in meta_names:
        yield f"meta:{name}", meta.get(name)
    yield "microdata", _itemprop(tree, properties[0])


def _first_date(
    candidates: Iterable[tuple[str, object]], fetched_at: datetime
) -> tuple[datetime | None, str | None]:
    """The first sane date; a day without a time of day gives way to a later candidate
    that has one on the same day."""
    found: list[tuple[datetime, str]] = []
    for source, value in candidates:
        earliest = EARLIEST_STRUCTURED if source in ("json-ld", "microdata") else EARLIEST_PLAUSIBLE
        parsed = _sane(parse_date(value), fetched_at, earliest)
        if parsed is not None:
            found.append((parsed, source))
            if not _is_day_only(found[0][0]):
                break  # a time of day: the later candidates cannot change the answer
    if not found:
        return None, None
    first, source = found[0]
    if _is_day_only(first):
        for other, other_source in found[1:]:
            if not _is_day_only(other) and abs(other.date() - first.date()) <= timedelta(days=1):
                return other, other_source
    return first, source


def _is_day_only(value: datetime) -> bool:
    return (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0)


# --- title -----------------------------------------------------------------------------


def _title(tree: HtmlElement, article: dict, meta: dict[str, str]) -> str | None:
    """The headline as the page shows it: an <h1> that agrees with a declared title (or
    the declared title, when the <h1> adds a kicker to it), else the page's only <h1>
    unless it is the site's name, else the declared headline without the site's name."""
    site = _first_text(_name_of(article.get("publisher")), meta.get("og:site_name"))
    page_title = _first_text(*tree.xpath("//head/title/text()"))
    declared = [
        d
        for t in (
            _first_text(article.get("headline"), article.get("name")),
            *(meta.get(name) for name in _TITLE_META),
            page_title,
        )
        if (d := _strip_site_name(t, site))
    ]
    headings = [
        h
        for element in tree.iter("h1")
        if (h := _strip_site_name(" ".join(element.text_content().split()), site))
    ]
    for heading in headings:
        for title in declared:
            if _similar(heading, title):
                return title if fold(title) in fold(heading) else heading
    # Parts of the <title> that are not its headline name the site or the section.
    site_parts = {fold(p) for p in _TITLE_SEPARATORS.split(page_title or "")[2::2]}
    site_parts |= {fold(site or "")}
    if len(headings) == 1 and len(headings[0].split()) >= 3 and fold(headings[0]) not in site_parts:
        return headings[0]
    return declared[0] if declared else None


def fold(text: str) -> str:
    return " ".join(text.casefold().split())


def _similar(a: str, b: str) -> bool:
    words_a, words_b = set(re.findall(r"\w+", a.casefold())), set(re.findall(r"\w+", b.casefold()))
    return bool(words_a) and len(words_a & words_b) / len(words_a | words_b) >= 0.6


def _strip_site_name(title: str | None, site: str | None) -> str | None:
    """ "Headline | Section | Site" and "Site - Headline" to "Headline": a part at either
    end goes when it is the site's name or short beside a longer rest."""
    if not title:
        return None
    pieces = _TITLE_SEPARATORS.split(" ".join(title.split()))  # parts and separators
    site_words = set(re.findall(r"\w+", (site or "").casefold()))

    def is_label(part: str, rest: list[str]) -> bool:
        words = set(re.findall(r"\w+", part.casefold()))
        return bool(site_words and words and words <= site_words) or (
            len(part.split()) <= 3 and any(len(r.split()) > len(part.split()) for r in rest)
        )

    while len(pieces) > 1:
        if is_label(pieces[-1], pieces[:-1:2]):
            pieces = pieces[:-2]
        elif is_label(pieces[0], pieces[2::2]):
            pieces = pieces[2:]
        else:
            break
    return "".join(pieces).strip() or None


# --- authors ---------------------------------------------------------------------------


def _authors(article: dict, meta: dict[str, str]) -> list[str]:
    """The article's Person authors in its JSON-LD, else the meta tags' bylines."""
    declared = article.get("author") or article.get("creator")
    people = [
        _name_of(a)
        for a in (declared if isinstance(declared, list) else [declared])
        if a and not (isinstance(a, dict) and _types(a) - _PERSON_TYPES)
    ]
    bylines = [
        v
        for v in (meta.get(n) for n in _AUTHOR_META)
        if v and not v.startswith(("http://", "https://"))
    ]  # article:author as a URL
    return person_names(p for p in people if p) or person_names(bylines)


def person_names(bylines: Iterable[str]) -> list[str]:
    """Person names from bylines: split, without "By", roles, e-mail addresses, handles and
    agency or desk names; once each, in order."""
    names: dict[str, str] = {}
    for byline in bylines:
        cleaned = _HANDLE_OR_URL.sub(" ", _EMAIL.sub(" ", byline))
        for part in _SPLIT_NAMES.split(cleaned):
            name = _AFFILIATION.sub("", _BY.sub("", " ".join(part.split()))).strip(" :-–—|")
            if _is_person_name(name):
                names.setdefault(name.casefold(), name.title() if name.isupper() else name)
    return list(names.values())


def _is_person_name(name: str) -> bool:
    words = name.split()
    if not 2 <= len(words) <= 5 or _NOT_A_PERSON.search(name):
        return False
    # Names are capitalised (where the script has case) and made of letters.
    return all(w[0].isupper() or not w[0].isalpha() or (w.islower() and len(w) <= 3) for w in words)


# --- the rest --------------------------------------------------------------------------


def _first_text(*values: object) -> str | None:
    for value in values:
        first = (value[0] if value else None) if isinstance(value, list) else value
        if isinstance(first, str) and first.strip():
            return " ".join(first.split())
    return None


def _keywords(*values: object) -> list[str]:
    seen: dict[str, str] = {}
    for value in values:
        items = value if isinstance(value, list) else str(value or "").split(",")
        for item in items:
            word = " ".join(item.split()) if isinstance(item, str) else ""
            if word and word.casefold() not in seen:
                seen[word.casefold()] = word
        if seen:  # the first source that has keywords
            break
    return list(seen.values())


def _is_paywalled(article: dict, meta: dict[str, str]) -> bool:
    parts = article.get("hasPart")
    declared = [article.get("isAccessibleForFree")] + [
        p.get("isAccessibleForFree")
        for p in (parts if isinstance(parts, list) else [parts])
        if isinstance(p, dict)
    ]
    if any(str(v).casefold() == "false" for v in declared if v is not None):
        return True
    tier = meta.get("article:content_tier", "").casefold()
    return tier in ("locked", "metered") or meta.get("paywall", "").casefold() in ("true", "1")
