-- Data-subject requests (erasure, access). A request is keyed by `subject`, an HMAC of the
-- guest id under a key derived from the keyring, never by the id itself: after a full erasure
-- no row outside the audit trail names the guest, yet a repeated request still finds its
-- receipt. The receipt holds field names, classes, legal bases and dates only, never values.
CREATE TABLE dsr_requests (
    request_id   TEXT PRIMARY KEY,
    subject      BLOB NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('erasure', 'access')),
    status       TEXT NOT NULL CHECK (status IN ('received', 'completed', 'partially_completed')),
    received_at  TEXT NOT NULL,
    completed_at TEXT,
    due_at       TEXT NOT NULL,
    receipt      TEXT NOT NULL
) STRICT;
CREATE INDEX dsr_requests_by_subject ON dsr_requests (subject, received_at);
CREATE INDEX dsr_requests_by_due ON dsr_requests (status, due_at);
