-- store-events, migration 1 (PostgreSQL). Applied once, on first run, by src/store.rs.
-- One row per event. event_key is the idempotency key: the event's own id when the payload has
-- one (`messageId=…`, `uuid=…`), else `sha256=<hex of topic and payload>`. Its uniqueness is
-- what makes a redelivered message a no-op (INSERT … ON CONFLICT (event_key) DO NOTHING).
CREATE TABLE IF NOT EXISTS events (
    event_key   TEXT PRIMARY KEY,
    topic       TEXT NOT NULL,
    -- When this consumer received the message.
    received_at TIMESTAMPTZ NOT NULL,
    -- The payload as received when it is JSON; NULL when it is not (see raw_payload).
    payload     JSONB,
    -- The payload bytes when they are not JSON (a "poison" message, kept for inspection).
    raw_payload BYTEA,
    -- Copied from the payload when present, for queries (NULL otherwise). event_time is the
    -- publisher's text as sent: cast it (event_time::timestamptz) in queries where you trust it.
    tag_mac     TEXT,
    event_type  TEXT,
    event_time  TEXT
);
CREATE INDEX IF NOT EXISTS events_by_tag_and_time ON events (tag_mac, event_time);
CREATE INDEX IF NOT EXISTS events_by_type_and_time ON events (event_type, event_time);
