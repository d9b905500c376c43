"""Dedupe stage: the keys under which an article is unique, and the rule that says a new
page is an article already stored.

A page is an existing article when its canonical URL matches, when its normalised text
hashes the same, or when its text is a near-duplicate: word 5-shingle Jaccard similarity
at least NEAR_DUPLICATE_JACCARD. Candidates for the last come from MinHash LSH bands
indexed in Postgres, so the rule holds across all workers and restarts; a candidate whose
MinHash values agree enough is then checked on its full text, so the bands and signatures
only decide what is looked at.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin, urlsplit

import courlan
import numpy as np

from newsloom.web import is_http_url

_SPACE = re.compile(r"\s+")
# A word, or a single Chinese or Japanese character: those scripts do not space their
# words, so their shingles are runs of characters.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")

SHINGLE_WORDS = 5
# Chosen on the labelled pairs in tests/test_near_duplicates.py (figures in the README).
NEAR_DUPLICATE_JACCARD = 0.5
# 30 bands of 3 MinHash rows: a pair at the threshold shares a band with probability
# 1 - (1 - 0.5**3)**30 = 0.98, at Jaccard 0.6 with 0.9993.
LSH_BANDS, LSH_ROWS = 30, 3
# A candidate's text is read and compared only when this many of the MinHash values agree
# (an estimated Jaccard of 0.4): look-alike articles that share a band or two cost a few
# integer comparisons in Postgres, not a text read. A pair at the threshold passes with
# probability 0.97, at Jaccard 0.6 with 0.9999.
CANDIDATE_MIN_AGREEMENT = 36
_PRIME = 4_294_967_311  # the first prime above 2^32, the range of the shingle hashes
_rng = np.random.default_rng(0x6E6C)  # fixed: signatures must agree across processes
_A = _rng.integers(1, 1 << 31, LSH_BANDS * LSH_ROWS, dtype=np.uint64)
_B = _rng.integers(0, _PRIME, LSH_BANDS * LSH_ROWS, dtype=np.uint64)


@dataclass(frozen=True)
class ArticleKeys:
    canonical_url: str
    content_hash: str
    shingles: frozenset[int]
    minhash: list[int]
    lsh_bands: list[int]


def article_keys(page_url: str, declared_url: str | None, text: str) -> ArticleKeys:
    text_shingles = shingles(text)
    signature = minhash(text_shingles)
    return ArticleKeys(
        canonical_url(page_url, declared_url),
        content_hash(text),
        text_shingles,
        signature,
        lsh_bands(signature),
    )


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
    if not is_http_url(url):
        return None
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def shingles(text: str) -> frozenset[int]:
    """Hashes of the text's overlapping runs of SHINGLE_WORDS words (case and punctuation
    ignored); a shorter text is one shingle, a text without words none."""
    words = _WORD.findall(text.casefold())
    runs = (
        " ".join(words[i : i + SHINGLE_WORDS])
        for i in range(max(1, len(words) - SHINGLE_WORDS + 1))
        if words
    )
    return frozenset(zlib.crc32(run.encode()) for run in runs)


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def minhash(shingle_hashes: frozenset[int]) -> list[int]:
    """The text's MinHash signature: LSH_BANDS * LSH_ROWS values. The share of values two
    signatures agree on estimates their texts' Jaccard similarity."""
    x = np.fromiter(shingle_hashes, dtype=np.uint64, count=len(shingle_hashes))
    if not len(x):
        return []
    # Universal hashing (a*x + b) mod p: a < 2^31 and x, b < 2^33 keep it below 2^64.
    return ((np.outer(_A, x) + _B[:, None]) % _PRIME).min(axis=1).tolist()


def lsh_bands(signature: list[int]) -> list[int]:
    """One signed 64-bit key per band of the signature; texts sharing a key are candidates."""
    rows = [signature[i : i + LSH_ROWS] for i in range(0, len(signature), LSH_ROWS)]
    return [
        int.from_bytes(
            hashlib.blake2b(
                bytes([band]) + b"".join(v.to_bytes(8, "big") for v in row), digest_size=8
            ).digest(),
            "big",
            signed=True,
        )
        for band, row in enumerate(rows)
    ]


@dataclass(frozen=True)
class Match:
    """What a new page is to a stored article: the same URL (perhaps an updated text),
    the same text, or a near-duplicate text."""

    kind: Literal["same_url", "same_text", "near_duplicate"]
    article: dict

    def replaces(self, keys: ArticleKeys, fetched_at) -> bool:
        """True when the page is a newer fetch of the article's URL with another text: the
        article takes the new text. (Whitespace and case are not changes.)"""
        return (
            self.kind == "same_url"
            and keys.content_hash != self.article["content_hash"]
            and fetched_at > self.article["fetched_at"]
        )


def find_match(keys: ArticleKeys, candidates: list[dict]) -> Match | None:
    """The stored article this page is, among `candidates` (rows with id, canonical_url,
    content_hash, and text unless too few MinHash values agree), or None when it is a new
    article. The oldest one wins."""
    candidates = sorted(candidates, key=lambda row: row["id"])
    for row in candidates:
        if row["canonical_url"] == keys.canonical_url:
            return Match("same_url", row)
    for row in candidates:
        if row["content_hash"] == keys.content_hash:
            return Match("same_text", row)
    for row in candidates:
        if (
            row["text"] is not None
            and jaccard(keys.shingles, shingles(row["text"])) >= NEAR_DUPLICATE_JACCARD
        ):
            return Match("near_duplicate", row)
    return None
