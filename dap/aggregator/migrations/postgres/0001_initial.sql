-- Cairn DAP aggregator schema (PostgreSQL). Kept column-for-column in step with ../sqlite.
CREATE TABLE hpke_keys (
    config_id BIGINT PRIMARY KEY,
    config BYTEA NOT NULL,
    private_key BYTEA NOT NULL
);

CREATE TABLE tasks (
    task_id BYTEA PRIMARY KEY,
    role TEXT NOT NULL,
    parameters TEXT NOT NULL,
    vdaf_verify_key BYTEA NOT NULL,
    collector_hpke_config BYTEA NOT NULL,
    aggregator_auth_token TEXT,
    aggregator_auth_token_hash BYTEA,
    collector_auth_token_hash BYTEA
);

CREATE TABLE client_reports (
    task_id BYTEA NOT NULL REFERENCES tasks (task_id),
    report_id BYTEA NOT NULL,
    client_time BIGINT NOT NULL,
    public_extensions BYTEA NOT NULL,
    public_share BYTEA NOT NULL,
    leader_input_share BYTEA NOT NULL,
    helper_encrypted_input_share BYTEA NOT NULL,
    state TEXT NOT NULL,
    aggregation_job_id BYTEA,
    PRIMARY KEY (task_id, report_id)
);
CREATE INDEX client_reports_by_state ON client_reports (task_id, state, client_time);

CREATE TABLE aggregation_jobs (
    task_id BYTEA NOT NULL REFERENCES tasks (task_id),
    job_id BYTEA NOT NULL,
    batch_id BYTEA NOT NULL,
    state TEXT NOT NULL,
    lease_token BYTEA,
    lease_expiry BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    PRIMARY KEY (task_id, job_id)
);
CREATE INDEX aggregation_jobs_by_lease ON aggregation_jobs (state, lease_expiry);

CREATE TABLE batch_buckets (
    task_id BYTEA NOT NULL REFERENCES tasks (task_id),
    batch_id BYTEA NOT NULL,
    bucket_start BIGINT NOT NULL,
    agg_param BYTEA NOT NULL,
    aggregate_share BYTEA NOT NULL,
    report_count BIGINT NOT NULL,
    checksum BYTEA NOT NULL,
    min_time BIGINT NOT NULL,
    max_time BIGINT NOT NULL,
    collected BIGINT NOT NULL,
    PRIMARY KEY (task_id, batch_id, bucket_start)
);

CREATE TABLE aggregated_reports (
    task_id BYTEA NOT NULL REFERENCES tasks (task_id),
    report_id BYTEA NOT NULL,
    PRIMARY KEY (task_id, report_id)
);

CREATE TABLE helper_aggregation_jobs (
    task_id BYTEA NOT NULL REFERENCES tasks (task_id),
    job_id BYTEA NOT NULL,
    response BYTEA NOT NULL,
    PRIMARY KEY (task_id, job_id)
);

CREATE TABLE collection_jobs (
    task_id BYTEA NOT NULL REFERENCES tasks (task_id),
    job_id BYTEA NOT NULL,
    request BYTEA NOT NULL,
    interval_start BIGINT NOT NULL,
    interval_duration BIGINT NOT NULL,
    state TEXT NOT NULL,
    wait_reason TEXT NOT NULL,
    report_count BIGINT NOT NULL,
    leader_aggregate_share BYTEA,
    checksum BYTEA,
    result BYTEA,
    error TEXT,
    lease_token BYTEA,
    lease_expiry BIGINT NOT NULL,
    PRIMARY KEY (task_id, job_id)
);

CREATE TABLE helper_aggregate_shares (
    task_id BYTEA NOT NULL REFERENCES tasks (task_id),
    share_id BYTEA NOT NULL,
    response BYTEA NOT NULL,
    PRIMARY KEY (task_id, share_id)
);

CREATE TABLE upload_counters (
    task_id BYTEA NOT NULL REFERENCES tasks (task_id),
    reason TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (task_id, reason)
);
