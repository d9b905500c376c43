"""WARC in and out: reading other tools' archives, `newsloom import` (resumable, robust,
through the process step) and `newsloom export --format warc`, round trip included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from io import BytesIO
from pathlib import Path

import pytest
from site_fixture import article_html, seed_article, synthetic_article
from support import run_newsloom, run_url, scratch_database, start_workers, stop_workers, wait_until
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from newsloom import db, queue, warc
from newsloom.queue import PROCESS_TASK
from newsloom.settings import load_settings
from newsloom.worker.pipeline import Context, process_step, settle_failure

FIXTURES = Path(__file__).parent / "fixtures" / "warc"

# What each file's records are: an HTML 200 page, or the reason it is skipped.
EXPECTED = {
    "bad.arc": {"warcinfo": 1, "no_http_headers": 3},
    "example-bad-non-chunked.warc.gz": {"warcinfo": 1, "corrupt": 1},
    "example-cut.warc.gz": {"warcinfo": 2, "truncated": 1},
    "example-hole.warc.gz": {"warcinfo": 2, "corrupt": 1, "request": 2, "revisit": 1},
    "example-iana.org-chunked.warc": {"warcinfo": 1, "page": 1, "request": 1},
    "example-resource.warc.gz": {"warcinfo": 2, "resource": 1},
    "example-stray-bytes.warc": {
        "warcinfo": 2,
        "page": 1,
        "corrupt": 1,
        "request": 2,
        "revisit": 1,
    },
    "example-trunc.warc": {"warcinfo": 2, "page": 1, "request": 1},
    "example-wget-bad-target-uri.warc.gz": {
        "warcinfo": 1,
        "request": 1,
        "page": 1,
        "metadata": 1,
        "resource": 2,
    },
    "example-wrong-chunks.warc.gz": {"truncated": 1, "corrupt": 1, "no_record_type": 1},
    "example.arc": {"warcinfo": 1, "page": 1},
    "example.arc.gz": {"warcinfo": 1, "page": 1},
    "example.warc": {"warcinfo": 2, "page": 1, "request": 2, "revisit": 1},
    "example.warc.gz": {"warcinfo": 2, "page": 1, "request": 2, "revisit": 1},
    "post-test.warc.gz": {"not_html": 3, "request": 3},
}


def file_opener(path: Path):
    def open_at(offset: int):
        stream = path.open("rb")
        stream.seek(offset)
        return stream

    return open_at


def entries(path: Path, start: int = 0) -> list[warc.Entry]:
    return list(warc.read_entries(file_opener(path), start, 10_000_000))


# Imports through a real worker take a while on a loaded machine.
newsloom = partial(run_newsloom, timeout=300)


def test_reads_archives_written_by_other_tools():
    found = {}
    for path in sorted(FIXTURES.glob("*.*arc*")):
        found[path.name] = dict(Counter(e.skipped or "page" for e in entries(path)))
    assert found == EXPECTED
    [page] = [e.page for e in entries(FIXTURES / "example-wget-bad-target-uri.warc.gz") if e.page]
    assert page.url == "http://example.com/"  # wget's <...> around the URI taken off
    assert page.fetched_at == datetime(2018, 2, 9, 15, 12, 11, tzinfo=UTC)
    assert b"Example Domain" in page.html and ("Content-Type", "text/html") in page.headers
    [chunked] = [e.page for e in entries(FIXTURES / "example-iana.org-chunked.warc") if e.page]
    assert chunked.html.rstrip().endswith(b"</html>")  # the chunks joined


@pytest.mark.parametrize(
    "name",
    [
        "example.warc.gz",
        "example.warc",
        "example.arc.gz",
        "example-hole.warc.gz",
        "example-stray-bytes.warc",
    ],
)
def test_reading_resumes_at_any_saved_offset(name):
    path = FIXTURES / name
    everything = [(e.skipped, e.url, e.next_offset) for e in entries(path)]
    for n, entry in enumerate(everything):
        rest = [(e.skipped, e.url, e.next_offset) for e in entries(path, entry[2])]
        assert rest == everything[n + 1 :]


def test_not_an_archive_is_one_clear_error(app_env, tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><body>not an archive</body></html>\n" * 50)
    result = newsloom(app_env, "import", str(page))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "not a WARC or ARC file" in result.stderr and "Traceback" not in result.stderr
    missing = newsloom(app_env, "import", str(tmp_path / "nowhere.warc"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def process_all(ctx: Context, conn) -> list[str | None]:
    """Run the process step in-process on every URL waiting for it, a failure settled as
    the task adapter does; returns the outcomes."""
    outcomes = []
    for row in conn.execute("SELECT id FROM urls WHERE state = 'fetched' ORDER BY id"):
        try:
            outcomes.append(process_step(ctx, row["id"]))
        except Exception as exc:  # noqa: BLE001 - what the task adapter does
            settle_failure(ctx, PROCESS_TASK, row["id"], exc)
            outcomes.append(None)
    return outcomes


def test_import_of_other_tools_archives_through_the_process_step(app_env, settings, conn):
    result = newsloom(app_env, "import", str(FIXTURES), "--json")
    assert result.returncode == 0, result.stderr
    # Not a terminal: plain progress lines, the last one with the totals.
    assert "importing: 63 records (" in result.stderr and "2 sent, 100% of bytes" in result.stderr
    imports = {Path(r["location"]).name: r for r in db.list_imports(conn)}
    assert set(imports) == set(EXPECTED) and all(r["done"] for r in imports.values())
    for name, expected in EXPECTED.items():
        counts = imports[name]["counts"]
        pages = counts.pop("queued", 0) + counts.pop("known_url", 0)
        assert {**counts, **({"page": pages} if pages else {})} == expected, name
    urls = conn.execute("SELECT url, state, source FROM urls ORDER BY url").fetchall()
    assert [(u["url"], u["state"]) for u in urls] == [
        ("http://example.com/", "fetched"),
        ("http://www.iana.org/", "fetched"),
    ]
    # The first file (by name) holding example.com's page gives its date.
    assert urls[0]["source"] == f"import:{FIXTURES / 'example-stray-bytes.warc'}"

    ctx = Context(load_settings(**{**settings.model_dump(), "min_text_chars": 20}))
    try:
        assert process_all(ctx, conn) == ["stored", "stored"]
    finally:
        ctx.pool.close()
    article = conn.execute("SELECT * FROM articles WHERE url = 'http://example.com/'").fetchone()
    assert article["fetched_at"] == datetime(2017, 3, 6, 4, 2, 6, tzinfo=UTC)
    assert article["title"] == "Example Domain" and article["source"].startswith("import:")

    again = newsloom(app_env, "import", str(FIXTURES))
    assert again.returncode == 0 and again.stdout.count("imported before") == len(EXPECTED)
    assert conn.execute("SELECT count(*) AS n FROM urls").fetchone()["n"] == 2


def test_filters_domain_limit_and_language(app_env, settings, conn, tmp_path):
    domains = tmp_path / "domains.txt"
    domains.write_text("# the sites to keep\niana.org\n")
    result = newsloom(
        app_env,
        "import",
        str(FIXTURES / "example-iana.org-chunked.warc"),
        str(FIXTURES / "example.warc.gz"),
        "--domain",
        f"@{domains}",
    )
    assert result.returncode == 0, result.stderr
    assert [r["url"] for r in conn.execute("SELECT url FROM urls").fetchall()] == [
        "http://www.iana.org/"
    ]
    counts = {Path(r["location"]).name: r["counts"] for r in db.list_imports(conn)}
    assert counts["example.warc.gz"]["other_domain"] == 1
    listed = json.loads(newsloom(app_env, "imports", "--json").stdout)
    assert {Path(r["location"]).name: r["counts"] for r in listed} == counts

    # The language is the extracted one: the process step checks it.
    result = newsloom(
        app_env,
        "import",
        str(FIXTURES / "example.arc"),
        "--language",
        "de",
        "--since",
        "2014-01-01",
        "--limit",
        "1",
    )
    assert result.returncode == 0, result.stderr
    ctx = Context(load_settings(**{**settings.model_dump(), "min_text_chars": 20}))
    try:
        process_all(ctx, conn)
    finally:
        ctx.pool.close()
    skipped = conn.execute(
        "SELECT url, state, reason FROM urls WHERE source LIKE 'import:%%example.arc'"
    ).fetchone()
    assert (skipped["state"], skipped["reason"]) == ("skipped", "filtered_language")
    # Crawled before --since: nothing in it was published later; dropped while reading.
    newsloom(app_env, "import", str(FIXTURES / "example.arc.gz"), "--since", "2020-01-01")
    [arc_gz] = [r for r in db.list_imports(conn) if r["location"].endswith("example.arc.gz")]
    assert arc_gz["counts"] == {"warcinfo": 1, "before_since": 1}


def make_warc(path: Path, pages: list[tuple[str, bytes]], when: datetime) -> None:
    """A WARC such as a crawler writes: a request and a response record per page."""
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        for url, html in pages:
            headers = StatusAndHeaders(
                "200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1"
            )
            date = {"WARC-Date": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
            writer.write_record(writer.create_warc_record(url, "request", warc_headers_dict=date))
            writer.write_record(
                writer.create_warc_record(
                    url,
                    "response",
                    payload=BytesIO(html),
                    http_headers=headers,
                    warc_headers_dict=date,
                )
            )


def test_killed_import_resumes_from_its_offset(app_env, conn, tmp_path):
    pages = [
        (f"http://news.example/{n}", article_html(*synthetic_article(n)).encode())
        for n in range(260)
    ]
    archive = tmp_path / "crawl.warc.gz"
    make_warc(archive, pages, datetime(2024, 5, 1, tzinfo=UTC))
    # No worker runs: the importer holds at the backpressure bound, so it cannot finish.
    first = subprocess.Popen(
        [sys.executable, "-m", "newsloom", "import", str(archive)],
        env={**app_env, "NEWSLOOM_IMPORT_MAX_QUEUED": "50"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        row = wait_until(
            lambda: [r for r in db.list_imports(conn) if r["counts"].get("queued", 0) > 50],
            60,
            "pages committed",
        )[0]
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    assert not row["done"] and 0 < row["byte_offset"] < archive.stat().st_size

    second = newsloom(app_env, "import", str(archive), "--json")
    assert second.returncode == 0, second.stderr
    [done] = db.list_imports(conn)
    assert done["done"] and done["records_read"] == 2 * len(pages)  # each record read once
    assert done["counts"] == {"request": len(pages), "queued": len(pages)}
    ledger = conn.execute(
        "SELECT count(*) AS n, count(DISTINCT url) AS urls, min(state) AS s,"
        " max(state) AS t FROM urls"
    ).fetchone()
    assert (ledger["n"], ledger["urls"], ledger["s"], ledger["t"]) == (
        len(pages),
        len(pages),
        "fetched",
        "fetched",
    )


def test_round_trip_collect_export_import(ctx, site, conn, app_env, servers, tmp_path):
    title, paragraphs = seed_article()
    site.add(
        "/seed",
        article_html(title, paragraphs, author="Ann Writer", published="2024-03-02T10:00:00+00:00"),
    )
    for n in range(4):
        site.add(f"/n/{n}", article_html(*synthetic_article(n), author="Staff"))
    for path in ("/seed", *(f"/n/{n}" for n in range(4))):
        assert run_url(ctx, site.url(path))["state"] == "stored"
    page = conn.execute("SELECT status, headers FROM raw_pages LIMIT 1").fetchone()
    assert page["status"] == 200
    assert ["content-type", "text/html; charset=utf-8"] in page["headers"]

    exported = tmp_path / "collection.warc.gz"
    result = newsloom(app_env, "export", "--format", "warc", "--out", str(exported))
    assert result.returncode == 0 and "exported 5 article(s)" in result.stderr, result.stderr
    with exported.open("rb") as stream:
        records = [
            (r.rec_type, r.rec_headers.protocol, r.http_headers and r.http_headers.statusline)
            for r in ArchiveIterator(stream)
        ]
    assert records == [("response", "WARC/1.1", "200 OK"), ("metadata", "WARC/1.1", None)] * 5

    before = article_summary(conn)
    assert len(before) == 5 and all(row[-1] for row in before)  # every one has entities
    with scratch_database(servers[0], label="warc") as other_url:
        env = {**app_env, "DATABASE_URL": other_url}
        workers = start_workers(env, tmp_path)
        try:
            result = newsloom(env, "import", str(exported))
            assert result.returncode == 0, result.stderr
            with db.connect(other_url) as other:
                wait_until(
                    lambda: (
                        other.execute(
                            "SELECT count(*) FILTER (WHERE state = 'stored') AS n FROM urls"
                        ).fetchone()["n"]
                        == 5
                    ),
                    300,
                    "the imported articles stored",
                )
                after = article_summary(other)
                sources = {r["source"] for r in other.execute("SELECT source FROM articles")}
        finally:
            stop_workers(workers)
    assert after == before
    assert sources == {f"import:{exported}"}


def article_summary(conn) -> list[tuple]:
    """What must survive a round trip: URL, text hash, dates, and the entities."""
    rows = conn.execute(
        """SELECT a.url, a.content_hash, a.fetched_at, a.published_at, a.title,
                  array(SELECT e.name || '/' || e.label || '/' || ae.mentions
                        FROM article_entities ae JOIN entities e ON e.id = ae.entity_id
                        WHERE ae.article_id = a.id ORDER BY 1) AS entities
           FROM articles a ORDER BY a.url"""
    ).fetchall()
    return [tuple(r.values()) for r in rows]


def test_backpressure_waits_while_the_process_queue_is_deep(settings, conn):
    from newsloom.importer import Importer

    celery = queue.make_app(load_settings(**{**settings.model_dump(), "import_max_queued": 2}))
    try:
        for url_id in range(3):
            queue.enqueue_process(url_id, celery)
        importer = Importer(
            load_settings(**{**settings.model_dump(), "import_max_queued": 2}), conn, celery
        )
        import threading

        waited = threading.Thread(target=importer.wait_for_room, daemon=True)
        waited.start()
        waited.join(0.5)
        assert waited.is_alive()  # three waiting > 2: it holds
        with celery.connection_for_write() as connection:
            connection.default_channel.basic_get(queue.PROCESS_QUEUE, no_ack=True)
        waited.join(5)
        assert not waited.is_alive()
    finally:
        celery.close()


def test_import_from_urls_streams_ranges_and_the_address_guard(app_env, conn, site):
    def ranged(data: bytes):
        """A server that honours Range requests (the other route ignores them)."""

        def handler(request):
            start = int(request.headers.get("Range", "bytes=0-")[6:].rstrip("-"))
            return (206 if start else 200), {"Content-Type": "application/warc"}, data[start:]

        return handler

    site.add_handler("/stray.warc", ranged((FIXTURES / "example-stray-bytes.warc").read_bytes()))
    site.add(
        "/hole.warc.gz",
        (FIXTURES / "example-hole.warc.gz").read_bytes(),
        content_type="application/gzip",
    )
    urls = [site.url("/stray.warc"), site.url("/hole.warc.gz")]

    blocked = newsloom({**app_env, "NEWSLOOM_ALLOW_PRIVATE_NETWORKS": "false"}, "import", *urls)
    assert blocked.returncode == 2 and "blocked_address" in blocked.stderr, blocked.stderr
    missing = newsloom(app_env, "import", site.url("/nothing.warc"))
    assert missing.returncode == 2 and "cannot download" in missing.stderr

    result = newsloom(app_env, "import", *urls)
    assert result.returncode == 0, result.stderr
    counts = {r["location"]: r["counts"] for r in db.list_imports(conn)}
    assert counts[urls[0]] == {"warcinfo": 2, "queued": 1, "corrupt": 1, "request": 2, "revisit": 1}
    assert counts[urls[1]] == EXPECTED["example-hole.warc.gz"]
    # Damage made the reader start again further on: a Range request, or reading past.
    assert any("Range" in r.headers for r in site.requests if r.path == "/stray.warc")
    assert conn.execute("SELECT source FROM urls").fetchone()["source"] == f"import:{urls[0]}"


def test_import_bench_runs(servers):
    """bench/warc_import.py at a tiny size (`make bench-warc` runs 10,000 records)."""
    env = {**os.environ, "DATABASE_URL": servers[0], "REDIS_URL": servers[1]}
    bench = Path(__file__).parent.parent / "bench" / "warc_import.py"
    result = subprocess.run(
        [sys.executable, str(bench), "--records", "20", "--process-workers", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "of the ceiling" in result.stdout and "read only" in result.stdout


def test_export_of_a_page_kept_before_headers_were(tmp_path):
    """Pages fetched before migration 0005 have no kept headers: their Content-Type stands
    in; wire encodings never reach the record, whose Content-Length is the payload's."""
    import zlib

    when = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    article = {
        "url": "https://a.example/1",
        "fetched_at": when,
        "title": "T",
        "entities": [["Ann", "PERSON", 2]],
        "page_fetched_at": when,
        "final_url": "https://a.example/1",
        "html_zlib": zlib.compress(b"<html>x</html>"),
    }
    rows = [
        {**article, "headers": None, "content_type": "text/html", "status": None},
        {
            **article,
            "headers": [
                ["Content-Encoding", "gzip"],
                ["Content-Length", "9"],
                ["Content-Type", "text/html"],
            ],
            "status": 200,
        },
        {**article, "html_zlib": None},
    ]  # the page was pruned: metadata only
    out = BytesIO()
    writer = warc.WarcWriter(out)
    for row in rows:
        writer.write(row)
    writer.close()
    out.seek(0)
    records = [
        (
            r.rec_type,
            r.http_headers and r.http_headers.headers,
            r.rec_headers.get_header("WARC-Date"),
            r.content_stream().read(),
        )
        for r in ArchiveIterator(out)
    ]
    responses = [r for r in records if r[0] == "response"]
    assert [r[1] for r in responses] == [
        [("Content-Type", "text/html"), ("Content-Length", "14")]
    ] * 2
    assert {r[2] for r in records} == {"2024-01-02T03:04:05.678901Z"}
    metadata = [json.loads(r[3]) for r in records if r[0] == "metadata"]
    assert len(metadata) == 3 and metadata[0]["entities"] == [
        {"name": "Ann", "label": "PERSON", "mentions": 2}
    ]
