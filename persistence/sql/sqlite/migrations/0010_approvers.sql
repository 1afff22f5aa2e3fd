-- Approvers (issue 14): each approver's decision on a wait, at most one per approver and wait,
-- and what the deadline of the current wait does when it is an approval (`onTimeout`), so the
-- timer decides or cancels in the same conditional write that claims the wait.
ALTER TABLE executions ADD COLUMN wait_on_timeout TEXT;

CREATE TABLE decisions (
    execution_id INTEGER NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    approver     TEXT NOT NULL,
    decision     TEXT NOT NULL,
    options      TEXT NOT NULL,
    comment      TEXT NOT NULL,
    decided_at   INTEGER NOT NULL,
    via          TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq, approver)
);
