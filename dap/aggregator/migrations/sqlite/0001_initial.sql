-- Cairn DAP aggregator schema (SQLite). Kept column-for-column in step with ../postgres.
CREATE TABLE hpke_keys (
    config_id INTEGER PRIMARY KEY,
    config BLOB NOT NULL,
    private_key BLOB NOT NULL
);

CREATE TABLE tasks (
    task_id BLOB PRIMARY KEY,
    role TEXT NOT NULL,
    parameters TEXT NOT NULL,
    vdaf_verify_key BLOB NOT NULL,
    collector_hpke_config BLOB NOT NULL,
    aggregator_auth_token TEXT,
    aggregator_auth_token_hash BLOB,
    collector_auth_token_hash BLOB
);

CREATE TABLE client_reports (
    task_id BLOB NOT NULL REFERENCES tasks (task_id),
    report_id BLOB NOT NULL,
    client_time INTEGER NOT NULL,
    public_extensions BLOB NOT NULL,
    public_share BLOB NOT NULL,
    leader_input_share BLOB NOT NULL,
    helper_encrypted_input_share BLOB NOT NULL,
    state TEXT NOT NULL,
    aggregation_job_id BLOB,
    PRIMARY KEY (task_id, report_id)
);
CREATE INDEX client_reports_by_state ON client_reports (task_id, state, client_time);

CREATE TABLE aggregation_jobs (
    task_id BLOB NOT NULL REFERENCES tasks (task_id),
    job_id BLOB NOT NULL,
    batch_id BLOB NOT NULL,
    state TEXT NOT NULL,
    lease_token BLOB,
    lease_expiry INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (task_id, job_id)
);
CREATE INDEX aggregation_jobs_by_lease ON aggregation_jobs (state, lease_expiry);

CREATE TABLE batch_buckets (
    task_id BLOB NOT NULL REFERENCES tasks (task_id),
    batch_id BLOB NOT NULL,
    bucket_start INTEGER NOT NULL,
    agg_param BLOB NOT NULL,
    aggregate_share BLOB NOT NULL,
    report_count INTEGER NOT NULL,
    checksum BLOB NOT NULL,
    min_time INTEGER NOT NULL,
    max_time INTEGER NOT NULL,
    collected INTEGER NOT NULL,
    PRIMARY KEY (task_id, batch_id, bucket_start)
);

CREATE TABLE aggregated_reports (
    task_id BLOB NOT NULL REFERENCES tasks (task_id),
    report_id BLOB NOT NULL,
    PRIMARY KEY (task_id, report_id)
);

CREATE TABLE helper_aggregation_jobs (
    task_id BLOB NOT NULL REFERENCES tasks (task_id),
    job_id BLOB NOT NULL,
    response BLOB NOT NULL,
    PRIMARY KEY (task_id, job_id)
);

CREATE TABLE collection_jobs (
    task_id BLOB NOT NULL REFERENCES tasks (task_id),
    job_id BLOB NOT NULL,
    request BLOB NOT NULL,
    interval_start INTEGER NOT NULL,
    interval_duration INTEGER NOT NULL,
    state TEXT NOT NULL,
    wait_reason TEXT NOT NULL,
    report_count INTEGER NOT NULL,
    leader_aggregate_share BLOB,
    checksum BLOB,
    result BLOB,
    error TEXT,
    lease_token BLOB,
    lease_expiry INTEGER NOT NULL,
    PRIMARY KEY (task_id, job_id)
);

CREATE TABLE helper_aggregate_shares (
    task_id BLOB NOT NULL REFERENCES tasks (task_id),
    share_id BLOB NOT NULL,
    response BLOB NOT NULL,
    PRIMARY KEY (task_id, share_id)
);

CREATE TABLE upload_counters (
    task_id BLOB NOT NULL REFERENCES tasks (task_id),
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (task_id, reason)
);
