-- The durable job queue (issue 6): what to run, when it may run again, and
-- which worker holds it (a lease that expires, so several workers on
-- several hosts share one queue and a dead worker's jobs come back).
-- The same statements in both dialects.

ALTER TABLE jobs ADD COLUMN message_id TEXT;
ALTER TABLE jobs ADD COLUMN topic TEXT;
ALTER TABLE jobs ADD COLUMN task TEXT;
ALTER TABLE jobs ADD COLUMN repo TEXT;
ALTER TABLE jobs ADD COLUMN git_ref TEXT;
ALTER TABLE jobs ADD COLUMN task_path TEXT;
ALTER TABLE jobs ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN image TEXT;
ALTER TABLE jobs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN max_attempts BIGINT NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN not_before BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires BIGINT;
ALTER TABLE jobs ADD COLUMN last_error TEXT;
ALTER TABLE jobs ADD COLUMN queued BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_queue ON jobs (queued, state, priority, created_at);
CREATE INDEX jobs_lease ON jobs (state, lease_expires);
CREATE INDEX jobs_message ON jobs (message_id);

-- One row per message ever accepted: the same id again is a duplicate.
CREATE TABLE messages (
    message_id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    jobs BIGINT NOT NULL
);

-- Host-wide switches (`idle`).
CREATE TABLE host_flags (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
