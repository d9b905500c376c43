"""The command line, run as users run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import psycopg.conninfo

from newsloom.settings import Settings, env_names

README = Path(__file__).parent.parent / "README.md"


def newsloom(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "newsloom", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


def test_init_db_applies_and_reapplies(database_url):
    for _ in range(2):
        result = newsloom("init-db", env={"DATABASE_URL": database_url})
        assert result.returncode == 0, result.stderr
    with psycopg.connect(database_url) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    assert {
        "feeds",
        "articles",
        "article_urls",
        "entities",
        "article_entities",
        "dead_letters",
        "urls",
    } <= tables


def test_bad_setting_refuses_to_start():
    result = newsloom("init-db", env={"NEWSLOOM_MAX_ATTEMPTS": "many"})
    assert result.returncode == 2
    assert "NEWSLOOM_MAX_ATTEMPTS" in result.stderr and "Traceback" not in result.stderr


def test_bad_feeds_file_refuses_to_start(tmp_path):
    feeds = tmp_path / "feeds.toml"
    feeds.write_text('[[feed]]\nurl = "https://example.org/rss"\n\n[[feed]]\nurl = "gopher://x"\n')
    result = newsloom(
        "up", env={"NEWSLOOM_FEEDS": str(feeds), "NEWSLOOM_DATA_DIR": str(tmp_path / "data")}
    )
    assert result.returncode == 2
    assert f"{feeds}:5: bad url" in result.stderr
    assert not (tmp_path / "data").exists()  # nothing started


def test_worker_rejects_unknown_queue():
    result = newsloom("worker", "--queues", "fetch,bogus")
    assert result.returncode == 2 and "bogus" in result.stderr


def test_scheduler_needs_servers(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "newsloom", "scheduler"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2 and "DATABASE_URL" in result.stderr


def test_readme_documents_every_setting():
    text = README.read_text()
    for name, field in Settings.model_fields.items():
        for env in env_names(name, field):
            assert f"`{env}`" in text, f"{env} is not documented in the README"


def test_health(database_url, servers, settings):
    env = {"DATABASE_URL": database_url, "REDIS_URL": settings.redis_url}
    healthy = newsloom("health", env=env)
    assert healthy.returncode == 0, healthy.stderr
    broker_down = newsloom("health", env={**env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert broker_down.returncode == 1 and "broker unreachable" in broker_down.stderr


def test_health_wants_the_current_schema(servers, settings):
    admin_url = servers[0]
    name = f"{psycopg.conninfo.conninfo_to_dict(settings.database_url)['dbname']}_empty"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
        env = {"DATABASE_URL": url, "REDIS_URL": settings.redis_url}
        stale = newsloom("health", env=env)
        assert stale.returncode == 1 and "newsloom migrate" in stale.stderr
        migrated = newsloom("migrate", env=env)
        assert migrated.returncode == 0 and "applied 0001_baseline" in migrated.stdout
        assert "0 migration(s) applied" in newsloom("init-db", env=env).stdout
        assert newsloom("health", env=env).returncode == 0
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
