"""Article metadata: figures on the evaluation set in fixtures/metadata, the rules of
worker/metadata.py, the migration that adds the columns and `newsloom reprocess` filling
them from kept pages."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import metadata_eval
import pytest
from lxml import html as lxml_html
from site_fixture import article_html, seed_article
from support import run_url, scratch_database

from newsloom import db, migrate
from newsloom.worker import metadata
from newsloom.worker.extract import extract

FETCHED = datetime(2024, 1, 1, tzinfo=UTC)
URL = "https://news.example/2023/05/story"


# --- figures on the evaluation set ---------------------------------------------------------

# What this version reaches (tests/metadata_eval.py prints them), less a margin for the
# libraries' small changes; the targets of issue 13 where they are met.
MINIMUM = {
    "tuning": {
        "title": 0.88,
        "time_60s": 0.92,
        "authors_precision": 0.96,
        "authors_recall": 0.93,
        "body_f1": 0.96,
    },
    "heldout": {
        "title": 0.88,
        "time_60s": 0.70,
        "authors_precision": 0.87,
        "authors_recall": 0.81,
        "body_f1": 0.96,
    },
}


@pytest.mark.parametrize("part", ["tuning", "heldout"])
def test_figures_on_the_evaluation_set(part):
    pages = metadata_eval.pages(part)
    figures = metadata_eval.evaluate(metadata_eval.newsloom, pages)
    print(f"\n{part} ({len(pages)} pages): {figures.row()}")
    for name, minimum in MINIMUM[part].items():
        assert getattr(figures, name) >= minimum, (name, figures)


def test_the_split_is_fixed_by_file():
    parts = {p.file: p.part for p in metadata_eval.pages()}
    assert len(parts) >= 150 and sum(v == "heldout" for v in parts.values()) >= 45
    assert all(f.startswith(("zyte-", "traf-", "n4k-", "mcm-")) for f in parts)
    # The pages added later are split by a hash of the file name (fixtures/metadata/README).
    for file, part in parts.items():
        if file.startswith(("n4k-", "mcm-")):
            digest = int(hashlib.sha256(file.encode()).hexdigest()[:8], 16)
            assert part == ("heldout" if digest % 3 == 0 else "tuning"), file


# --- the rules ---------------------------------------------------------------------------


def _page(head: str, body: str = "<h1>Storm closes the harbour for a week</h1>") -> str:
    paragraphs = " ".join(["The harbour master said the storm would keep ships away."] * 8)
    return (
        f"<html><head>{head}</head><body><article>{body}<p>{paragraphs}</p>"
        f"<p>{paragraphs}</p></article></body></html>"
    )


def _json_ld(data: object) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


def _found(page: str) -> metadata.Metadata:
    return metadata.from_structured_data(lxml_html.fromstring(page), URL, FETCHED)


def test_json_ld_graph_with_arrays():
    page = _page(
        _json_ld(
            {
                "@context": "https://schema.org",
                "@graph": [
                    {"@type": "WebSite", "name": "Harbour News"},
                    {
                        "@type": ["NewsArticle"],
                        "headline": "Storm closes the harbour for a week",
                        "datePublished": "2023-05-02T08:15:00+02:00",
                        "dateModified": "2023-05-02T09:00:00Z",
                        "author": [
                            {"@type": "Person", "name": "By Jane Doe"},
                            {"@type": "Organization", "name": "Reuters"},
                            {"@type": "Person", "name": "John Smith, Staff Writer"},
                        ],
                        "publisher": {"@type": "Organization", "name": "Harbour News"},
                        "articleSection": ["Weather"],
                        "keywords": "storm, harbour",
                        "isAccessibleForFree": "False",
                    },
                ],
            }
        )
    )
    found = _found(page)
    assert found.title == "Storm closes the harbour for a week"
    assert found.published_at == datetime(2023, 5, 2, 6, 15, tzinfo=UTC)
    assert found.published_at_source == "json-ld"
    assert found.modified_at == datetime(2023, 5, 2, 9, tzinfo=UTC)
    assert found.authors == ["Jane Doe", "John Smith"]
    assert (found.section, found.keywords, found.publisher) == (
        "Weather",
        ["storm", "harbour"],
        "Harbour News",
    )
    assert found.is_paywalled


def test_meta_tags_when_there_is_no_json_ld():
    page = _page(
        '<meta property="og:title" content="Storm closes the harbour for a week | '
        'Harbour News"><meta property="og:site_name" content="Harbour News">'
        '<meta name="parsely-pub-date" content="2023-05-02T06:15:00Z">'
        '<meta name="sailthru.author" content="jane.doe@news.example">'
        '<meta name="author" content="JANE DOE and John Smith">'
        '<meta property="article:content_tier" content="metered">',
        body="",
    )
    found = _found(page)
    assert found.title == "Storm closes the harbour for a week"
    assert found.published_at_source == "meta:parsely-pub-date"
    assert found.authors == ["Jane Doe", "John Smith"]
    assert found.is_paywalled


def test_odd_structured_data_is_survived():
    commented = (
        '<script type="application/ld+json"><!-- {"@type": "NewsArticle", '
        '"datePublished": "Tue Nov 19 2019 03:05:46 GMT+0000 (UTC)"} --></script>'
    )
    found = _found(_page(commented))
    assert found.published_at == datetime(2019, 11, 19, 3, 5, 46, tzinfo=UTC)
    junk = '<script type="application/ld+json">{not json</script>' + _json_ld(
        [
            {"@type": 7, "url": "http://[broken", "author": {"name": 3}},
            {
                "@type": "Article",
                "headline": {"x": 1},
                "datePublished": ["soon"],
                "keywords": [{"a": 1}],
                "mainEntityOfPage": ["x"],
                "author": [None, "", {"@type": "Person"}],
            },
        ]
    )
    found = _found(_page(junk))
    assert (found.published_at, found.authors, found.keywords) == (None, [], [])
    assert found.title == "Storm closes the harbour for a week"  # the <h1>


def test_the_headline_against_a_declared_title():
    og = '<meta property="og:title" content="Storm closes the harbour for a week">'
    # A kicker before the declared title goes.
    kicker = _page(og, "<h1>Weather: Storm closes the harbour for a week</h1>")
    assert _found(kicker).title == "Storm closes the harbour for a week"
    # A heading that goes on after it is the headline (the declared one was cut short).
    longer = _page(og, "<h1>Storm closes the harbour for a week. PHOTOS</h1>")
    assert _found(longer).title == "Storm closes the harbour for a week. PHOTOS"
    # ...unless what follows is glued to its last word: the site's name in a span.
    glued = _page(og, "<h1>Storm closes the harbour for a week<span>Gazette</span></h1>")
    assert _found(glued).title == "Storm closes the harbour for a week"


@pytest.mark.parametrize(
    "byline, names",
    [
        ("By Lisa Kaczke and Trevor J. Mitchell", ["Lisa Kaczke", "Trevor J. Mitchell"]),
        ("Glen Owen And Brendan Carlin For The Mail On Sunday", ["Glen Owen", "Brendan Carlin"]),
        ("Benjamin Fischer und Marcus Theurer", ["Benjamin Fischer", "Marcus Theurer"]),
        ("Jill Disis, CNN Business", ["Jill Disis"]),
        ("Bruce Y. Lee", ["Bruce Y. Lee"]),
        ("dpa/lno", []),
        ("Associated Press", []),
        ("Editorial", []),
        ("admin", []),
        ("Текст: Венера Ерофеева", ["Венера Ерофеева"]),
        # conjunctions of other languages, roles after a dash, agencies in brackets
        (
            "Isabel Caro, Rocío Latorre y José Miguel Wilson",
            ["Isabel Caro", "Rocío Latorre", "José Miguel Wilson"],
        ),
        ("Anna Svensson och Erik Lund", ["Anna Svensson", "Erik Lund"]),
        ("Jane Doe - Staff Writer", ["Jane Doe"]),
        ("Alexandra Tremayne-Pengelly", ["Alexandra Tremayne-Pengelly"]),
        ("Jane Doe (AFP)", ["Jane Doe"]),
        ("Jane Doe (www.harbour.example)", ["Jane Doe"]),  # no stray "("
        ("Finian Cunningham. Sputnik International", ["Finian Cunningham"]),
        ("Analysis by Chris Cillizza", ["Chris Cillizza"]),
        ("Posted by", []),
        # agencies and organisations of two words or more
        ("Agence France-Presse", []),
        ("Keystone-SDA", []),
        ("Frankfurter Allgemeine Zeitung GmbH", []),
        ("The Economist", []),
        ("Der Spiegel", []),
        # role words only as whole words: these are people
        ("Staffan Lindberg", ["Staffan Lindberg"]),
        ("Judd Apatow", ["Judd Apatow"]),
        ("Anna della Valle", ["Anna della Valle"]),
        # capitals, accents and full stops: one person, the richer spelling
        ("GRACE ZOKOVITCH", ["Grace Zokovitch"]),
        ("Trevor J Mitchell; Trevor J. Mitchell", ["Trevor J. Mitchell"]),
        ("Nuno Dominguez, NUÑO DOMÍNGUEZ, Nuño Domínguez", ["Nuño Domínguez"]),
        ("jane.doe@news.example, @janedoe", []),
        # "By" in an element of its own; a role or an agency after the name
        ("Posted By:", []),
        ("Narayana Kocherlakota Bloomberg", ["Narayana Kocherlakota"]),
        ("Jane Doe Staff Writer", ["Jane Doe"]),
        ("New York Times", []),  # a publication, not "New York" and a role
        # names without spaces (Chinese, Korean) only after a byline mark
        ("By 류영상", ["류영상"]),
        ("류영상 기자", ["류영상"]),
        ("作者：温素霞", ["温素霞"]),
        ("严玉洁", []),  # meta name=author on a Chinese site: its editor
    ],
)
def test_person_names_from_bylines(byline, names):
    assert metadata.person_names([byline]) == names


def _site_page(head: str, body: str) -> str:
    return _page('<meta property="og:site_name" content="The Harbour Gazette">' + head, body)


def test_the_sites_own_name_is_not_an_author():
    # A CMS's default: the publisher as a Person, or as meta name=author.
    as_person = _json_ld(
        {
            "@type": "NewsArticle",
            "author": {"@type": "Person", "name": "Harbour Gazette"},
            "publisher": {"@type": "Organization", "name": "Harbour Gazette"},
        }
    )
    assert _found(_site_page(as_person, "")).authors == []
    meta = '<meta name="author" content="HarbourGazette, Jane Doe, Harbour Gazette Sport">'
    assert _found(_site_page(meta, "")).authors == ["Jane Doe"]
    # ...then the byline in the page is read.
    byline = '<div class="article_authors"><a href="/auteur/jane-doe-187">Jane Doe</a></div>'
    assert _found(_site_page(as_person, byline)).authors == ["Jane Doe"]
    # A personal blog's publisher is its author.
    blog = _json_ld(
        {
            "@type": "BlogPosting",
            "author": {"@type": "Person", "name": "Paul Graham"},
            "publisher": {"@type": "Person", "name": "Paul Graham"},
        }
    )
    assert _found(_page(blog)).authors == ["Paul Graham"]


def test_each_part_of_a_site_name_with_a_tagline_is_the_site():
    site = '<meta property="og:site_name" content="Harbour Gazette - The daily of the coast">'
    author = '<meta name="author" content="Harbour Gazette">'
    assert _found(_page(site + author)).authors == []


def test_a_byline_line_in_the_article_text():
    text = "Taipei, Nov. 17 (CNA) The ministry said.\nIt will.\n(By Alison Hsiao)\nEnditem/"
    assert metadata.text_byline(text) == ["Alison Hsiao"]
    assert metadata.text_byline("By Boniface Mwangi\nI have known him for years.") == [
        "Boniface Mwangi"
    ]
    # Only a line that is a byline, near either end: not a sentence, not the middle.
    middle = "\n".join(["One.", "Two.", "By Jane Doe", "Four.", "Five.", "Six.", "Seven."])
    assert metadata.text_byline(middle) == []
    assert metadata.text_byline("By the harbour, ships waited for a week.") == []
    # Read even when the structured data names an organisation as the author: the text is
    # the article's own, unlike a byline elsewhere in the page.
    agency = _found(
        _page(
            _json_ld(
                {
                    "@type": "NewsArticle",
                    "author": {"@type": "Organization", "name": "Harbour Agency"},
                }
            )
        )
    )
    done = metadata.reconcile(
        agency,
        title=None,
        author="Steven Montero",
        date=None,
        sitename=None,
        fetched_at=FETCHED,
        entry_published_at=None,
        text=text,
    )
    assert done.authors == ["Alison Hsiao"]


def test_the_byline_in_the_page_when_structured_data_has_none():
    # "By", the name and the date in separate elements without spaces between them.
    joined = (
        '<div data-testid="prism-byline"><span>By</span><span><a href="/about/newsteam/'
        'alex-bozarjian">Alex Bozarjian</a></span><div>Thursday, November 9, 2023 4:41AM</div>'
        "</div>"
    )
    assert _found(_site_page("", joined)).authors == ["Alex Bozarjian"]
    # The author elements within a byline block, without its affiliation line.
    block = (
        '<div class="byline-section"><span class="author">Lisa Kaczke and Trevor J. '
        "Mitchell</span><span>Sioux Falls Argus Leader</span></div>"
    )
    assert _found(_site_page("", block)).authors == ["Lisa Kaczke", "Trevor J. Mitchell"]
    # Several authors each in their own element.
    several = (
        '<a rel="author" href="/a/1">Jane Doe</a> and <a rel="author" href="/a/2">John Roe</a>'
    )
    assert _found(_site_page("", several)).authors == ["Jane Doe", "John Roe"]
    # Not a teaser's byline, a container with "author" in its class, nor the page's
    # footer with the article's topics.
    elsewhere = (
        '<aside><div class="author">Kyra Funk</div></aside>'
        '<a href="/other-story"><div class="author-name">Von Miriam Khan</div></a>'
        '<div class="teaser"><span class="byline">Steven Montero</span></div>'
        '<footer class="article-author">Harbour Gazette Sport <a href="/t/davis-cup">Davis Cup</a>'
        "</footer>"
    )
    assert _found(_site_page("", elsewhere)).authors == []
    recipe = " ".join(["Chop the cucumber and the tomatoes, then dress them."] * 6)
    container = (
        f'<div class="entry author-beachbody"><h2>Meal Prep Menu</h2><p>{recipe}</p>'
        "<h3>Side Salad</h3></div>"
    )
    assert _found(_page("", container)).authors == []
    # Structured data comes first.
    declared = _json_ld({"@type": "NewsArticle", "author": {"name": "Jane Doe"}})
    assert _found(_site_page(declared, several)).authors == ["Jane Doe"]


def test_json_ld_authors_by_reference_and_creator():
    graph = _json_ld(
        {
            "@graph": [
                {"@type": "NewsArticle", "author": {"@id": "https://news.example/#/person/1"}},
                {"@type": "Person", "@id": "https://news.example/#/person/1", "name": "Jane Doe"},
            ]
        }
    )
    assert _found(_page(graph)).authors == ["Jane Doe"]
    creator = _json_ld(
        {
            "@type": "NewsArticle",
            "author": {"@type": "Organization", "name": "Reuters"},
            "creator": ["Jane Doe"],
        }
    )
    assert _found(_page(creator)).authors == ["Jane Doe"]


def test_organisation_authors_leave_no_byline_to_guess():
    page = _page(
        _json_ld({"@type": "NewsArticle", "author": {"@type": "Organization", "name": "STERN.de"}}),
        '<div class="author-name">Von Andreas Hoffmann</div>',
    )
    found = _found(page)
    assert (found.authors, found.authors_are_organisations) == ([], True)
    done = metadata.reconcile(
        found,
        title=None,
        author="Andreas Hoffmann",
        date=None,
        sitename=None,
        fetched_at=FETCHED,
        entry_published_at=None,
    )
    assert done.authors == []


def test_author_pages_name_the_author_only_as_the_last_resort():
    page = _page(
        '<meta property="article:author" content="https://news.example/autoren/j/jane_doe-1234/">'
        '<meta property="article:author" content="https://www.facebook.com/harbourgazette">',
        body="",
    )
    found = _found(page)
    assert (found.authors, found.author_page_names) == ([], ["Jane Doe"])

    def reconciled(author: str | None) -> list[str]:
        return metadata.reconcile(
            found,
            title=None,
            author=author,
            date=None,
            sitename="Harbour Gazette",
            fetched_at=FETCHED,
            entry_published_at=None,
        ).authors

    assert reconciled("Jane Doé") == ["Jane Doé"]
    assert reconciled("Harbour Gazette") == ["Jane Doe"]


def test_a_time_shown_without_a_zone_is_the_sites_local_time():
    assert "Budapest" in str(metadata.site_zone("https://www.atv.hu/belfold/cikk"))
    for country in metadata._COUNTRY_ZONES:  # each zone name is known
        assert metadata.site_zone(f"https://news.example.{country}/") != UTC, country
    for url in ("https://news.example/a", "https://www.nytimes.com/a", "https://x.com.br/a"):
        assert metadata.site_zone(url) == UTC  # no country, or one of several zones

    def published(date: str, url: str = "https://www.atv.hu/belfold/cikk") -> datetime | None:
        found = _found(_page(""))
        return metadata.reconcile(
            found,
            title=None,
            author=None,
            date=date,
            sitename=None,
            fetched_at=FETCHED,
            entry_published_at=None,
            page_zone=metadata.site_zone(url),
        ).published_at

    # Summer in Budapest is UTC+2; a zone written on the page wins; a day alone stays UTC.
    assert published("2019-07-30T20:36:00") == datetime(2019, 7, 30, 18, 36, tzinfo=UTC)
    assert published("2019-07-30T20:36:00+0000") == datetime(2019, 7, 30, 20, 36, tzinfo=UTC)
    assert published("2019-07-30T00:00:00") == datetime(2019, 7, 30, tzinfo=UTC)
    assert published("2019-07-30T20:36:00", "https://news.example/a") == datetime(
        2019, 7, 30, 20, 36, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("shown", "url", "expected"),
    [
        # Beside the day, in the site's country's zone (Taiwan and China: UTC+8).
        ("Focus Taiwan 11/17/2023 05:40 PM Link", "https://focustaiwan.tw/a", "09:40"),
        ("来源： 中国日报网 2023-11-17 15:13 分享", "https://www.chinadaily.com.cn/a", "07:13"),
        ("2023年11月17日 20:52 来源", "https://www.news.cn/a", "12:52"),
        # Before the day, with the zone written there (EST: UTC-5).
        ("Published 10:02 AM EST Nov 17, 2023", "https://eu.usatoday.com/a", "15:02"),
        # No zone written nor known: UTC.
        ("Posted 17.11.2023, 08:15", "https://news.example/a", "08:15"),
    ],
)
def test_a_day_gains_the_time_shown_beside_it(shown, url, expected):
    day = datetime(2023, 11, 17, tzinfo=UTC)
    found = metadata.Metadata(published_at=day, published_at_source="htmldate")
    tree = lxml_html.fromstring(f"<html><body><p>{shown}</p><p>Other 09:00</p></body></html>")
    done = metadata.with_time_shown(found, tree, metadata.site_zone(url))
    assert done.published_at == datetime.fromisoformat(f"2023-11-17T{expected}:00+00:00")
    assert done.published_at_source == "page"


def test_only_a_day_alone_gains_a_time_and_never_a_feeds():
    tree = lxml_html.fromstring("<p>2023-11-17 15:13</p><p>2023-11-18 09:00</p>")
    timed = metadata.Metadata(published_at=datetime(2023, 11, 17, 9, 30, tzinfo=UTC))
    assert metadata.with_time_shown(timed, tree, UTC) == timed
    feed = metadata.Metadata(
        published_at=datetime(2023, 11, 17, tzinfo=UTC), published_at_source="feed"
    )
    assert metadata.with_time_shown(feed, tree, UTC) == feed
    other_day = metadata.Metadata(published_at=datetime(2023, 11, 19, tzinfo=UTC))
    assert metadata.with_time_shown(other_day, tree, UTC) == other_day


def test_the_zone_of_a_language_written_in_one_zone():
    assert "Shanghai" in str(metadata.site_zone("https://world.huanqiu.com/a", "zh"))
    assert "Bangkok" in str(metadata.site_zone("https://prachatai.com/a", "th"))
    assert metadata.site_zone("https://news.example.com/a", "en") == UTC
    assert metadata.site_zone("https://news.example.com/a", "es") == UTC


def test_date_sanity():
    future = (FETCHED + timedelta(days=2)).isoformat()
    # A date after the fetch, a CMS's zero date and a pre-1990 meta date are not taken.
    page = _page(
        _json_ld({"@type": "NewsArticle", "datePublished": "0001-01-01T00:00:00Z"})
        + f'<meta property="article:published_time" content="{future}">'
        + '<meta name="date" content="1970-01-01">'
    )
    found = _found(page)
    assert found.published_at is None
    entry = datetime(2023, 5, 1, 22, tzinfo=UTC)
    done = metadata.reconcile(
        found,
        title=None,
        author=None,
        date=None,
        sitename=None,
        fetched_at=FETCHED,
        entry_published_at=entry,
    )
    assert (done.published_at, done.published_at_source) == (entry, "feed")
    # Structured data may date an article before 1990.
    old = _found(_page(_json_ld({"@type": "Article", "datePublished": "1969-07-21"})))
    assert old.published_at == datetime(1969, 7, 21, tzinfo=UTC)


def test_an_earlier_modification_time_does_not_replace_the_publication_time():
    # Two pages of the tuning part (2009 and 2021) were edited before their publication
    # time; the publication time is the one they show.
    page = _page(
        _json_ld(
            {
                "@type": "NewsArticle",
                "datePublished": "2021-01-03T17:40:00+02:00",
                "dateModified": "2021-01-03T16:11:00+02:00",
            }
        )
    )
    assert _found(page).published_at == datetime(2021, 1, 3, 15, 40, tzinfo=UTC)


def test_a_day_gives_way_to_a_time_on_that_day():
    page = _page(
        _json_ld({"@type": "NewsArticle", "datePublished": "2023-05-02"})
        + '<meta property="article:published_time" content="2023-05-02T08:15:00-04:00">'
    )
    assert _found(page).published_at == datetime(2023, 5, 2, 12, 15, tzinfo=UTC)


def test_extract_carries_the_metadata():
    title, paragraphs = seed_article()
    page = article_html(
        title,
        paragraphs,
        author="By Jane Doe",
        site_name="The Daily Loom",
        published="2023-05-02T08:15:00Z",
    )
    extracted = extract(page, URL, fetched_at=FETCHED)
    assert extracted.title == title and extracted.authors == ["Jane Doe"]
    assert extracted.published_at_source == "meta:article:published_time"
    assert extracted.publisher == "The Daily Loom" and extracted.is_paywalled is False


# --- storage -----------------------------------------------------------------------------


def test_a_database_with_data_gains_the_columns(servers, tmp_path, monkeypatch):
    with scratch_database(servers[0], label="meta") as url, db.connect(url) as conn:
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        # The database as it was before this migration (and those after it).
        for m in migrate.migrations():
            if m.name == "article_metadata":
                break
            (tmp_path / m.path.name).write_text(m.sql())
        with monkeypatch.context() as patch:
            patch.setattr(migrate, "MIGRATIONS_DIR", tmp_path)
            migrate.apply(conn)
        conn.execute("""INSERT INTO articles (url, canonical_url, text, fetched_at, content_hash,
                                              extractor)
                        VALUES ('https://a.example/1', 'https://a.example/1', 'text', now(),
                                'h1', 'trafilatura 0.1')""")
        applied = migrate.apply(conn)
        assert applied[0].name == "article_metadata"
        row = conn.execute(
            "SELECT url, authors, keywords, is_paywalled, published_at_source FROM articles"
        ).fetchone()
        assert row == {
            "url": "https://a.example/1",
            "authors": [],
            "keywords": [],
            "is_paywalled": None,
            "published_at_source": None,
        }


def test_reprocess_fills_the_new_columns(ctx, site, conn, app_env):
    title, paragraphs = seed_article()
    head = _json_ld(
        {
            "@type": "NewsArticle",
            "headline": title,
            "datePublished": "2023-05-02T08:15:00+02:00",
            "author": {"@type": "Person", "name": "Jane Doe"},
            "articleSection": "Weather",
            "isAccessibleForFree": False,
        }
    )
    site.add("/m", article_html(title, paragraphs).replace("</head>", head + "</head>"))
    row = run_url(ctx, site.url("/m"))
    # As an article stored by the version before the metadata stage.
    conn.execute("""UPDATE articles SET authors = '{}', section = NULL, is_paywalled = NULL,
                        published_at_source = NULL, extractor = 'trafilatura 2.0.0'""")
    result = subprocess.run(
        [sys.executable, "-m", "newsloom", "reprocess"],
        env=app_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    stored = conn.execute(
        """SELECT authors, section, is_paywalled, published_at,
                                    published_at_source FROM articles WHERE id = %s""",
        (row["article_id"],),
    ).fetchone()
    assert stored == {
        "authors": ["Jane Doe"],
        "section": "Weather",
        "is_paywalled": True,
        "published_at": datetime(2023, 5, 2, 6, 15, tzinfo=UTC),
        "published_at_source": "json-ld",
    }
