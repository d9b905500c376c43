"""Schema migrations: numbered SQL files in newsloom/migrations, applied in order.

Each file runs in its own transaction together with the row that records it in
`schema_migrations`, so a migration is applied whole or not at all. Concurrent runners
(several `up` or `migrate` at once) take turns on an advisory lock. `schema.sql` is the
readable result of all of them; a test keeps the two equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString

import psycopg
from psycopg.rows import TupleRow, tuple_row

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_LOCK = 0x6E65_7773  # advisory lock id: concurrent runners take turns
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LEDGER = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text()


def migrations() -> list[Migration]:
    """Every migration shipped with this version, in order; numbers must run 1, 2, 3..."""
    found = []
    for path in MIGRATIONS_DIR.glob("*.sql"):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise RuntimeError(f"{path}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{MIGRATIONS_DIR}: migration numbers must be 1..N without gaps")
    return found


def latest_version() -> int:
    return migrations()[-1].version


def applied_version(conn: psycopg.Connection[Any]) -> int | None:
    """The newest migration applied to this database, None if it has none."""
    cur = conn.cursor(row_factory=tuple_row)
    if _scalar(cur, "SELECT to_regclass('schema_migrations')") is None:
        return None
    version: int | None = _scalar(cur, "SELECT max(version) FROM schema_migrations")
    return version


def _scalar(cur: psycopg.Cursor[TupleRow], query: LiteralString) -> Any:
    row = cur.execute(query).fetchone()
    return None if row is None else row[0]


def apply(conn: psycopg.Connection[Any]) -> list[Migration]:
    """Apply the pending migrations, each in a transaction of its own with its ledger row;
    returns those applied (none when the database is current)."""
    cur = conn.cursor(row_factory=tuple_row)
    done = []
    cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
    try:
        cur.execute(_LEDGER)
        applied = {row[0] for row in cur.execute("SELECT version FROM schema_migrations")}
        for migration in migrations():
            if migration.version in applied:
                continue
            with conn.transaction():
                cur.execute(migration.sql())
                cur.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            done.append(migration)
    finally:
        cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))
    return done
