-- Events (issue 13): an event finds the conditions it meets by one index lookup per set of
-- paths conditions of its source match on, instead of one lookup per (path, value) key. With
-- per-key lookups a key many waits share (a tenant, a currency) made every event visit all of
-- those waits: 10,000 index rows per event at 1,000,000 waits (docs/performance.md).

-- A condition's whole match as one text: its keys sorted by path, each written
-- `<length of path>:<path><length of value>:<value>` (NULL for a condition without keys).
-- Indexed by its md5, as it may be longer than a B-tree entry can be.
ALTER TABLE wait_events ADD COLUMN match_key TEXT;
UPDATE wait_events c SET match_key = (
    SELECT string_agg(length(path) || ':' || path || length(value) || ':' || value, ''
                      ORDER BY path COLLATE "C")
    FROM wait_match_keys k
    WHERE k.execution_id = c.execution_id AND k.seq = c.seq AND k.cond = c.cond
) WHERE n_keys > 0;
CREATE INDEX wait_events_match ON wait_events (source, md5(match_key));
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
    SELECT string_agg(length(path) || ':' || path, '' ORDER BY path COLLATE "C")
    FROM wait_match_keys k
    WHERE k.execution_id = c.execution_id AND k.seq = c.seq AND k.cond = c.cond
) FROM wait_events c WHERE n_keys > 0;
