"""robots.txt, fetched once per host and kept for an hour in each worker process."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from newsloom import web
from newsloom.errors import Permanent
from newsloom.settings import Settings

TTL = 3600.0
MAX_BYTES = 500_000  # RFC 9309 asks crawlers to read at least 500 KiB


class RobotsRules:
    def __init__(self, client: httpx.Client, settings: Settings, ttl: float = TTL):
        self.client, self.settings, self.ttl = client, settings, ttl
        self._cache: dict[str, tuple[float, RobotFileParser]] = {}
        self._lock = threading.Lock()

    def check(self, url: str) -> float | None:
        """Raise Permanent('robots') when disallowed; return the Crawl-delay, if any."""
        parser = self._parser(url)
        agent = self.settings.user_agent
        if not parser.can_fetch(agent, url):
            raise Permanent("robots", "disallowed by robots.txt")
        delay = parser.crawl_delay(agent)
        return float(delay) if delay else None

    def known(self, url: str) -> bool:
        """Whether the rules for `url`'s origin are at hand (no request needed to check)."""
        return self._cached(_origin(url)) is not None

    def _cached(self, origin: str) -> RobotFileParser | None:
        with self._lock:
            cached = self._cache.get(origin)
        return cached[1] if cached and cached[0] > time.monotonic() else None

    def _parser(self, url: str) -> RobotFileParser:
        origin = _origin(url)
        cached = self._cached(origin)
        if cached is not None:
            return cached
        parser = RobotFileParser(origin + "/robots.txt")
        try:
            resp = web.get(self.client, origin + "/robots.txt", self.settings, max_bytes=MAX_BYTES)
            parser.parse(resp.body.decode("utf-8", "replace").splitlines())
        except Permanent:
            parser.parse([])  # no robots.txt (4xx) or an unusable one: everything is allowed
        # Transient errors (5xx, timeouts) propagate: the URL is retried later, not fetched.
        with self._lock:
            self._cache[origin] = (time.monotonic() + self.ttl, parser)
        return parser


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
