-- The read API and the web page list articles newest first by publication time (fetch
-- time when there is none) and page by (that time, id): in this index's order a page is
-- read without sorting the table, and a full-text search for a common word stops at the
-- first matches. Built once on an existing table (it takes a write lock while it builds).
CREATE INDEX IF NOT EXISTS articles_listing
    ON articles ((coalesce(published_at, fetched_at)) DESC, id DESC);
