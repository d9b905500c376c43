-- newsloom's current schema, for reading: the result of every migration in
-- newsloom/migrations (a test keeps the two equal). The postgres container runs it on first
-- boot; `newsloom migrate` (and `up`, `init-db`) apply migrations. Change the schema by
-- adding a migration, then bring this file up to date.

CREATE TABLE IF NOT EXISTS feeds (
    id                  bigserial PRIMARY KEY,
    url                 text NOT NULL UNIQUE,
    name                text,
    interval_seconds    integer NOT NULL CHECK (interval_seconds > 0),
    poll_every_seconds  real,                            -- the interval adapted to the feed's pace
    active              boolean NOT NULL DEFAULT true,   -- false once removed from the feeds file
    host_delay_seconds  real,                            -- NULL: NEWSLOOM_HOST_DELAY
    obey_robots         boolean NOT NULL DEFAULT true,
    etag                text,
    last_modified       text,
    next_check_at       timestamptz NOT NULL DEFAULT now(),
    last_checked_at     timestamptz,
    last_success_at     timestamptz,
    last_error          text,
    last_error_at       timestamptz,
    consecutive_errors  integer NOT NULL DEFAULT 0,
    items_seen          bigint NOT NULL DEFAULT 0,
    rejected_links      integer NOT NULL DEFAULT 0,     -- entries of the last poll without a usable link
    created_at          timestamptz NOT NULL DEFAULT now(),
    kind                text,            -- detected at the last poll: rss20, atom10, json11, sitemap...
    source_type         text CHECK (source_type IN ('feed', 'sitemap', 'page')),  -- NULL: detect
    include_pattern     text,            -- regex: keep only entry URLs it matches (any host)
    exclude_pattern     text,            -- regex: drop entry URLs it matches
    since_seconds       real,            -- sitemaps: take URLs dated at most this long before
                                         -- the first poll; NULL: all
    first_polled_at     timestamptz,     -- the first successful poll (fixes the `since` cutoff)
    last_poll_note      text,            -- what the last successful poll left out, and why
    sitemaps_read_until timestamptz      -- an index's child sitemaps dated up to this were read
);
CREATE INDEX IF NOT EXISTS feeds_due ON feeds (next_check_at) WHERE active;
-- status counts and lists failing feeds without reading every feed.
CREATE INDEX IF NOT EXISTS feeds_failing ON feeds (consecutive_errors DESC, url)
    WHERE active AND consecutive_errors > 0;

-- The URL ledger: every URL the scheduler accepted, and where it is now.
-- queued/fetched are in flight; the other states are final.
CREATE TABLE IF NOT EXISTS urls (
    id              bigserial PRIMARY KEY,
    url             text NOT NULL UNIQUE,
    feed_id         bigint REFERENCES feeds (id) ON DELETE SET NULL,
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'fetched', 'stored', 'duplicate', 'skipped', 'dead')),
    reason          text,            -- why skipped (a short code) or dead (the error class)
    detail          text,
    attempts        integer NOT NULL DEFAULT 0,   -- failed attempts
    deliveries      integer NOT NULL DEFAULT 0,   -- times processing started
    entry_published_at timestamptz,  -- from the feed entry, used when the page has no date
    entry_title     text,            -- from the feed entry (news:title), used when the page has none
    article_id      bigint,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS urls_in_flight ON urls (updated_at) WHERE state IN ('queued', 'fetched');
-- `status` counts the last hour's outcomes and prune finds old ledger rows by updated_at.
CREATE INDEX IF NOT EXISTS urls_updated ON urls (updated_at);

