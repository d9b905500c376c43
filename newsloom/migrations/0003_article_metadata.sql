-- Article metadata from the page's structured data (issue 13). Added columns only, with
-- defaults that need no rewrite of existing rows; `newsloom reprocess` fills them from
-- the kept pages.
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
