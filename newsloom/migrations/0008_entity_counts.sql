-- Entity counters: entity_pairs, entity_mentions_daily and the API's top entities and
-- timelines read them instead of every article that mentions an entity (for the most
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

-- Creating the triggers locks out writers of article_entities and articles until this
-- migration commits, so the counts filled below miss nothing.
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

DELETE FROM entity_daily_counts;
INSERT INTO entity_daily_counts (entity_id, day, articles, mentions)
SELECT ae.entity_id, article_day(a.published_at, a.fetched_at), count(*), sum(ae.mentions)
FROM article_entities ae JOIN articles a ON a.id = ae.article_id
GROUP BY 1, 2;
DELETE FROM entity_pair_counts;
INSERT INTO entity_pair_counts (entity_id, other_id, articles)
SELECT a1.entity_id, a2.entity_id, count(*)
FROM article_entities a1
JOIN article_entities a2 ON a2.article_id = a1.article_id AND a2.entity_id > a1.entity_id
GROUP BY 1, 2;

-- The views read the counters: a row per pair or day of the entity asked for. Days are UTC
-- days (they were the session's time zone's).
CREATE OR REPLACE VIEW entity_pairs AS
SELECT e1.name AS entity, e1.label, e2.name AS other, e2.label AS other_label, p.articles
FROM (SELECT entity_id, other_id, articles FROM entity_pair_counts
      UNION ALL
      SELECT other_id, entity_id, articles FROM entity_pair_counts) p
JOIN entities e1 ON e1.id = p.entity_id
JOIN entities e2 ON e2.id = p.other_id;

CREATE OR REPLACE VIEW entity_mentions_daily AS
SELECT e.name AS entity, e.label, d.day::timestamp AT TIME ZONE 'UTC' AS day, d.articles,
       d.mentions
FROM entity_daily_counts d JOIN entities e ON e.id = d.entity_id;
