"""`newsloom export`: the three formats carry the same documents, filters select, a named
cursor resumes, rows stream from a server-side cursor, and a bad path is one line."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
from support import store_text
from test_cli import newsloom
from test_events import OTHER, TEXT

from newsloom import db, export

THIRD = (
    "Der Stadtrat hat am Dienstag beschlossen, die alte Brücke über den Fluss bis zum "
    "Sommer zu erneuern, weil Gutachter Risse im Pfeiler fanden. "
) * 4

FOURTH = (
    "Volunteers counted forty-two species of birds at the reservoir during the annual "
    "spring survey, among them a pair of ospreys nesting near the dam. "
) * 4


@pytest.fixture
def collection(conn):
    """Three articles in two feeds, one with a copy at a second URL; returns their ids."""
    db.sync_feeds(
        conn,
        [
            ("https://a.org/feed", "Alpha", 900, None, True),
            ("https://b.org/feed", "Beta", 900, None, True),
        ],
    )
    alpha, beta = (r["id"] for r in conn.execute("SELECT id FROM feeds ORDER BY id"))
    _, first = store_text(
        conn,
        "https://a.org/1",
        TEXT,
        title="Sea wall",
        feed_id=alpha,
        entities=[("Harbour Council", "ORG", 2), ("March", "DATE", 1)],
    )
    store_text(conn, "https://b.org/copy", TEXT, feed_id=beta)
    _, second = store_text(conn, "https://a.org/2", OTHER, title="Library", feed_id=alpha)
    _, third = store_text(
        conn,
        "https://b.org/3",
        THIRD,
        title="Brücke",
        feed_id=beta,
        language="de",
        entities=[("Stadtrat", "ORG", 1)],
    )
    return [first, second, third]


def run_export(database_url, *args: str):
    result = newsloom("export", *args, env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    return result


def test_formats_carry_the_same_documents(collection, database_url, tmp_path):
    run_export(database_url, "--format", "jsonl", "--out", str(tmp_path / "a.jsonl"))
    run_export(database_url, "--format", "csv", "--out", str(tmp_path / "a.csv"))
    run_export(database_url, "--format", "parquet", "--out", str(tmp_path / "a.parquet"))

    documents = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [d["id"] for d in documents] == collection
    first = documents[0]
    assert first["schema"] == export.DOCUMENT_SCHEMA
    assert first["urls"] == ["https://a.org/1", "https://b.org/copy"]
    assert first["entities"][0] == {"name": "Harbour Council", "label": "ORG", "mentions": 2}
    assert first["feed_name"] == "Alpha" and first["title"] == "Sea wall"
    assert first["published_at"].endswith("+00:00")
    assert [f for f, _ in export.DOCUMENT_FIELDS] == list(first)

    with (tmp_path / "a.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["id"]) for r in rows] == collection
    assert json.loads(rows[0]["urls"]) == first["urls"]
    assert rows[2]["title"] == "Brücke"

    table = pq.read_table(tmp_path / "a.parquet")
    assert table.column("id").to_pylist() == collection
    assert table.column("entities").to_pylist()[0] == first["entities"]
    assert table.schema.field("published_at").type.tz == "UTC"


def test_filters_select(collection, database_url):
    def ids(*args: str) -> list[int]:
        out = run_export(database_url, "--format", "jsonl", *args).stdout
        return [json.loads(line)["id"] for line in out.splitlines()]

    first, second, third = collection
    assert ids("--language", "de") == [third]
    assert ids("--feed", "Beta") == [third]
    assert ids("--entity", "harbour council") == [first]
    assert ids("--since-id", str(first)) == [second, third]
    assert ids("--since", "2000-01-01", "--until", "2000-01-02") == []


def test_named_cursor_resumes_where_it_stopped(collection, conn, database_url, tmp_path):
    out = tmp_path / "part.jsonl"
    run_export(database_url, "--format", "jsonl", "--cursor", "nightly", "--out", str(out))
    assert len(out.read_text().splitlines()) == 3
    run_export(database_url, "--format", "jsonl", "--cursor", "nightly", "--out", str(out))
    assert out.read_text() == ""
    _, fourth = store_text(conn, "https://c.org/4", FOURTH)
    run_export(database_url, "--format", "jsonl", "--cursor", "nightly", "--out", str(out))
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [fourth]
    assert db.export_cursor(conn, "nightly") == fourth


def test_rows_stream_from_a_server_side_cursor(collection, conn):
    rows = db.stream_article_documents(conn, db.ArticleFilter(), batch=1)
    next(rows)
    open_cursors = conn.execute("SELECT name FROM pg_cursors").fetchall()
    assert {"name": "newsloom_export"} in open_cursors
    assert len(list(rows)) == 2


def test_unwritable_path_is_one_line_and_exit_2(collection, database_url, tmp_path):
    for path in (tmp_path / "missing" / "a.jsonl", tmp_path):
        result = newsloom(
            "export", "--format", "jsonl", "--out", str(path), env={"DATABASE_URL": database_url}
        )
        assert result.returncode == 2
        assert result.stderr.startswith(f"newsloom: error: cannot write {path}")
        assert len(result.stderr.splitlines()) == 1
    result = newsloom("export", "--format", "xml", env={"DATABASE_URL": database_url})
    assert result.returncode == 2 and "jsonl, csv, parquet" in result.stderr
    result = newsloom(
        "export",
        "--format",
        "csv",
        "--since-id",
        "1",
        "--since",
        "2026-01-01",
        env={"DATABASE_URL": database_url},
    )
    assert result.returncode == 2 and "not both" in result.stderr
