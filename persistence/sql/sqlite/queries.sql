-- Named queries for the SQLite backend. Each block starts with "-- name: NAME".

-- name: create_execution
INSERT INTO executions (workflow_id, project_id, mode, status, started_at, retry_of,
                        custom_data, data, callback_url, nonce, trace_parent, trace_state)
VALUES (:workflow_id, :project_id, :mode, 'running', :now, :retry_of, :custom_data, :data,
        :callback_url, :nonce, :traceparent, :tracestate)
RETURNING *;

-- name: get_execution
SELECT * FROM executions WHERE id = :id;

-- name: get_execution_for_update
-- The single writer already serialises write transactions.
SELECT * FROM executions WHERE id = :id;

-- name: find_retry
-- The retry of :id that is under way or succeeded (a failed one may be retried again).
SELECT * FROM executions
WHERE retry_of = :id AND status NOT IN ('error', 'crashed', 'canceled')
ORDER BY id DESC LIMIT 1;

-- name: get_waits
SELECT * FROM waits WHERE execution_id = :id ORDER BY seq;

-- name: waits_of_executions
-- The waits of several executions (a listed page's), in one statement.
SELECT * FROM waits
WHERE execution_id IN (SELECT value FROM json_each(:ids))
ORDER BY execution_id, seq;

-- name: get_wait
SELECT * FROM waits WHERE execution_id = :id AND seq = :seq;

-- name: get_signed_wait
-- The wait, with what its resume's callback says of its execution (persistence.outbox).
SELECT w.*, e.workflow_id, e.project_id, e.custom_data, e.callback_url,
       e.trace_parent AS execution_trace_parent, e.trace_state AS execution_trace_state
FROM waits w JOIN executions e ON e.id = w.execution_id
WHERE w.execution_id = :id AND w.seq = :seq AND e.nonce = :nonce;

-- name: park
UPDATE executions SET status = 'waiting', wait_till = :reported_wait_till, wait_suffix = :wait_suffix,
    wait_on_timeout = :on_timeout
WHERE id = :id AND status = 'running'
RETURNING *;

-- name: insert_wait
INSERT INTO waits (execution_id, seq, parked_at, wait_till, webhook)
VALUES (:id, :seq, :now, :wait_till, :webhook)
RETURNING *;

-- name: set_execution_trace
UPDATE executions SET trace_parent = :traceparent, trace_state = :tracestate WHERE id = :id;

-- name: set_wait_trace
UPDATE waits SET trace_parent = :traceparent, trace_state = :tracestate
WHERE execution_id = :id AND seq = :seq;

-- name: wait_trace
-- An ended wait's instants and the trace context it continues: its park's, else its
-- execution's current one (its latest park's that gave one, or its create's).
SELECT w.execution_id, w.seq, w.parked_at, w.resumed_at, w.resumed_by,
       CASE WHEN w.trace_parent IS NULL THEN e.trace_parent ELSE w.trace_parent END
           AS trace_parent,
       CASE WHEN w.trace_parent IS NULL THEN e.trace_state ELSE w.trace_state END
           AS trace_state
FROM waits w JOIN executions e ON e.id = w.execution_id
WHERE w.execution_id = :id AND w.seq = :seq;

-- name: take_early_resumes
DELETE FROM early_resumes WHERE execution_id = :id AND seq = :seq
RETURNING n, method, suffix, payload, received_at, caller;

-- name: record_early_resume
INSERT INTO early_resumes (execution_id, seq, n, method, suffix, payload, received_at, caller)
SELECT :id, :seq, kept.count + 1, :method, :suffix, :payload, :now, :caller
FROM (SELECT count(*) AS count FROM early_resumes WHERE execution_id = :id AND seq = :seq) AS kept
WHERE kept.count < :max_kept
  AND EXISTS (SELECT 1 FROM executions
              WHERE id = :id AND status = 'running' AND wait_seq = :seq AND nonce = :nonce)
ON CONFLICT DO NOTHING
RETURNING n;

-- name: resume
UPDATE executions SET status = 'running', wait_till = NULL, wait_seq = wait_seq + 1
WHERE id = :id AND status = 'waiting' AND wait_seq = :seq
RETURNING callback_url;

-- name: resume_seen
-- ``resume`` where the transaction read the callback URL already (RETURNING costs SQLite a
-- temporary table per statement).
UPDATE executions SET status = 'running', wait_till = NULL, wait_seq = wait_seq + 1
WHERE id = :id AND status = 'waiting' AND wait_seq = :seq;

-- name: mark_wait_resumed
UPDATE waits SET resumed_at = :now, resumed_by = :resumed_by, payload = :payload
WHERE execution_id = :id AND seq = :seq;

-- name: claim_due
-- An approval whose onTimeout is cancel is canceled at its deadline (it stays at its wait, as a
-- stop leaves it); every other due wait resumes. Every read of deadlines names the partial index
-- executions_due: without statistics SQLite prefers executions_status (status = 'waiting') and
-- reads every waiting execution (16 ms at 100,000 parked, where the index takes 0.04 ms).
UPDATE executions SET
    status = CASE WHEN wait_on_timeout = 'cancel' THEN 'canceled' ELSE 'running' END,
    stopped_at = CASE WHEN wait_on_timeout = 'cancel' THEN :now ELSE stopped_at END,
    wait_seq = CASE WHEN wait_on_timeout = 'cancel' THEN wait_seq ELSE wait_seq + 1 END,
    wait_till = NULL
WHERE id IN (
    SELECT id FROM executions INDEXED BY executions_due
    WHERE status = 'waiting' AND wait_till IS NOT NULL AND wait_till <= :now
    ORDER BY wait_till
    LIMIT :limit
)
RETURNING id, CASE WHEN status = 'canceled' THEN wait_seq ELSE wait_seq - 1 END AS seq,
    callback_url, wait_on_timeout;

-- name: next_deadline
-- The earliest deadline or reminder/escalation timer.
SELECT min(due) AS deadline FROM (
    SELECT min(wait_till) AS due FROM executions INDEXED BY executions_due
    WHERE status = 'waiting' AND wait_till IS NOT NULL
    UNION ALL
    SELECT min(due_at) AS due FROM wait_timers
) AS timers;

-- name: finish
UPDATE executions SET status = :status, stopped_at = :now, result = :result, error = :error
WHERE id = :id AND status = 'running'
RETURNING *;

-- name: mark_retry_success
UPDATE executions SET retry_success_id = :id
WHERE id = (SELECT retry_of FROM executions WHERE id = :id AND status = 'success');

-- name: stop
UPDATE executions SET status = 'canceled', stopped_at = :now, wait_till = NULL
WHERE id = :id AND status IN ('new', 'unknown', 'running', 'waiting')
  AND (:wait_seq IS NULL OR (status = 'waiting' AND wait_seq = :wait_seq))
RETURNING *;

-- name: set_custom_data
UPDATE executions SET custom_data = :custom_data WHERE id = :id AND custom_data = :previous;

-- name: delete_execution
DELETE FROM executions WHERE id = :id AND status <> 'running'
RETURNING *;

-- name: create_api_key
INSERT INTO api_keys (label, key_hash, prefix, scopes, project_id, created_at)
VALUES (:label, :key_hash, :prefix, :scopes, :project_id, :now)
RETURNING *;

-- name: find_api_key
SELECT * FROM api_keys WHERE key_hash = :key_hash AND revoked_at IS NULL;

-- name: list_api_keys
SELECT * FROM api_keys ORDER BY id;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL;

-- name: lock_first_api_key
-- The single writer already serialises write transactions.
SELECT 1;

-- name: count_api_keys
SELECT count(*) AS n FROM api_keys;

-- name: stop_many
UPDATE executions SET status = 'canceled', stopped_at = :now, wait_till = NULL
WHERE status IN (SELECT value FROM json_each(:statuses))
  AND (:workflow_id IS NULL OR workflow_id = :workflow_id)
  AND (:project_id IS NULL OR project_id = :project_id)
  AND (:started_after IS NULL OR started_at > :started_after)
  AND (:started_before IS NULL OR started_at < :started_before)
RETURNING id, callback_url;

-- name: create_tag
INSERT INTO tags (id, name, created_at, updated_at, project_id)
VALUES (:id, :name, :now, :now, :project_id)
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: get_tag
SELECT * FROM tags WHERE id = :id;

-- name: list_tags
SELECT * FROM tags WHERE (:after IS NULL OR id > :after) ORDER BY id LIMIT :limit;

-- name: rename_tag
-- A key bound to a project (:project_id) renames only its project's tags no other project uses.
UPDATE tags SET name = :name, updated_at = :now
WHERE id = :id AND NOT EXISTS (SELECT 1 FROM tags t2 WHERE t2.name = :name AND t2.id <> :id)
  AND (:project_id IS NULL OR (tags.project_id = :project_id AND NOT EXISTS (
      SELECT 1 FROM execution_tags et JOIN executions e ON e.id = et.execution_id
      WHERE et.tag_id = tags.id AND e.project_id IS NOT :project_id)))
RETURNING *;

-- name: delete_tag
DELETE FROM tags WHERE id = :id
  AND (:project_id IS NULL OR (tags.project_id = :project_id AND NOT EXISTS (
      SELECT 1 FROM execution_tags et JOIN executions e ON e.id = et.execution_id
      WHERE et.tag_id = tags.id AND e.project_id IS NOT :project_id)))
RETURNING *;

-- name: tag_manageable
SELECT 1 AS ok FROM tags WHERE id = :id
  AND (:project_id IS NULL OR (tags.project_id = :project_id AND NOT EXISTS (
      SELECT 1 FROM execution_tags et JOIN executions e ON e.id = et.execution_id
      WHERE et.tag_id = tags.id AND e.project_id IS NOT :project_id)));

-- name: execution_tags
SELECT t.* FROM tags t JOIN execution_tags et ON et.tag_id = t.id
WHERE et.execution_id = :id ORDER BY t.name;

-- name: clear_execution_tags
DELETE FROM execution_tags WHERE execution_id = :id;

-- name: add_execution_tag
INSERT INTO execution_tags (execution_id, tag_id) VALUES (:id, :tag_id);

-- name: count_known_tags
SELECT count(*) AS n FROM tags WHERE id IN (SELECT value FROM json_each(:tag_ids));

-- name: insert_delivery
INSERT INTO deliveries (id, execution_id, event, target_url, payload, created_at, window_start,
                        next_attempt_at, endpoint, trace_parent, trace_state)
VALUES (:id, :execution_id, :event, :target_url, :payload, :now, :now, :now, :endpoint,
        :traceparent, :tracestate);

-- name: insert_attempt
INSERT INTO delivery_attempts (delivery_id, attempted_at, status_code, error, latency_ms)
VALUES (:delivery_id, :attempted_at, :status_code, :error, :latency_ms);

-- name: delivery_succeeded
UPDATE deliveries
SET status = 'delivered', delivered_at = :now, attempts = attempts + 1, lease_until = NULL,
    last_error = NULL
WHERE id = :id AND status = 'pending';

-- name: delivery_failed
UPDATE deliveries
SET attempts = attempts + 1, next_attempt_at = :next_attempt_at, lease_until = NULL,
    last_error = :error
WHERE id = :id AND status = 'pending';

-- name: delivery_dead
-- Dead (retries exhausted) or aborted (the receiver asked to stop): :status.
UPDATE deliveries
SET status = :status, attempts = attempts + 1, lease_until = NULL, last_error = :error
WHERE id = :id AND status = 'pending'
RETURNING execution_id, event;

-- name: crash_undelivered
UPDATE executions SET status = 'crashed', stopped_at = :now, error = :error
WHERE id = :id AND status = 'running';

-- name: get_delivery
SELECT * FROM deliveries WHERE id = :id;

-- name: execution_deliveries
-- The operational events an execution's deliveries caused are the operator's, not its own.
SELECT * FROM deliveries
WHERE execution_id = :id
  AND event NOT IN ('delivery.exhausted', 'endpoint.disabled', 'endpoint.recovered')
ORDER BY created_at, id;

-- name: execution_attempts
SELECT a.* FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE d.execution_id = :id ORDER BY a.id;

-- name: redeliver
UPDATE deliveries
SET status = 'pending', next_attempt_at = :now, window_start = :now, lease_until = NULL
WHERE id = :id AND status IN ('dead', 'aborted', 'delivered')
RETURNING *;

-- name: put_held_answer
INSERT INTO held_responses (execution_id, seq, kind, status_code, headers, body, created_at)
VALUES (:id, :seq, :kind, :status_code, :headers, :body, :now)
ON CONFLICT DO NOTHING;

-- name: get_held_answer
SELECT * FROM held_responses WHERE execution_id = :id AND seq = :seq;

-- name: put_idempotent_answer
INSERT INTO idempotent_answers (key, target, execution_id, status_code, headers, body, created_at)
VALUES (:key, :target, :id, :status_code, :headers, :body, :now)
ON CONFLICT DO NOTHING;

-- name: get_idempotent_answer
SELECT * FROM idempotent_answers WHERE key = :key AND target = :target;

-- name: database_time
-- SQLite has no clock of its own (the gateway's is used).
SELECT NULL AS now;

-- name: prune_floor
-- Both retention statements name the partial index executions_finished: without statistics
-- SQLite prefers executions_status and sorts every finished execution in a temporary B-tree. Each
-- repeats the index's WHERE word for word (migration 0016), or SQLite refuses the index.
SELECT id FROM executions INDEXED BY executions_finished
WHERE (status = 'success' OR status = 'error' OR status = 'crashed' OR status = 'canceled')
ORDER BY id DESC LIMIT 1 OFFSET :keep;

-- name: prune_batch
DELETE FROM executions WHERE id IN (
    SELECT id FROM executions INDEXED BY executions_finished
    WHERE (status = 'success' OR status = 'error' OR status = 'crashed' OR status = 'canceled')
      AND (stopped_at < :cutoff OR id <= :floor)
    ORDER BY id
    LIMIT :batch
);

-- name: record_attempts
-- A batch of resume attempts (a JSON array of [execution_id, seq, attempted_at, method,
-- status_code, outcome, reason, ip, user_agent]) in one statement, in order; attempts of
-- executions that no longer exist are dropped.
INSERT INTO resume_attempts (execution_id, seq, attempted_at, method, status_code, outcome,
                             reason, ip, user_agent)
SELECT json_extract(a.value, '$[0]'), json_extract(a.value, '$[1]'),
       json_extract(a.value, '$[2]'), json_extract(a.value, '$[3]'),
       json_extract(a.value, '$[4]'), json_extract(a.value, '$[5]'),
       json_extract(a.value, '$[6]'), json_extract(a.value, '$[7]'),
       json_extract(a.value, '$[8]')
FROM json_each(:attempts) a
WHERE EXISTS (SELECT 1 FROM executions WHERE id = json_extract(a.value, '$[0]'))
ORDER BY a.key;

-- name: trim_resume_attempts
-- Cut each (execution, outcome) pair of :pairs (a JSON array of [execution_id, outcome], each
-- once) back to its :keep most recent rows, in one statement.
DELETE FROM resume_attempts WHERE id IN (
    SELECT id FROM (
        SELECT r.id, row_number() OVER (
            PARTITION BY r.execution_id, r.outcome ORDER BY r.id DESC) AS n
        FROM json_each(:pairs) p
        JOIN resume_attempts r ON r.execution_id = json_extract(p.value, '$[0]')
                              AND r.outcome = json_extract(p.value, '$[1]')
    )
    WHERE n > :keep
);

-- name: execution_resume_attempts
SELECT * FROM resume_attempts WHERE execution_id = :id ORDER BY id;

-- name: mark_wait_timed_out
UPDATE waits SET resumed_at = :now, resumed_by = 'timeout', payload = :payload
WHERE execution_id = :id AND seq = :seq
RETURNING wait_till;

-- name: count_by_status
SELECT status, count(*) AS n FROM executions GROUP BY status;

-- name: count_overdue
SELECT count(*) AS n FROM executions INDEXED BY executions_due
WHERE status = 'waiting' AND wait_till IS NOT NULL AND wait_till <= :now;

-- name: lock_migrations
-- The single writer already serialises write transactions.
SELECT 1;

-- name: create_schema_migrations
CREATE TABLE IF NOT EXISTS schema_migrations
    (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);

-- name: has_schema_migrations
SELECT 1 AS ok FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations';

-- name: applied_migrations
SELECT version FROM schema_migrations;

-- name: record_migration
INSERT INTO schema_migrations (version, applied_at) VALUES (:version, :now);

-- Events (issue 13) -----------------------------------------------------------------------

-- name: create_event_source
INSERT INTO event_sources (name, project_id, verify, event_id_path, event_name_path,
                           lookback_seconds, dedup_seconds, created_at, updated_at)
VALUES (:name, :project_id, :verify, :event_id_path, :event_name_path, :lookback_seconds,
        :dedup_seconds, :now, :now)
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: get_event_source
SELECT * FROM event_sources WHERE name = :name;

-- name: list_event_sources
SELECT * FROM event_sources
WHERE (:project_id IS NULL OR project_id = :project_id)
  AND (:after IS NULL OR name > :after)
ORDER BY name LIMIT :limit;

-- name: update_event_source
UPDATE event_sources
SET verify = :verify, event_id_path = :event_id_path, event_name_path = :event_name_path,
    lookback_seconds = :lookback_seconds, dedup_seconds = :dedup_seconds, updated_at = :now
WHERE name = :name AND (:project_id IS NULL OR project_id = :project_id)
RETURNING *;

-- name: delete_event_source
DELETE FROM event_sources WHERE name = :name AND (:project_id IS NULL OR project_id = :project_id);

-- name: lock_event_source
-- An event (or a prune of the source's paths) excludes parks on its source, so a wait parked
-- concurrently is either matched by it or finds it kept. The single writer already does.
SELECT * FROM event_sources WHERE name = :name;

-- name: share_event_source
-- A park on the source (parks do not exclude each other). The single writer already does.
SELECT * FROM event_sources WHERE name = :name;

-- name: find_event_dedup
SELECT event_id FROM event_dedup WHERE source = :source AND event_key = :event_key AND until > :now;

-- name: put_event_dedup
INSERT INTO event_dedup (source, event_key, event_id, until)
VALUES (:source, :event_key, :event_id, :until)
ON CONFLICT (source, event_key) DO UPDATE SET event_id = excluded.event_id, until = excluded.until;

-- name: insert_event
INSERT INTO events (source, project_id, event_key, name, status, duplicate_of, via, body,
                    body_text, headers, received_at, apply_until, keep_until)
VALUES (:source, :project_id, :event_key, :name, :status, :duplicate_of, :via, :body,
        :body_text, :headers, :now, :apply_until, :keep_until)
RETURNING id;

-- name: get_event
SELECT * FROM events WHERE id = :id;

-- name: event_matches
SELECT execution_id, seq FROM event_matches WHERE event_id = :id ORDER BY execution_id;

-- name: events_of_execution
SELECT seq, event_id FROM event_matches WHERE execution_id = :id ORDER BY seq;

-- name: list_events
SELECT * FROM events
WHERE (:before_id IS NULL OR id < :before_id)
  AND (:source IS NULL OR source = :source)
  AND (:status IS NULL OR status = :status)
  AND (:project_id IS NULL OR project_id = :project_id)
ORDER BY id DESC LIMIT :limit;

-- name: source_paths
SELECT path FROM event_source_paths WHERE source = :source ORDER BY path;

-- name: add_source_path
INSERT INTO event_source_paths (source, path) VALUES (:source, :path) ON CONFLICT DO NOTHING;

-- name: clear_event_values
DELETE FROM event_values WHERE event_id = :event_id;

-- name: insert_event_value
INSERT INTO event_values (event_id, source, path, value) VALUES (:event_id, :source, :path, :value)
ON CONFLICT DO NOTHING;

-- name: match_event_key
-- The open conditions whose whole match is :match_key (the event's values at the paths of one
-- shape of its source), by the (source, match_key) index; named ones only for an event of
-- that name.
SELECT execution_id, seq FROM wait_events
WHERE source = :source AND match_key = :match_key AND (name IS NULL OR name = :name);

-- name: match_event_keyless
-- The open conditions of the source without keys (any event of the source, or of its name),
-- by the (source, match_key) index: without statistics SQLite would otherwise take any index
-- on source and read every condition of the source.
SELECT execution_id, seq FROM wait_events
WHERE source = :source AND match_key IS NULL AND n_keys = 0 AND (name IS NULL OR name = :name);

-- name: source_shapes
SELECT shape FROM event_source_shapes WHERE source = :source ORDER BY shape;

-- name: add_source_shape
INSERT INTO event_source_shapes (source, shape) VALUES (:source, :shape) ON CONFLICT DO NOTHING;

-- name: delete_source_shape
DELETE FROM event_source_shapes WHERE source = :source AND shape = :shape;

-- name: record_event_match
INSERT INTO event_matches (event_id, execution_id, seq) VALUES (:event_id, :id, :seq)
ON CONFLICT DO NOTHING;

-- name: mark_event_matched
UPDATE events SET status = 'matched', matched = matched + :n WHERE id = :id;

-- name: take_kept_event
-- A kept event is applied at most once at park.
UPDATE events SET status = 'matched', matched = matched + 1
WHERE id = :id AND status = 'unmatched'
RETURNING *;

-- name: kept_events_of_source
SELECT id, body, headers FROM events
WHERE source = :source AND status = 'unmatched' AND apply_until > :now;

-- name: set_wait_events
UPDATE waits SET events = :events WHERE execution_id = :id AND seq = :seq;

-- name: insert_wait_event
INSERT INTO wait_events (execution_id, seq, cond, source, name, n_keys, match_key)
VALUES (:id, :seq, :cond, :source, :name, :n_keys, :match_key);

-- name: insert_wait_match_key
INSERT INTO wait_match_keys (execution_id, seq, cond, source, path, value)
VALUES (:id, :seq, :cond, :source, :path, :value);

-- name: clear_wait_events
-- Whatever ends a wait ends its event conditions (their keys go by cascade).
DELETE FROM wait_events WHERE execution_id = :id;

-- name: lookback_keyed
-- Kept events of the source whose values match every key of condition :cond, oldest first.
SELECT e.id FROM wait_match_keys k
JOIN event_values ev ON ev.source = k.source AND ev.path = k.path AND ev.value = k.value
JOIN events e ON e.id = ev.event_id
WHERE k.execution_id = :id AND k.seq = :seq AND k.cond = :cond
  AND e.status = 'unmatched' AND e.apply_until > :now
  AND (:name IS NULL OR e.name = :name)
GROUP BY e.id
HAVING count(*) = :n_keys
ORDER BY e.id LIMIT :limit;

-- name: lookback_any
SELECT id FROM events
WHERE source = :source AND status = 'unmatched' AND apply_until > :now
  AND (:name IS NULL OR name = :name)
ORDER BY id LIMIT :limit;

-- name: prune_events
DELETE FROM events WHERE id IN (
    SELECT id FROM events WHERE keep_until < :now ORDER BY keep_until LIMIT :batch
);

-- name: prune_event_dedup
DELETE FROM event_dedup WHERE rowid IN (
    SELECT rowid FROM event_dedup WHERE until < :now LIMIT :batch
);

-- name: unused_source_paths
SELECT path FROM event_source_paths p
WHERE source = :source AND NOT EXISTS (
    SELECT 1 FROM wait_match_keys k WHERE k.source = p.source AND k.path = p.path
);

-- name: delete_source_path
DELETE FROM event_source_paths WHERE source = :source AND path = :path;

-- name: lock_waiting
-- The single writer serialises decisions; PostgreSQL locks the row.
SELECT id FROM executions WHERE id = :id AND status = 'waiting' AND wait_seq = :seq;

-- name: insert_decision
INSERT INTO decisions (execution_id, seq, approver, decision, options, comment, decided_at, via)
VALUES (:id, :seq, :approver, :decision, :options, :comment, :now, :via)
ON CONFLICT DO NOTHING;

-- name: wait_decisions
SELECT * FROM decisions WHERE execution_id = :id AND seq = :seq ORDER BY decided_at, approver;

-- name: execution_decisions
SELECT * FROM decisions WHERE execution_id = :id ORDER BY seq, decided_at, approver;

-- name: approver_inbox
-- The open approval waits of :project (NULL: executions without one) that ask :approver and
-- that they have not decided, oldest first. Approvals with approvers, and only they, park an
-- onTimeout, so the scan reads the waiting executions' rows (executions_status) and no others.
SELECT e.id, e.nonce, e.wait_seq AS seq, w.parked_at, w.wait_till, w.webhook
FROM executions e JOIN waits w ON w.execution_id = e.id AND w.seq = e.wait_seq
WHERE e.status = 'waiting' AND e.wait_on_timeout IS NOT NULL AND e.project_id IS :project
  AND w.resumed_at IS NULL
  AND EXISTS (SELECT 1 FROM json_each(w.webhook, '$.approval.approvers') a
              WHERE json_extract(a.value, '$.id') = :approver)
  AND json_extract(w.webhook, '$.approval.requester') IS NOT :approver
  AND NOT EXISTS (SELECT 1 FROM decisions d
                  WHERE d.execution_id = e.id AND d.seq = e.wait_seq AND d.approver = :approver)
ORDER BY w.parked_at, e.id
LIMIT :limit;

-- name: overview_counts
SELECT status, count(*) AS n FROM executions
WHERE (:all_projects OR project_id = :project) GROUP BY status;

-- name: overview_approvals
-- The open approval waits, oldest first (the waiting executions' rows, executions_status).
SELECT e.id, e.workflow_id, w.parked_at, w.wait_till, w.webhook
FROM executions e JOIN waits w ON w.execution_id = e.id AND w.seq = e.wait_seq
WHERE e.status = 'waiting' AND (:all_projects OR e.project_id = :project)
  AND w.resumed_at IS NULL AND json_extract(w.webhook, '$.approval.title') IS NOT NULL
ORDER BY w.parked_at, e.id
LIMIT :limit;

-- name: overview_due
-- Deadlines from :now to :until by hour (executions_due).
SELECT (wait_till - :now) / 3600000 AS hour, count(*) AS n FROM executions INDEXED BY executions_due
WHERE status = 'waiting' AND wait_till IS NOT NULL AND wait_till >= :now AND wait_till < :until
  AND (:all_projects OR project_id = :project)
GROUP BY 1;

-- name: create_channel
INSERT INTO channels (name, project_id, kind, config, created_at, updated_at)
VALUES (:name, :project_id, :kind, :config, :now, :now)
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: get_channel
SELECT * FROM channels WHERE name = :name;

-- name: list_channels
SELECT * FROM channels
WHERE (:project_id IS NULL OR project_id = :project_id)
  AND (:after IS NULL OR name > :after)
ORDER BY name LIMIT :limit;

-- name: update_channel
UPDATE channels SET kind = :kind, config = :config, updated_at = :now
WHERE name = :name AND (:project_id IS NULL OR project_id = :project_id)
RETURNING *;

-- name: delete_channel
DELETE FROM channels WHERE name = :name AND (:project_id IS NULL OR project_id = :project_id);

-- name: insert_notification
INSERT INTO deliveries (id, execution_id, event, target_url, payload, created_at, window_start,
                        next_attempt_at, channel, endpoint)
VALUES (:id, :execution_id, :event, :target_url, :payload, :now, :now, :now, :channel,
        'channel:' || :channel);

-- name: insert_wait_timer
INSERT INTO wait_timers (execution_id, seq, due_at, kind, n)
VALUES (:id, :seq, :due_at, :kind, :n);

-- name: claim_wait_timers
-- The timers due at :now, each taken by one claim only (deleted in the claiming transaction).
DELETE FROM wait_timers WHERE id IN (
    SELECT id FROM wait_timers WHERE due_at <= :now
    ORDER BY due_at, id
    LIMIT :limit
)
RETURNING id, execution_id, seq, due_at, kind, n;

-- name: clear_wait_timers
-- Whatever ends a wait drops its reminders and escalation.
DELETE FROM wait_timers WHERE execution_id = :id;

-- name: set_wait_webhook
UPDATE waits SET webhook = :webhook WHERE execution_id = :id AND seq = :seq;

-- Endpoints and their circuit breakers (issue 17; persistence/endpoints.py).

-- name: legacy_deliveries
-- Deliveries written before endpoints existed, whose endpoint the dispatcher fills in.
SELECT id, target_url, channel FROM deliveries WHERE endpoint = '' LIMIT :limit;

-- name: set_delivery_endpoint
UPDATE deliveries SET endpoint = :endpoint WHERE id = :id AND endpoint = '';

-- name: probe_candidates
-- Endpoints whose cool-down (or whose probe's lease) is over and that have something to send.
SELECT e.endpoint FROM endpoints e
WHERE e.state <> 'closed' AND e.open_until <= :now
  AND EXISTS (SELECT 1 FROM deliveries d
              WHERE d.endpoint = e.endpoint AND d.status = 'pending'
                AND (d.lease_until IS NULL OR d.lease_until <= :now))
ORDER BY e.endpoint
LIMIT :limit;

-- name: start_probe
-- Half-open, for one probe only: of every replica trying, one changes the row.
UPDATE endpoints SET state = 'half_open', open_until = :lease_until
WHERE endpoint = :endpoint AND state <> 'closed' AND open_until <= :now
RETURNING endpoint;

-- name: due_endpoints
-- The endpoints with deliveries due now whose breaker is closed (or that have none yet),
-- those waiting longest first.
SELECT d.endpoint, max(e.endpoint) AS known FROM deliveries d
LEFT JOIN endpoints e ON e.endpoint = d.endpoint
WHERE d.status = 'pending' AND d.next_attempt_at <= :now
  AND (d.lease_until IS NULL OR d.lease_until <= :now)
  AND (e.state IS NULL OR e.state = 'closed')
GROUP BY d.endpoint
ORDER BY min(d.next_attempt_at)
LIMIT :limit;

-- name: add_endpoint
INSERT INTO endpoints (endpoint) VALUES (:endpoint) ON CONFLICT DO NOTHING;

-- name: endpoint_busy
-- How many deliveries to the endpoint are being sent right now (leased, by any replica).
SELECT count(*) AS n FROM deliveries
WHERE endpoint = :endpoint AND status = 'pending' AND lease_until > :now;

-- name: endpoint_failed
UPDATE endpoints
SET consecutive_failures = consecutive_failures + 1, last_failure_at = :now, state = :state,
    open_until = :open_until, opened_at = :opened_at
WHERE endpoint = :endpoint AND state = :was;

-- name: endpoint_succeeded
UPDATE endpoints
SET consecutive_failures = 0, last_success_at = :now, state = 'closed', open_until = NULL,
    opened_at = NULL
WHERE endpoint = :endpoint AND state = :was;

-- name: resume_endpoint_windows
-- The time the endpoint was open does not count towards its deliveries' maximum age.
UPDATE deliveries SET window_start = window_start + :paused
WHERE endpoint = :endpoint AND status = 'pending';

-- name: list_endpoints
-- Each endpoint with its deliveries counted by status (those of :project_id's executions
-- only, and no operational events, when a project is given).
SELECT e.endpoint, e.state, e.consecutive_failures, e.last_success_at, e.last_failure_at,
       e.open_until, e.opened_at,
       coalesce(sum(CASE WHEN d.status = 'pending' THEN 1 ELSE 0 END), 0) AS pending,
       coalesce(sum(CASE WHEN d.status = 'delivered' THEN 1 ELSE 0 END), 0) AS delivered,
       coalesce(sum(CASE WHEN d.status = 'dead' THEN 1 ELSE 0 END), 0) AS dead,
       coalesce(sum(CASE WHEN d.status = 'aborted' THEN 1 ELSE 0 END), 0) AS aborted
FROM endpoints e
JOIN deliveries d ON d.endpoint = e.endpoint
JOIN executions x ON x.id = d.execution_id
WHERE (:project_id IS NULL OR (x.project_id = :project_id AND d.event NOT IN
       ('delivery.exhausted', 'endpoint.disabled', 'endpoint.recovered')))
GROUP BY e.endpoint, e.state, e.consecutive_failures, e.last_success_at, e.last_failure_at,
         e.open_until, e.opened_at
ORDER BY e.endpoint
LIMIT :limit;

-- name: count_endpoints_by_state
SELECT state, count(*) AS n FROM endpoints GROUP BY state;

-- name: recover_deliveries
-- Dead (or aborted) deliveries created in [since, until), sent again once each: pending now,
-- with a fresh maximum age and their webhook-id kept (a second call finds them pending).
UPDATE deliveries
SET status = 'pending', next_attempt_at = :now, window_start = :now, lease_until = NULL
WHERE id IN (
    SELECT d.id FROM deliveries d JOIN executions x ON x.id = d.execution_id
    WHERE d.status = :status AND d.created_at >= :since AND d.created_at < :until
      AND (:endpoint IS NULL OR d.endpoint = :endpoint)
      AND (:project_id IS NULL OR (x.project_id = :project_id AND d.event NOT IN
           ('delivery.exhausted', 'endpoint.disabled', 'endpoint.recovered')))
    ORDER BY d.created_at, d.id
    LIMIT :limit
)
RETURNING id, endpoint;

-- name: lock_endpoint
SELECT * FROM endpoints WHERE endpoint = :endpoint;

-- name: claim_probe_delivery
UPDATE deliveries SET lease_until = :lease_until
WHERE id IN (
    SELECT id FROM deliveries
    WHERE endpoint = :endpoint AND status = 'pending'
      AND (lease_until IS NULL OR lease_until <= :now)
    ORDER BY next_attempt_at, id
    LIMIT 1
)
RETURNING *;

-- name: claim_endpoint_deliveries
UPDATE deliveries SET lease_until = :lease_until
WHERE id IN (
    SELECT id FROM deliveries
    WHERE endpoint = :endpoint AND status = 'pending' AND next_attempt_at <= :now
      AND (lease_until IS NULL OR lease_until <= :now)
    ORDER BY next_attempt_at, id
    LIMIT :limit
)
RETURNING *;

-- name: next_delivery_due
-- The earliest moment something may be sent: a due delivery to a closed endpoint, or the
-- end of an open endpoint's cool-down (its probe).
SELECT min(due) AS due FROM (
    SELECT max(d.next_attempt_at, coalesce(d.lease_until, 0)) AS due
    FROM deliveries d LEFT JOIN endpoints e ON e.endpoint = d.endpoint
    WHERE d.status = 'pending' AND (e.state IS NULL OR e.state = 'closed')
    UNION ALL
    SELECT e.open_until AS due FROM endpoints e
    WHERE e.state <> 'closed'
      AND EXISTS (SELECT 1 FROM deliveries d
                  WHERE d.endpoint = e.endpoint AND d.status = 'pending')
);

-- name: defer_delivery
UPDATE deliveries SET lease_until = NULL, next_attempt_at = :until
WHERE id = :id AND status = 'pending';

-- name: hasten_probe
-- An operator sent a delivery again: an open endpoint's cool-down ends now (one probe decides).
UPDATE endpoints SET open_until = :now
WHERE endpoint = :endpoint AND state = 'open' AND open_until > :now;
