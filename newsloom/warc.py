"""WARC and ARC files through warcio: reading records for import, writing kept pages out.

Reading yields one `Entry` per record with the offset where the next record starts, so an
import can stop anywhere and resume from its last saved offset. A record warcio cannot
parse is skipped with a reason, and reading goes on from the next record start found
after it (the next gzip member of a record-per-member file, or the next `WARC/` line).
No WARC syntax is parsed here: warcio does that.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from io import BytesIO
from typing import IO, BinaryIO
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.statusandheaders import StatusAndHeaders, StatusAndHeadersParserException
from warcio.timeutils import datetime_to_iso_date, iso_date_to_datetime
from warcio.warcwriter import WARCWriter

from newsloom.errors import NewsloomError
from newsloom.worker.fetch import HTML_TYPES, PRIVATE_HEADERS

GZIP_MAGIC = b"\x1f\x8b\x08"
WARC_MAGIC = b"WARC/"
# Headers that describe the bytes on the wire, not the decoded payload a WARC record holds.
WIRE_HEADERS = frozenset({"content-encoding", "transfer-encoding", "content-length"})
# What a damaged record raises inside warcio (or zlib/gzip under it).
DAMAGE = (
    ArchiveLoadFailed,
    StatusAndHeadersParserException,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
)
_SCAN_CHUNK = 1 << 16


class NotAnArchive(NewsloomError):
    """The file is not WARC or ARC at all."""


@dataclass(frozen=True)
class Page:
    """An HTML 200 response as the process step needs it."""

    url: str
    fetched_at: datetime
    status: int
    headers: list[tuple[str, str]]
    content_type: str | None
    html: bytes


@dataclass(frozen=True)
class Entry:
    """One record read: a page, or why it was skipped (`skipped`). `next_offset` is where
    the following record starts in the file."""

    next_offset: int
    page: Page | None = None
    skipped: str | None = None
    url: str | None = None
    date: datetime | None = None
    detail: str | None = None  # what was wrong with a damaged record


# Opens the source at a byte offset: a readable binary stream positioned there.
Opener = Callable[[int], BinaryIO]


def read_entries(open_at: Opener, start: int, max_page_bytes: int) -> Iterator[Entry]:
    """Every record of the file from `start` (a record start), as Entries.

    Raises NotAnArchive when the first record of the file cannot be read at all.
    """
    gzipped = _starts_with(open_at, 0, GZIP_MAGIC)
    offset: int | None = start
    while offset is not None:
        offset = yield from _read_from(open_at, offset, max_page_bytes, gzipped)


def _read_from(
    open_at: Opener, offset: int, max_page_bytes: int, gzipped: bool
) -> Generator[Entry, None, int | None]:
    """Entries from `offset` until the end of the file (returns None) or damage (returns
    the offset to resume reading at, after one 'corrupt' entry)."""
    stream = open_at(offset)
    try:
        records = ArchiveIterator(stream, arc2warc=True)
        good = offset  # the last record start known to be right
        while True:
            start = records.offset
            try:
                record = next(records)
                entry = _entry(record, max_page_bytes)
                records.read_to_end()
            except StopIteration:
                return None
            except DAMAGE as exc:
                if start == 0:
                    raise NotAnArchive(f"not a WARC or ARC file ({_one_line(exc)})") from None
                # A negative offset: one gzip stream around many records, where warcio
                # knows no record starts; nothing after the damage can be found then.
                resume = _next_record_start(open_at, start + 1, gzipped) if start > 0 else None
                yield Entry(
                    resume if resume is not None else good, skipped="corrupt", detail=_one_line(exc)
                )
                return resume
            good = max(records.offset, good)
            yield Entry(good, **entry)
    finally:
        stream.close()


def _entry(record, max_page_bytes: int) -> dict:
    """What became of one record: the fields of its Entry but the offset."""
    headers = record.rec_headers
    url = (headers.get_header("WARC-Target-URI") or "").strip("<> ")
    date = _record_date(headers.get_header("WARC-Date"))
    info = {"url": url or None, "date": date}
    if record.rec_type != "response":
        return {**info, "skipped": record.rec_type or "no_record_type"}
    if urlsplit(url).scheme not in ("http", "https"):
        return {**info, "skipped": "not_http"}
    http = record.http_headers
    if http is None or not http.get_statuscode() or date is None:
        return {**info, "skipped": "no_http_headers" if date else "no_date"}
    status = http.get_statuscode()
    if status != "200":
        return {**info, "skipped": f"http_{status}"}
    content_type = http.get_header("Content-Type")
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime and mime not in HTML_TYPES:  # skipped without decoding its payload
        return {**info, "skipped": "not_html"}
    body = record.content_stream().read(max_page_bytes + 1)
    if len(body) > max_page_bytes:
        return {**info, "skipped": "too_large"}
    if getattr(record.raw_stream, "limit", 0) > 0:
        return {**info, "skipped": "truncated"}  # the file ended inside the record
    if not mime and b"<html" not in body[:4096].lower():
        return {**info, "skipped": "not_html"}
    kept = [(name, value) for name, value in http.headers if name.lower() not in PRIVATE_HEADERS]
    return {**info, "page": Page(url, date, 200, kept, content_type, body)}


def _record_date(value: str | None) -> datetime | None:
    try:
        return iso_date_to_datetime(value, tz_aware=True) if value else None
    except ValueError:
        return None


def _starts_with(open_at: Opener, offset: int, magic: bytes) -> bool:
    stream = open_at(offset)
    try:
        return stream.read(len(magic)) == magic
    finally:
        stream.close()


def _next_record_start(open_at: Opener, offset: int, gzipped: bool) -> int | None:
    """The first place from `offset` on where a record may start, or None."""
    magic = GZIP_MAGIC if gzipped else b"\n" + WARC_MAGIC
    stream = open_at(offset)
    try:
        carry = b""
        position = offset
        while chunk := stream.read(_SCAN_CHUNK):
            window = carry + chunk
            found = window.find(magic)
            if found >= 0:
                return position - len(carry) + found + (0 if gzipped else 1)
            carry = window[-(len(magic) - 1) :]
            position += len(chunk)
        return None
    finally:
        stream.close()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


# --- writing -----------------------------------------------------------------------------


class WarcWriter:
    """Kept pages and their articles as gzipped WARC/1.1: per article, a response record of
    its kept page (status line, kept headers, payload) and a JSON metadata record of its
    extracted fields. A row is an article (its columns, `entities` as [name, label,
    mentions] lists) with its page: `final_url`, `html_zlib`, `page_fetched_at`, `status`,
    `headers` ([[name, value], ...]) and `content_type` (db.articles_with_pages). A row
    whose page is no longer kept gets its metadata record only."""

    def __init__(self, out: IO[bytes]) -> None:
        self.writer = WARCWriter(out, gzip=True, warc_version="1.1")

    def write(self, row: dict) -> None:
        response_id = None
        if row.get("html_zlib") is not None:
            response = _response_record(self.writer, row)
            self.writer.write_record(response)
            response_id = response.rec_headers.get_header("WARC-Record-ID")
        self.writer.write_record(_metadata_record(self.writer, row, response_id))

    def close(self) -> None:
        """Each record is complete when written (one gzip member each)."""


def _response_record(writer: WARCWriter, row: dict):
    html = zlib.decompress(row["html_zlib"])
    kept = [
        (name, value)
        for name, value in row.get("headers") or []
        if name.lower() not in WIRE_HEADERS
    ]
    if row.get("headers") is None and row.get("content_type"):  # fetched before 0005
        kept = [("Content-Type", row["content_type"])]
    status = row.get("status") or 200
    http_headers = StatusAndHeaders(
        f"{status} {HTTPStatus(status).phrase}",
        [*kept, ("Content-Length", str(len(html)))],
        protocol="HTTP/1.1",
    )
    return writer.create_warc_record(
        row["final_url"],
        "response",
        payload=BytesIO(html),
        length=len(html),
        http_headers=http_headers,
        warc_headers_dict={"WARC-Date": _iso(row["page_fetched_at"])},
    )


def _metadata_record(writer: WARCWriter, row: dict, response_id: str | None):
    article = {name: row.get(name) for name in ARTICLE_FIELDS}
    article["entities"] = [
        {"name": n, "label": label, "mentions": m} for n, label, m in row.get("entities") or []
    ]
    payload = json.dumps(article, default=_json_value, ensure_ascii=False).encode()
    headers = {"WARC-Date": _iso(row["fetched_at"])}
    if response_id:
        headers["WARC-Concurrent-To"] = response_id
    return writer.create_warc_record(
        row["url"],
        "metadata",
        payload=BytesIO(payload),
        length=len(payload),
        warc_content_type="application/json",
        warc_headers_dict=headers,
    )


# The extracted fields each metadata record carries.
ARTICLE_FIELDS = (
    "id",
    "url",
    "canonical_url",
    "title",
    "author",
    "authors",
    "published_at",
    "modified_at",
    "language",
    "site_name",
    "description",
    "image_url",
    "tags",
    "text",
    "content_hash",
    "fetched_at",
    "updated_at",
    "extractor",
    "source",
)


def _iso(value: datetime) -> str:
    return datetime_to_iso_date(value.astimezone(UTC).replace(tzinfo=None), use_micros=True)


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
