-- Events (issue 13): an event finds the conditions it meets by one index lookup per set of
-- paths conditions of its source match on, instead of one lookup per (path, value) key. With
-- per-key lookups a key many waits share (a tenant, a currency) made every event visit all of
-- those waits: 10,000 index rows per event at 1,000,000 waits (docs/performance.md).

-- A condition's whole match as one text: its keys sorted by path, each written
-- `<length of path>:<path><length of value>:<value>` (NULL for a condition without keys).
ALTER TABLE wait_events ADD COLUMN match_key TEXT;
UPDATE wait_events SET match_key = (
    SELECT group_concat(length(path) || ':' || path || length(value) || ':' || value, '')
    FROM (SELECT path, value FROM wait_match_keys k
          WHERE k.execution_id = wait_events.execution_id AND k.seq = wait_events.seq
            AND k.cond = wait_events.cond
          ORDER BY path)
) WHERE n_keys > 0;
CREATE INDEX wait_events_match ON wait_events (source, match_key);
-- It leads with source, so it also serves deleting a source's conditions; one index less to
-- keep up at every park and every end of a wait.
DROP INDEX wait_events_source;

-- The sets of paths (`<length>:<path>` sorted, concatenated) some condition of a source
-- matches on: an arriving event is looked up once for each set it has all the paths of.
CREATE TABLE event_source_shapes (
    source TEXT NOT NULL REFERENCES event_sources (name) ON DELETE CASCADE,
    shape  TEXT NOT NULL,
    PRIMARY KEY (source, shape)
);
INSERT INTO event_source_shapes (source, shape)
SELECT DISTINCT source, (
    SELECT group_concat(length(path) || ':' || path, '')
    FROM (SELECT path FROM wait_match_keys k
          WHERE k.execution_id = c.execution_id AND k.seq = c.seq AND k.cond = c.cond
          ORDER BY path)
) FROM wait_events c WHERE n_keys > 0;
