-- Ferrotron's store, SQLite dialect. Times are integers: microseconds since
-- the Unix epoch, UTC (the same in both dialects, so queries are shared).

CREATE TABLE testcases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    ref_url TEXT
);

CREATE TABLE groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    description TEXT,
    ref_url TEXT
);

CREATE TABLE results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    testcase_id BIGINT NOT NULL REFERENCES testcases (id),
    outcome TEXT NOT NULL,
    note TEXT,
    ref_url TEXT,
    submit_time BIGINT NOT NULL
);
CREATE INDEX results_submit_time ON results (submit_time, id);
CREATE INDEX results_testcase ON results (testcase_id, submit_time);

CREATE TABLE results_groups (
    result_id BIGINT NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (result_id, group_id)
);
CREATE INDEX results_groups_group ON results_groups (group_id);

-- One row per value: a list in a result's data is several rows.
CREATE TABLE result_data (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    result_id BIGINT NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX result_data_key_value ON result_data (key, value, result_id);
CREATE INDEX result_data_result ON result_data (result_id);

CREATE TABLE jobs (
    uuid TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    item TEXT NOT NULL,
    item_type TEXT NOT NULL,
    arch TEXT NOT NULL,
    formula TEXT NOT NULL,
    host TEXT,
    exit_status BIGINT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX jobs_created ON jobs (created_at);

CREATE TABLE job_transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_uuid TEXT NOT NULL REFERENCES jobs (uuid) ON DELETE CASCADE,
    state TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX job_transitions_job ON job_transitions (job_uuid, id);

-- Artifacts are files under <data dir>/artifacts/<job uuid>/; rows point at them.
CREATE TABLE artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_uuid TEXT NOT NULL REFERENCES jobs (uuid) ON DELETE CASCADE,
    path TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (job_uuid, path)
);

-- Only the SHA-256 of a token is kept; the token itself is shown once.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
