-- Retention reads finished executions oldest first (prune_batch) and counts the newest it keeps
-- (prune_floor), both by id: a partial index of the finished ones in id order gives them
-- without sorting every finished execution for each batch. executions_stopped, which no
-- statement reads any more, goes.
DROP INDEX executions_stopped;
CREATE INDEX executions_finished ON executions (id)
    WHERE status IN ('success', 'error', 'crashed', 'canceled');
