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
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from urllib.parse import unquote, urlsplit

from dateutil import parser as dateparser
from dateutil import tz
from lxml.etree import XPath
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
# The time zone of countries that have one, by their domain: a time of day a page shows
# without a zone is the site's local time (countries of several zones are left out).
_COUNTRY_ZONE_NAMES = """
at=Europe/Vienna ba=Europe/Sarajevo be=Europe/Brussels bg=Europe/Sofia ch=Europe/Zurich
cz=Europe/Prague de=Europe/Berlin dk=Europe/Copenhagen ee=Europe/Tallinn
fi=Europe/Helsinki fr=Europe/Paris gr=Europe/Athens hr=Europe/Zagreb hu=Europe/Budapest
ie=Europe/Dublin it=Europe/Rome lt=Europe/Vilnius lu=Europe/Luxembourg lv=Europe/Riga
nl=Europe/Amsterdam no=Europe/Oslo pl=Europe/Warsaw ro=Europe/Bucharest
rs=Europe/Belgrade se=Europe/Stockholm si=Europe/Ljubljana sk=Europe/Bratislava
tr=Europe/Istanbul ua=Europe/Kiev uk=Europe/London eg=Africa/Cairo ke=Africa/Nairobi
ng=Africa/Lagos za=Africa/Johannesburg bd=Asia/Dhaka cn=Asia/Shanghai hk=Asia/Hong_Kong
il=Asia/Jerusalem in=Asia/Kolkata jp=Asia/Tokyo kr=Asia/Seoul my=Asia/Kuala_Lumpur
ph=Asia/Manila pk=Asia/Karachi sg=Asia/Singapore th=Asia/Bangkok tw=Asia/Taipei
vn=Asia/Ho_Chi_Minh nz=Pacific/Auckland ar=America/Argentina/Buenos_Aires
cl=America/Santiago co=America/Bogota pe=America/Lima uy=America/Montevideo
ve=America/Caracas
"""
_COUNTRY_ZONES = dict(pair.split("=") for pair in _COUNTRY_ZONE_NAMES.split())
# Languages written in countries that share one time zone (zh: China, Taiwan, Hong Kong,
# Singapore are all UTC+8; de: Germany, Austria, Switzerland).
_LANGUAGE_ZONE_NAMES = """
zh=Asia/Shanghai ja=Asia/Tokyo ko=Asia/Seoul th=Asia/Bangkok vi=Asia/Ho_Chi_Minh
he=Asia/Jerusalem tr=Europe/Istanbul uk=Europe/Kiev de=Europe/Berlin it=Europe/Rome
nl=Europe/Amsterdam pl=Europe/Warsaw cs=Europe/Prague sk=Europe/Bratislava
hu=Europe/Budapest sl=Europe/Ljubljana hr=Europe/Zagreb ro=Europe/Bucharest
bg=Europe/Sofia el=Europe/Athens fi=Europe/Helsinki sv=Europe/Stockholm
da=Europe/Copenhagen no=Europe/Oslo nb=Europe/Oslo lt=Europe/Vilnius lv=Europe/Riga
et=Europe/Tallinn
"""
_LANGUAGE_ZONES = dict(pair.split("=") for pair in _LANGUAGE_ZONE_NAMES.split())
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
# "By", "Text:", also after a word or two ("Analysis by", "Reporting by", "Posted by"), and
# alone ("Posted By:" in an element of its own before the name's); the CJK marks "作者：",
# "记者" before a name without a space.
_BY = re.compile(
    r"^(?:(?:(?:\w+\s+){0,2}by|von|por|par|di|da|de|door|av|af|ved|text|texte|texto|текст|"
    r"autor|autore|auteur|author|geschrieben von)\s*:?(?:\s+|$)|"
    r"(?:作者|记者|記者|撰稿)\s*[:：]?\s*)",
    re.IGNORECASE,
)
# A role or an agency after a name, without punctuation between ("Narayana Kocherlakota
# Bloomberg", "류영상 기자": reporter): it goes. Not a publication's name ("New York Times").
_TRAILING_ROLE = re.compile(
    r"(?:\s+(?:staff|writer|reporter|editor|correspondent|contributor|columnist|journalist|"
    r"associated press|reuters|afp|ap|dpa|efe|ansa|upi|pti|ians|xinhua|kyodo|yonhap|tass|"
    r"bloomberg)s?)+$|\s*(?:기자|특파원|记者|記者)$",
    re.IGNORECASE,
)
# A name in a script without spaces between its words (Chinese, Japanese, Korean): one word
# of two to four characters, read only after a byline mark ("By", "作者：", "기자"), since a
# bare one is as often an editor's (meta name=author on Chinese sites).
_CJK_NAME = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]{2,4}")
# Conjunctions in lower case only ("Bruce Y. Lee" is one name); a dash between spaces
# ("Jane Doe - Staff Writer"), not in "Tremayne-Pengelly"; a full stop after a word, not
# after an initial or "Jr." ("Finian Cunningham. Sputnik International").
_SPLIT_NAMES = re.compile(
    r"\s*(?:[,;&|/\n]|\s[-–—]\s|(?<=[a-zà-ÿ]{3})\.\s|"
    r"\b(?:and|And|AND|und|et|y|e|i|og|och|ja|en|и|with|mit|avec|con|com)\b)\s*"
)
# "Jane Doe (Reuters)", "Jane Doe [Bureau]"
_ASIDE = re.compile(r"\([^)]*\)|\[[^\]]*\]")
# "Jane Doe for The Mail on Sunday", "Jane Doe, Staff Writer": the affiliation goes.
_AFFILIATION = re.compile(r"\s+(?:for|For|für|pour|para|per)\s+.*$")
# Words that mark a byline part as a role, a desk or an organisation, not a person: whole
# words ("Staffan Lindberg", "Judd Apatow" are people), in the singular or plural.
_NOT_A_PERSON = re.compile(
    r"\b(?:staff|writer|reporter|editor|editorial|correspondent|contributor|columnist|"
    r"journalist|journaliste|periodista|redakteur|redakteurin|korrespondent|redactor|"
    r"news|newsroom|desk|press|presse|agency|agencia|agence|agenzia|associated|reuters|afp|"
    r"apa|dpa|epa|ansa|efe|kna|epd|sda|ap|upi|pti|ians|xinhua|kyodo|yonhap|tass|bloomberg|"
    r"wire|service|media|team|redaktion|redacción|redação|rédaction|redazione|online|digital|"
    r"sport|business|magazine|times|post|daily|journal|tribune|herald|zeitung|nachrichten|"
    r"noticias|international|gmbh|inc|ltd|llc|verlag|group|admin|administrator|guest|"
    r"opinion|photo|video|updated|published|follow|share|subscribe|profile|no author|"
    r"anonymous|unknown)s?\b|\d",
    re.IGNORECASE,
)
# Not the first word of a person's name: "The Economist", "Der Spiegel", "Die Zeit".
_ARTICLES = frozenset({"the", "der", "die", "das"})
# Lower-case particles of names longer than three letters ("Anna della Valle").
_PARTICLES = frozenset({"della", "dello", "degli", "delle", "dela", "dalla"})
# Byline elements in the page: rel=author, itemprop=author, class "byline" or "author"
# in any case, data-testid or id "byline"; not in a link (a teaser of another article), an
# aside, navigation, a footer (the byline block may be one, with the article's topics in
# it), a sidebar, comments or related stories. The <body>'s classes describe the page.
_BYLINE_ELEMENTS = XPath(
    """//*[@rel="author" or contains(@itemprop, "author")
        or contains(translate(@class, "ABY", "aby"), "byline")
        or contains(translate(@class, "A", "a"), "author")
        or contains(@data-testid, "byline") or contains(@id, "byline")]
      [not(ancestor::a or ancestor-or-self::aside or ancestor-or-self::nav
        or ancestor-or-self::footer
        or ancestor::*[not(self::body)][contains(@class, "teaser")
          or contains(@class, "related") or contains(@class, "sidebar")
          or contains(@class, "comment") or contains(@class, "recommend")
          or contains(@class, "promo")])]"""
)
# A line of the article text that is only a byline, in brackets or not.
_TEXT_BYLINE = re.compile(r"\(?\s*((?:By|BY|Por|POR|Par|PAR|Von|VON)\s+[^()]+?)\s*\)?")
# Path segments before an author page's slug: /author/jane-doe, /autoren/j/jane-doe.
_AUTHOR_PAGE_SEGMENT = re.compile(
    r"(?:author|autor|autore|auteur|journalist|journaliste|contributor|writer|columnist|"
    r"reporter|profile|perfil|staff|people|redaktion|by)(?:s|es|en|i)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Metadata:
    title: str | None = None
    published_at: datetime | None = None
    published_at_source: str | None = None  # e.g. "json-ld", "meta:article:published_time"
    modified_at: datetime | None = None
    authors: list[str] = field(default_factory=list)
    # Names read from author pages' addresses (".../author/jane-doe"): the last resort.
    author_page_names: list[str] = field(default_factory=list)
    # The structured data declares organisations as the authors, no person: a byline found
    # elsewhere in the page (trafilatura's) belongs to a teaser, not to this article.
    authors_are_organisations: bool = False
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
    objects = list(_json_ld_objects(tree))
    article = _article_object(objects, url)
    meta = _meta_tags(tree)
    published, source = _first_date(
        _date_candidates(tree, article, meta, ("datePublished", "dateCreated"), _PUBLISHED_META),
        fetched_at,
    )
    modified, _ = _first_date(
        _date_candidates(tree, article, meta, ("dateModified",), _MODIFIED_META), fetched_at
    )
    authors = _authors(tree, objects, article, meta, url)
    return Metadata(
        title=_title(tree, article, meta),
        published_at=published,
        published_at_source=source if published else None,
        modified_at=modified,
        authors=authors.names,
        author_page_names=authors.page_names,
        authors_are_organisations=authors.organisations,
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
    text: str = "",
    page_zone: tzinfo = UTC,
) -> Metadata:
    """Fill what the structured data left open with trafilatura's findings (title, author,
    the date htmldate found in the page, its time of day taken in `page_zone` when it has
    no zone), a byline line of the article's text, then with the feed entry's date."""
    published, source = _first_date(
        [(found.published_at_source or "", found.published_at), ("htmldate", date)],
        fetched_at,
        page_zone,
    )
    if published is None and entry_published_at is not None:
        published, source = _sane(entry_published_at, fetched_at, EARLIEST_PLAUSIBLE), "feed"
    not_names = _site_names(found.publisher, sitename)
    return Metadata(
        title=found.title or _strip_site_name(title, sitename),
        published_at=published,
        published_at_source=source if published else None,
        modified_at=found.modified_at,
        authors=found.authors
        or (
            []
            if found.authors_are_organisations
            else person_names([author] if author else [], not_names=not_names)
        )
        # The article's own text: an agency's "(By Jane Doe)" under an organisation author.
        or text_byline(text, not_names=not_names)
        or found.author_page_names,
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
    kinds = obj.get("@type", [])
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


def parse_date(value: object, zone: tzinfo = UTC) -> datetime | None:
    """A date or time as written in a page: ISO 8601 and the common free forms. A time
    without a zone is taken in `zone` (UTC unless the caller knows better, the best guess
    that stays comparable); a day alone is UTC midnight."""
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
    if parsed.tzinfo:
        return parsed
    return parsed.replace(tzinfo=UTC if _is_day_only(parsed) else zone)


def site_zone(url: str, language: str | None = None) -> tzinfo:
    """The time zone of the site's country when its domain names one of a single zone,
    else of the countries that write the page's language when they share one, else UTC."""
    country = (urlsplit(url).hostname or "").rsplit(".", 1)[-1]
    name = _COUNTRY_ZONES.get(country) or _LANGUAGE_ZONES.get(language or "")
    return (tz.gettz(name) if name else None) or UTC


def with_time_shown(found: Metadata, tree: HtmlElement, zone: tzinfo) -> Metadata:
    """A publication day without a time of day gains the time the page's text shows right
    next to that day ("2023-11-17 15:13", "11/17/2023 05:40 PM", "10:02 AM EST Nov 19,
    2019"), in the zone written there, else `zone`. Not a feed's date: the page may show
    another."""
    day = found.published_at
    if day is None or not _is_day_only(day) or found.published_at_source == "feed":
        return found
    for match in _days_with_time(day).finditer(tree.text_content()):
        clock = match["after"] or match["before"]
        written_zone = (match["zone_after"] or match["zone_before"] or "").upper()
        try:
            moment = dateparser.parse(f"{day.date().isoformat()} {clock}")
        except (ValueError, OverflowError):
            continue
        offset = _ZONES.get(written_zone)
        local = moment.replace(
            tzinfo=zone if offset is None else timezone(timedelta(seconds=offset))
        )
        return replace(found, published_at=local, published_at_source="page")
    return found


_CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?(?:\s*[AaPp]\.?[Mm]\.?)?"


def _days_with_time(day: datetime) -> re.Pattern[str]:
    """The day as pages write it, with a time of day just after or just before it."""
    y, m, d = day.year, day.month, day.day
    month, short = day.strftime("%B"), day.strftime("%b")
    days = "|".join(
        re.escape(text)
        for text in (
            f"{y}-{m:02}-{d:02}",
            f"{y}/{m:02}/{d:02}",
            f"{y}.{m:02}.{d:02}",
            f"{d:02}.{m:02}.{y}",
            f"{d}.{m}.{y}",
            f"{d:02}/{m:02}/{y}",
            f"{m:02}/{d:02}/{y}",
            f"{y}年{m}月{d}日",
            f"{month} {d}, {y}",
            f"{short} {d}, {y}",
            f"{d} {month} {y}",
        )
    )
    zone = r"(?:\s*(?P<{}>[A-Z]{{2,4}})\b)?"
    return re.compile(
        rf"(?:{days})[,\s]{{0,3}}(?:um\s|à\s|at\s)?(?P<after>{_CLOCK}){zone.format('zone_after')}"
        rf"|(?P<before>{_CLOCK}){zone.format('zone_before')}[,\s]{{0,3}}(?:{days})"
    )


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
    candidates: Iterable[tuple[str, object]], fetched_at: datetime, page_zone: tzinfo = UTC
) -> tuple[datetime | None, str | None]:
    """The first sane date; a day without a time of day gives way to a later candidate
    that has one on the same day. A time htmldate found in the page's text without a zone
    is in `page_zone`: shown to readers, it is their local time."""
    found: list[tuple[datetime, str]] = []
    for source, value in candidates:
        earliest = EARLIEST_STRUCTURED if source in ("json-ld", "microdata") else EARLIEST_PLAUSIBLE
        zone = page_zone if source == "htmldate" else UTC
        parsed = _sane(parse_date(value, zone), fetched_at, earliest)
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
                # A kicker before the declared title goes; a heading that goes on after it
                # (a title cut short for sharing, "… с Новым годом. ФОТО") is the headline,
                # unless what follows is glued to its last word (the site's name in a span).
                if fold(title) not in fold(heading) or _goes_on(fold(heading), fold(title)):
                    return heading
                return title
    # Parts of the <title> that are not its headline name the site or the section.
    site_parts = {fold(p) for p in _TITLE_SEPARATORS.split(page_title or "")[2::2]}
    site_parts |= {fold(site or "")}
    if len(headings) == 1 and len(headings[0].split()) >= 3 and fold(headings[0]) not in site_parts:
        return headings[0]
    return declared[0] if declared else None


def _goes_on(heading: str, title: str) -> bool:
    """The heading is the title and more, after a space or a punctuation mark."""
    rest = heading.removeprefix(title)
    return rest != heading and bool(rest) and not rest[0].isalnum()


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


@dataclass(frozen=True)
class _Authors:
    names: list[str]
    page_names: list[str]  # read from author pages' addresses
    organisations: bool  # organisations declared and no person found


def _authors(
    tree: HtmlElement, objects: list[dict], article: dict, meta: dict[str, str], url: str
) -> _Authors:
    """The article's Person authors in its JSON-LD (`author`, else `creator`), else the
    meta tags' bylines, else the byline shown in the page; never the site's own name."""
    publisher = article.get("publisher")
    not_names = _site_names(
        # A publisher that is a Person (a personal blog) is the author too.
        None if isinstance(publisher, dict) and "person" in _types(publisher) else publisher,
        meta.get("og:site_name"),
        meta.get("application-name"),
        (urlsplit(url).hostname or "").removeprefix("www."),
    )
    by_id = {o["@id"]: o for o in objects if isinstance(o.get("@id"), str) and _types(o)}
    pages: list[str] = []
    organisations = False
    for key in ("author", "creator"):
        declared = article.get(key)
        people = []
        for given in declared if isinstance(declared, list) else [declared]:
            entry = given  # a reference to a graph node is looked up
            if isinstance(given, dict) and "@type" not in given:
                entry = by_id.get(str(given.get("@id")), given)
            if isinstance(entry, dict) and _types(entry) - _PERSON_TYPES:
                organisations |= key == "author"  # a `creator` is often the publisher
            elif isinstance(entry, str) and entry.startswith(("http://", "https://")):
                pages.append(entry)
            elif name := _name_of(entry):
                people.append(name)
            elif isinstance(entry, dict):
                pages += [v for k in ("url", "@id") if isinstance(v := entry.get(k), str)]
        if names := person_names(people, not_names=not_names):
            return _Authors(names, [], False)
    bylines = [v for v in (meta.get(n) for n in _AUTHOR_META) if v]
    pages += [v for v in bylines if v.startswith(("http://", "https://"))]  # article:author
    names = person_names(bylines, not_names=not_names)
    if not names and not organisations:
        names = _page_byline(tree, not_names)
    return _Authors(
        names,
        person_names(filter(None, map(_name_from_author_page, pages))),
        organisations and not names,
    )


def text_byline(text: str, not_names: Iterable[list[str]] = ()) -> list[str]:
    """Names in a line of the article text that is only a byline: "By Jane Doe" among its
    first two lines, "(By Jane Doe)" among its last three (agencies' copy)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines[:2] + lines[-3:]:
        match = _TEXT_BYLINE.fullmatch(line) if len(line) <= 80 else None
        if match and (names := person_names([match[1]], not_names=not_names)):
            return names
    return []


def _site_names(*names: object) -> list[list[str]]:
    """The names a site gives itself, which CMSs also fill in as an article's author: as
    folded words, without a leading "the"."""
    whole = [name for name in map(_name_of, names) if name]
    # Each part of a name with a tagline ("Graiul Maramureșului - Cotidian independent").
    parts = [p for name in whole for p in _TITLE_SEPARATORS.split(name)[::2]]
    words = [w for name in dict.fromkeys(whole + parts) if (w := _words(name))]
    return [w[1:] if w[:1] == ["the"] and w[1:] else w for w in words]


def _page_byline(tree: HtmlElement, not_names: list[list[str]]) -> list[str]:
    """Names in the page's first byline element that has any: in the byline elements
    within it when there are ("By <span class=author>…</span>, Sioux Falls Argus Leader"),
    else in it and its siblings (several authors each in their own). Each piece of text is
    read apart: "By", the name and the date are often elements without spaces between."""
    # A byline is short: longer ones are containers ("author-admin" on an <article>).
    elements = [e for e in _BYLINE_ELEMENTS(tree) if len(e.text_content()) <= 300]
    for element in elements:
        inner = [e for e in elements if any(a is element for a in e.iterancestors())]
        parent = element.getparent()
        siblings = [e for e in elements if e is not element and e.getparent() is parent]
        for group in (inner, [element, *siblings]):
            pieces = [
                text
                for e in group
                for text in (*e.itertext(), *(m.get("content", "") for m in e.iter("meta")))
                if len(text) <= 200
            ]
            if names := person_names(pieces, not_names=not_names):
                return names
    return []


def _name_from_author_page(url: str) -> str | None:
    """ "https://news.example/author/jane-doe-1234/" is Jane Doe's page."""
    segments = [unquote(s) for s in (_path(url) or "").split("/") if s]
    for i, segment in enumerate(segments):
        if _AUTHOR_PAGE_SEGMENT.fullmatch(segment):
            slug = next((s for s in segments[i + 1 :] if len(s) > 2), "")  # past "/b/"
            words = re.split(r"[-_+\s]+", slug.split(".")[0])
            while words and words[-1].isdigit():
                words.pop()
            if 2 <= len(words) <= 4 and all(w.isalpha() for w in words):
                return " ".join(w.capitalize() for w in words)
            return None
    return None


def person_names(bylines: Iterable[str], not_names: Iterable[list[str]] = ()) -> list[str]:
    """Person names from bylines: split, without "By", roles, e-mail addresses, handles,
    agency or desk names and the site's own names (`not_names`, from _site_names); once
    each, in order, the spelling with accents and full stops kept."""
    sites = list(not_names)
    names: dict[str, str] = {}
    for byline in bylines:
        cleaned = _HANDLE_OR_URL.sub(" ", _EMAIL.sub(" ", _ASIDE.sub(" ", byline)))
        for piece in _SPLIT_NAMES.split(cleaned):
            part = " ".join(piece.split())
            name = _AFFILIATION.sub("", _BY.sub("", part)).strip(" :-–—|")
            bare = _TRAILING_ROLE.sub("", name)
            marked = name != part.strip(" :-–—|") or bare != name
            name = bare
            person = _is_person_name(name) or bool(marked and _CJK_NAME.fullmatch(name))
            if not person or _is_site_name(_words(name), sites):
                continue
            key = "".join(_words(name))
            if key not in names or _spelling(name) > _spelling(names[key]):
                names[key] = name
    return [name.title() if name.isupper() else name for name in names.values()]


def _words(text: str) -> list[str]:
    """Words folded for comparing names: case, accents and punctuation left out."""
    plain = unicodedata.normalize("NFKD", text.casefold())
    return re.findall(r"\w+", "".join(c for c in plain if not unicodedata.combining(c)))


def _is_site_name(words: list[str], sites: list[list[str]]) -> bool:
    """ "The Kyiv Independent", "ElPais", "Telegraph Sport" on their sites."""
    return any(words[: len(s)] == s or "".join(words) == "".join(s) for s in sites)


def _spelling(name: str) -> tuple[int, int, bool]:
    """Which of two spellings of a name to keep: accents, then full stops, then not in
    capitals."""
    return sum(not c.isascii() for c in name), name.count("."), not name.isupper()


def _is_person_name(name: str) -> bool:
    words = name.split()
    if not 2 <= len(words) <= 5 or _NOT_A_PERSON.search(name):
        return False
    if words[0].casefold() in _ARTICLES:  # "The Economist", "Der Spiegel"
        return False
    # Names are capitalised (where the script has case) and made of letters, each word
    # some; particles ("de", "von", "della") in lower case, never last ("Posted by").
    return not words[-1][0].islower() and all(
        any(c.isalpha() for c in w)
        and (
            w[0].isupper()
            or not w[0].isalpha()
            or (w.islower() and (len(w) <= 3 or w in _PARTICLES))
        )
        for w in words
    )


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
