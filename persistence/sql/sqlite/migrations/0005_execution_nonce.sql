-- A random nonce per execution, bound into its signed URLs, so that a URL names one execution
-- of one database (not whichever execution gets the same id after a reset, or in another
-- deployment sharing the signing keys). New executions get 32 hex digits at create; rows
-- created before this migration keep '' and, with it, URLs of the old token shape.

ALTER TABLE executions ADD COLUMN nonce TEXT NOT NULL DEFAULT '';
