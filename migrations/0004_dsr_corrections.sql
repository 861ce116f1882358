-- Corrections (PIPL Art. 46) are data-subject requests too: a guest's own correction, or one a
-- DSR officer makes on its behalf, is recorded with its due date (REQ-32) like an access or an
-- erasure. SQLite cannot alter a CHECK constraint, so the table is rebuilt with the same
-- columns and indexes; every row is kept.
CREATE TABLE dsr_requests_v2 (
    request_id   TEXT PRIMARY KEY,
    subject      BLOB NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('erasure', 'access', 'correction')),
    status       TEXT NOT NULL CHECK (status IN ('received', 'completed', 'partially_completed')),
    received_at  TEXT NOT NULL,
    completed_at TEXT,
    due_at       TEXT NOT NULL,
    receipt      TEXT NOT NULL
) STRICT;
INSERT INTO dsr_requests_v2 (request_id, subject, kind, status, received_at, completed_at, due_at, receipt)
    SELECT request_id, subject, kind, status, received_at, completed_at, due_at, receipt FROM dsr_requests;
DROP TABLE dsr_requests;
ALTER TABLE dsr_requests_v2 RENAME TO dsr_requests;
CREATE INDEX dsr_requests_by_subject ON dsr_requests (subject, received_at);
CREATE INDEX dsr_requests_by_due ON dsr_requests (status, due_at);
