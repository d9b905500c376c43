-- WARC in and out: what a WARC response record needs from a fetch (status and headers;
-- the fetch time is kept already), where each URL and article came from, and the progress
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
