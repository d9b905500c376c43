"""CLI start-up: wall time of `newsloom` commands that need neither Celery nor spaCy
(budget 0.3 s each), against the bare interpreter and a command that does need Celery.

No server is needed: the database commands point at a closed port and end at once with
exit code 3 (cannot reach a server), after everything they import is imported.

    .venv/bin/python bench/cli_startup.py [--runs 10] [--budget 0.3]

Start-up is one thread's work, so its CPU time (user + system) is what the wall time
is on an idle machine; on a busy one the wall time grows with the load, the CPU time
hardly. The budget applies to the median CPU time; exits 1 if a command is over it.

The package's bytecode is compiled first, as pip leaves an installed package: with
PYTHONDONTWRITEBYTECODE set (the Docker image sets it, so do some shells) Python would
otherwise compile every newsloom module from source at each start, about a tenth of it.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLOSED_PORT_DB = "postgresql://newsloom@127.0.0.1:1/newsloom?connect_timeout=2"
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, exit code) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per command")
    args = parser.parse_args()
    repository = Path(__file__).resolve().parents[1]
    for package in ("newsloom", "worker", "scheduler"):
        compileall.compile_dir(repository / package, quiet=1)

    with tempfile.TemporaryDirectory() as tmp:
        feeds = Path(tmp) / "feeds.toml"
        feeds.write_text("")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("NEWSLOOM_") and k not in ("DATABASE_URL", "REDIS_URL")
        }
        env.update(
            {
                "NEWSLOOM_FEEDS": str(feeds),
                "NEWSLOOM_DATA_DIR": tmp,
                "DATABASE_URL": CLOSED_PORT_DB,
                "REDIS_URL": CLOSED_PORT_REDIS,
            }
        )
        newsloom = [sys.executable, "-m", "newsloom"]
        # (label, argv, held to the budget)
        cases = [
            ("python -c pass (the floor)", [sys.executable, "-c", "pass"], False),
            (
                "importing typer, pydantic and psycopg (a database command's least)",
                [sys.executable, "-c", "import typer, pydantic.main, psycopg"],
                False,
            ),
            ("newsloom --help", [*newsloom, "--help"], True),
            ("newsloom --version", [*newsloom, "--version"], True),
            ("newsloom feeds check (empty file)", [*newsloom, "feeds", "check", str(feeds)], True),
            ("newsloom dlq list (no database)", [*newsloom, "dlq", "list"], True),
            ("newsloom search (no database)", [*newsloom, "search", "words"], True),
            ("newsloom feeds list (no database)", [*newsloom, "feeds", "list"], True),
            ("newsloom imports (no database)", [*newsloom, "imports"], True),
            ("newsloom migrate (no database)", [*newsloom, "migrate"], True),
            ("newsloom status (needs Celery)", [*newsloom, "status", "--json"], False),
        ]
        over = []
        print(
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
            f"medians of {args.runs} runs"
        )
        print(f"{'command':62} {'CPU':>7} {'wall':>7}  exit")
        for label, argv, held in cases:
            results = [timed(argv, env) for _ in range(args.runs)]
            wall = statistics.median(r[0] for r in results)
            cpu = statistics.median(r[1] for r in results)
            mark = ""
            if held and cpu > args.budget:
                over.append(label)
                mark = f"  over {args.budget:g} s"
            print(f"{label:62} {cpu:6.3f}s {wall:6.3f}s  {results[-1][2]:>4}{mark}")
    if over:
        print(f"over budget: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
