"""Run several newsloom processes in the foreground, restart the ones that die, stop them
together.

A child that exits while nobody asked it to is restarted after a backoff (1 s, doubling
up to 60 s; back to 1 s once it has stayed up a minute). A child that dies
CRASH_LIMIT times within CRASH_WINDOW is a crash loop: everything stops and `supervise`
returns 1 with a one-line reason. SIGTERM or Ctrl-C is passed on to every child (Celery
then finishes the tasks in hand; unfinished ones go back to the queue, acks being late)
and the parent waits for them, killing what is left after STOP_TIMEOUT.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from newsloom import log
from newsloom.broker import DELIVER_QUEUE, FETCH_QUEUE, PROCESS_QUEUE
from newsloom.settings import Settings

logger = log.get_logger(__name__)
STOP_TIMEOUT = 60.0
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
STABLE_AFTER = 60.0  # a child up this long starts its backoff again from BACKOFF_FIRST
CRASH_LIMIT, CRASH_WINDOW = 5, 300.0
_POLL = 0.2


def worker_hostname(queue: str) -> str:
    """The Celery node name of this supervisor's worker for `queue` (%h: the host)."""
    return f"{queue}-{os.getpid()}@%h"


def worker_argv(queue: str, settings: Settings) -> list[str]:
    """Celery worker arguments: threads for network waits, processes for CPU work."""
    if queue == FETCH_QUEUE:
        pool, concurrency, prefetch = "threads", settings.fetch_concurrency, 1
    elif queue == PROCESS_QUEUE:
        # A few messages in hand per process, so a child never waits on the broker
        # between two articles (with late acks they come back if the worker dies).
        pool, concurrency, prefetch = "prefork", settings.process_concurrency, 4
    elif queue == DELIVER_QUEUE:  # apart, so a slow consumer never holds up collection
        pool, concurrency, prefetch = "threads", settings.deliver_concurrency, 1
    else:
        raise ValueError(f"unknown queue {queue!r}")
    # --quiet: no ASCII banner; newsloom logs one "worker ready" line instead.
    return [
        "--quiet",
        "worker",
        "--queues",
        queue,
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--prefetch-multiplier",
        str(prefetch),
        "--hostname",
        worker_hostname(queue),
        "--without-mingle",
        "--without-gossip",
        "--loglevel",
        settings.log_level.upper(),
    ]


def child_commands(
    settings: Settings, *, scheduler: bool, queues: Sequence[str]
) -> dict[str, list[str]]:
    commands = {}
    if scheduler:
        commands["scheduler"] = [sys.executable, "-m", "newsloom", "scheduler"]
    for queue in queues:
        commands[f"worker-{queue}"] = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "newsloom.worker.tasks",
            *worker_argv(queue, settings),
        ]
    return commands


@dataclass
class _Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float | None = None  # set while waiting out a backoff
    backoff: float = BACKOFF_FIRST
    crashes: deque[float] = field(default_factory=deque)

    def start(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(self.argv, env=env, start_new_session=True)
        self.started_at, self.restart_at = time.monotonic(), None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class CrashLoop(Exception):
    """A child died CRASH_LIMIT times within CRASH_WINDOW."""


def supervise(
    commands: dict[str, list[str]],
    env: dict[str, str],
    on_death: Callable[[str], None] | None = None,
) -> int:
    """Run `commands` until SIGTERM/SIGINT (returns 0) or a crash loop (returns 1).

    `on_death(name)` runs after a child died and its process group is gone, before it is
    started again (e.g. to give back the messages it held)."""
    children = [_Child(name, argv) for name, argv in commands.items()]
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        logger.info("stopping", signal=signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    if os.geteuid() == 0:  # the workers keep Celery's own multi-line warning to themselves
        logger.warning("running as root: prefer an unprivileged user (Celery advises it)")
    try:
        for child in children:
            child.start(env)
        exit_code = 0
        while not stopping:
            try:
                for child in children:
                    _tend(child, env, on_death)
            except CrashLoop as crash:
                print(f"newsloom: error: {crash}", file=sys.stderr, flush=True)
                exit_code, stopping = 1, True
            time.sleep(_POLL)
        _stop_all(children)
        return exit_code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _tend(child: _Child, env: dict[str, str], on_death: Callable[[str], None] | None) -> None:
    """Notice a death and schedule the restart; restart when its backoff is over."""
    now = time.monotonic()
    if child.restart_at is not None:
        if now >= child.restart_at:
            child.start(env)
            logger.info("process restarted", process=child.name)
        return
    if child.running():
        return
    assert child.process is not None
    code = child.process.returncode
    _kill_group(child.process)  # what it left behind (pool children) must not run on
    if now - child.started_at >= STABLE_AFTER:
        child.backoff = BACKOFF_FIRST
    child.crashes.append(now)
    while child.crashes and now - child.crashes[0] > CRASH_WINDOW:
        child.crashes.popleft()
    if len(child.crashes) >= CRASH_LIMIT:
        raise CrashLoop(
            f"{child.name} exited {len(child.crashes)} times within "
            f"{CRASH_WINDOW:g}s (last exit code {code}); stopping"
        )
    from newsloom import metrics  # after _prepare_metrics set the multiprocess directory

    metrics.RESTARTS.labels(process=child.name).inc()
    logger.error(
        "process exited, restarting", process=child.name, code=code, restart_in=child.backoff
    )
    if on_death is not None:
        try:
            on_death(child.name)
        except Exception as exc:  # noqa: BLE001 - a failed clean-up must not stop the restart
            logger.warning("clean-up after a death failed", process=child.name, error=str(exc))
    child.restart_at = now + child.backoff
    child.backoff = min(child.backoff * 2, BACKOFF_MAX)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _stop_all(children: list[_Child]) -> None:
    running = [child for child in children if child.running()]
    for child in running:
        assert child.process is not None
        os.killpg(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in running:
        assert child.process is not None
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("killing after timeout", process=child.name)
            os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
