"""The worker's two steps over one URL of the ledger, as plain functions (no Celery).

fetch_step: fetch the page and keep it (compressed) in Postgres.
process_step: extract -> dedupe -> tag -> store, from the kept page.
Each step does nothing when the URL has moved past it, so a message delivered twice
leaves the same rows as one.
"""

from __future__ import annotations

import time
import traceback
import zlib
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from urllib.parse import urlsplit

import httpx
from structlog.contextvars import bind_contextvars

from newsloom import broker, db, log, metrics, web
from newsloom.db import UrlState
from newsloom.errors import Deferred, Permanent, Poisoned
from newsloom.retry import RetryPolicy, classify
from newsloom.settings import Settings
from newsloom.worker.dedupe import CANDIDATE_MIN_AGREEMENT, ArticleKeys, article_keys, find_match
from newsloom.worker.extract import EXTRACTOR, extract
from newsloom.worker.fetch import fetch_page
from newsloom.worker.politeness import FetchLeases, HostLimiter
from newsloom.worker.robots import RobotsRules
from newsloom.worker.tag import Models, tag

logger = log.get_logger(__name__)


@dataclass
class Context:
    """What a worker process keeps between tasks, created lazily: connections after any
    fork; the models may be loaded before (see worker.tasks), to be shared."""

    settings: Settings

    @cached_property
    def pool(self) -> db.Pool:
        return db.make_pool(
            self.settings.require_database_url(), max_size=min(self.settings.fetch_concurrency, 20)
        )

    @cached_property
    def http(self) -> httpx.Client:
        return web.make_client(self.settings)

    @cached_property
    def models(self) -> Models:
        return Models(self.settings.spacy_model, self.settings.spacy_models)

    @cached_property
    def limiter(self) -> HostLimiter:
        return HostLimiter(
            broker.redis_client(self.settings.require_redis_url()), self.settings.redis_key_prefix
        )

    @cached_property
    def leases(self) -> FetchLeases:
        return FetchLeases(self.limiter.client, self.settings.redis_key_prefix)

    @cached_property
    def robots(self) -> RobotsRules:
        return RobotsRules(self.http, self.settings)


# A slot this close is waited for in place rather than by sending the message again.
_WAIT_IN_PLACE = 0.05


def fetch_step(ctx: Context, url_id: int, not_before: float | None = None) -> bool:
    """Returns True when the page was fetched and should be processed next.

    Raises Deferred when the URL's host may not be asked yet (robots.txt Crawl-delay and
    the host delay, shared by all workers): the caller sends it again for later.
    """
    with ctx.pool.connection() as conn:
        row = db.get_url(conn, url_id)
    if row is None or row["state"] != UrlState.QUEUED:
        return False
    url = row["url"]
    bind_contextvars(url=url, feed=row["feed_url"])
    with ctx.leases.held(url_id, _lease_seconds(ctx.settings)) as ours:
        if not ours:  # another copy of this message is fetching it: come back after
            raise Deferred(time.time() + _LEASE_BUSY_RETRY)
        host = urlsplit(url).hostname
        delay = row["host_delay_seconds"]
        delay = ctx.settings.host_delay if delay is None else delay
        if row["obey_robots"]:
            if delay > 0 and not ctx.robots.known(url):
                # robots.txt is a request to the host like any: it takes a turn of its own.
                _wait_for_host(ctx, host, delay, not_before)
                not_before = None  # the page books the next turn
            delay = max(delay, ctx.robots.check(url) or 0.0)
        if delay > 0:
            _wait_for_host(ctx, host, delay, not_before)
        with metrics.FETCH_SECONDS.time():
            page = fetch_page(ctx.http, url, ctx.settings)
        with ctx.pool.connection() as conn:
            db.save_raw_page(
                conn,
                url_id,
                final_url=page.final_url,
                content_type=page.content_type,
                html_zlib=zlib.compress(page.html, 6),
                status=page.status,
                headers=page.headers,
            )
    return True


# A copy that found its URL being fetched tries again this much later (by then the other
# copy is done, usually, and this one finds the URL fetched).
_LEASE_BUSY_RETRY = 5.0


