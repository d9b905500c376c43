"""`newsloom import`: WARC/ARC files into the pipeline at the process step.

Each HTML 200 response record becomes a ledger URL in state 'fetched' with its page kept
(the record's date as fetched_at), then a process message: extraction, dedupe, tagging and
storing are the pipeline's own, on every process worker. Progress is saved per file in the
same transaction as the pages it covers, so a killed import resumes where it stopped.
"""

from __future__ import annotations

import io
import json
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import httpx
from celery import Celery

from newsloom import db, log, queue, warc, web
from newsloom.broker import PROCESS_QUEUE
from newsloom.errors import NewsloomError
from newsloom.settings import Settings

logger = log.get_logger(__name__)

ARCHIVE_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz")
BATCH_PAGES = 100  # pages per transaction (and per progress save)
BATCH_SECONDS = 2.0  # ... or after this long, so progress moves on sparse files
QUEUED = "queued"  # the count of records sent to the process step
WAIT_NOTICE_SECONDS = 30  # a wait on the process queue this long is worth a line


class ArchiveSourceError(NewsloomError):
    """A source that cannot be imported: missing, unreadable, or not an archive."""


@dataclass(frozen=True)
class Filters:
    """Which records an import keeps. Dates and languages are the article's, known only
    after extraction: the process step checks them (`filters` of the import). Records
    crawled before `since` are dropped at once: nothing in them was published later."""

    since: datetime | None = None
    until: datetime | None = None
    domains: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()

    def skip_reason(self, page: warc.Page) -> str | None:
        if self.since and page.fetched_at < self.since:
            return "before_since"
        if self.domains and not _in_domains(urlsplit(page.url).hostname or "", self.domains):
            return "other_domain"
        return None

    def for_process_step(self) -> dict:
        found = {
            "since": self.since and self.since.isoformat(),
            "until": self.until and self.until.isoformat(),
            "languages": sorted(self.languages) or None,
        }
        return {k: v for k, v in found.items() if v}


def _in_domains(host: str, domains: frozenset[str]) -> bool:
    """`host` is one of `domains` or a subdomain of one."""
    host = host.lower().rstrip(".")
    parts = host.split(".")
    return any(".".join(parts[i:]) in domains for i in range(len(parts)))


@dataclass
class Source:
    """One archive file: a local path or an http(s) URL, opened at any byte offset."""

    location: str
    size: int | None
    open_at: warc.Opener


@dataclass
class FileResult:
    location: str
    records_read: int
    counts: dict[str, int]
    done: bool
    already_done: bool = False


@dataclass
class Progress:
    """What the drawing needs: where reading is in a file, and this run's totals."""

    location: str
    byte_offset: int
    records_read: int  # in this run, over all files
    sent: int


def expand_sources(arguments: list[str], settings: Settings, client: httpx.Client) -> list[Source]:
    """Files, directories (their archive files, recursively, sorted) and URLs."""
    sources: list[Source] = []
    for argument in arguments:
        if urlsplit(argument).scheme in ("http", "https"):
            sources.append(_url_source(argument, settings, client))
            continue
        path = Path(argument)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.name.lower().endswith(ARCHIVE_SUFFIXES)
            )
            if not found:
                raise ArchiveSourceError(f"{argument}: no .warc(.gz) or .arc(.gz) files in it")
            sources.extend(_file_source(p) for p in found)
        elif path.is_file():
            sources.append(_file_source(path))
        else:
            raise ArchiveSourceError(f"{argument}: no such file or directory")
    return sources


def _file_source(path: Path) -> Source:
    resolved = path.resolve()

    def open_at(offset: int) -> BinaryIO:
        stream = resolved.open("rb")
        stream.seek(offset)
        return stream

    return Source(str(resolved), resolved.stat().st_size, open_at)


def _url_source(url: str, settings: Settings, client: httpx.Client) -> Source:
    def open_at(offset: int) -> BinaryIO:
        return io.BufferedReader(HttpFile(client, url, settings, offset))

    return Source(url, None, open_at)


class HttpFile(io.RawIOBase):
    """An archive over HTTP, read as a stream from `offset` (a Range request; a server
    that ignores it is read past the offset). Never held whole in memory."""

    def __init__(self, client: httpx.Client, url: str, settings: Settings, offset: int):
        super().__init__()
        self._stack = ExitStack()
        headers = {"Range": f"bytes={offset}-"} if offset else None
        try:
            response = self._stack.enter_context(
                web.open_stream(client, url, settings, headers=headers)
            )
        except (httpx.HTTPError, NewsloomError) as exc:
            self._stack.close()
            raise ArchiveSourceError(f"{url}: cannot download: {exc}") from None
        self._chunks = response.iter_bytes()
        self._buffer = b""
        self._position = offset
        if offset and response.status_code != 206:
            self._skip(offset)

    def _skip(self, count: int) -> None:
        while count > 0:
            chunk = next(self._chunks, b"")
            if not chunk:
                return
            self._buffer = chunk[count:]
            count -= len(chunk)

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def readinto(self, target) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
            except httpx.HTTPError as exc:
                raise OSError(f"download interrupted: {exc}") from None
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        self._position += size
        return size

    def close(self) -> None:
        self._stack.close()
        super().close()


