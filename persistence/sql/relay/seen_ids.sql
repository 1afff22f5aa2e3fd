-- The relay's remembered webhook-ids (SQLite): a claim while an adapter handles a callback,
-- then "done" so a duplicate delivery is answered without calling the adapter again.

-- name: create_table
CREATE TABLE IF NOT EXISTS relay_seen (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('working', 'done')),
    at REAL NOT NULL
);

-- name: claim
-- A new id, or one whose claim has outlived its lease (a relay died while handling it), is
-- claimed; a done id or a live claim is left alone. One statement, so two relays sharing the
-- file cannot both claim.
INSERT INTO relay_seen (id, state, at) VALUES (:id, 'working', :now)
ON CONFLICT (id) DO UPDATE SET at = excluded.at
WHERE relay_seen.state = 'working' AND relay_seen.at < :stale_before;

-- name: state
SELECT state FROM relay_seen WHERE id = :id;

-- name: done
UPDATE relay_seen SET state = 'done', at = :now WHERE id = :id;

-- name: release
DELETE FROM relay_seen WHERE id = :id AND state = 'working';

-- name: prune
DELETE FROM relay_seen WHERE state = 'done' AND at < :before;