def _lease_seconds(settings: Settings) -> float:
    """Longer than a fetch can last (robots.txt and the page, each with its redirects)."""
    return 2 * settings.longest_request + 30


def _wait_for_host(ctx: Context, host: str, delay: float, not_before: float | None) -> None:
    """Return when a request to `host` may go now; else raise Deferred."""
    if not_before is None:  # first arrival: book a slot in the host's timetable
        wait = ctx.limiter.reserve(host, delay)
        if wait > _WAIT_IN_PLACE:
            raise Deferred(time.time() + wait)
    elif not_before - time.time() > _WAIT_IN_PLACE:
        raise Deferred(not_before)  # sent back early: long waits come in steps
    for _ in range(3):
        wait = ctx.limiter.acquire(host, delay)
        if wait == 0:
            return
        if wait > _WAIT_IN_PLACE:
            raise Deferred(time.time() + wait)
        time.sleep(wait)
    raise Deferred(time.time() + delay)


def analyse(ctx: Context, raw: dict, entry_published_at=None, filters: dict | None = None):
    """Extract, dedupe keys and tag a kept page: (ArticleKeys, article content, entities).
    The feed entry's date and title (a news sitemap's) stand in for those the page lacks.
    An imported page whose article falls outside its import's `filters` raises Permanent
    before tagging."""
    html = zlib.decompress(raw["html_zlib"])
    extracted = extract(
        html,
        raw["final_url"],
        ctx.settings.min_text_chars,
        fetched_at=raw["fetched_at"],
        entry_published_at=entry_published_at,
    )
    if filters:
        check_import_filters(
            filters, extracted.language, extracted.published_at or raw["fetched_at"]
        )
    title = extracted.title or raw.get("entry_title")
    keys = article_keys(raw["final_url"], extracted.declared_url, extracted.text)
    nlp = ctx.models.for_language(extracted.language)
    if nlp is None:
        entities, skipped = [], f"no spaCy model for language {extracted.language!r}"
    else:
        [entities] = tag(nlp, [f"{title or ''}\n\n{extracted.text}"], ctx.settings.entity_labels)
        skipped = None
    content = {
        "title": title,
        "author": extracted.author,
        "authors": extracted.authors,
        "published_at": extracted.published_at,
        "modified_at": extracted.modified_at,
        "published_at_source": extracted.published_at_source,
        "section": extracted.section,
        "keywords": extracted.keywords,
        "publisher": extracted.publisher,
        "is_paywalled": extracted.is_paywalled,
        "language": extracted.language,
        "text": extracted.text,
        "site_name": extracted.site_name,
        "description": extracted.description,
        "image_url": extracted.image_url,
        "tags": extracted.tags,
        "fetched_at": raw["fetched_at"],
        "extractor": EXTRACTOR,
        "content_hash": keys.content_hash,
        "minhash": keys.minhash,
        "lsh_bands": keys.lsh_bands,
        "entities_skipped": skipped,
        "page_url_id": raw["url_id"],
    }
    return keys, content, entities


def check_import_filters(filters: dict, language: str | None, date: datetime) -> None:
    """Raise Permanent when an imported article is outside its import's --language or
    --since/--until (its publication date, else the record's date)."""
    languages = filters.get("languages")
    if languages and language not in languages:
        raise Permanent("filtered_language", str(language))
    since, until = filters.get("since"), filters.get("until")
    if (since and date < datetime.fromisoformat(since)) or (
        until and date >= datetime.fromisoformat(until)
    ):
        raise Permanent("filtered_date", date.isoformat())


def reprocess_article(ctx: Context, article_id: int) -> bool:
    """Extract and tag an article again from its kept page (after an upgrade), without
    fetching. False when it keeps its current content: no page kept, no text found now,
    or the new text is that of another article."""
    with ctx.pool.connection() as conn:
        raw = db.load_article_page(conn, article_id)
    if raw is None:
        return False
    try:
        _, content, entities = analyse(ctx, raw, raw["entry_published_at"])
    except Permanent as exc:
        logger.warning("not reprocessed", article_id=article_id, reason=exc.reason)
        return False
    with ctx.pool.connection() as conn:
        return db.replace_article_content(conn, article_id, content, entities, updated=False)


