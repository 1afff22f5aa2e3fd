-- waitgate schema, version 1: executions, their waits, early resumes, API keys.
-- All instants are BIGINT milliseconds since the Unix epoch (UTC).

CREATE TABLE executions (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id      TEXT    NOT NULL,
    project_id       TEXT,
    mode             TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    started_at       BIGINT NOT NULL,
    stopped_at       BIGINT,
    -- deadline of the current wait as reported (3000-01-01 for a webhook wait with no limit)
    wait_till        BIGINT,
    -- number of the current wait while waiting, of the next wait otherwise
    wait_seq         BIGINT NOT NULL DEFAULT 1,
    -- suffix of the current wait's resume URL; NULL when it has no webhook
    wait_suffix      TEXT,
    retry_of         BIGINT,
    retry_success_id BIGINT,
    custom_data      TEXT    NOT NULL DEFAULT '{}',
    data             TEXT,
    result           TEXT,
    error            TEXT
);

CREATE INDEX executions_due ON executions (wait_till)
    WHERE status = 'waiting' AND wait_till IS NOT NULL;
CREATE INDEX executions_status ON executions (status, id);
CREATE INDEX executions_workflow ON executions (workflow_id, id);

CREATE TABLE waits (
    execution_id BIGINT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    parked_at    BIGINT NOT NULL,
    wait_till    BIGINT,
    webhook      TEXT,
    resumed_at   BIGINT,
    resumed_by   TEXT,
    payload      TEXT,
    PRIMARY KEY (execution_id, seq)
);

-- A correctly signed resume call that arrived before the engine parked the wait it names.
CREATE TABLE early_resumes (
    execution_id BIGINT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    method       TEXT    NOT NULL,
    suffix       TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

CREATE TABLE api_keys (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    label      TEXT    NOT NULL,
    key_hash   TEXT    NOT NULL UNIQUE,
    prefix     TEXT    NOT NULL,
    scopes     TEXT    NOT NULL,
    project_id TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE tags (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE execution_tags (
    execution_id BIGINT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    tag_id       TEXT    NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (execution_id, tag_id)
);
CREATE INDEX execution_tags_tag ON execution_tags (tag_id, execution_id);
