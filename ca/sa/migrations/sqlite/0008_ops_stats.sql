-- What the public statistics page (/stats) shows beyond issuance: per endpoint, the
-- service-level-indicator events each process counted (added every minute, per UTC day), and
-- each CT log's tree size per UTC day (the largest seen). The page reads at most 90 days of
-- the first (one row per endpoint and day) and a year of the second.
-- Keep in step with ../postgres/0008_ops_stats.sql.

CREATE TABLE stats_sli_daily (
    day INTEGER NOT NULL,
    listener TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    valid INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    PRIMARY KEY (day, listener, endpoint)
) STRICT;

CREATE TABLE stats_ct_log_daily (
    day INTEGER NOT NULL,
    log TEXT NOT NULL,
    tree_size INTEGER NOT NULL,
    PRIMARY KEY (day, log)
) STRICT;
