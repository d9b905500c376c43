"""Commands typed in a second terminal find the embedded servers of a running `up`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support import run_newsloom, wait_until

from newsloom.embedded import SERVERS_FILE


@pytest.mark.timeout(400)
def test_status_and_search_reach_the_embedded_servers(app_env, site, settings, tmp_path):
    settings.feeds.write_text(f'[[feed]]\nurl = "{site.url("/feed.xml")}"\n')
    # Run as root, embedded Postgres drops to a user of its own, which must reach the data
    # directory: pytest's temporary directories are private to root.
    data_dir = Path(tempfile.mkdtemp(prefix="newsloom-embedded-"))
    os.chmod(data_dir, 0o755)
    env = {
        **{k: v for k, v in app_env.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "NEWSLOOM_DATA_DIR": str(data_dir),
    }
    servers_file = data_dir / SERVERS_FILE
    with (tmp_path / "up.log").open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "newsloom", "up"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        # Embedded Postgres may take long to initialise on a busy machine.
        wait_until(
            lambda: servers_file.exists() or up.poll() is not None,
            300,
            "up to start its embedded servers",
            interval=0.5,
        )
        assert up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
        wait_until(
            lambda: (tmp_path / "up.log").read_text().count("worker ready") == 3,
            120,
            "the three workers to be ready",
        )
        status = run_newsloom(env, "status", "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert set(report["queues"]) == {"fetch", "process", "deliver"}
        search = run_newsloom(env, "search", "anything")
        assert search.returncode == 0, search.stderr
        assert search.stdout.strip() == "no match"
        second = run_newsloom(env, "up")  # would start a second Postgres on the same files
        assert second.returncode == 2 and "another `newsloom up`" in second.stderr
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(120)
        announced_after_exit = servers_file.exists()
        shutil.rmtree(data_dir, ignore_errors=True)
    assert up.returncode == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert not announced_after_exit  # gone with the servers
    console = (tmp_path / "up.log").read_text()
    # A readable console: one line per process when ready, no banners, root said once.
    assert console.count("scheduler ready") == 1 and console.count("worker ready") == 3
    assert "-------------- " not in console and "[queues]" not in console  # Celery's banner
    assert "superuser privileges" not in console and console.count("running as root") <= 1
    assert "Connected to" not in console
    after = run_newsloom(env, "status", "--json")
    assert after.returncode == 2 and "make run" in after.stderr
