"""Dedupe stage: the keys under which an article is unique.

Two pages are the same article when their canonical URLs match or their normalised
texts hash the same; Postgres' unique indexes on both keys make the decision, so it
holds across all workers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import courlan

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ArticleKeys:
    canonical_url: str
    content_hash: str


def article_keys(page_url: str, declared_url: str | None, text: str) -> ArticleKeys:
    return ArticleKeys(canonical_url(page_url, declared_url), content_hash(text))


def normalize_url(url: str) -> str:
    """Tracking parameters, fragment, host case and default port removed (courlan)."""
    try:
        return courlan.normalize_url(url, strict=True)
    except ValueError:
        return url


def canonical_url(page_url: str, declared_url: str | None) -> str:
    """The page's rel=canonical (or og:url) when it stays on the same site, else its URL."""
    if declared_url:
        declared = urljoin(page_url, declared_url)
        if _site(declared) and _site(declared) == _site(page_url):
            return normalize_url(declared)
    return normalize_url(page_url)


def content_hash(text: str) -> str:
    normalised = _SPACE.sub(" ", text).strip().casefold()
    return hashlib.sha256(normalised.encode()).hexdigest()


def _site(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    return host[4:] if host.startswith("www.") else host