-- Raw pages as fetched, zlib-compressed, so processing and re-extraction never fetch again.
CREATE TABLE IF NOT EXISTS raw_pages (
    url_id          bigint PRIMARY KEY REFERENCES urls (id) ON DELETE CASCADE,
    final_url       text NOT NULL,
    content_type    text,
    html_zlib       bytea NOT NULL,
    fetched_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS raw_pages_fetched ON raw_pages (fetched_at);  -- prune finds old pages

CREATE TABLE IF NOT EXISTS articles (
    id              bigserial PRIMARY KEY,
    url             text NOT NULL,            -- the URL it was first seen at
    canonical_url   text NOT NULL UNIQUE,
    title           text,
    author          text,
    published_at    timestamptz,
    language        text,
    text            text NOT NULL,
    site_name       text,
    description     text,
    feed_id         bigint REFERENCES feeds (id) ON DELETE SET NULL,
    fetched_at      timestamptz NOT NULL,
    content_hash    text NOT NULL UNIQUE,     -- sha256 of the normalised text
    extractor       text NOT NULL,            -- extractor and version that produced text
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Full-text search: the title weighs more than the body; English stemming for English.
    search          tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector(CASE WHEN language = 'en' THEN 'english'::regconfig
                                   ELSE 'simple'::regconfig END, coalesce(title, '')), 'A') ||
        setweight(to_tsvector(CASE WHEN language = 'en' THEN 'english'::regconfig
                                   ELSE 'simple'::regconfig END, text), 'B')) STORED
);
CREATE INDEX IF NOT EXISTS articles_search ON articles USING gin (search);
CREATE INDEX IF NOT EXISTS articles_published ON articles (published_at DESC NULLS LAST);
CREATE INDEX IF NOT EXISTS articles_fetched ON articles (fetched_at DESC);
CREATE INDEX IF NOT EXISTS articles_feed ON articles (feed_id);
CREATE INDEX IF NOT EXISTS articles_created ON articles (created_at);  -- stored per hour
-- Newest first by publication (else fetch) time, as latest_articles, the read API and the
-- web page list and page articles.
CREATE INDEX IF NOT EXISTS articles_listing
    ON articles ((coalesce(published_at, fetched_at)) DESC, id DESC);