@dataclass
class Importer:
    settings: Settings
    conn: db.Connection
    celery: Celery
    filters: Filters = field(default_factory=Filters)
    limit: int | None = None  # pages sent to processing in this run
    on_progress: Callable[[Progress], None] = lambda _: None
    read: int = 0  # records read in this run
    sent: int = 0  # pages sent to the process queue in this run

    def run(self, sources: list[Source]) -> list[FileResult]:
        results = []
        for source in sources:
            if self.limit is not None and self.sent >= self.limit:
                break
            results.append(self.import_file(source))
        return results

    def import_file(self, source: Source) -> FileResult:
        row = db.start_import(
            self.conn, source.location, self.filters.for_process_step(), source.size
        )
        if row["done"]:
            self.on_progress(
                Progress(source.location, source.size or row["byte_offset"], self.read, self.sent)
            )
            return FileResult(source.location, row["records_read"], row["counts"], True, True)
        if not db.lock_import(self.conn, row["id"]):  # held until this run's connection ends
            raise ArchiveSourceError(f"{source.location}: another import is reading it now")
        self._send(db.imported_in_flight(self.conn, row["id"]))  # lost by a killed run?
        state = _FileState(
            row["id"],
            "import:" + source.location,
            row["records_read"],
            row["byte_offset"],
            Counter(row["counts"]),
        )
        entries = warc.read_entries(source.open_at, state.offset, self.settings.max_page_bytes)
        done = self._read(source, state, entries)
        self._flush(state, done=done)
        self._report(source, state, done)
        logger.info(
            "imported" if done else "import stopped at the limit",
            file=source.location,
            records=state.records_read,
            **(+state.counts),
        )
        return FileResult(source.location, state.records_read, dict(+state.counts), done)

    def _read(self, source: Source, state: _FileState, entries: Iterator[warc.Entry]) -> bool:
        """Read records into batches; True when the file was read to its end."""
        try:
            for entry in entries:
                state.records_read += 1
                self.read += 1
                state.offset = entry.next_offset
                page = entry.page
                reason = self.filters.skip_reason(page) if page else entry.skipped
                if page and not reason:
                    state.batch.append(page)
                else:
                    state.counts[reason or "unreadable"] += 1
                    if entry.detail:
                        logger.warning(
                            "damaged record skipped",
                            file=source.location,
                            reason=reason,
                            error=entry.detail,
                        )
                if state.batch_full():
                    self._flush(state, done=False)
                    self._report(source, state)
                if self.limit is not None and self.sent + len(state.batch) >= self.limit:
                    return False
        except warc.NotAnArchive as exc:
            raise ArchiveSourceError(f"{source.location}: {exc}") from None
        return True

    def _report(self, source: Source, state: _FileState, done: bool = False) -> None:
        # A file read to its end counts whole (trailing blank lines, unindexed gzip).
        offset = (source.size or state.offset) if done else state.offset
        self.on_progress(Progress(source.location, offset, self.read, self.sent))

    def _flush(self, state: _FileState, done: bool) -> None:
        """Record the batch's pages and the file's progress in one transaction, then send
        the new URLs to the process queue (waiting while it is deep)."""
        pages, seen = [], set()
        for page in state.batch:
            if page.url in seen:
                state.counts["known_url"] += 1
                continue
            seen.add(page.url)
            pages.append(
                (
                    page.url,
                    page.fetched_at,
                    page.status,
                    json.dumps(page.headers),
                    page.content_type,
                    zlib.compress(page.html, 6),
                )
            )
        state.batch.clear()
        state.flushed_at = time.monotonic()
        with self.conn.transaction():
            url_ids = db.record_imported_pages(self.conn, state.import_id, state.source, pages)
            state.counts[QUEUED] += len(url_ids)
            state.counts["known_url"] += len(pages) - len(url_ids)
            db.save_import_progress(
                self.conn,
                state.import_id,
                records_read=state.records_read,
                byte_offset=state.offset,
                counts=dict(+state.counts),
                done=done,
            )
        self._send(url_ids)

    def _send(self, url_ids: list[int]) -> None:
        if not url_ids:
            return
        self.wait_for_room()
        queue.enqueue_process_many(url_ids, self.celery)
        self.sent += len(url_ids)

    def wait_for_room(self) -> None:
        """Backpressure: hold while the process queue is deeper than the setting."""
        started, told = time.monotonic(), False
        while (
            depth := queue.queue_depths(self.celery)[PROCESS_QUEUE]
        ) > self.settings.import_max_queued:
            if not told and time.monotonic() - started > WAIT_NOTICE_SECONDS:
                logger.warning(
                    "waiting for the process queue to drain: are process workers running?",
                    waiting=depth,
                    bound=self.settings.import_max_queued,
                )
                told = True
            time.sleep(0.2)


@dataclass
class _FileState:
    import_id: int
    source: str
    records_read: int
    offset: int
    counts: Counter
    batch: list[warc.Page] = field(default_factory=list)
    flushed_at: float = field(default_factory=time.monotonic)

    def batch_full(self) -> bool:
        return len(self.batch) >= BATCH_PAGES or (
            time.monotonic() - self.flushed_at > BATCH_SECONDS
        )
