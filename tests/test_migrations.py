"""Schema migrations against a real Postgres: fresh, over a database made by the old
schema.sql with data in it, twice, and equal to schema.sql."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from support import scratch_database

from newsloom import db, migrate

ROOT = Path(__file__).resolve().parent.parent


def _empty_database(admin_url: str):
    """A scratch database with nothing in it (scratch_database applies the migrations)."""
    cm = scratch_database(admin_url, label="mig")
    url = cm.__enter__()
    with db.connect(url) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return cm, url


@pytest.fixture
def empty_db(servers):
    cm, url = _empty_database(servers[0])
    yield url
    cm.__exit__(None, None, None)


def catalog(conn: psycopg.Connection) -> dict:
    """What a schema is made of: columns, constraints, indexes, views and the ledger rows."""
    return {
        "columns": conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default,"
            " generation_expression FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall(),
        "constraints": conn.execute(
            "SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) AS d"
            " FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
        ).fetchall(),
        "indexes": conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall(),
        "views": conn.execute(
            "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall(),
        "migrations": conn.execute(
            "SELECT version, name FROM schema_migrations ORDER BY 1"
        ).fetchall(),
    }


def test_migrations_are_numbered_without_gaps():
    versions = [m.version for m in migrate.migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert migrate.latest_version() == versions[-1]


def test_fresh_database_gets_every_migration_once(empty_db):
    with db.connect(empty_db) as conn:
        assert migrate.applied_version(conn) is None
        applied = migrate.apply(conn)
        assert [m.version for m in applied] == [m.version for m in migrate.migrations()]
        assert migrate.apply(conn) == []  # running again changes nothing
        assert migrate.applied_version(conn) == migrate.latest_version()


def test_schema_sql_equals_the_migrations_result(empty_db, servers):
    with db.connect(empty_db) as conn:
        migrate.apply(conn)
        migrated = catalog(conn)
    cm, from_file = _empty_database(servers[0])
    try:
        with db.connect(from_file) as conn:
            conn.execute((ROOT / "schema.sql").read_text())
            assert catalog(conn) == migrated
            assert migrate.apply(conn) == []  # a database made from schema.sql is current
    finally:
        cm.__exit__(None, None, None)


def test_database_of_the_old_schema_sql_keeps_its_data(empty_db):
    """A database made by version 0.1's schema.sql (baseline plus schema_meta) is
    recognised as the baseline, keeps its rows and gains the later migrations."""
    with db.connect(empty_db) as conn:
        conn.execute((ROOT / "tests" / "fixtures" / "schema-0.1.sql").read_text())
        conn.execute(
            "INSERT INTO feeds (url, interval_seconds) VALUES ('https://a.example/rss', 60)"
        )
        applied = migrate.apply(conn)
        assert [m.version for m in applied] == [m.version for m in migrate.migrations()]
        assert conn.execute("SELECT url FROM feeds").fetchall() == [
            {"url": "https://a.example/rss"}
        ]
        assert conn.execute("SELECT to_regclass('schema_meta') AS t").fetchone()["t"] is None
        assert migrate.applied_version(conn) == migrate.latest_version()


def test_a_failing_migration_leaves_nothing_half_done(empty_db, tmp_path, monkeypatch):
    for m in migrate.migrations():
        (tmp_path / m.path.name).write_text(m.sql())
    (tmp_path / f"{migrate.latest_version() + 1:04d}_broken.sql").write_text(
        "CREATE TABLE half_done (id int); SELECT no_such_function();"
    )
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path)
    with db.connect(empty_db) as conn:
        with pytest.raises(psycopg.errors.UndefinedFunction):
            migrate.apply(conn)
        assert conn.execute("SELECT to_regclass('half_done') AS t").fetchone()["t"] is None
        assert migrate.applied_version(conn) == migrate.latest_version() - 1
