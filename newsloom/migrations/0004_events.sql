-- Data out: the transactional outbox (events), webhook endpoints with their delivery
-- state, dead letters of deliveries, and the named cursors of `newsloom export`.
-- Only new tables and nullable columns: safe on a database that has data.

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
