-- GuestVault schema v5 (issue 12): correction requests, registered values, value hashes.
-- Never edit after release.
--
-- 1. Correction requests (PIPL Art. 46, REQ-30): a guest's correction of an identity or
--    business field is not applied directly; it waits for a DSR officer to check the document
--    (`pending_verification`) and is then applied (`completed`) or refused (`rejected`). The
--    status CHECK cannot be altered in SQLite, so dsr_requests is rebuilt, every row kept.
CREATE TABLE dsr_requests_v3 (
    request_id   TEXT PRIMARY KEY,
    subject      BLOB NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('erasure', 'access', 'correction')),
    status       TEXT NOT NULL CHECK (status IN ('received', 'completed', 'partially_completed', 'pending_verification', 'rejected')),
    received_at  TEXT NOT NULL,
    completed_at TEXT,
    due_at       TEXT NOT NULL,
    receipt      TEXT NOT NULL
) STRICT;
INSERT INTO dsr_requests_v3 (request_id, subject, kind, status, received_at, completed_at, due_at, receipt)
    SELECT request_id, subject, kind, status, received_at, completed_at, due_at, receipt FROM dsr_requests;
DROP TABLE dsr_requests;
ALTER TABLE dsr_requests_v3 RENAME TO dsr_requests;
CREATE INDEX dsr_requests_by_subject ON dsr_requests (subject, received_at);
CREATE INDEX dsr_requests_by_due ON dsr_requests (status, due_at);

-- The proposed values of a pending correction: one JSON document encrypted under the guest's
-- DEK (AAD `correction:<request_id>`), never in clear. Deleted when the request is decided,
-- and with the guest (crypto-shredding: the DEK goes too). The guest id is here, not in
-- dsr_requests, so a decided or erased request names nobody.
CREATE TABLE correction_requests (
    request_id TEXT PRIMARY KEY,
    guest_id   TEXT NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    fields     TEXT NOT NULL,
    ciphertext BLOB NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX correction_requests_by_guest ON correction_requests (guest_id);

-- 2. The value registered at check-in (旅馆业治安管理办法 Art. 6): when a correction replaces a
--    field the police_report purpose reads, the ciphertext it replaces is kept here (the first
--    one only), readable under police_report and data-subject requests, deleted with the field
--    by erasure or the retention sweep of its class, and with the guest.
CREATE TABLE guest_field_history (
    guest_id    TEXT NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    field       TEXT NOT NULL,
    ciphertext  BLOB NOT NULL,
    replaced_at TEXT NOT NULL,
    PRIMARY KEY (guest_id, field)
) STRICT, WITHOUT ROWID;

-- 3. Keyed hashes of corrected values in the audit trail (REQ-30): NULL for every other event.
--    Adding a column fires no UPDATE trigger; old rows keep their hashes.
ALTER TABLE audit_events ADD COLUMN value_hashes TEXT;
