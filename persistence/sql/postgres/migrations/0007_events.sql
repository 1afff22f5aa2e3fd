-- Events (issue 13): operator-defined sources with fixed inbound URLs, the events they
-- received, and what open waits are waiting for, indexed by (source, path, value).

-- The name is the inbound URL's last segment (/events/{name}), unique across projects.
CREATE TABLE event_sources (
    name             TEXT    PRIMARY KEY,
    project_id       TEXT,
    verify           TEXT    NOT NULL,
    event_id_path    TEXT,
    event_name_path  TEXT,
    lookback_seconds BIGINT NOT NULL,
    dedup_seconds    BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

-- Every verified event: matched, kept unmatched (applicable at park until apply_until), or a
-- duplicate of an earlier one. Deleted by the pruner after keep_until.
CREATE TABLE events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       TEXT    NOT NULL REFERENCES event_sources (name) ON DELETE CASCADE,
    project_id   TEXT,
    event_key    TEXT,
    name         TEXT,
    status       TEXT    NOT NULL,
    duplicate_of BIGINT,
    via          TEXT    NOT NULL,
    -- the body as JSON text when it parsed (NULL otherwise: then body_text holds it)
    body         TEXT,
    body_text    TEXT,
    headers      TEXT    NOT NULL,
    received_at  BIGINT NOT NULL,
    apply_until  BIGINT,
    keep_until   BIGINT NOT NULL,
    matched      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX events_kept ON events (source, status, id);
CREATE INDEX events_expiry ON events (keep_until);
CREATE INDEX events_project ON events (project_id, id);

-- Redeliveries of one provider id within the source's dedupSeconds change nothing.
CREATE TABLE event_dedup (
    source    TEXT    NOT NULL REFERENCES event_sources (name) ON DELETE CASCADE,
    event_key TEXT    NOT NULL,
    event_id  BIGINT NOT NULL,
    until     BIGINT NOT NULL,
    PRIMARY KEY (source, event_key)
);
CREATE INDEX event_dedup_expiry ON event_dedup (until);

-- Paths some wait of the source has matched on: what an arriving event is evaluated at.
CREATE TABLE event_source_paths (
    source TEXT NOT NULL REFERENCES event_sources (name) ON DELETE CASCADE,
    path   TEXT NOT NULL,
    PRIMARY KEY (source, path)
);

-- An event's values at its source's paths (what matching and lookback look up).
CREATE TABLE event_values (
    event_id BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    source   TEXT    NOT NULL,
    path     TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    PRIMARY KEY (event_id, path)
);
CREATE INDEX event_values_lookup ON event_values (source, path, value);

-- The event conditions of an open wait (deleted when the wait ends, whatever ends it).
CREATE TABLE wait_events (
    execution_id BIGINT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    cond         BIGINT NOT NULL,
    source       TEXT    NOT NULL REFERENCES event_sources (name) ON DELETE CASCADE,
    name         TEXT,
    n_keys       BIGINT NOT NULL,
    PRIMARY KEY (execution_id, seq, cond)
);
CREATE INDEX wait_events_keyless ON wait_events (source, execution_id) WHERE n_keys = 0;
CREATE INDEX wait_events_source ON wait_events (source);

-- One row per match key of an open wait's condition: the index events are matched by.
CREATE TABLE wait_match_keys (
    execution_id BIGINT NOT NULL,
    seq          BIGINT NOT NULL,
    cond         BIGINT NOT NULL,
    source       TEXT    NOT NULL,
    path         TEXT    NOT NULL,
    value        TEXT    NOT NULL,
    PRIMARY KEY (execution_id, seq, cond, path),
    FOREIGN KEY (execution_id, seq, cond) REFERENCES wait_events (execution_id, seq, cond)
        ON DELETE CASCADE
);
CREATE INDEX wait_match_keys_lookup ON wait_match_keys (source, path, value);

-- Which waits each event resumed.
CREATE TABLE event_matches (
    event_id     BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    execution_id BIGINT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    PRIMARY KEY (event_id, execution_id)
);
CREATE INDEX event_matches_execution ON event_matches (execution_id);

-- The event conditions a wait was parked with (customData references resolved).
ALTER TABLE waits ADD COLUMN events TEXT;
