"""The read API benchmark still runs (at a tiny size; `make bench-api` runs it at full size)."""

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "bench"


def test_api_bench_runs(servers):
    env = {**os.environ, "DATABASE_URL": servers[0], "REDIS_URL": servers[1]}
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "api.py"),
            "--articles",
            "300",
            "--clients",
            "4",
            "--seconds",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = {line.split("  ")[0]: line.split() for line in result.stdout.splitlines()}
    for scenario in ("GET /api/v1/articles?q=...", "GET / (home page)"):
        assert scenario in lines, result.stdout
        assert lines[scenario][-1] == "0", result.stdout  # no errors
