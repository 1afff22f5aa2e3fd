-- Tags remember the project of the key that created them: a key bound to a project renames or
-- deletes only its project's tags that no other project's execution carries. Tags made before
-- this version (NULL) are managed by keys without a project only.
ALTER TABLE tags ADD COLUMN project_id TEXT;

-- An execution has at most one retry under way (or succeeded); retry finds it by retry_of.
CREATE INDEX executions_retry_of ON executions (retry_of) WHERE retry_of IS NOT NULL;
