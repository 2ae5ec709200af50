-- Capacity and placement (issue 6): what each job's VM needs, and the
-- hosts that run jobs with what each offers and uses. The same statements
-- in both dialects.

-- vCPUs and memory of the job's VM (its image's manifest), recorded at
-- enqueue when the image is known; NULL: the claiming worker's default.
ALTER TABLE jobs ADD COLUMN vcpus BIGINT;
ALTER TABLE jobs ADD COLUMN memory_mib BIGINT;
-- The fairness count (jobs in progress per task) looks rows up by task.
CREATE INDEX jobs_task_state ON jobs (task, state);

-- One row per worker host, written by its scheduler at start and on every
-- heartbeat: its capacity and what it uses now.
CREATE TABLE hosts (
    name TEXT PRIMARY KEY,
    worker TEXT NOT NULL,
    vcpus BIGINT NOT NULL,
    memory_mib BIGINT NOT NULL,
    max_vms BIGINT NOT NULL,
    used_vcpus BIGINT NOT NULL DEFAULT 0,
    used_memory_mib BIGINT NOT NULL DEFAULT 0,
    running BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    heartbeat BIGINT NOT NULL
);
