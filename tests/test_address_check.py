"""No way around the address check: connections go to the address that was checked, and
robots.txt is a request to the host like any other, spaced by the same limiter."""

from __future__ import annotations

import socket

import pytest
from site_fixture import article_html, synthetic_article
from support import run_url

from newsloom import web
from newsloom.errors import Permanent
from newsloom.settings import load_settings


def rebinding_resolver(monkeypatch, name: str, answers: list[str]) -> list[str]:
    """`name` resolves to each of `answers` in turn (the last one from then on)."""
    real, asked = socket.getaddrinfo, []

    def resolve(host, port, *args, **kwargs):
        if host != name:
            return real(host, port, *args, **kwargs)
        address = answers[min(len(asked), len(answers) - 1)]
        asked.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return asked


def test_rebinding_after_the_check_is_refused(site, monkeypatch):
    site.add("/secret", "<html>internal</html>")
    # A public address for the check, then loopback for whoever looks it up again.
    asked = rebinding_resolver(monkeypatch, "rebind.test", ["93.184.216.34", "127.0.0.1"])
    settings = load_settings(allow_private_networks=False)
    with web.make_client(settings) as client, pytest.raises(Permanent) as caught:
        web.get(client, f"http://rebind.test:{site.port}/secret", settings, max_bytes=1000)
    assert caught.value.reason == "blocked_address"
    assert asked == ["93.184.216.34", "127.0.0.1"]  # the check, then the connection's own
    assert site.hits("/secret") == 0


def test_connection_uses_the_checked_address_and_keeps_the_host_name(site, monkeypatch):
    site.add("/page", "<html>ok</html>")
    asked = rebinding_resolver(monkeypatch, "news.test", ["127.0.0.1", "10.9.9.9"])
    settings = load_settings(allow_private_networks=True)  # no pre-check: one lookup only
    with web.make_client(settings) as client:
        response = web.get(client, f"http://news.test:{site.port}/page", settings, max_bytes=1000)
    assert response.status == 200 and asked == ["127.0.0.1"]
    [request] = site.requests
    assert request.headers["Host"] == f"news.test:{site.port}"


def test_robots_txt_takes_a_turn_of_the_host(ctx, site):
    delay = 0.6
    site.add("/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    title, paragraphs = synthetic_article(7)
    site.add("/news/7", article_html(title, paragraphs))
    polite = ctx.settings.model_copy(update={"host_delay": delay})
    ctx.settings = polite
    row = run_url(ctx, site.url("/news/7"))
    assert row["state"] == "stored", row
    times = {r.path: r.at for r in site.requests}
    assert times["/news/7"] - times["/robots.txt"] >= delay - 0.01
