"""Read API benchmark: `newsloom serve` over N articles (filled by SQL), hit by C
concurrent clients: requests/s and latency percentiles for a full-text search
(GET /api/v1/articles?q=...), the home page (GET /, kept up to a second), the same page
filtered (rendered for every request) and one article; and the CPU time per request of the
server's processes, of its Postgres sessions and of the clients.

    .venv/bin/python bench/api.py --articles 100000 --clients 50 --seconds 20

The clients run in this process (raw asyncio streams, ~0.1 ms of CPU per request) on the
same machine as the server and Postgres, so on a small machine they take a little of the
CPU they measure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import scratch_database, serve_process  # noqa: E402

from newsloom.settings import Settings  # noqa: E402

VOCABULARY = 5000
# Common, middling and rare words of the synthetic text (word n is drawn ~ n^-2/3), and two
# words. (A phrase of common words costs more: every article with both words is read.)
QUERIES = ("w1", "w40", "w900", "w2+w3", "w4000")

FILL = """
INSERT INTO feeds (url, name, interval_seconds, last_success_at)
SELECT 'https://feed' || f || '.example/rss', 'Feed ' || f, 900, now()
FROM generate_series(1, 20) AS f;

INSERT INTO entities (name, label)
SELECT 'Entity ' || e, (ARRAY['PERSON', 'ORG', 'GPE'])[1 + e %% 3]
FROM generate_series(1, 2000) AS e;

INSERT INTO articles (url, canonical_url, title, published_at, language, text, feed_id,
                      fetched_at, content_hash, extractor)
SELECT 'https://news.example/' || i, 'https://news.example/' || i,
       'Story ' || i || ' about w' || (1 + i %% 300),
       now() - i * interval '30 seconds', CASE WHEN i %% 10 = 0 THEN 'de' ELSE 'en' END,
       (SELECT string_agg('w' || (1 + floor(%(vocabulary)s * random() ^ 3))::int, ' ')
        FROM generate_series(1, 120 + i %% 60)),
       1 + i %% 20, now() - i * interval '30 seconds', md5(i::text), 'bench'
FROM generate_series(1, %(articles)s) AS i;

INSERT INTO article_urls (url, article_id, feed_id)
SELECT url, id, feed_id FROM articles;
"""
# Run for each block of ENTITY_BLOCK articles: the entity counters' statement trigger joins
# the rows a statement inserted, slow for one statement of 300,000 rows.
FILL_ENTITIES = """
INSERT INTO article_entities (article_id, entity_id, mentions)
SELECT a.id, 1 + floor(2000 * (abs(hashtext(a.id || ':' || k)) %% 10000 / 10000.0) ^ 2)::int,
       1 + (a.id + k) %% 4
