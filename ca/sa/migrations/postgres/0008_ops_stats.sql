-- What the public statistics page (/stats) shows beyond issuance: per endpoint, the
-- service-level-indicator events each process counted (added every minute, per UTC day), and
-- each CT log's tree size per UTC day (the largest seen). The page reads at most 90 days of
-- the first (one row per endpoint and day) and a year of the second.
-- Keep in step with ../sqlite/0008_ops_stats.sql.

CREATE TABLE stats_sli_daily (
    day BIGINT NOT NULL,
    listener TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    valid BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    PRIMARY KEY (day, listener, endpoint)
);

CREATE TABLE stats_ct_log_daily (
    day BIGINT NOT NULL,
    log TEXT NOT NULL,
    tree_size BIGINT NOT NULL,
    PRIMARY KEY (day, log)
);
