"""The feeds file: TOML as in the contract, or OPML as feed readers export it.

Every problem is reported as `FeedsFileError` with the file, the line and the reason,
and nothing starts.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree

from newsloom.errors import FeedsFileError
from newsloom.settings import parse_duration
from newsloom.web import is_http_url

FEED_KEYS = {
    "url",
    "name",
    "interval",
    "host_delay",
    "robots",
    "type",
    "include",
    "exclude",
    "since",
}
SOURCE_TYPES = ("feed", "sitemap", "page")
DEFAULT_SINCE = 2 * 86400.0  # a sitemap's first poll takes URLs of the last two days
DEFAULT_KEYS = {"interval", "host_delay", "robots"}
TOP_KEYS = {"defaults", "feed", "webhook"}
_TOML_ERROR_LINE = re.compile(r"\(at line (\d+), column \d+\)")


@dataclass(frozen=True)
class FeedConfig:
    url: str
    name: str | None
    interval: float  # seconds between polls
    host_delay: float | None = None  # seconds between article requests to a host; None: the setting
    robots: bool = True  # obey robots.txt (turn off only for sites you own)
    type: str | None = None  # feed, sitemap or page; None: detected from the document
    include: str | None = None  # regex searched in each entry URL: keep only matches
    exclude: str | None = None  # regex searched in each entry URL: drop matches
    since: float | None = DEFAULT_SINCE  # sitemaps: seconds before the first poll; None: all


def load_feeds(path: Path, default_interval: float = 900.0) -> list[FeedConfig]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FeedsFileError(
            str(path),
            None,
            "no such file (copy feeds.example.toml to start, "
            "or point NEWSLOOM_FEEDS at your feeds file)",
        ) from None
    except OSError as exc:
        raise FeedsFileError(str(path), None, f"cannot read: {exc.strerror}") from None
    if path.suffix.lower() in (".opml", ".xml"):
        return _load_opml(path, raw, default_interval)
    return _load_toml(path, raw, default_interval)


def _load_toml(path: Path, raw: bytes, default_interval: float) -> list[FeedConfig]:
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise FeedsFileError(str(path), None, f"not UTF-8: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_ERROR_LINE.search(str(exc))
        reason = _TOML_ERROR_LINE.sub("", str(exc)).strip()
        raise FeedsFileError(
            str(path), int(found.group(1)) if found else None, f"invalid TOML: {reason}"
        ) from None
    lines = _TomlLines(text)
    for key in data.keys() - TOP_KEYS:
        raise FeedsFileError(
            str(path),
            lines.key(key),
            f"unknown key {key!r} (expected [defaults], [[feed]] and [[webhook]])",
        )
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise FeedsFileError(str(path), lines.key("defaults"), "[defaults] must be a table")
    for key in defaults.keys() - DEFAULT_KEYS:
        raise FeedsFileError(
            str(path),
            lines.key(key, "defaults"),
            f"unknown key {key!r} in [defaults] (allowed: {_allowed(DEFAULT_KEYS)})",
        )
    base = _politeness(path, defaults, lambda key: lines.key(key, "defaults"), None, True)
    if "interval" in defaults:
        default_interval = _interval(path, lines.key("interval", "defaults"), defaults["interval"])
    entries = data.get("feed", [])
    if not isinstance(entries, list):
        raise FeedsFileError(str(path), lines.key("feed"), "feeds must be [[feed]] tables")
    feeds: list[FeedConfig] = []
    seen: dict[str, int | None] = {}  # url -> its line
    for index, entry in enumerate(entries):
        line = lines.feed(index)
        for key in entry.keys() - FEED_KEYS:
            raise FeedsFileError(
                str(path),
                lines.key(key, "feed", index) or line,
                f"unknown key {key!r} in [[feed]] (allowed: {_allowed(FEED_KEYS)})",
            )
        if "url" not in entry:
            raise FeedsFileError(str(path), line, "[[feed]] without url")
        url_line = lines.key("url", "feed", index) or line
        url = _url(path, url_line, entry["url"])
        if url in seen:
            raise FeedsFileError(
                str(path), url_line, f"{url} is listed twice (first at line {seen[url]})"
            )
        seen[url] = url_line
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            raise FeedsFileError(
                str(path), lines.key("name", "feed", index) or line, "name must be a string"
            )
        interval = (
            _interval(path, lines.key("interval", "feed", index) or line, entry["interval"])
            if "interval" in entry
            else default_interval
        )

        def line_of(key: str, index: int = index, line: int | None = line) -> int | None:
            return lines.key(key, "feed", index) or line

        host_delay, robots = _politeness(path, entry, line_of, *base)
        feeds.append(
            FeedConfig(
                url, name, interval, host_delay, robots, **_source_keys(path, entry, line_of)
            )
        )
    return feeds


def _allowed(keys: set[str]) -> str:
    return ", ".join(sorted(keys))


def _politeness(
    path: Path, table: dict, line_of, host_delay: float | None, robots: bool
) -> tuple[float | None, bool]:
    """host_delay and robots from a table, falling back to the given values."""
    if "host_delay" in table:
        try:
            host_delay = parse_duration(table["host_delay"], allow_zero=True)
        except ValueError as exc:
            raise FeedsFileError(
                str(path), line_of("host_delay"), f"bad host_delay: {exc}"
            ) from None
    if "robots" in table:
        robots = table["robots"]
        if not isinstance(robots, bool):
            raise FeedsFileError(str(path), line_of("robots"), "robots must be true or false")
    return host_delay, robots


def _source_keys(path: Path, table: dict, line_of) -> dict:
    """type, include, exclude and since of a [[feed]], checked."""
    keys: dict = {}
    if "type" in table:
        if table["type"] not in SOURCE_TYPES:
            raise FeedsFileError(
                str(path),
                line_of("type"),
                f"type must be one of {', '.join(SOURCE_TYPES)}, got {table['type']!r}",
            )
        keys["type"] = table["type"]
    for key in ("include", "exclude"):
        if key in table:
            keys[key] = _pattern(path, line_of(key), key, table[key])
    if "since" in table:
        since = table["since"]
        try:
            keys["since"] = None if since == "all" else parse_duration(since)
        except ValueError as exc:
            raise FeedsFileError(
                str(path), line_of("since"), f'bad since: {exc} (or "all")'
            ) from None
    return keys


def _pattern(path: Path, line: int | None, key: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise FeedsFileError(str(path), line, f"{key} must be a non-empty regular expression")
    try:
        re.compile(value)
    except re.error as exc:
        raise FeedsFileError(str(path), line, f"bad {key} regular expression: {exc}") from None
    return value


class _TomlLines:
    """Finds the line of a key in the file: tomllib reports no positions for valid TOML."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_\-\"'. ]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*[\"']?([A-Za-z0-9_\-]+)[\"']?\s*=")

    def __init__(self, text: str):
        # Table name -> its occurrences in order, each (header line, key -> line).
        self.sections: dict[str, list[tuple[int, dict[str, int]]]] = {"": [(0, {})]}
        current = self.sections[""][0]
        for number, line in enumerate(text.splitlines(), start=1):
            if header := self._HEADER.match(line):
                current = (number, {})
                self.sections.setdefault(header.group(1).strip("\"' "), []).append(current)
            elif key := self._KEY.match(line):
                current[1].setdefault(key.group(1), number)

    def _section(self, name: str, index: int = 0):
        found = self.sections.get(name, [])
        return found[index] if index < len(found) else None

    def feed(self, index: int, table: str = "feed") -> int | None:
        section = self._section(table, index)
        return section[0] if section else None

    def key(self, key: str, section: str = "", index: int = 0) -> int | None:
        found = self._section(section, index)
        if found is None:
            return None
        if key in found[1]:
            return found[1][key]
        if section == "":  # a top-level table header, e.g. [extra]
            header = self._section(key)
            return header[0] if header else None
        return None


