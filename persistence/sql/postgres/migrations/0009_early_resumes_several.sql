-- Several early calls are kept per wait (numbered n = 1, 2, …, at most a few), so a forged call
-- that came first cannot crowd out the genuine one: the park applies the oldest its checks admit.

ALTER TABLE early_resumes ADD COLUMN n BIGINT NOT NULL DEFAULT 1;
ALTER TABLE early_resumes ALTER COLUMN n DROP DEFAULT;
ALTER TABLE early_resumes DROP CONSTRAINT early_resumes_pkey;
ALTER TABLE early_resumes ADD PRIMARY KEY (execution_id, seq, n);
