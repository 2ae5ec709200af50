-- The scheduler's pick (issue 20): a claim reads the head of each class of
-- queued jobs instead of sorting the whole queue, and the jobs in progress
-- per task from a counter instead of counting them.
-- The same statements in both dialects.

-- A class is what orders and places a job besides its age: its task,
-- priority and recorded size (-1: not recorded, the claiming worker's
-- default). A row is added when a job of the class becomes queued and
-- removed only by the sweep once no queued job has the class: every queued
-- job's class has a row, a row may have no queued job.
CREATE TABLE queue_classes (
    task TEXT NOT NULL,
    priority BIGINT NOT NULL,
    vcpus BIGINT NOT NULL,
    memory_mib BIGINT NOT NULL,
    PRIMARY KEY (task, priority, vcpus, memory_mib)
);

INSERT INTO queue_classes (task, priority, vcpus, memory_mib)
SELECT DISTINCT CAST(COALESCE(task, '') AS TEXT), priority,
    CAST(COALESCE(vcpus, -1) AS BIGINT), CAST(COALESCE(memory_mib, -1) AS BIGINT)
FROM jobs WHERE queued = 1 AND state = 'queued';

-- A class's queued jobs, oldest first: its head is one index seek. This
-- replaces jobs_queue (queued, state, priority, created_at), whose prefix
-- it keeps: with the same first columns a planner without statistics yet
-- (a fresh PostgreSQL table) took that one and filtered every queued job
-- of the priority. The CASTs give the expressions a type: SQLite uses an
-- index on an expression for a comparison with a typed column only then.
DROP INDEX jobs_queue;
CREATE INDEX jobs_queue_class ON jobs (
    queued, state, CAST(COALESCE(task, '') AS TEXT), priority,
    CAST(COALESCE(vcpus, -1) AS BIGINT), CAST(COALESCE(memory_mib, -1) AS BIGINT),
    created_at, uuid, not_before
);

-- Jobs in progress (scheduled to reporting) per task, for fairness: kept
-- by every move of a queued job in the move's transaction.
CREATE TABLE task_load (
    task TEXT PRIMARY KEY,
    running BIGINT NOT NULL
);

INSERT INTO task_load (task, running)
SELECT CAST(COALESCE(task, '') AS TEXT), COUNT(*) FROM jobs
WHERE queued = 1 AND state IN ('scheduled', 'booting', 'running', 'reporting')
GROUP BY CAST(COALESCE(task, '') AS TEXT);
