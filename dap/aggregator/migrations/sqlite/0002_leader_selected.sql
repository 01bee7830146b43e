-- Leader-selected batch mode: the leader's batches and which batch each report and
-- collection job belongs to (seq: creation order within the task). Kept in step with ../postgres.
ALTER TABLE client_reports ADD COLUMN batch_id BLOB;
ALTER TABLE collection_jobs ADD COLUMN batch_id BLOB;

CREATE TABLE leader_batches (
    task_id BLOB NOT NULL REFERENCES tasks (task_id),
    batch_id BLOB NOT NULL,
    state TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (task_id, batch_id)
);
CREATE INDEX client_reports_by_batch ON client_reports (task_id, batch_id, state);
