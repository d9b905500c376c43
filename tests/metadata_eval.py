"""The metadata evaluation set (fixtures/metadata) and its scores.

Each page has hand-checked values in manifest.json: title, publication time (with time of
day and zone when the page shows them, else the day), authors (person names; [] when the
byline names no person, null when unknown) and, for the Zyte benchmark's pages, the body.
A null value is not scored. `part` splits the pages by file into a tuning part (settings
were chosen on it) and a held-out part.

Run as a script for the figures: python tests/metadata_eval.py [tuning|heldout|all]
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from statistics import mean, median

FIXTURES = Path(__file__).parent / "fixtures" / "metadata"
# The pages are from 2009-2023: a fetch time after all of them.
FETCHED_AT = datetime(2024, 1, 1, tzinfo=UTC)
_WORD = re.compile(r"\w+")
_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "\u00a0": " "})


@dataclass(frozen=True)
class Page:
    file: str
    part: str
    url: str
    title: str | None
    published: str | None
    authors: list[str] | None
    body: str | None
    time_seen: str | None  # "page": the time is shown on the page; "structured data"

    def html(self) -> bytes:
        return gzip.decompress((FIXTURES / "pages" / self.file).read_bytes())


@dataclass(frozen=True)
class Found:
    """What an extractor found on a page."""

    title: str | None
    published_at: datetime | None
    authors: list[str]
    text: str


def pages(part: str = "all") -> list[Page]:
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    return [
        Page(**{k: p[k] for k in Page.__dataclass_fields__})
        for p in manifest["pages"]
        if part in ("all", p["part"])
    ]


def fold(text: str) -> str:
    """Case, space and quote-mark folding for comparing titles and names."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    return " ".join(text.casefold().split())


def fold_name(name: str) -> str:
    """Names compare without their full stops ("Perry Bacon Jr." is "Perry Bacon Jr")."""
    return fold(name.replace(".", " "))


def shingles(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.casefold())
    return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def body_f1(got: str, expected: str) -> float:
    got_set, expected_set = shingles(got), shingles(expected)
    overlap = len(got_set & expected_set)
    if not overlap:
        return 0.0
    precision, recall = overlap / len(got_set), overlap / len(expected_set)
    return 2 * precision * recall / (precision + recall)


def _expected_time(value: str) -> datetime | date:
    if "T" not in value:
        return date.fromisoformat(value)
    return datetime.fromisoformat(value)


@dataclass(frozen=True)
class Figures:
    title: float
    time_60s: float
    time_60s_seen: float  # on the pages that show the time
    day: float
    authors_precision: float
    authors_recall: float
    body_f1: float
    body_f1_other: float  # outside English and German
    ms_per_page: float  # median

    def row(self) -> str:
        return (
            f"title {self.title:.2f}  time60s {self.time_60s:.2f} "
            f"(shown on page {self.time_60s_seen:.2f})  day {self.day:.2f}  "
            f"authors P/R {self.authors_precision:.2f}/{self.authors_recall:.2f}  "
            f"body F1 {self.body_f1:.3f} (other languages {self.body_f1_other:.3f})  "
            f"median {self.ms_per_page:.1f} ms/page"
        )


def evaluate(run: Callable[[bytes, str], Found], selected: Iterable[Page]) -> Figures:
    titles, times, times_seen, days, bodies, bodies_other, costs = [], [], [], [], [], [], []
    found_names = expected_names = matched_names = 0
    for page in selected:
        html = page.html()
        start = time.perf_counter()
        found = run(html, page.url)
        costs.append(time.perf_counter() - start)
        if page.title is not None:
            titles.append(fold(found.title or "") == fold(page.title))
        if page.published is not None:
            expected = _expected_time(page.published)
            got = found.published_at
            if isinstance(expected, datetime):
                times.append(got is not None and abs(got - expected) <= timedelta(seconds=60))
                if page.time_seen == "page":
                    times_seen.append(times[-1])
                expected = expected.date()
            days.append(got is not None and abs(got.date() - expected) <= timedelta(days=1))
        if page.authors is not None:
            got_names = {fold_name(a) for a in found.authors}
            want = {fold_name(a) for a in page.authors}
            found_names += len(got_names)
            expected_names += len(want)
            matched_names += len(got_names & want)
        if page.body is not None:
            score = body_f1(found.text, page.body)
            bodies.append(score)
            if page.file in _OTHER_LANGUAGE:
                bodies_other.append(score)
    return Figures(
        title=mean(titles),
        time_60s=mean(times) if times else 0.0,
        time_60s_seen=mean(times_seen) if times_seen else 0.0,
        day=mean(days),
        authors_precision=matched_names / max(1, found_names),
        authors_recall=matched_names / max(1, expected_names),
        body_f1=mean(bodies) if bodies else 0.0,
        body_f1_other=mean(bodies_other) if bodies_other else 0.0,
        ms_per_page=median(costs) * 1000,
    )


# The Zyte pages whose article is not in English or German (by hand).
_OTHER_LANGUAGE = {
    "zyte-entermedia-co-kr.html.gz",
    "zyte-autoracing-com-br.html.gz",
    "zyte-remember8090-it.html.gz",
    "zyte-kabarislamia-com.html.gz",
    "zyte-comoeducarseusfilhos-com-br.html.gz",
    "zyte-wday-ru.html.gz",
}


def newsloom(html: bytes, url: str) -> Found:
    from newsloom.errors import Permanent
    from newsloom.worker.extract import extract

    try:
        doc = extract(html, url, min_chars=0, fetched_at=FETCHED_AT)
    except Permanent:
        return Found(None, None, [], "")
    return Found(doc.title, doc.published_at, list(doc.authors), doc.text)


def main(part: str) -> None:
    selected = pages(part)
    print(f"{part}: {len(selected)} pages")
    print("newsloom   ", evaluate(newsloom, selected).row())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "all")
