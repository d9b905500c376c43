"""The benchmarks still run (at a tiny size; `make bench` runs them at full size)."""

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "bench"


def test_scheduler_bench_runs(servers):
    env = {**os.environ, "DATABASE_URL": servers[0], "REDIS_URL": servers[1]}
    result = subprocess.run([sys.executable, str(BENCH / "scheduler.py"), "--feeds", "40"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "steady state (304)" in result.stdout and "polls/s" in result.stdout


def test_pipeline_bench_runs(servers):
    env = {**os.environ, "DATABASE_URL": servers[0], "REDIS_URL": servers[1]}
    result = subprocess.run([sys.executable, str(BENCH / "pipeline.py"), "--feeds", "2", "--pages", "10",
                             "--delay", "0", "--naive", "5"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "of the ceiling" in result.stdout and "naive script" in result.stdout


def test_dataout_bench_runs(servers):
    env = {**os.environ, "DATABASE_URL": servers[0], "REDIS_URL": servers[1]}
    result = subprocess.run([sys.executable, str(BENCH / "dataout.py"), "--pages", "4",
                             "--articles", "200"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "signatures valid: True" in result.stdout and "export parquet" in result.stdout