FROM articles a, generate_series(1, 3) AS k
WHERE a.id BETWEEN %(lo)s::bigint AND %(lo)s::bigint + %(block)s - 1
ON CONFLICT DO NOTHING
"""
ENTITY_BLOCK = 5000


def fill(database_url: str, articles: int) -> float:
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        for statement in filter(str.strip, FILL.split(";\n")):
            conn.execute(statement, {"articles": articles, "vocabulary": VOCABULARY})
        first, last = conn.execute("SELECT min(id), max(id) FROM articles").fetchone()
        for lo in range(first, last + 1, ENTITY_BLOCK):
            conn.execute(FILL_ENTITIES, {"lo": lo, "block": ENTITY_BLOCK})
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


class Connection:
    """One keep-alive HTTP/1.1 connection: a client far lighter than httpx, so that the
    clients take less of the CPU they share with the server they measure."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
        await self.reader.readexactly(int(headers["content-length"]))
        return int(head[0].split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def hammer(host: str, port: int, paths: list[str], clients: int, seconds: float) -> dict:
    """`clients` loops, each sending the next of `paths` as soon as the last answered."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def loop(n: int) -> None:
        nonlocal errors
        connection, i = Connection(host, port), n
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status = await connection.get(paths[i % len(paths)])
                latencies.append(time.perf_counter() - started)
                errors += status != 200
                i += 1
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(loop(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p95": latencies[int(len(latencies) * 0.95) - 1] * 1000,
        "max": latencies[-1] * 1000,
    }


def cpu_processes(server_pid: int, database_url: str) -> list[list[psutil.Process]]:
    """The serve processes, the Postgres sessions on the database (none when Postgres is
    not on this machine) and this process."""
    server = psutil.Process(server_pid)
    with psycopg.connect(database_url) as conn:
        backends = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
    sessions = []
    for pid in backends:
        with contextlib.suppress(psutil.Error):
            sessions.append(psutil.Process(pid))
    return [[server, *server.children(recursive=True)], sessions, [psutil.Process()]]


def cpu_seconds(groups: list[list[psutil.Process]]) -> list[float | None]:
    """User + system CPU seconds of each group (None for an empty one)."""
    totals: list[float | None] = []
    for group in groups:
        total = None
        for process in group:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total = (total or 0.0) + times.user + times.system
        totals.append(total)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--workers", type=int, help="`serve` processes (default: NEWSLOOM_HTTP_WORKERS' default)"
    )
    parser.add_argument(
        "--existing", metavar="URL", help="a database filled by an earlier run, used as it is"
    )
    args = parser.parse_args()
    args.workers = args.workers or Settings.model_fields["http_workers"].get_default(
        call_default_factory=True
    )
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        sys.exit("bench/api.py: set DATABASE_URL (a scratch database is made there)")

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        if args.existing:
            database_url = args.existing
            with psycopg.connect(database_url) as conn:
                args.articles = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
            print(f"{args.articles} articles (an existing database); ", end="")
        else:
            database_url = stack.enter_context(scratch_database(admin_url, "benchapi"))
            print(
                f"{args.articles} articles filled in {fill(database_url, args.articles):.0f}s; ",
                end="",
            )
        print(
            f"{args.workers} serve process(es), {args.clients} clients, "
            f"{args.seconds:g}s per scenario, "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start"
        )
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "NEWSLOOM_API_POOL_SIZE": "10",
            "NEWSLOOM_LOG_LEVEL": "warning",
            "NEWSLOOM_HTTP_WORKERS": str(args.workers),
        }
        base, server = stack.enter_context(serve_process(env, Path(tmp) / "serve.log"))
        port = urlsplit(base).port
        scenarios = {
            "GET /api/v1/articles?q=...": [f"/api/v1/articles?q={q}" for q in QUERIES],
            "GET / (home page)": ["/"],
            "GET /?language=en (not kept)": ["/?language=en"],
            "GET /api/v1/articles/{id}": [
                f"/api/v1/articles/{1 + i * 97 % args.articles}" for i in range(100)
            ],
        }
        print(
            f"{'scenario':32} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
            f"{'CPU ms/request: serve':>22} {'postgres':>8} {'clients':>8} {'errors':>6}"
        )
        for name, paths in scenarios.items():
            asyncio.run(
                hammer("127.0.0.1", port, paths, args.clients, min(2.0, args.seconds))
            )  # warm up
            processes = cpu_processes(server.pid, database_url)
            before = cpu_seconds(processes)
            r = asyncio.run(hammer("127.0.0.1", port, paths, args.clients, args.seconds))
            cpu = [
                f"{1000 * (after - start) / r['requests']:.2f}" if start is not None else "-"
                for start, after in zip(before, cpu_seconds(processes), strict=True)
            ]
            print(
                f"{name:32} {r['rps']:8.1f} {r['p50']:8.1f} {r['p95']:8.1f} "
                f"{r['max']:8.1f} {cpu[0]:>22} {cpu[1]:>8} {cpu[2]:>8} {r['errors']:6d}",
                flush=True,
            )


if __name__ == "__main__":
    main()
