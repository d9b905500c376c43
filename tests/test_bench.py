"""The benchmarks still run (at a tiny size; `make bench` runs them at full size)."""

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "bench"


def test_scheduler_bench_runs(servers):
    env = {**os.environ, "DATABASE_URL": servers[0], "REDIS_URL": servers[1]}
    result = subprocess.run(
        [sys.executable, str(BENCH / "scheduler.py"), "--feeds", "40"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "steady state (304)" in result.stdout and "polls/s" in result.stdout


def test_pipeline_bench_runs(servers):
    env = {**os.environ, "DATABASE_URL": servers[0], "REDIS_URL": servers[1]}
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "pipeline.py"),
            "--feeds",
            "2",
            "--pages",
            "10",
            "--delay",
            "0",
            "--naive",
            "5",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "of the ceiling" in result.stdout and "naive script" in result.stdout


def test_dataout_bench_runs(servers):
    env = {**os.environ, "DATABASE_URL": servers[0], "REDIS_URL": servers[1]}
    result = subprocess.run(
        [sys.executable, str(BENCH / "dataout.py"), "--pages", "4", "--articles", "200"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "signatures valid: True" in result.stdout and "export parquet" in result.stdout


def test_scale_bench_runs(servers):
    """The scale bench at a small size (NEWSLOOM_SCALE_ARTICLES; `make bench-scale` runs a
    million): it fills, checks the counters against a recount and measures."""
    articles = os.environ.get("NEWSLOOM_SCALE_ARTICLES", "3000")
    env = {**os.environ, "DATABASE_URL": servers[0], "REDIS_URL": servers[1]}
    result = subprocess.run(
        [sys.executable, str(BENCH / "scale.py"), "--articles", articles, "--stores", "20"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "counters equal a recount" in result.stdout
    for measured in (
        "store step p50",
        "status (db.status_report)",
        "scheduler claim",
        "reconciler scan",
        "KB per article",
    ):
        assert measured in result.stdout, measured


def test_pipeline_bench_heavy_pages_runs(servers):
    env = {**os.environ, "DATABASE_URL": servers[0], "REDIS_URL": servers[1]}
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "pipeline.py"),
            "--heavy",
            "--feeds",
            "1",
            "--pages",
            "6",
            "--delay",
            "0",
            "--naive",
            "0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "heavy pages" in result.stdout and "of the ceiling" in result.stdout
