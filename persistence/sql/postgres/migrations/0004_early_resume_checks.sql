-- An early resume keeps what the caller checks of the wait it names need (headers, raw body,
-- client address, as JSON), so the park judges it by that wait's checks; NULL for calls kept
-- before this version (judged as showing nothing).

ALTER TABLE early_resumes ADD COLUMN caller TEXT;