-- Every URL at which an article was seen (its first URL included).
CREATE TABLE IF NOT EXISTS article_urls (
    id              bigserial PRIMARY KEY,
    url             text NOT NULL UNIQUE,
    article_id      bigint NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    feed_id         bigint REFERENCES feeds (id) ON DELETE SET NULL,
    first_seen_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS article_urls_article ON article_urls (article_id);

CREATE TABLE IF NOT EXISTS entities (
    id      bigserial PRIMARY KEY,
    name    text NOT NULL,
    label   text NOT NULL,
    UNIQUE (name, label)
);

CREATE TABLE IF NOT EXISTS article_entities (
    article_id  bigint NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    entity_id   bigint NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    mentions    integer NOT NULL CHECK (mentions > 0),
    PRIMARY KEY (article_id, entity_id)
);
-- An entity's articles from the index alone (entity_pairs, entity_mentions_daily).
CREATE INDEX IF NOT EXISTS article_entities_entity_article
    ON article_entities (entity_id, article_id);

-- Version 2. Columns are added here rather than above so that a database made by
-- version 1 gains them too.
ALTER TABLE articles
    ADD COLUMN IF NOT EXISTS updated_at timestamptz,   -- a later fetch changed the text
    ADD COLUMN IF NOT EXISTS image_url text,           -- the page's top image
    ADD COLUMN IF NOT EXISTS tags text[] NOT NULL DEFAULT '{}',  -- the page's tags and categories
    ADD COLUMN IF NOT EXISTS entities_skipped text,    -- why no entities were tagged, if so
    -- The ledger URL whose kept page holds the current text (reprocess reads it).
    ADD COLUMN IF NOT EXISTS page_url_id bigint REFERENCES urls (id) ON DELETE SET NULL,
    -- The text's MinHash signature, and its LSH band keys: articles sharing a key are
    -- near-duplicate candidates (newsloom.worker.dedupe).
    ADD COLUMN IF NOT EXISTS minhash bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS lsh_bands bigint[] NOT NULL DEFAULT '{}';
-- fastupdate off: every store searches this index, and a search reads all of the pending
-- list that fastupdate would keep, which grows between vacuums.
CREATE INDEX IF NOT EXISTS articles_lsh ON articles USING gin (lsh_bands) WITH (fastupdate = off);
CREATE INDEX IF NOT EXISTS articles_tags ON articles USING gin (tags);
-- Deleting a ledger row sets page_url_id to NULL: without it, each deletion scans articles.
CREATE INDEX IF NOT EXISTS articles_page_url ON articles (page_url_id);
-- The feed entry's update time: a newer one makes a stored article be fetched again.
ALTER TABLE urls ADD COLUMN IF NOT EXISTS entry_updated_at timestamptz;

-- Version 3: article metadata from the page's structured data.
ALTER TABLE articles
    ADD COLUMN IF NOT EXISTS authors text[] NOT NULL DEFAULT '{}',   -- person names
    ADD COLUMN IF NOT EXISTS modified_at timestamptz,
    ADD COLUMN IF NOT EXISTS is_paywalled boolean,                  -- NULL: not yet known
    -- Where published_at came from: json-ld, microdata, meta:NAME, htmldate or feed.
    ADD COLUMN IF NOT EXISTS published_at_source text,
    ADD COLUMN IF NOT EXISTS section text,
    ADD COLUMN IF NOT EXISTS keywords text[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS publisher text;
CREATE INDEX IF NOT EXISTS articles_authors ON articles USING gin (authors);

CREATE TABLE IF NOT EXISTS dead_letters (
    id              bigserial PRIMARY KEY,
    task            text NOT NULL,
    payload         jsonb NOT NULL,
    url_id          bigint REFERENCES urls (id) ON DELETE CASCADE,
    error_class     text NOT NULL,
    error           text NOT NULL,    -- exception class and message
    traceback       text,
    attempts        integer NOT NULL,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at  timestamptz NOT NULL DEFAULT now(),
    replays         integer NOT NULL DEFAULT 0,
    resolved_at     timestamptz,
    resolution      text CHECK (resolution IN ('replayed', 'discarded'))
);
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_open_url ON dead_letters (url_id) WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS dead_letters_url ON dead_letters (url_id);  -- ledger rows deleted

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

-- Version 8 (0008_entity_counts). Entity counters: entity_pairs, entity_mentions_daily and
-- the API's top entities and timelines read them instead of every article that mentions an entity (for the most
-- mentioned ones, a third of all articles).
--
-- Kept by triggers like url_counts (0007): every writer of article_entities and articles
-- stays counted. A store step adds one upsert per counter table, its rows taken in key
-- order so that two store steps never wait on each other in a circle. Counter rows that
-- reach zero are deleted, so the tables always equal a recount.

-- The UTC day an article is counted on: its publication, else fetch, time.
CREATE OR REPLACE FUNCTION article_day(published timestamptz, fetched timestamptz)
RETURNS date
LANGUAGE sql IMMUTABLE AS $$
    SELECT (coalesce(published, fetched) AT TIME ZONE 'UTC')::date
$$;

-- Per entity and day: the articles that mention it and their mentions.
CREATE TABLE IF NOT EXISTS entity_daily_counts (
    entity_id   bigint NOT NULL,
    day         date NOT NULL,
    articles    bigint NOT NULL,
    mentions    bigint NOT NULL,
    PRIMARY KEY (entity_id, day)
);
CREATE INDEX IF NOT EXISTS entity_daily_counts_day ON entity_daily_counts (day);  -- top entities

-- Per pair of entities, the articles that mention both. Each pair is stored once
-- (entity_id < other_id), found from either side by the primary key or the other_id index:
-- a store step upserts half the rows it would in both directions, and the table is half
-- the size.
CREATE TABLE IF NOT EXISTS entity_pair_counts (
    entity_id   bigint NOT NULL,
    other_id    bigint NOT NULL,
    articles    bigint NOT NULL,
    PRIMARY KEY (entity_id, other_id),
    CHECK (entity_id < other_id)
);
CREATE INDEX IF NOT EXISTS entity_pair_counts_other ON entity_pair_counts (other_id);

-- Adds to (entity, day) rows, in key order, and deletes those left at zero articles.
CREATE OR REPLACE FUNCTION tally_entity_days(entity_ids bigint[], days date[],
                                             article_deltas bigint[], mention_deltas bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    empty_ids bigint[];
    empty_days date[];
BEGIN
    WITH tallied AS (
        INSERT INTO entity_daily_counts AS c (entity_id, day, articles, mentions)
        SELECT e, d, sum(a), sum(m)
        FROM unnest(entity_ids, days, article_deltas, mention_deltas) AS t(e, d, a, m)
        GROUP BY e, d ORDER BY e, d
        ON CONFLICT (entity_id, day) DO UPDATE SET
            articles = c.articles + EXCLUDED.articles, mentions = c.mentions + EXCLUDED.mentions
        RETURNING c.entity_id, c.day, c.articles)
    SELECT array_agg(t.entity_id), array_agg(t.day) INTO empty_ids, empty_days
    FROM tallied t WHERE t.articles = 0;
    IF empty_ids IS NOT NULL THEN
        DELETE FROM entity_daily_counts c USING unnest(empty_ids, empty_days) AS z(e, d)
        WHERE c.entity_id = z.e AND c.day = z.d AND c.articles = 0;
    END IF;
END $$;

-- Adds to (entity, other) rows, in key order, and deletes those left at zero.
CREATE OR REPLACE FUNCTION tally_entity_pairs(entity_ids bigint[], other_ids bigint[],
                                              article_deltas bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    empty_ids bigint[];
    empty_others bigint[];
BEGIN
    WITH tallied AS (
        INSERT INTO entity_pair_counts AS c (entity_id, other_id, articles)
        SELECT e, o, sum(a) FROM unnest(entity_ids, other_ids, article_deltas) AS t(e, o, a)
        GROUP BY e, o ORDER BY e, o
        ON CONFLICT (entity_id, other_id) DO UPDATE SET articles = c.articles + EXCLUDED.articles
        RETURNING c.entity_id, c.other_id, c.articles)
    SELECT array_agg(t.entity_id), array_agg(t.other_id) INTO empty_ids, empty_others
    FROM tallied t WHERE t.articles = 0;
    IF empty_ids IS NOT NULL THEN
        DELETE FROM entity_pair_counts c USING unnest(empty_ids, empty_others) AS z(e, o)
        WHERE c.entity_id = z.e AND c.other_id = z.o AND c.articles = 0;
    END IF;
END $$;

-- Inserted or deleted article_entities rows (one call per statement: a store step's
-- entities, a reprocessed article's old ones). The day is the article's; rows of a deleted
-- article were taken off their days before it went (count_article_day_change). The pairs
-- changed are those of a changed row with another row of its article, changed or not;
-- a pair of two changed rows counts once.
CREATE OR REPLACE FUNCTION count_entities_added_or_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sign int := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    PERFORM tally_entity_days(array_agg(entity_id), array_agg(day), array_agg(sign * n),
                              array_agg(sign * m))
    FROM (SELECT r.entity_id, article_day(a.published_at, a.fetched_at) AS day,
                 count(*) AS n, sum(r.mentions) AS m
          FROM changed_rows r JOIN articles a ON a.id = r.article_id
          GROUP BY 1, 2) per_day;
    PERFORM tally_entity_pairs(array_agg(entity_id), array_agg(other_id), array_agg(sign * n))
    FROM (SELECT least(r.entity_id, o.entity_id) AS entity_id,
                 greatest(r.entity_id, o.entity_id) AS other_id, count(*) AS n
          FROM changed_rows r
          JOIN (SELECT article_id, entity_id FROM article_entities
                WHERE article_id IN (SELECT article_id FROM changed_rows)
                UNION SELECT article_id, entity_id FROM changed_rows) o
            ON o.article_id = r.article_id AND o.entity_id <> r.entity_id
          WHERE o.entity_id > r.entity_id
             OR NOT EXISTS (SELECT FROM changed_rows c
                            WHERE c.article_id = o.article_id AND c.entity_id = o.entity_id)
          GROUP BY 1, 2) per_pair;
    RETURN NULL;
END $$;

-- A row whose mentions changed (an upsert's DO UPDATE). Its entity or article never
-- changes: _store_entities deletes and inserts rows, which the counters follow.
CREATE OR REPLACE FUNCTION count_entity_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.article_id, OLD.entity_id) IS DISTINCT FROM (NEW.article_id, NEW.entity_id) THEN
        RAISE EXCEPTION 'article_entities rows are deleted and inserted, not moved'
            USING HINT = 'the entity counters follow inserts and deletes';
    END IF;
    PERFORM tally_entity_days(ARRAY[NEW.entity_id], ARRAY[article_day(a.published_at,
                                                                      a.fetched_at)],
                              ARRAY[0::bigint], ARRAY[(NEW.mentions - OLD.mentions)::bigint])
    FROM articles a WHERE a.id = NEW.article_id;
    RETURN NULL;
END $$;

-- An article whose day changed (reprocess found another publication time) or that is
-- being deleted: its entities move from the old day (to the new one). Before a delete,
-- while its article_entities rows are still there to be read. One article at a time, so
-- an operator's bulk change may deadlock with a store step: Postgres ends one of them,
-- and the pipeline retries its step like any OperationalError.
CREATE OR REPLACE FUNCTION count_article_day_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tally_entity_days(array_agg(ae.entity_id), array_agg(v.day),
                              array_agg(v.sign::bigint), array_agg(v.sign * ae.mentions::bigint))
    FROM article_entities ae,
         (VALUES (article_day(OLD.published_at, OLD.fetched_at), -1),
                 (CASE WHEN TG_OP = 'UPDATE'
                       THEN article_day(NEW.published_at, NEW.fetched_at) END, 1)) AS v(day, sign)
    WHERE ae.article_id = OLD.id AND v.day IS NOT NULL;
    RETURN OLD;
END $$;

CREATE OR REPLACE FUNCTION reset_entity_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM entity_daily_counts;
    DELETE FROM entity_pair_counts;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS article_entities_counted_insert ON article_entities;
CREATE TRIGGER article_entities_counted_insert AFTER INSERT ON article_entities
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_entities_added_or_removed();
DROP TRIGGER IF EXISTS article_entities_counted_delete ON article_entities;
CREATE TRIGGER article_entities_counted_delete AFTER DELETE ON article_entities
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_entities_added_or_removed();
DROP TRIGGER IF EXISTS article_entities_counted_update ON article_entities;
CREATE TRIGGER article_entities_counted_update AFTER UPDATE ON article_entities
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION count_entity_change();
DROP TRIGGER IF EXISTS article_entities_counted_truncate ON article_entities;
CREATE TRIGGER article_entities_counted_truncate AFTER TRUNCATE ON article_entities
    FOR EACH STATEMENT EXECUTE FUNCTION reset_entity_counts();
DROP TRIGGER IF EXISTS articles_day_counted_update ON articles;
CREATE TRIGGER articles_day_counted_update AFTER UPDATE OF published_at, fetched_at ON articles
    FOR EACH ROW
    WHEN (article_day(OLD.published_at, OLD.fetched_at)
          <> article_day(NEW.published_at, NEW.fetched_at))
    EXECUTE FUNCTION count_article_day_change();
DROP TRIGGER IF EXISTS articles_day_counted_delete ON articles;
CREATE TRIGGER articles_day_counted_delete BEFORE DELETE ON articles
    FOR EACH ROW EXECUTE FUNCTION count_article_day_change();

-- Version 5 (0005_warc). WARC in and out: what a WARC response record needs from a
-- fetch (status and headers; the fetch time is kept already), where each URL and article came from, and the progress
-- of each imported file. Every statement is cheap on a database with data: new columns are
-- NULL or have a constant default, so no table is rewritten.
ALTER TABLE raw_pages
    ADD COLUMN IF NOT EXISTS status smallint,   -- HTTP status of the kept response
    ADD COLUMN IF NOT EXISTS headers jsonb;     -- its headers, [[name, value], ...], Set-Cookie left out

-- One row per imported WARC/ARC file: how far reading got, and what became of its records.
CREATE TABLE IF NOT EXISTS imports (
    id              bigserial PRIMARY KEY,
    location        text NOT NULL UNIQUE,           -- absolute path or URL of the file
    filters         jsonb NOT NULL DEFAULT '{}',    -- since/until/languages, checked by the process step
    size_bytes      bigint,
    records_read    bigint NOT NULL DEFAULT 0,
    byte_offset     bigint NOT NULL DEFAULT 0,      -- where the next record starts: a resumed import reads on from here
    counts          jsonb NOT NULL DEFAULT '{}',    -- records by what became of them: queued, request, not_html, ...
    done            boolean NOT NULL DEFAULT false,
    started_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);

ALTER TABLE urls
    ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'feed',  -- 'feed' or 'import:<location>'
    ADD COLUMN IF NOT EXISTS import_id bigint REFERENCES imports (id) ON DELETE SET NULL;
ALTER TABLE articles ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'feed';

-- Views for the usual questions (README has examples).

-- Latest articles with their entities, most mentioned first.
CREATE OR REPLACE VIEW latest_articles AS
SELECT a.id, coalesce(a.published_at, a.fetched_at) AS published_at, f.name AS feed, a.title,
       a.url, a.language,
       (SELECT array_agg(e.name || ' (' || e.label || ')' ORDER BY ae.mentions DESC, e.name)
        FROM article_entities ae JOIN entities e ON e.id = ae.entity_id
        WHERE ae.article_id = a.id) AS entities,
       a.updated_at, a.tags
FROM articles a LEFT JOIN feeds f ON f.id = a.feed_id
ORDER BY coalesce(a.published_at, a.fetched_at) DESC;

-- Entities mentioned in the same articles (each pair in both directions), from their
-- counters.
CREATE OR REPLACE VIEW entity_pairs AS
SELECT e1.name AS entity, e1.label, e2.name AS other, e2.label AS other_label, p.articles
FROM (SELECT entity_id, other_id, articles FROM entity_pair_counts
      UNION ALL
      SELECT other_id, entity_id, articles FROM entity_pair_counts) p
JOIN entities e1 ON e1.id = p.entity_id
JOIN entities e2 ON e2.id = p.other_id;

-- Mentions of each entity per UTC day, from their counters.
CREATE OR REPLACE VIEW entity_mentions_daily AS
SELECT e.name AS entity, e.label, d.day::timestamp AT TIME ZONE 'UTC' AS day, d.articles,
       d.mentions
FROM entity_daily_counts d JOIN entities e ON e.id = d.entity_id;

-- Per feed: its URLs by outcome (from its counters) and its health.
CREATE OR REPLACE VIEW feed_stats AS
SELECT f.id, f.url, f.name, f.active,
       coalesce(c.queued + c.fetched + c.stored + c.duplicate + c.skipped + c.dead, 0)
           AS urls,
       coalesce(c.stored, 0) AS stored, coalesce(c.duplicate, 0) AS duplicates,
       coalesce(c.skipped, 0) AS skipped, coalesce(c.dead, 0) AS dead,
       coalesce(c.queued + c.fetched, 0) AS in_flight,
       c.last_new_url_at, f.last_success_at, f.consecutive_errors, f.last_error
FROM feeds f LEFT JOIN feed_url_counts c ON c.feed_id = f.id;


-- When the scheduler last ran a maintenance task (prune: once a day, by one scheduler).
CREATE TABLE IF NOT EXISTS maintenance_runs (
    task        text PRIMARY KEY,
    last_run_at timestamptz NOT NULL
);

-- Data out (0004): the outbox, webhook endpoints and their delivery state, export cursors.
-- One row per change a consumer may care about, written in the change's transaction.
CREATE TABLE IF NOT EXISTS events (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('stored', 'updated', 'duplicate')),
    article_id  bigint NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS events_article ON events (article_id);

-- The [[webhook]] tables of the feeds file, and where each endpoint's delivery stands.
CREATE TABLE IF NOT EXISTS webhooks (
    id                  bigserial PRIMARY KEY,
    url                 text NOT NULL UNIQUE,
    secret              text NOT NULL,
    -- Filters; an empty array lets everything through.
    event_kinds         text[] NOT NULL DEFAULT '{}',
    feed_urls           text[] NOT NULL DEFAULT '{}',
    languages           text[] NOT NULL DEFAULT '{}',
    entity_names        text[] NOT NULL DEFAULT '{}',
    active              boolean NOT NULL DEFAULT true,   -- false: no longer in the file
    -- Events up to this id are delivered (or dead-lettered): the endpoint's cursor.
    delivered_through   bigint NOT NULL DEFAULT 0,
    attempts            integer NOT NULL DEFAULT 0,      -- failed tries of the next event
    next_attempt_at     timestamptz,
    -- One delivery in flight per endpoint: the holder of the lease.
    lease_token         text,
    lease_until         timestamptz,
    disabled_at         timestamptz,                     -- it answered 410 Gone
    disabled_reason     text,
    delivered           bigint NOT NULL DEFAULT 0,
    last_success_at     timestamptz,
    last_error          text,
    last_error_at       timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- A delivery that failed for good is a dead letter of its endpoint and event.
ALTER TABLE dead_letters
    ADD COLUMN IF NOT EXISTS webhook_id bigint REFERENCES webhooks (id) ON DELETE CASCADE,
    ADD COLUMN IF NOT EXISTS event_id bigint REFERENCES events (id) ON DELETE CASCADE,
    ADD COLUMN IF NOT EXISTS replay_requested_at timestamptz;
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_open_delivery ON dead_letters (webhook_id, event_id)
    WHERE resolved_at IS NULL;

-- `newsloom export --cursor NAME`: the last article each named export wrote.
CREATE TABLE IF NOT EXISTS export_cursors (
    name            text PRIMARY KEY,
    last_article_id bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Version 9 (0009_article_top_entities).
-- Each article's five most mentioned entities, as the article lists show them (the read
-- API, the web page): read with the article instead of found, joined and aggregated again
-- for every listed article, which was 0.7 of the 1.2 ms Postgres spent on a page of 50.
-- Kept by triggers on article_entities, like the entity counters (0008).

CREATE TABLE IF NOT EXISTS article_top_entities (
    article_id  bigint PRIMARY KEY REFERENCES articles (id) ON DELETE CASCADE,
    entities    json NOT NULL   -- [{id, name, label, mentions}]: most mentioned first, then by name
);

-- An article's top five (NULL when it has no entities).
CREATE OR REPLACE FUNCTION top_entities_of(article bigint) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_agg(top ORDER BY top.mentions DESC, top.name)
    FROM (SELECT e.id, e.name, e.label, ae.mentions
          FROM (SELECT entity_id, mentions FROM article_entities
                WHERE article_id = article ORDER BY mentions DESC, entity_id LIMIT 5) ae
          JOIN entities e ON e.id = ae.entity_id) top
$$;

-- Inserted, updated or deleted article_entities rows: their articles' top five anew, in
-- article order (two store steps never wait on each other in a circle); an article left
-- without entities loses its row, a deleted article has none.
CREATE OR REPLACE FUNCTION refresh_top_entities() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    WITH tops AS (
        SELECT c.article_id, top_entities_of(c.article_id) AS entities
        FROM (SELECT DISTINCT article_id FROM changed_rows) c
        WHERE EXISTS (SELECT FROM articles a WHERE a.id = c.article_id)),
    emptied AS (
        DELETE FROM article_top_entities t USING tops
        WHERE t.article_id = tops.article_id AND tops.entities IS NULL)
    INSERT INTO article_top_entities (article_id, entities)
    SELECT article_id, entities FROM tops WHERE entities IS NOT NULL ORDER BY article_id
    ON CONFLICT (article_id) DO UPDATE SET entities = EXCLUDED.entities;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION reset_top_entities() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM article_top_entities;
    RETURN NULL;
END $$;

-- Creating the triggers locks out writers of article_entities until this migration
-- commits, so the rows filled below miss nothing.
DROP TRIGGER IF EXISTS article_entities_top_insert ON article_entities;
CREATE TRIGGER article_entities_top_insert AFTER INSERT ON article_entities
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION refresh_top_entities();
DROP TRIGGER IF EXISTS article_entities_top_update ON article_entities;
CREATE TRIGGER article_entities_top_update AFTER UPDATE ON article_entities
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION refresh_top_entities();
DROP TRIGGER IF EXISTS article_entities_top_delete ON article_entities;
CREATE TRIGGER article_entities_top_delete AFTER DELETE ON article_entities
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION refresh_top_entities();
DROP TRIGGER IF EXISTS article_entities_top_truncate ON article_entities;
CREATE TRIGGER article_entities_top_truncate AFTER TRUNCATE ON article_entities
    FOR EACH STATEMENT EXECUTE FUNCTION reset_top_entities();

-- The migrations this schema is the result of (newsloom/migrations): a database made from
-- this file is current, and `newsloom migrate` applies later ones to it.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO schema_migrations (version, name) VALUES
    (1, 'baseline'),
    (2, 'drop_schema_meta'),
    (3, 'article_metadata'),
    (4, 'events'),
    (5, 'warc'),
    (6, 'source_kinds'),
    (7, 'retention_and_counters'),
    (8, 'entity_counts'),
    (9, 'article_top_entities')
ON CONFLICT (version) DO NOTHING;
