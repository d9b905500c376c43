"""Commands that need neither Celery nor spaCy do not import them (nor the other heavy
libraries of the pipeline): `newsloom --help` and the database commands start fast.
bench/cli_startup.py measures the time; this checks the cause, without a clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = {"celery", "kombu", "spacy", "trafilatura", "numpy", "redis", "httpx", "lxml"}
DATABASE_COMMANDS = [
    ["dlq", "list"],
    ["dlq", "show", "1"],
    ["dlq", "discard", "1"],
    ["search", "words"],
    ["feeds", "list"],
    ["imports"],
    ["export", "--format", "jsonl"],
    ["migrate"],
]
COMMANDS = [["--help"], ["--version"], *DATABASE_COMMANDS]
# Imported only where they are used: rich to draw for a terminal (the probes' output is a
# pipe), structlog at the first line logged, psycopg_pool where a pool is made, and
# httpx's own command-line client (click, pygments) never.
DEFERRED = {"rich", "structlog", "psycopg_pool", "click", "pygments"}
# Runs each command in turn in one process (the servers are unreachable, so each ends at
# once) and reports every top-level module imported by then (None marks an import refused).
PROBE = """
import json, sys
from newsloom.cli import main
for argv in json.loads(sys.argv[1]):
    sys.argv = ["newsloom", *argv]
    try:
        main()
    except SystemExit:
        pass
imported = {name.split(".")[0] for name, module in sys.modules.items() if module is not None}
print(json.dumps(sorted(imported)), file=sys.stderr)
"""


def _imported_by(commands: list[list[str]], tmp_path) -> set[str]:
    """Top-level modules imported once `commands` have run in one process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLOOM_")}
    env.update(
        {
            "DATABASE_URL": "postgresql://newsloom@127.0.0.1:1/none",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "NEWSLOOM_DATA_DIR": str(tmp_path),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(commands)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if len(commands) > 2:
        assert "cannot reach a server" in done.stderr  # the database commands got that far
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_commands_without_celery_or_spacy_import_neither(tmp_path):
    imported = _imported_by(COMMANDS, tmp_path)
    assert {"typer", "psycopg"} <= imported
    assert imported.isdisjoint(HEAVY), sorted(imported & HEAVY)


def test_help_and_version_import_no_database_or_settings(tmp_path):
    imported = _imported_by([["--help"], ["--version"]], tmp_path)
    assert imported.isdisjoint({"psycopg", "pydantic", "structlog", *HEAVY}), sorted(
        imported & {"psycopg", "pydantic", "structlog", *HEAVY}
    )


def test_database_commands_leave_rich_logging_and_pools_for_later(tmp_path):
    imported = _imported_by(DATABASE_COMMANDS, tmp_path)
    assert {"typer", "psycopg", "pydantic"} <= imported
    assert imported.isdisjoint(DEFERRED), sorted(imported & DEFERRED)


def test_feeds_check_imports_httpx_without_its_command_line_client(tmp_path):
    feeds = tmp_path / "feeds.toml"
    feeds.write_text("")
    imported = _imported_by([["feeds", "check", str(feeds)]], tmp_path)
    assert "httpx" in imported  # it made its client
    assert imported.isdisjoint(DEFERRED), sorted(imported & DEFERRED)


def test_tables_for_a_pipe_are_tab_separated_lines_drawn_without_rich():
    code = (
        "import sys\n"
        "from datetime import datetime\n"
        "from newsloom.cli import output\n"
        "output.print_table('2 row(s)', ['id', 'when', 'error'],"
        " [[1, datetime(2026, 1, 2, 3, 4, 5), 'two\\nlines'], [2, None, 'a\\tb']])\n"
        "print('rich' in sys.modules, file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TTY_COMPATIBLE", "FORCE_COLOR")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.splitlines() == [
        "2 row(s)",
        "id\twhen\terror",
        "1\t2026-01-02 03:04:05\ttwo lines",
        "2\t\ta b",
    ]
    assert done.stderr.strip() == "False"
