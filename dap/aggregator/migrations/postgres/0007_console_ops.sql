-- The console's shared state for running more than one console (issue 18): log-in failure
-- counters every instance on this database sees, and collected results an account chose to
-- store for its task pages' charts. Kept in step with ../sqlite.
-- Times are seconds since the epoch.
CREATE TABLE console_login_failures (
    -- `e:<address>` or `c:<client IP>`.
    limit_key TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    failures BIGINT NOT NULL
);
CREATE INDEX console_login_failures_by_window ON console_login_failures (window_start);
-- One row per collected batch: stored by the collector after it decrypted the result (the
-- console has no collector key). `batch` names the batch: `<start>+<duration>` in seconds
-- for a time interval, the batch ID for a leader-selected batch.
CREATE TABLE console_results (
    task_id TEXT NOT NULL REFERENCES console_tasks (task_id),
    batch TEXT NOT NULL,
    interval_start BIGINT NOT NULL,
    interval_duration BIGINT NOT NULL,
    report_count BIGINT NOT NULL,
    aggregate_result TEXT NOT NULL,
    stored_at BIGINT NOT NULL,
    PRIMARY KEY (task_id, batch)
);
