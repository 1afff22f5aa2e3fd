-- SQLite only (its executions_finished weighed "status IN (...)" through a temporary table for each
-- row a write changed; see the SQLite migration of this number). PostgreSQL weighs an IN list in
-- place, and rebuilding the index would hold up every write to executions for as long as it
-- takes: nothing changes here.
SELECT 1;
