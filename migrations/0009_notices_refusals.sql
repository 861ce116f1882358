-- Issue 16 §4 (REQ-05, REQ-06): consents name a registered notice and store the SHA-256 of its
-- text; each ledger entry says who prompted it (hotel or guest); refusals are recorded so a
-- hotel does not ask again too soon (Network Data Security Regulation Art. 22(5)).
-- Additive only: columns are added, no table is rebuilt.
ALTER TABLE consent_events ADD COLUMN notice_sha256 TEXT;
ALTER TABLE consent_events ADD COLUMN initiated_by TEXT;
ALTER TABLE consents ADD COLUMN notice_sha256 TEXT;

-- One row per recorded refusal (append-only, deleted with the guest on erasure).
CREATE TABLE consent_refusals (
    id             INTEGER PRIMARY KEY,
    guest_id       TEXT NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    purpose        TEXT NOT NULL,
    notice_version TEXT NOT NULL,
    notice_sha256  TEXT NOT NULL,
    channel        TEXT NOT NULL,
    initiated_by   TEXT NOT NULL CHECK (initiated_by IN ('hotel', 'guest')),
    actor          TEXT NOT NULL,
    at             TEXT NOT NULL
) STRICT;
CREATE INDEX consent_refusals_by_guest ON consent_refusals (guest_id, purpose, id);
