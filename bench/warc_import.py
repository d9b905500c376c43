"""WARC import benchmark: `newsloom import` of an N-record WARC through real process
workers, against the CPU ceiling of extraction plus tagging measured in the same run.

The WARC is written with warcio from the fixture site's article pages (one response
record per page). Reported: the read-only rate (warcio and newsloom.warc, no database:
reading must never be the bottleneck), the importer alone with no worker (read, keep
pages, send messages), the ceiling, articles/s through the workers and its ratio to the
ceiling, and the CPU the importer itself used.

    .venv/bin/python bench/warc_import.py --records 10000
    .venv/bin/python bench/warc_import.py --records 10000 --reading-only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import psutil
import psycopg
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fixture site's article pages

from pipeline import MODEL, _bare_script_worker, ceiling  # noqa: E402 - bench/pipeline.py
from site_fixture import article_html, synthetic_article  # noqa: E402
from support import scratch_database, scratch_redis_prefix, start_workers, stop_workers  # noqa: E402

from newsloom import warc  # noqa: E402


def write_archive(path: Path, pages: list[str]) -> None:
    """One gzipped response record per page, dated a minute apart, as a crawler writes."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True, warc_version="1.1")
        for n, html in enumerate(pages):
            body = html.encode()
            headers = StatusAndHeaders(
                "200 OK",
                [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))],
                protocol="HTTP/1.1",
            )
            date = (start + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
            writer.write_record(
                writer.create_warc_record(
                    f"https://news.example/{n % 50}/story-{n}",
                    "response",
                    payload=BytesIO(body),
                    length=len(body),
                    http_headers=headers,
                    warc_headers_dict={"WARC-Date": date},
                )
            )


def read_only_rate(path: Path) -> float:
    """Records per second that reading the file alone allows (no database, no queue)."""

    def open_at(offset: int):
        stream = path.open("rb")
        stream.seek(offset)
        return stream

    start = time.monotonic()
    count = sum(1 for entry in warc.read_entries(open_at, 0, 10_000_000) if entry.page)
    return count / (time.monotonic() - start)


def importer_alone(admin_url: str, redis_url: str, archive: Path) -> float:
    """Records per second of `newsloom import` itself (read, record pages, send messages)
    with no worker and no backpressure: what it can feed the workers."""
    with (
        scratch_database(admin_url, "warcbench") as database_url,
        scratch_redis_prefix(redis_url, "warcbench") as prefix,
    ):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "NEWSLOOM_REDIS_KEY_PREFIX": prefix,
            "NEWSLOOM_LOG_LEVEL": "warning",
            "NEWSLOOM_IMPORT_MAX_QUEUED": str(10**9),
        }
        subprocess.run(
            [sys.executable, "-m", "newsloom", "import", str(archive)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with psycopg.connect(database_url) as conn:
            records, seconds = conn.execute(
                "SELECT records_read, extract(epoch FROM updated_at - started_at) FROM imports"
            ).fetchone()
    return records / float(seconds)


def run_import(admin_url: str, redis_url: str, archive: Path, records: int, workers: int) -> dict:
    with (
        scratch_database(admin_url, "warcbench") as database_url,
        scratch_redis_prefix(redis_url, "warcbench") as prefix,
        tempfile.TemporaryDirectory() as tmp,
    ):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "NEWSLOOM_REDIS_KEY_PREFIX": prefix,
            "NEWSLOOM_LOG_LEVEL": "warning",
            "NEWSLOOM_METRICS_PORT": "0",
            "NEWSLOOM_SPACY_MODEL": MODEL,
            "NEWSLOOM_DATA_DIR": tmp,
            "NEWSLOOM_PROCESS_CONCURRENCY": str(workers),
        }
        processes = start_workers({**env}, Path(tmp), count=1, NEWSLOOM_LOG_LEVEL="warning")
        try:
            started = time.monotonic()
            importer = subprocess.Popen(
                [sys.executable, "-m", "newsloom", "import", str(archive)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            importer_cpu = 0.0
            importer_proc = psutil.Process(importer.pid)
            with psycopg.connect(database_url, autocommit=True) as monitor:
                done = 0
                while done < records:
                    if time.monotonic() - started > 3600:
                        raise SystemExit("the import took more than an hour")
                    if importer.poll() not in (None, 0):
                        raise SystemExit(f"newsloom import failed: {importer.stderr.read()}")
                    if importer.poll() is None:
                        try:
                            times = importer_proc.cpu_times()
                            importer_cpu = times.user + times.system
                        except psutil.Error:
                            pass
                    time.sleep(1.0)
                    done = monitor.execute(
                        "SELECT count(*) FROM urls WHERE state NOT IN ('queued', 'fetched')"
                    ).fetchone()[0]
                wall = time.monotonic() - started
                importer.wait(60)
                # Steady state: first article stored to last, the model loading left out.
                first, last, articles = monitor.execute(
                    "SELECT min(created_at), max(created_at), count(*) FROM articles"
                ).fetchone()
                read_seconds = monitor.execute(
                    "SELECT extract(epoch FROM max(updated_at) - min(started_at)) FROM imports"
                ).fetchone()[0]
        finally:
            stop_workers(processes)
    seconds = (last - first).total_seconds()
    return {
        "articles": articles,
        "per_s": (articles - 1) / seconds,
        "wall": wall,
        "importer_cpu_ms": importer_cpu / records * 1000,
        "import_seconds": float(read_seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200, help="response records in the WARC")
    parser.add_argument("--process-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--reading-only",
        action="store_true",
        help="measure reading and the importer alone, not the workers",
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    admin_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

    pages = [
        article_html(*synthetic_article(n, paragraphs=6 + n % 10), author="Staff")
        for n in range(args.records)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "bench.warc.gz"
        write_archive(archive, pages)
        size_mb = archive.stat().st_size / 2**20
        reading = read_only_rate(archive)
        feeding = importer_alone(admin_url, redis_url, archive)
        print(
            f"warc import bench: {args.records} records ({size_mb:.1f} MB gzipped WARC), "
            f"{cores} cores, model {MODEL}"
        )
        print(f"  read only (warcio + newsloom.warc, no database): {reading:.0f} records/s")
        print(f"  importer alone (read, keep pages, send; no workers): {feeding:.0f} records/s")
        if args.reading_only:
            return
        # The ceiling as bench/pipeline.py defines it (trafilatura's defaults plus NER), on a
        # sample: the rate, not the total, matters.
        roof, _ = ceiling(pages[:500], cores, _bare_script_worker)
        result = run_import(admin_url, redis_url, archive, args.records, args.process_workers)
    print(
        f"  ceiling (extract + tag alone, {cores} processes): {roof:.1f} articles/s; "
        f"reading is {reading / roof:.0f}x and the importer {feeding / roof:.0f}x faster"
    )
    print(
        f"  import through {args.process_workers} process worker(s): {result['per_s']:.1f} "
        f"articles/s = {result['per_s'] / roof:.0%} of the ceiling; {result['articles']} "
        f"stored in {result['wall']:.0f} s wall; the importer ran {result['import_seconds']:.0f}"
        f" s (waiting on the queue bound) using {result['importer_cpu_ms']:.1f} ms CPU "
        "per record"
    )


if __name__ == "__main__":
    main()
