"""Run several newsloom processes in the foreground and stop them together.

SIGTERM or Ctrl-C is passed on to every child (Celery then finishes the tasks in hand;
unfinished ones go back to the queue, acks being late) and the parent waits for them.
If one child dies, the others are stopped and the exit code says so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from newsloom import log
from newsloom.broker import DELIVER_QUEUE, FETCH_QUEUE, PROCESS_QUEUE
from newsloom.settings import Settings

logger = log.get_logger(__name__)
STOP_TIMEOUT = 60.0


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
    return ["worker", "--queues", queue, "--pool", pool, "--concurrency", str(concurrency),
            "--prefetch-multiplier", str(prefetch),
            "--hostname", f"{queue}-{os.getpid()}@%h", "--without-mingle", "--without-gossip",
            "--loglevel", settings.log_level.upper()]


def child_commands(settings: Settings, *, scheduler: bool, queues: Sequence[str]) -> dict[str, list[str]]:
    commands = {}
    if scheduler:
        commands["scheduler"] = [sys.executable, "-m", "newsloom", "scheduler"]
    for queue in queues:
        commands[f"worker-{queue}"] = [sys.executable, "-m", "celery", "-A", "newsloom.worker.tasks",
                                       *worker_argv(queue, settings)]
    return commands


def supervise(commands: dict[str, list[str]], env: dict[str, str]) -> int:
    children = {name: subprocess.Popen(argv, env=env, start_new_session=True)
                for name, argv in commands.items()}
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        logger.info("stopping", signal=signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        exit_code = 0
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    logger.error("process exited", process=name, code=child.returncode)
                    exit_code, stopping = 1, True
            time.sleep(0.2)
        _stop_all(children)
        return exit_code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_all(children: dict[str, subprocess.Popen]) -> None:
    for child in children.values():
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, child in children.items():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("killing after timeout", process=name)
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
