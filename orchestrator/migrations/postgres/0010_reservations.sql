-- Reservations (issue 17): a root VM for a task author, for a while. A
-- `reservation` is a queued job of its own (task `ferrotron.reservation`),
-- so it waits for capacity like any job; a `hold` keeps the VM of a failed
-- job (`job`) instead of destroying it; `hold_limit`: how many VMs its
-- requester may have held at once by the rule that asked. The same statements in both
-- dialects.
CREATE TABLE reservations (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    job TEXT NOT NULL,
    requester TEXT NOT NULL,
    ssh_key TEXT NOT NULL,
    ttl_secs BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    git_repo TEXT,
    git_ref TEXT,
    host TEXT,
    port BIGINT,
    host_key TEXT,
    vm_name TEXT,
    hold_limit BIGINT,
    release_requested BIGINT NOT NULL DEFAULT 0,
    ended_at BIGINT,
    end_reason TEXT
);
CREATE INDEX reservations_active ON reservations (ended_at, requester);
CREATE INDEX reservations_job ON reservations (job);
