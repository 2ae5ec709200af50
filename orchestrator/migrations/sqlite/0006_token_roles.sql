-- What a token may do (issue 14): `reader` reads, `reporter` also records
-- results, artifacts, job reports and messages, `operator` also cancels
-- jobs and drives the cache. Tokens made before roles existed could do
-- everything, so they keep that as operators.
-- The same statement in both dialects.

ALTER TABLE api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'operator';
