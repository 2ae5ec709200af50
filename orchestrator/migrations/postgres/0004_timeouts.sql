-- Per-job time-outs (issue 6): the whole job (boot + task + collect) must end
-- within `timeout_secs` seconds, else it is stopped, its VM destroyed, and
-- it ends in `error`. NULL: the service's default (`serve --job-timeout`),
-- else the formula's action time-outs only.
-- The same statement in both dialects.

ALTER TABLE jobs ADD COLUMN timeout_secs BIGINT;
