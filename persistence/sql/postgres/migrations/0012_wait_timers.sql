-- Reminders and escalations (issue 14): the timers of a wait besides its deadline, claimed by
-- the same scheduler as due waits (exactly once: a claimed row is deleted in the transaction
-- that writes what it does) and dropped in the transaction that ends the wait.
CREATE TABLE wait_timers (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id BIGINT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    due_at       BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    n            BIGINT NOT NULL
);

CREATE INDEX wait_timers_due ON wait_timers (due_at);
CREATE INDEX wait_timers_execution ON wait_timers (execution_id);
