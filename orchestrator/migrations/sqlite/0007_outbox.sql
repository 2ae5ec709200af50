-- Messages to publish (issue 16): written in the transaction that stores
-- what they tell (a result, a job's move), sent after commit by the
-- publisher, deleted once the broker confirmed them. A row is claimed by
-- one publisher at a time (`claimed_until`); a publisher that dies leaves
-- its claim to lapse, so every row is sent at least once.
-- `body` is the message's JSON, or for a result's messages the facts known
-- only at insert time (the previous outcome); `result_id` names the result
-- whose API form the publisher renders into the body.

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    body TEXT NOT NULL,
    result_id BIGINT,
    created_at BIGINT NOT NULL,
    claimed_until BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0
);
