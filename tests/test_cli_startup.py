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


def test_commands_without_celery_or_spacy_import_neither(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLOOM_")}
    env.update(
        {
            "DATABASE_URL": "postgresql://newsloom@127.0.0.1:1/none",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "NEWSLOOM_DATA_DIR": str(tmp_path),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(COMMANDS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "cannot reach a server" in done.stderr  # the database commands got that far
    imported = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert {"typer", "psycopg"} <= imported
    assert imported.isdisjoint(HEAVY), sorted(imported & HEAVY)
