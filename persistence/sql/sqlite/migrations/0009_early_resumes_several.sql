-- Several early calls are kept per wait (numbered n = 1, 2, …, at most a few), so a forged call
-- that came first cannot crowd out the genuine one: the park applies the oldest its checks admit.

CREATE TABLE early_resumes_kept (
    execution_id INTEGER NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    method       TEXT    NOT NULL,
    suffix       TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    caller       TEXT,
    PRIMARY KEY (execution_id, seq, n)
);

INSERT INTO early_resumes_kept (execution_id, seq, n, method, suffix, payload, received_at, caller)
SELECT execution_id, seq, 1, method, suffix, payload, received_at, caller FROM early_resumes;

DROP TABLE early_resumes;
ALTER TABLE early_resumes_kept RENAME TO early_resumes;
