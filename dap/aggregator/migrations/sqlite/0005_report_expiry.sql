-- Garbage collection and abuse limits (issue 18). Kept in step with ../postgres.
-- tasks.report_expiry_age: seconds after which a report is too old to upload and its rows
-- (report, replay record, buckets, jobs, collection jobs) are deleted; NULL keeps everything.
ALTER TABLE tasks ADD COLUMN report_expiry_age INTEGER;
-- The replay record keeps the report's time so it is deleted exactly when uploads of that
-- report are refused as too old. NULL (rows recorded before this migration): kept.
ALTER TABLE aggregated_reports ADD COLUMN client_time INTEGER;
CREATE INDEX aggregated_reports_by_time ON aggregated_reports (task_id, client_time);
CREATE INDEX client_reports_by_time ON client_reports (task_id, client_time);
CREATE INDEX client_reports_by_job ON client_reports (task_id, aggregation_job_id);
-- HPKE key rotation: when the key entered its current state (seconds since the epoch).
ALTER TABLE hpke_keys ADD COLUMN state_changed_at INTEGER NOT NULL DEFAULT 0;
-- Abuse limits: every collected time interval, so a late report for any time unit inside it is
-- refused (batch_collected) without a bucket per unit having to exist; deleted by the garbage
-- collector once the interval has expired.
CREATE TABLE collected_intervals (
    task_id BLOB NOT NULL REFERENCES tasks (task_id),
    batch_id BLOB NOT NULL,
    interval_start INTEGER NOT NULL,
    interval_end INTEGER NOT NULL,
    PRIMARY KEY (task_id, batch_id, interval_start, interval_end)
);
-- Helper: the latest report time of a finished aggregation job, and the end of the time
-- interval an aggregate share was computed for (time-precision units), for the garbage
-- collector. NULL (unknown, or a leader-selected batch): kept.
ALTER TABLE helper_aggregation_jobs ADD COLUMN max_client_time INTEGER;
ALTER TABLE helper_aggregate_shares ADD COLUMN interval_end INTEGER;
