"""`up`'s supervisor: a child that dies comes back, a crash loop ends it with exit code 1,
SIGTERM stops everything. The supervisor runs in a process of its own (it owns signals)
with short backoffs; its children are small Python programs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from prometheus_client import CollectorRegistry, multiprocess
from support import wait_until

SUPERVISOR = textwrap.dedent("""
    import sys
    import newsloom.supervise as supervise
    from newsloom import log, settings
    log.configure(settings.load_settings())
    supervise.BACKOFF_FIRST = 0.1
    supervise.STABLE_AFTER = 600
    commands = {"sleeper": [sys.executable, "-c", sys.argv[1]]}
    sys.exit(supervise.supervise(commands, dict(__import__("os").environ)))
""")


def start_supervisor(child_code: str, tmp_path) -> subprocess.Popen:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    return subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, child_code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def restarts_counted(tmp_path) -> float:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path / "metrics"))
    value = registry.get_sample_value("newsloom_process_restarts_total", {"process": "sleeper"})
    return value or 0.0


def test_killed_child_comes_back_and_sigterm_stops_all(tmp_path):
    pids = tmp_path / "pids"
    child = (
        f"import os, time; open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n'); time.sleep(120)"
    )
    supervisor = start_supervisor(child, tmp_path)
    try:
        first = wait_until(
            lambda: pids.exists() and pids.read_text().split(), 30, "the child to start"
        )[0]
        os.kill(int(first), signal.SIGKILL)
        lines = wait_until(
            lambda: len(pids.read_text().split()) == 2 and pids.read_text().split(),
            30,
            "the child to be restarted",
        )
        assert lines[1] != first
        supervisor.send_signal(signal.SIGTERM)
        _, stderr = supervisor.communicate(timeout=30)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert supervisor.returncode == 0, stderr
    assert "process exited, restarting" in stderr and "process restarted" in stderr
    assert restarts_counted(tmp_path) == 1
    second = int(lines[1])
    assert not _alive(second), "the restarted child outlived SIGTERM"


def test_crash_loop_ends_with_code_1(tmp_path):
    supervisor = start_supervisor("raise SystemExit(7)", tmp_path)
    _, stderr = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 1
    reason = [line for line in stderr.splitlines() if line.startswith("newsloom: error:")]
    assert reason == [
        "newsloom: error: sleeper exited 5 times within 300s (last exit code 7); stopping"
    ]
    assert "Traceback" not in stderr
    assert restarts_counted(tmp_path) == 4


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