def process_step(ctx: Context, url_id: int) -> UrlState | None:
    """Returns the URL's outcome ('stored' or 'duplicate'), or None if nothing was to do."""
    with ctx.pool.connection() as conn:  # one connection for the step: fewer round trips
        row = db.start_processing(conn, url_id)
        if row is None:
            return None
        bind_contextvars(url=row["url"], feed=row["feed_url"])
        if row["deliveries"] > ctx.settings.max_attempts:
            raise Poisoned(f"processing started {row['deliveries']} times without finishing")
        keys, content, entities = analyse(
            ctx, row, row["entry_published_at"], row["import_filters"]
        )
        outcome, _ = store(
            conn,
            url_id=url_id,
            url=row["url"],
            feed_id=row["feed_id"],
            keys=keys,
            content=content,
            entities=entities,
            source=row["source"],
        )
    metrics.URL_OUTCOMES.labels(outcome, "").inc()
    (metrics.ARTICLES_STORED if outcome == UrlState.STORED else metrics.DUPLICATES).inc()
    return outcome


def store(
    conn,
    *,
    url_id: int,
    url: str,
    feed_id: int | None,
    keys: ArticleKeys,
    content: dict,
    entities: list,
    source: str = "feed",
) -> tuple[UrlState, int]:
    """Dedupe against the stored articles and store: one transaction. Returns the URL's
    outcome and its article's id."""
    with conn.transaction():
        candidates = db.find_article_candidates(
            conn,
            canonical_url=keys.canonical_url,
            content_hash=keys.content_hash,
            minhash=keys.minhash,
            lsh_bands=keys.lsh_bands,
            min_agreement=CANDIDATE_MIN_AGREEMENT,
        )
        match = find_match(keys, candidates)
        result = db.store_article(
            conn,
            url_id=url_id,
            url=url,
            feed_id=feed_id,
            canonical_url=keys.canonical_url,
            content=content,
            entities=entities,
            existing=match.article if match else None,
            replace_content=match is not None and match.replaces(keys, content["fetched_at"]),
            source=source,
        )
    if match is not None and match.kind != "same_url":
        logger.info("duplicate", of=match.article["url"], match=match.kind)
    return result


def settle_failure(ctx: Context, task: str, url_id: int, exc: Exception) -> float | None:
    """Give a failed step its consequence, per the retry policy.

    Permanent: the URL ends as skipped with the reason. Transient with attempts left:
    returns the delay before the next try. Otherwise: a dead letter, and the URL ends dead.
    Attempts are counted on the URL in Postgres, so they survive redeliveries and resends.
    """
    error = f"{type(exc).__name__}: {exc}"
    verdict = classify(exc)
    policy = RetryPolicy.from_settings(ctx.settings)
    with ctx.pool.connection() as conn:
        if isinstance(exc, Permanent):  # classify's Verdict.PERMANENT
            logger.info("skipped", reason=exc.reason, detail=exc.detail)
            db.finish_url(
                conn, url_id, UrlState.SKIPPED, reason=exc.reason, detail=exc.detail[:500]
            )
            metrics.URL_OUTCOMES.labels(UrlState.SKIPPED, exc.reason).inc()
            return None
        attempts = db.count_attempt(conn, url_id)
        if policy.should_retry(exc, attempts):
            delay = policy.delay(attempts, exc)
            logger.warning("retrying", error=error, attempt=attempts, delay=round(delay, 1))
            metrics.RETRIES.labels(task).inc()
            return delay
        logger.error("dead-lettered", error=error, attempts=attempts, verdict=verdict.value)
        db.add_dead_letter(
            conn,
            task=task,
            payload={"url_id": url_id},
            url_id=url_id,
            error_class=type(exc).__name__,
            error=error,
            traceback="".join(traceback.format_exception(exc)),
            attempts=attempts,
        )
    metrics.URL_OUTCOMES.labels(UrlState.DEAD, type(exc).__name__).inc()
    metrics.DEAD_LETTERS.labels(type(exc).__name__).inc()
    return None
