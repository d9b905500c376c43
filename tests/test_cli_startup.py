"""Commands that need neither Celery nor spaCy do not import them (nor the other heavy
libraries of the pipeline): `newsloom --help` and the database commands start fast.
bench/cli_startup.py measures the time; this checks the cause, without a clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = {"celery", "kombu", "spacy", "trafilatura", "numpy", "redis", "httpx", "lxml"}
COMMANDS = [
    ["--help"],
    ["--version"],
    ["dlq", "list"],
    ["dlq", "show", "1"],
    ["dlq", "discard", "1"],
    ["search", "words"],
    ["feeds", "list"],
    ["migrate"],
]
# Runs each command in turn in one process (the servers are unreachable, so each ends at
# once) and reports every top-level module imported by then.
PROBE = """
import json, sys
from newsloom.cli import main
for argv in json.loads(sys.argv[1]):
    sys.argv = ["newsloom", *argv]
    try:
        main()
    except SystemExit:
        pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
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
    assert imported.isdisjoint({"psycopg", "pydantic_settings", "structlog", *HEAVY}), sorted(
        imported & {"psycopg", "pydantic_settings", "structlog", *HEAVY}
    )
