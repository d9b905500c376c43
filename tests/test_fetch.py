"""Safe HTTP and the fetch stage against a loopback server."""

from __future__ import annotations

import gzip

import pytest

from newsloom import web
from newsloom.errors import Permanent, Transient
from newsloom.settings import load_settings
from newsloom.worker.fetch import fetch_page


@pytest.fixture
def fetch_settings():
    return load_settings(
        allow_private_networks=True, fetch_timeout=2, max_page_bytes=100_000, max_redirects=3
    )


@pytest.fixture
def client(fetch_settings):
    with web.make_client(fetch_settings) as http_client:
        yield http_client


def test_page_fetched_after_redirects(site, client, fetch_settings):
    site.add("/old", "", status=301, headers={"Location": "/new"})
    site.add("/new", "<html><body>hello</body></html>")
    page = fetch_page(client, site.url("/old"), fetch_settings)
    assert page.final_url == site.url("/new")
    assert b"hello" in page.html


def test_user_agent_sent(site, client, fetch_settings):
    site.add("/p", "<html></html>")
    fetch_page(client, site.url("/p"), fetch_settings)
    assert site.requests[-1].headers["User-Agent"] == fetch_settings.user_agent


@pytest.mark.parametrize(
    "status, error, reason",
    [
        (404, Permanent, "http_404"),
        (410, Permanent, "http_410"),
        (500, Transient, None),
        (503, Transient, None),
        (429, Transient, None),
    ],
)
def test_status_classified(site, client, fetch_settings, status, error, reason):
    site.add("/p", "x", status=status)
    with pytest.raises(error) as caught:
        fetch_page(client, site.url("/p"), fetch_settings)
    if reason:
        assert caught.value.reason == reason


def test_retry_after_read(site, client, fetch_settings):
    site.add("/p", "slow down", status=429, headers={"Retry-After": "120"})
    with pytest.raises(Transient) as caught:
        fetch_page(client, site.url("/p"), fetch_settings)
    assert caught.value.retry_after == 120


def test_not_html_refused(site, client, fetch_settings):
    site.add("/doc.pdf", b"%PDF-1.7 ...", content_type="application/pdf")
    with pytest.raises(Permanent) as caught:
        fetch_page(client, site.url("/doc.pdf"), fetch_settings)
    assert caught.value.reason == "not_html"


def test_too_large_refused(site, client, fetch_settings):
    site.add("/big", "<html>" + "x" * 200_000 + "</html>")
    with pytest.raises(Permanent) as caught:
        fetch_page(client, site.url("/big"), fetch_settings)
    assert caught.value.reason == "too_large"


def test_gzip_bomb_stopped_after_decompression(site, client, fetch_settings):
    bomb = gzip.compress(b"<html>" + b"\0" * 50_000_000)
    assert len(bomb) < 100_000
    site.add("/bomb", bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(Permanent) as caught:
        fetch_page(client, site.url("/bomb"), fetch_settings)
    assert caught.value.reason == "too_large"


def test_redirect_loop(site, client, fetch_settings):
    site.add("/a", "", status=302, headers={"Location": "/b"})
    site.add("/b", "", status=302, headers={"Location": "/a"})
    with pytest.raises(Permanent) as caught:
        fetch_page(client, site.url("/a"), fetch_settings)
    assert caught.value.reason == "too_many_redirects"


@pytest.mark.parametrize("url", ["ftp://example.org/x", "file:///etc/passwd", "http:///nohost"])
def test_bad_urls(client, fetch_settings, url):
    with pytest.raises(Permanent) as caught:
        fetch_page(client, url, fetch_settings)
    assert caught.value.reason == "bad_url"


def test_private_addresses_refused_by_default(site):
    settings = load_settings(allow_private_networks=False)
    site.add("/p", "<html></html>")
    with web.make_client(settings) as http_client:
        for url in (
            site.url("/p"),
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://[::1]/",
        ):
            with pytest.raises(Permanent) as caught:
                fetch_page(http_client, url, settings)
            assert caught.value.reason == "blocked_address"
    assert site.hits("/p") == 0


def test_every_redirect_hop_is_checked(site, client, fetch_settings, monkeypatch):
    """With the address check run on each hop, a redirect cannot lead to a refused address."""
    checked = []
    real_check = web.check_url
    monkeypatch.setattr(
        web, "check_url", lambda url, allow: (checked.append(url), real_check(url, allow))
    )
    site.add("/a", "", status=302, headers={"Location": "/b"})
    site.add("/b", "", status=307, headers={"Location": "http://localhost:1/internal"})
    with pytest.raises(Permanent) as caught:
        web.get(client, site.url("/a"), load_settings(allow_private_networks=False), max_bytes=1000)
    assert caught.value.reason == "blocked_address"
    assert checked == [site.url("/a")]  # the first hop, loopback itself, is refused already
    checked.clear()
    monkeypatch.setattr(
        web,
        "check_url",
        lambda url, allow: (checked.append(url), real_check(url, allow and "localhost" not in url)),
    )
    with pytest.raises(Permanent) as caught:
        web.get(client, site.url("/a"), fetch_settings, max_bytes=1000)
    assert caught.value.reason == "blocked_address"
    assert checked == [site.url("/a"), site.url("/b"), "http://localhost:1/internal"]
