"""The web page in a real browser: headless Chromium (Debian's `chromium`) opens the pages
of a running `newsloom serve` and we check what a person sees; screenshots are kept in the
test's tmp dir."""

from __future__ import annotations

import os
import shutil
import subprocess

import httpx
import pytest
from api_server import fill
from support import serve_process

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="no chromium on this machine (apt-get install chromium); CI installs it",
)


@pytest.fixture
def served(conn, app_env, tmp_path):
    """`newsloom serve` over the fixture articles; yields (base URL, article ids)."""
    ids = fill(conn)
    with serve_process(app_env, tmp_path / "serve.log") as (base, _):
        yield base, ids


def chromium(tmp_path, url: str, *args: str) -> str:
    """Run headless Chromium on `url` with a fresh profile; returns what it printed."""
    assert CHROMIUM, "chromium is not installed"
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_pages_in_a_browser(served, tmp_path):
    base, ids = served
    home = chromium(tmp_path, f"{base}/", "--dump-dom")
    assert "<title>Latest articles · newsloom</title>" in home
    for title in ("Harbour strike ends", "Budget vote delayed", "Merkel visits Rotterdam"):
        assert title in home

    search = chromium(tmp_path, f"{base}/?q=Sturm", "--dump-dom")
    assert "Results for “Sturm”" in search
    assert "Sturm über Berlin" in search and "Harbour strike ends" not in search

    merkel = httpx.get(f"{base}/api/v1/entities").json()["entities"][0]
    entity = chromium(tmp_path, f"{base}/entities/{merkel['id']}", "--dump-dom")
    assert '<figure class="chart" id="chart">' in entity and "<svg" in entity
    assert entity.count('class="bar"') == 90
    assert "Mentions of Angela Merkel per day" in entity

    article = chromium(
        tmp_path, f"{base}/articles/{ids['https://example.org/harbour']}", "--dump-dom"
    )
    assert "https://example.org/harbour?utm_source=x" in article

    shots = {
        "home-phone.png": (f"{base}/?q=harbour", "412,915"),
        "entity.png": (f"{base}/entities/{merkel['id']}", "1280,900"),
        "feeds.png": (f"{base}/feeds", "1280,900"),
    }
    for name, (url, size) in shots.items():
        chromium(tmp_path, url, f"--screenshot={tmp_path / name}", f"--window-size={size}")
        picture = (tmp_path / name).read_bytes()
        assert picture.startswith(b"\x89PNG") and len(picture) > 5000, name
