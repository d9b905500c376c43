-- Sources beyond RSS (issue 12): a feed may be a JSON Feed, a sitemap, a sitemap index,
-- a Google News sitemap or a section page. Only new nullable columns: safe with data in place.
ALTER TABLE feeds ADD COLUMN IF NOT EXISTS kind text;
ALTER TABLE feeds ADD COLUMN IF NOT EXISTS source_type text
    CHECK (source_type IN ('feed', 'sitemap', 'page'));
ALTER TABLE feeds ADD COLUMN IF NOT EXISTS include_pattern text;
ALTER TABLE feeds ADD COLUMN IF NOT EXISTS exclude_pattern text;
ALTER TABLE feeds ADD COLUMN IF NOT EXISTS since_seconds real;
ALTER TABLE feeds ADD COLUMN IF NOT EXISTS first_polled_at timestamptz;
ALTER TABLE feeds ADD COLUMN IF NOT EXISTS last_poll_note text;
ALTER TABLE feeds ADD COLUMN IF NOT EXISTS sitemaps_read_until timestamptz;
ALTER TABLE urls ADD COLUMN IF NOT EXISTS entry_title text;
-- Feeds read before this migration have had their first poll.
UPDATE feeds SET first_polled_at = created_at
WHERE first_polled_at IS NULL AND last_success_at IS NOT NULL;
