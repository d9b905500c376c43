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

DELETE FROM article_top_entities;
INSERT INTO article_top_entities (article_id, entities)
SELECT article_id, top_entities_of(article_id)
FROM (SELECT DISTINCT article_id FROM article_entities) a;