def _url(path: Path, line: int | None, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FeedsFileError(str(path), line, f"url must be a non-empty string, got {value!r}")
    url = value.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise FeedsFileError(str(path), line, f"bad url {url!r}: {exc}") from None
    if not is_http_url(url) or " " in url:
        raise FeedsFileError(
            str(path), line, f"bad url {url!r}: only http and https URLs with a host are fetched"
        )
    return url


def _interval(path: Path, line: int | None, value: object) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise FeedsFileError(str(path), line, f"bad interval: {exc}") from None


def _load_opml(path: Path, raw: bytes, default_interval: float) -> list[FeedConfig]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        raise FeedsFileError(str(path), exc.lineno, f"invalid OPML: {exc.msg}") from None
    if root.tag != "opml":
        raise FeedsFileError(str(path), root.sourceline, f"not OPML: root element is <{root.tag}>")
    feeds, seen = [], set()
    for outline in root.iter("outline"):
        url = outline.get("xmlUrl")
        if url is None:
            continue  # a folder
        url = _url(path, outline.sourceline, url)
        if url not in seen:  # readers list a feed under several folders
            seen.add(url)
            feeds.append(
                FeedConfig(url, outline.get("title") or outline.get("text"), default_interval)
            )
    return feeds


def append_feed(path: Path, url: str, name: str | None) -> None:
    """Add a [[feed]] to a TOML feeds file, keeping the rest of it as written."""
    if path.suffix.lower() in (".opml", ".xml"):
        raise FeedsFileError(
            str(path),
            None,
            "feeds add writes TOML files only; add the feed "
            "in your feed reader and export the OPML again",
        )
    feeds = load_feeds(path) if path.exists() else []
    if any(f.url == url for f in feeds):
        raise FeedsFileError(str(path), None, f"{url} is already listed")
    text = path.read_text() if path.exists() else ""
    # JSON strings are valid TOML basic strings, escapes included.
    entry = f"[[feed]]\nurl = {json.dumps(url)}\n" + (
        f"name = {json.dumps(name)}\n" if name else ""
    )
    separator = (
        "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    )
    path.write_text(text + separator + entry)
    load_feeds(path)  # what was written must load


# --- webhooks ------------------------------------------------------------------------------

WEBHOOK_KEYS = {"url", "secret", "secret_env", "events", "feeds", "languages", "entities"}
EVENT_KINDS = ("stored", "updated", "duplicate")


@dataclass(frozen=True)
class WebhookConfig:
    """A [[webhook]]: where to POST article events, the signing secret, and filters (an
    empty filter lets everything through)."""

    url: str
    secret: str
    events: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()  # feed URLs (the file may name them by name)
    languages: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()


def load_webhooks(path: Path, environ: Mapping[str, str] | None = None) -> list[WebhookConfig]:
    """The [[webhook]] tables of a TOML feeds file (an OPML file has none).

    `secret_env = "NAME"` reads the secret from that environment variable, so no secret
    need live in the file. A filter naming a feed the file does not list is an error.
    """
    feeds = load_feeds(path)  # the file is valid as a feeds file first
    if path.suffix.lower() in (".opml", ".xml"):
        return []
    environ = os.environ if environ is None else environ
    text = path.read_text(encoding="utf-8")
    entries, lines = tomllib.loads(text).get("webhook", []), _TomlLines(text)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise FeedsFileError(str(path), lines.key("webhook"), "webhooks must be [[webhook]] tables")
    feed_urls = {f.url: f.url for f in feeds} | {f.name: f.url for f in feeds if f.name}
    webhooks: list[WebhookConfig] = []
    seen: dict[str, int | None] = {}
    for index, entry in enumerate(entries):

        def line_of(key: str, index: int = index) -> int | None:
            return lines.key(key, "webhook", index) or lines.feed(index, "webhook")

        for key in entry.keys() - WEBHOOK_KEYS:
            raise FeedsFileError(
                str(path),
                line_of(key),
                f"unknown key {key!r} in [[webhook]] (allowed: {_allowed(WEBHOOK_KEYS)})",
            )
        if "url" not in entry:
            raise FeedsFileError(str(path), line_of("url"), "[[webhook]] without url")
        url = _url(path, line_of("url"), entry["url"])
        if url in seen:
            raise FeedsFileError(
                str(path),
                line_of("url"),
                f"webhook {url} is listed twice (first at line {seen[url]})",
            )
        seen[url] = line_of("url")
        secret = _webhook_secret(path, entry, line_of, environ)
        events = _strings(path, entry, "events", line_of)
        for kind in events:
            if kind not in EVENT_KINDS:
                raise FeedsFileError(
                    str(path),
                    line_of("events"),
                    f"unknown event {kind!r} (choose from {', '.join(EVENT_KINDS)})",
                )
        named_feeds = _strings(path, entry, "feeds", line_of)
        for name in named_feeds:
            if name not in feed_urls:
                raise FeedsFileError(
                    str(path),
                    line_of("feeds"),
                    f"webhook filter names feed {name!r}, which no [[feed]] "
                    "lists (use its url or name)",
                )
        webhooks.append(
            WebhookConfig(
                url,
                secret,
                events,
                tuple(dict.fromkeys(feed_urls[n] for n in named_feeds)),
                _strings(path, entry, "languages", line_of),
                _strings(path, entry, "entities", line_of),
            )
        )
    return webhooks


def _webhook_secret(path: Path, entry: dict, line_of, environ: Mapping[str, str]) -> str:
    if ("secret" in entry) == ("secret_env" in entry):
        raise FeedsFileError(
            str(path), line_of("url"), "[[webhook]] needs secret or secret_env (one of them)"
        )
    if "secret_env" in entry:
        name = entry["secret_env"]
        if not isinstance(name, str) or not environ.get(name):
            raise FeedsFileError(
                str(path),
                line_of("secret_env"),
                f"secret_env: environment variable {name!r} is not set",
            )
        return environ[name]
    secret = entry["secret"]
    if not isinstance(secret, str) or not secret:
        raise FeedsFileError(str(path), line_of("secret"), "secret must be a non-empty string")
    return secret


def _strings(path: Path, entry: dict, key: str, line_of) -> tuple[str, ...]:
    value = entry.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise FeedsFileError(str(path), line_of(key), f"{key} must be a list of strings")
    return tuple(value)
