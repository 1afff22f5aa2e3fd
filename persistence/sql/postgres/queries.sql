-- Named queries for the PostgreSQL backend. Each block starts with "-- name: NAME".

-- name: create_execution
INSERT INTO executions (workflow_id, project_id, mode, status, started_at, retry_of,
                        custom_data, data, callback_url, nonce)
VALUES (:workflow_id, :project_id, :mode, 'running', :now, :retry_of, :custom_data, :data,
        :callback_url, :nonce)
RETURNING *;

-- name: get_execution
SELECT * FROM executions WHERE id = :id;

-- name: find_retry
-- The retry of :id that is under way or succeeded (a failed one may be retried again).
SELECT * FROM executions
WHERE retry_of = :id AND status NOT IN ('error', 'crashed', 'canceled')
ORDER BY id DESC LIMIT 1;

-- name: get_execution_for_update
SELECT * FROM executions WHERE id = :id FOR UPDATE;

-- name: get_waits
SELECT * FROM waits WHERE execution_id = :id ORDER BY seq;

-- name: get_wait
SELECT * FROM waits WHERE execution_id = :id AND seq = :seq;

-- name: get_signed_wait
SELECT w.* FROM waits w JOIN executions e ON e.id = w.execution_id
WHERE w.execution_id = :id AND w.seq = :seq AND e.nonce = :nonce;

-- name: park
UPDATE executions SET status = 'waiting', wait_till = :reported_wait_till, wait_suffix = :wait_suffix
WHERE id = :id AND status = 'running'
RETURNING wait_seq;

-- name: insert_wait
INSERT INTO waits (execution_id, seq, parked_at, wait_till, webhook)
VALUES (:id, :seq, :now, :wait_till, :webhook);

-- name: take_early_resume
DELETE FROM early_resumes WHERE execution_id = :id AND seq = :seq
RETURNING method, suffix, payload, received_at, caller;

-- name: record_early_resume
INSERT INTO early_resumes (execution_id, seq, method, suffix, payload, received_at, caller)
SELECT :id::bigint, :seq::integer, :method::text, :suffix::text, :payload::text, :now::bigint,
       :caller::text
WHERE EXISTS (SELECT 1 FROM executions
              WHERE id = :id AND status = 'running' AND wait_seq = :seq AND nonce = :nonce)
ON CONFLICT DO NOTHING;

-- name: resume
UPDATE executions SET status = 'running', wait_till = NULL, wait_seq = wait_seq + 1
WHERE id = :id AND status = 'waiting' AND wait_seq = :seq
RETURNING callback_url;

-- name: mark_wait_resumed
UPDATE waits SET resumed_at = :now, resumed_by = :resumed_by, payload = :payload
WHERE execution_id = :id AND seq = :seq;

