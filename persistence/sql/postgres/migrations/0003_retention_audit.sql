-- Retention finds finished executions by when they stopped; every resume attempt is audited.

CREATE INDEX executions_stopped ON executions (stopped_at) WHERE stopped_at IS NOT NULL;

CREATE TABLE resume_attempts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id BIGINT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    attempted_at BIGINT NOT NULL,
    method       TEXT    NOT NULL,
    status_code  BIGINT NOT NULL,
    outcome      TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX resume_attempts_execution ON resume_attempts (execution_id, id);
