-- Callbacks to the engine: a durable outbox written in the same transaction as each
-- transition, the attempts made to deliver it, and responses held for resume callers.

ALTER TABLE executions ADD COLUMN callback_url TEXT;

CREATE TABLE deliveries (
    -- the Standard Webhooks "webhook-id": stable across attempts, so engines drop duplicates
    id              TEXT    PRIMARY KEY,
    execution_id    BIGINT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    event           TEXT    NOT NULL,
    target_url      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    -- the maximum age of a delivery counts from here (creation, or the last redelivery)
    window_start    BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_execution ON deliveries (execution_id, created_at);

CREATE TABLE delivery_attempts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  TEXT    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempted_at BIGINT NOT NULL,
    status_code  BIGINT,
    error        TEXT,
    latency_ms   BIGINT NOT NULL
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);

-- The answer for a resume caller held open (responseMode lastNode / responseNode).
CREATE TABLE held_responses (
    execution_id BIGINT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    kind         TEXT    NOT NULL,
    status_code  BIGINT NOT NULL,
    headers      TEXT    NOT NULL,
    body         TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

-- First answers of resume calls that carried an Idempotency-Key, replayed to retries.
CREATE TABLE idempotent_answers (
    key          TEXT    NOT NULL,
    target       TEXT    NOT NULL,
    execution_id BIGINT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    status_code  BIGINT NOT NULL,
    headers      TEXT    NOT NULL,
    body         TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (key, target)
);