-- name: claim_due
UPDATE executions SET status = 'running', wait_till = NULL, wait_seq = wait_seq + 1
WHERE id IN (
    SELECT id FROM executions
    WHERE status = 'waiting' AND wait_till IS NOT NULL AND wait_till <= :now
    ORDER BY wait_till
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING id, wait_seq - 1 AS seq, callback_url;

-- name: next_deadline
SELECT min(wait_till) AS deadline FROM executions
WHERE status = 'waiting' AND wait_till IS NOT NULL;

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
  AND (:wait_seq::bigint IS NULL OR (status = 'waiting' AND wait_seq = :wait_seq))
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
-- "waitgate first API key": replicas starting together on an empty database take turns.
SELECT pg_advisory_xact_lock(7261530002);

-- name: count_api_keys
SELECT count(*) AS n FROM api_keys;

-- name: stop_many
UPDATE executions SET status = 'canceled', stopped_at = :now, wait_till = NULL
WHERE status IN (SELECT jsonb_array_elements_text(:statuses::jsonb))
  AND (:workflow_id::text IS NULL OR workflow_id = :workflow_id)
  AND (:project_id::text IS NULL OR project_id = :project_id)
  AND (:started_after::bigint IS NULL OR started_at > :started_after)
  AND (:started_before::bigint IS NULL OR started_at < :started_before)
RETURNING id, callback_url;

-- name: create_tag
INSERT INTO tags (id, name, created_at, updated_at, project_id)
VALUES (:id, :name, :now, :now, :project_id)
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: get_tag
SELECT * FROM tags WHERE id = :id;

-- name: list_tags
SELECT * FROM tags WHERE (:after::text IS NULL OR id > :after) ORDER BY id LIMIT :limit;

-- name: rename_tag
-- A key bound to a project (:project_id) renames only its project's tags no other project uses.
UPDATE tags SET name = :name, updated_at = :now
WHERE id = :id AND NOT EXISTS (SELECT 1 FROM tags t2 WHERE t2.name = :name AND t2.id <> :id)
  AND (:project_id::text IS NULL OR (tags.project_id = :project_id AND NOT EXISTS (
      SELECT 1 FROM execution_tags et JOIN executions e ON e.id = et.execution_id
      WHERE et.tag_id = tags.id AND e.project_id IS DISTINCT FROM :project_id)))
RETURNING *;

-- name: delete_tag
DELETE FROM tags WHERE id = :id
  AND (:project_id::text IS NULL OR (tags.project_id = :project_id AND NOT EXISTS (
      SELECT 1 FROM execution_tags et JOIN executions e ON e.id = et.execution_id
      WHERE et.tag_id = tags.id AND e.project_id IS DISTINCT FROM :project_id)))
RETURNING *;

-- name: tag_manageable
SELECT 1 AS ok FROM tags WHERE id = :id
  AND (:project_id::text IS NULL OR (tags.project_id = :project_id AND NOT EXISTS (
      SELECT 1 FROM execution_tags et JOIN executions e ON e.id = et.execution_id
      WHERE et.tag_id = tags.id AND e.project_id IS DISTINCT FROM :project_id)));

-- name: execution_tags
SELECT t.* FROM tags t JOIN execution_tags et ON et.tag_id = t.id
WHERE et.execution_id = :id ORDER BY t.name;

-- name: clear_execution_tags
DELETE FROM execution_tags WHERE execution_id = :id;

-- name: add_execution_tag
INSERT INTO execution_tags (execution_id, tag_id) VALUES (:id, :tag_id);

-- name: count_known_tags
SELECT count(*) AS n FROM tags WHERE id IN (SELECT jsonb_array_elements_text(:tag_ids::jsonb));

-- name: insert_delivery
INSERT INTO deliveries (id, execution_id, event, target_url, payload, created_at, window_start,
                        next_attempt_at)
VALUES (:id, :execution_id, :event, :target_url, :payload, :now, :now, :now);

-- name: claim_deliveries
UPDATE deliveries SET lease_until = :lease_until
WHERE id IN (
    SELECT id FROM deliveries
    WHERE status = 'pending' AND next_attempt_at <= :now
      AND (lease_until IS NULL OR lease_until <= :now)
    ORDER BY next_attempt_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING *;

-- name: next_delivery_due
SELECT min(greatest(next_attempt_at, coalesce(lease_until, 0))) AS due FROM deliveries
WHERE status = 'pending';

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
UPDATE deliveries
SET status = 'dead', attempts = attempts + 1, lease_until = NULL, last_error = :error
WHERE id = :id AND status = 'pending'
RETURNING execution_id, event;

-- name: crash_undelivered
UPDATE executions SET status = 'crashed', stopped_at = :now, error = :error
WHERE id = :id AND status = 'running';

-- name: get_delivery
SELECT * FROM deliveries WHERE id = :id;

-- name: execution_deliveries
SELECT * FROM deliveries WHERE execution_id = :id ORDER BY created_at, id;

-- name: execution_attempts
SELECT a.* FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE d.execution_id = :id ORDER BY a.id;

-- name: redeliver
UPDATE deliveries
SET status = 'pending', next_attempt_at = :now, window_start = :now, lease_until = NULL
WHERE id = :id AND status IN ('dead', 'delivered')
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
SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now;

-- name: prune_floor
SELECT id FROM executions
WHERE status IN ('success', 'error', 'crashed', 'canceled')
ORDER BY id DESC LIMIT 1 OFFSET :keep;

-- name: prune_batch
DELETE FROM executions WHERE id IN (
    SELECT id FROM executions
    WHERE status IN ('success', 'error', 'crashed', 'canceled')
      AND (stopped_at < :cutoff OR id <= :floor::bigint)
    ORDER BY id
    LIMIT :batch
);

-- name: record_attempt
INSERT INTO resume_attempts (execution_id, seq, attempted_at, method, status_code, outcome,
                             reason, ip, user_agent)
SELECT :execution_id::bigint, :seq::bigint, :attempted_at::bigint, :method::text,
       :status_code::bigint, :outcome::text, :reason::text, :ip::text, :user_agent::text
WHERE EXISTS (SELECT 1 FROM executions WHERE id = :execution_id);

-- name: trim_resume_attempts
DELETE FROM resume_attempts
WHERE execution_id = :execution_id::bigint AND outcome = :outcome::text AND id <= (
    SELECT id FROM resume_attempts WHERE execution_id = :execution_id AND outcome = :outcome
    ORDER BY id DESC LIMIT 1 OFFSET :keep::bigint
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
SELECT count(*) AS n FROM executions
WHERE status = 'waiting' AND wait_till IS NOT NULL AND wait_till <= :now;

-- name: lock_migrations
-- "waitgate migrations": replicas starting together take turns.
SELECT pg_advisory_xact_lock(7261530001);

-- name: create_schema_migrations
CREATE TABLE IF NOT EXISTS schema_migrations
    (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);

-- name: has_schema_migrations
SELECT 1 AS ok WHERE to_regclass('schema_migrations') IS NOT NULL;

-- name: applied_migrations
SELECT version FROM schema_migrations;

-- name: record_migration
INSERT INTO schema_migrations (version, applied_at) VALUES (:version, :now);
