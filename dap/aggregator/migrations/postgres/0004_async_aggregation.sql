-- Asynchronous aggregation jobs (DAP-18 §3.1). Kept in step with ../sqlite.
-- Leader: helper_job_id is the helper's ID for the job once the helper has deferred its answer;
-- the driver then polls that resource with GET instead of sending the initialization again.
ALTER TABLE aggregation_jobs ADD COLUMN helper_job_id BYTEA;
-- Helper: a job is 'processing' (request stored, prepared later by the helper's driver under a
-- lease), 'finished' (response stored) or 'deleted' (abandoned by the leader; what it
-- committed stays committed).
ALTER TABLE helper_aggregation_jobs ADD COLUMN state TEXT NOT NULL DEFAULT 'finished';
ALTER TABLE helper_aggregation_jobs ADD COLUMN request BYTEA;
ALTER TABLE helper_aggregation_jobs ADD COLUMN lease_token BYTEA;
ALTER TABLE helper_aggregation_jobs ADD COLUMN lease_expiry BIGINT NOT NULL DEFAULT 0;
CREATE INDEX helper_aggregation_jobs_by_lease ON helper_aggregation_jobs (state, lease_expiry);
