"""Fetch stage: one article page over HTTP, as bytes, or a Permanent/Transient error."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from newsloom import web
from newsloom.errors import Permanent
from newsloom.settings import Settings

HTML_TYPES = ("text/html", "application/xhtml+xml")
ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"


# Kept with a page for its WARC record, except what identifies a visitor.
PRIVATE_HEADERS = frozenset({"set-cookie", "set-cookie2"})


@dataclass(frozen=True)
class Page:
    final_url: str
    content_type: str | None
    html: bytes
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


def fetch_page(client: httpx.Client, url: str, settings: Settings) -> Page:
    resp = web.get(
        client, url, settings, max_bytes=settings.max_page_bytes, headers={"Accept": ACCEPT}
    )
    content_type = resp.headers.get("content-type")
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime and mime not in HTML_TYPES:
        raise Permanent("not_html", mime)
    if not mime and b"<html" not in resp.body[:4096].lower():
        raise Permanent("not_html", "no Content-Type and no <html> tag")
    headers = tuple(
        (name, value)
        for name, value in resp.headers.multi_items()
        if name.lower() not in PRIVATE_HEADERS
    )
    return Page(resp.url, content_type, resp.body, resp.status, headers)
