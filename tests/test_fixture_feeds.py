"""Real-world feeds and sitemaps from other projects' test suites (tests/fixtures/feeds,
sources and licences in its README): each reads as the kind and with the entry count
that manifest.json gives, and manifest.json says where each number comes from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsloom.errors import Permanent
from newsloom.scheduler.poll import SourceRules, read_document
from newsloom.settings import load_settings

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())


def test_every_fixture_is_in_the_manifest():
    listed = {row["file"] for row in MANIFEST}
    assert listed == {p.name for p in FIXTURES.iterdir()} - {"manifest.json", "README.md"}
    assert {row["kind"] for row in MANIFEST} >= {
        "rss20",
        "rss10",
        "atom10",
        "json10",
        "json11",
        "sitemap",
        "news_sitemap",
        "sitemap_index",
    }


@pytest.mark.parametrize("row", MANIFEST, ids=[row["file"] for row in MANIFEST])
def test_fixture_reads_as_its_suite_expects(row):
    settings = load_settings()
    body = (FIXTURES / row["file"]).read_bytes()
    url = row.get("url", f"https://fixtures.example/{row['file']}")
    if "error" in row:
        with pytest.raises(Permanent, match=row["error"]):
            read_document(body, url, "", SourceRules(), settings)
        return
    doc = read_document(body, url, "", SourceRules(), settings)
    assert doc.kind == row["kind"]
    found = len(doc.children) if doc.kind == "sitemap_index" else len(doc.entries)
    assert (found + doc.rejected_links, doc.rejected_links) == (row["items"], row["rejected"])
    if "first_link" in row:
        assert doc.entries[0].url == row["first_link"]
