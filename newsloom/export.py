"""The article document consumers receive, and the writers that stream it to a file.

One function, `article_document`, shapes an article for every consumer: each line of a
JSONL export is one, and each webhook delivery carries one. Its `schema` field names the
version; fields are only ever added within a version.

Writers are registered by format name in WRITERS; each takes article rows one at a time,
so an export holds one batch of rows in memory however large it is. WARC's rows carry the
article's kept page (db.articles_with_pages); the others' become documents.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from newsloom.errors import NewsloomError

DOCUMENT_SCHEMA = "newsloom.article/1"

# The document's fields in order, each with its Parquet type name (see _parquet_schema).
DOCUMENT_FIELDS = (
    ("schema", "string"),
    ("id", "int64"),
    ("url", "string"),
    ("canonical_url", "string"),
    ("title", "string"),
    ("author", "string"),
    ("published_at", "timestamp"),
    ("updated_at", "timestamp"),
    ("fetched_at", "timestamp"),
    ("stored_at", "timestamp"),
    ("language", "string"),
    ("site_name", "string"),
    ("description", "string"),
    ("image_url", "string"),
    ("tags", "strings"),
    ("text", "string"),
    ("content_hash", "string"),
    ("feed_url", "string"),
    ("feed_name", "string"),
    ("urls", "strings"),
    ("entities", "entities"),
)


def article_document(row: dict) -> dict[str, Any]:
    """An article as consumers see it, from a row of db.stream_article_documents or
    db.get_article_document. Versioned by `schema`."""
    return {
        "schema": DOCUMENT_SCHEMA,
        "id": row["id"],
        "url": row["url"],
        "canonical_url": row["canonical_url"],
        "title": row["title"],
        "author": row["author"],
        "published_at": row["published_at"],
        "updated_at": row["updated_at"],
        "fetched_at": row["fetched_at"],
        "stored_at": row["created_at"],
        "language": row["language"],
        "site_name": row["site_name"],
        "description": row["description"],
        "image_url": row["image_url"],
        "tags": list(row["tags"] or []),
        "text": row["text"],
        "content_hash": row["content_hash"],
        "feed_url": row["feed_url"],
        "feed_name": row["feed_name"],
        "urls": list(row["urls"]),
        "entities": [
            {"name": e["name"], "label": e["label"], "mentions": e["mentions"]}
            for e in row["entities"]
        ],
    }


def json_value(value: object) -> object:
    """JSON for what a document holds besides JSON's own types: times as ISO 8601."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(document: dict) -> str:
    return json.dumps(document, ensure_ascii=False, default=json_value, separators=(",", ":"))


class Writer(Protocol):
    """Writes article rows to a binary stream; `close` finishes the file (not the stream)."""

    def write(self, row: dict) -> None: ...

    def close(self) -> None: ...


class JsonlWriter:
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def write(self, row: dict) -> None:
        self.stream.write(to_json(article_document(row)).encode() + b"\n")

    def close(self) -> None:
        self.stream.flush()


class CsvWriter:
    """One row per article; lists and objects (tags, urls, entities) as JSON text."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
        self.csv = csv.writer(self.text)
        self.csv.writerow([name for name, _ in DOCUMENT_FIELDS])

    def write(self, row: dict) -> None:
        document = article_document(row)
        self.csv.writerow([_csv_cell(document[name]) for name, _ in DOCUMENT_FIELDS])

    def close(self) -> None:
        self.text.flush()
        self.text.detach()  # the stream belongs to the caller


def _csv_cell(value: object) -> object:
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


class ParquetWriter:
    """Row groups of ROWS_PER_GROUP articles, typed columns (times in UTC, lists)."""

    ROWS_PER_GROUP = 5000

    def __init__(self, stream: IO[bytes]) -> None:
        import pyarrow.parquet as pq

        self.schema = _parquet_schema()
        self.writer = pq.ParquetWriter(stream, self.schema, compression="zstd")
        self.rows: list[dict] = []

    def write(self, row: dict) -> None:
        self.rows.append(article_document(row))
        if len(self.rows) >= self.ROWS_PER_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self._flush()
        self.writer.close()


def _parquet_schema():
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "strings": pa.list_(pa.string()),
        "entities": pa.list_(
            pa.struct([("name", pa.string()), ("label", pa.string()), ("mentions", pa.int32())])
        ),
    }
    return pa.schema([(name, types[kind]) for name, kind in DOCUMENT_FIELDS])


def _warc_writer(stream: IO[bytes]) -> Writer:
    from newsloom.warc import WarcWriter  # warcio, only for this format

    return WarcWriter(stream)


WRITERS: dict[str, Callable[[IO[bytes]], Writer]] = {
    "jsonl": JsonlWriter,
    "csv": CsvWriter,
    "parquet": ParquetWriter,
    "warc": _warc_writer,
}
# Formats whose rows carry the kept page, not only the article.
WITH_PAGES = frozenset({"warc"})


@dataclass(frozen=True)
class ExportResult:
    articles: int
    last_article_id: int | None


def write_rows(rows: Iterable[dict], writer: Writer) -> ExportResult:
    """Write each article row; returns how many and the last id."""
    count, last_id = 0, None
    for row in rows:
        writer.write(row)
        count, last_id = count + 1, row["id"]
    writer.close()
    return ExportResult(count, last_id)


@contextmanager
def output_stream(path: Path | None) -> Iterator[IO[bytes]]:
    """Standard output, or a file that appears whole at `path` only when the export
    succeeds (it is written next to it under a temporary name, then renamed).

    A path that cannot be written is a NewsloomError naming it, before anything is read.
    """
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    if path.is_dir():
        raise NewsloomError(f"cannot write {path}: it is a directory")
    try:
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".partial", dir=path.parent
        )
    except OSError as exc:
        raise NewsloomError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
        os.chmod(temporary, 0o666 & ~_umask())  # as open() would have made it
        os.replace(temporary, path)
    except OSError as exc:
        raise NewsloomError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
