-- Retention (newsloom prune) and costs that stay flat as the collection grows.
--
-- Counters kept by triggers, in the transaction of the change, so `status` and `feed_stats`
-- read a few rows instead of counting every URL. Triggers rather than code in db.py: every
-- writer of `urls` (the pipeline, replays, prune, an operator's psql) stays counted.
-- Global counts are spread over 16 slots (by backend) so that concurrent workers do not
-- queue on one hot row; a feed's row is only shared by workers on that feed's URLs.

-- URLs by state and reason ('' for none); a state's count is the sum over slots.
CREATE TABLE IF NOT EXISTS url_counts (
    state   text NOT NULL,
    reason  text NOT NULL,
    slot    smallint NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (state, reason, slot)
);

-- Articles, spread over slots like url_counts.
CREATE TABLE IF NOT EXISTS article_counts (
    slot    smallint PRIMARY KEY,
    n       bigint NOT NULL
);

-- Per feed: its URLs by state, and when it last brought a new one.
CREATE TABLE IF NOT EXISTS feed_url_counts (
    feed_id         bigint PRIMARY KEY REFERENCES feeds (id) ON DELETE CASCADE,
    queued          bigint NOT NULL DEFAULT 0,
    fetched         bigint NOT NULL DEFAULT 0,
    stored          bigint NOT NULL DEFAULT 0,
    duplicate       bigint NOT NULL DEFAULT 0,
    skipped         bigint NOT NULL DEFAULT 0,
    dead            bigint NOT NULL DEFAULT 0,
    last_new_url_at timestamptz
);

-- Adds `delta` URLs in `state` to a feed's row (creating it), newest URL `seen`.
CREATE OR REPLACE FUNCTION tally_feed_urls(feed bigint, url_state text, delta bigint,
                                           seen timestamptz) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO feed_url_counts AS c (feed_id, queued, fetched, stored, duplicate, skipped,
                                      dead, last_new_url_at)
    VALUES (feed, (url_state = 'queued')::int * delta, (url_state = 'fetched')::int * delta,
            (url_state = 'stored')::int * delta, (url_state = 'duplicate')::int * delta,
            (url_state = 'skipped')::int * delta, (url_state = 'dead')::int * delta, seen)
    ON CONFLICT (feed_id) DO UPDATE SET
        queued = c.queued + EXCLUDED.queued, fetched = c.fetched + EXCLUDED.fetched,
        stored = c.stored + EXCLUDED.stored, duplicate = c.duplicate + EXCLUDED.duplicate,
        skipped = c.skipped + EXCLUDED.skipped, dead = c.dead + EXCLUDED.dead,
        last_new_url_at = greatest(c.last_new_url_at, EXCLUDED.last_new_url_at)
$$;

-- Inserted or deleted URLs (one call per statement: a feed poll's batch, a prune batch).
-- Counter rows are taken in key order, so two statements never wait on each other in a
-- circle.
CREATE OR REPLACE FUNCTION count_urls_added_or_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sign int := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    INSERT INTO url_counts AS c (state, reason, slot, n)
    SELECT state, coalesce(reason, ''), pg_backend_pid() % 16, sign * count(*)
    FROM changed_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (state, reason, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    PERFORM tally_feed_urls(feed_id, state, sign * n,
                            CASE WHEN sign > 0 THEN seen END)
    FROM (SELECT feed_id, state, count(*) AS n, max(first_seen_at) AS seen
          FROM changed_rows WHERE feed_id IS NOT NULL
          GROUP BY 1, 2 ORDER BY 1, 2) per_feed;
    RETURN NULL;
END $$;

-- A URL that changed state, reason or feed (one call per row; the trigger's WHEN skips
-- the many updates that change none of them).
CREATE OR REPLACE FUNCTION count_url_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.state, OLD.reason) IS DISTINCT FROM (NEW.state, NEW.reason) THEN
        INSERT INTO url_counts AS c (state, reason, slot, n)
        SELECT s, r, pg_backend_pid() % 16, d
        FROM (VALUES (OLD.state, coalesce(OLD.reason, ''), -1),
                     (NEW.state, coalesce(NEW.reason, ''), 1)) AS v(s, r, d)
        ORDER BY s, r
        ON CONFLICT (state, reason, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    IF OLD.feed_id IS NOT DISTINCT FROM NEW.feed_id THEN
        IF NEW.feed_id IS NOT NULL AND OLD.state <> NEW.state THEN
            UPDATE feed_url_counts SET
                queued = queued + (NEW.state = 'queued')::int - (OLD.state = 'queued')::int,
                fetched = fetched + (NEW.state = 'fetched')::int - (OLD.state = 'fetched')::int,
                stored = stored + (NEW.state = 'stored')::int - (OLD.state = 'stored')::int,
                duplicate = duplicate + (NEW.state = 'duplicate')::int
                            - (OLD.state = 'duplicate')::int,
                skipped = skipped + (NEW.state = 'skipped')::int - (OLD.state = 'skipped')::int,
                dead = dead + (NEW.state = 'dead')::int - (OLD.state = 'dead')::int
            WHERE feed_id = NEW.feed_id;
        END IF;
    ELSE  -- a feed deleted (SET NULL) or a URL moved: rare
        IF OLD.feed_id IS NOT NULL THEN
            PERFORM tally_feed_urls(OLD.feed_id, OLD.state, -1, NULL);
        END IF;
        IF NEW.feed_id IS NOT NULL THEN
            PERFORM tally_feed_urls(NEW.feed_id, NEW.state, 1, NEW.first_seen_at);
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION count_articles_added_or_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO article_counts AS c (slot, n)
    SELECT pg_backend_pid() % 16,
           CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END * count(*)
    FROM changed_rows HAVING count(*) > 0
    ON CONFLICT (slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END $$;

-- TRUNCATE fires no row triggers: empty the counts with the table.
CREATE OR REPLACE FUNCTION reset_url_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM url_counts;
    DELETE FROM feed_url_counts;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION reset_article_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM article_counts;
    RETURN NULL;
END $$;

-- Creating the triggers locks out writers of urls and articles until this migration
-- commits, so the counts filled below miss nothing.
DROP TRIGGER IF EXISTS urls_counted_insert ON urls;
CREATE TRIGGER urls_counted_insert AFTER INSERT ON urls
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_urls_added_or_removed();
DROP TRIGGER IF EXISTS urls_counted_delete ON urls;
CREATE TRIGGER urls_counted_delete AFTER DELETE ON urls
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_urls_added_or_removed();
DROP TRIGGER IF EXISTS urls_counted_update ON urls;
CREATE TRIGGER urls_counted_update AFTER UPDATE OF state, reason, feed_id ON urls
    FOR EACH ROW
    WHEN ((OLD.state, OLD.reason, OLD.feed_id) IS DISTINCT FROM
          (NEW.state, NEW.reason, NEW.feed_id))
    EXECUTE FUNCTION count_url_change();
DROP TRIGGER IF EXISTS urls_counted_truncate ON urls;
CREATE TRIGGER urls_counted_truncate AFTER TRUNCATE ON urls
    FOR EACH STATEMENT EXECUTE FUNCTION reset_url_counts();
DROP TRIGGER IF EXISTS articles_counted_insert ON articles;
CREATE TRIGGER articles_counted_insert AFTER INSERT ON articles
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_articles_added_or_removed();
DROP TRIGGER IF EXISTS articles_counted_delete ON articles;
CREATE TRIGGER articles_counted_delete AFTER DELETE ON articles
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_articles_added_or_removed();
DROP TRIGGER IF EXISTS articles_counted_truncate ON articles;
CREATE TRIGGER articles_counted_truncate AFTER TRUNCATE ON articles
    FOR EACH STATEMENT EXECUTE FUNCTION reset_article_counts();

DELETE FROM url_counts;
INSERT INTO url_counts (state, reason, slot, n)
SELECT state, coalesce(reason, ''), 0, count(*) FROM urls GROUP BY 1, 2;
DELETE FROM article_counts;
INSERT INTO article_counts (slot, n) SELECT 0, count(*) FROM articles;
DELETE FROM feed_url_counts;
INSERT INTO feed_url_counts (feed_id, queued, fetched, stored, duplicate, skipped, dead,
                             last_new_url_at)
SELECT feed_id, count(*) FILTER (WHERE state = 'queued'),
       count(*) FILTER (WHERE state = 'fetched'), count(*) FILTER (WHERE state = 'stored'),
       count(*) FILTER (WHERE state = 'duplicate'), count(*) FILTER (WHERE state = 'skipped'),
       count(*) FILTER (WHERE state = 'dead'), max(first_seen_at)
FROM urls WHERE feed_id IS NOT NULL GROUP BY feed_id;

-- Per feed, from its counters: one row read per feed instead of all its URLs.
CREATE OR REPLACE VIEW feed_stats AS
SELECT f.id, f.url, f.name, f.active,
       coalesce(c.queued + c.fetched + c.stored + c.duplicate + c.skipped + c.dead, 0)
           AS urls,
       coalesce(c.stored, 0) AS stored, coalesce(c.duplicate, 0) AS duplicates,
       coalesce(c.skipped, 0) AS skipped, coalesce(c.dead, 0) AS dead,
       coalesce(c.queued + c.fetched, 0) AS in_flight,
       c.last_new_url_at, f.last_success_at, f.consecutive_errors, f.last_error
FROM feeds f LEFT JOIN feed_url_counts c ON c.feed_id = f.id;

-- Indexes. `status` counts the last hour's outcomes and prune finds old ledger rows by
-- updated_at; the counters replace what urls_state was for.
DROP INDEX IF EXISTS urls_state;
CREATE INDEX IF NOT EXISTS urls_updated ON urls (updated_at);
-- prune finds old pages; articles stored per hour in `status`.
CREATE INDEX IF NOT EXISTS raw_pages_fetched ON raw_pages (fetched_at);
CREATE INDEX IF NOT EXISTS articles_created ON articles (created_at);
-- Deleting a ledger row sets articles.page_url_id to NULL and removes its dead letters:
-- without these, each deleted row would scan both tables.
CREATE INDEX IF NOT EXISTS articles_page_url ON articles (page_url_id);
CREATE INDEX IF NOT EXISTS dead_letters_url ON dead_letters (url_id);
-- latest_articles, the read API and the web page read articles newest first by publication
-- (else fetch) time and page by (that time, id): in this index's order a page is read
-- without sorting the table, and a full-text search for a common word stops at the first
-- matches.
CREATE INDEX IF NOT EXISTS articles_listing
    ON articles ((coalesce(published_at, fetched_at)) DESC, id DESC);
-- status counts and lists failing feeds without reading every feed.
CREATE INDEX IF NOT EXISTS feeds_failing ON feeds (consecutive_errors DESC, url)
    WHERE active AND consecutive_errors > 0;
-- An entity's articles from the index alone (entity_pairs, entity_mentions_daily).
DROP INDEX IF EXISTS article_entities_entity;
CREATE INDEX IF NOT EXISTS article_entities_entity_article
    ON article_entities (entity_id, article_id);

-- Articles stored before page_url_id existed name their page's ledger row by URL; name it
-- by id, so reprocess and prune need only page_url_id.
UPDATE articles a SET page_url_id = u.id
FROM urls u WHERE a.page_url_id IS NULL AND u.url = a.url;

-- When the scheduler last ran a maintenance task (prune: once a day, by one scheduler).
CREATE TABLE IF NOT EXISTS maintenance_runs (
    task        text PRIMARY KEY,
    last_run_at timestamptz NOT NULL
);
