-- Issue 16 §4 (REQ-05, REQ-06): the twin of SQLite 0009_notices_refusals.sql. Consents name a
-- registered notice and store the SHA-256 of its text; each ledger entry says who prompted it;
-- refusals are recorded (Network Data Security Regulation Art. 22(5)). Additive only.
ALTER TABLE consent_events ADD COLUMN notice_sha256 TEXT COLLATE "C";
ALTER TABLE consent_events ADD COLUMN initiated_by TEXT COLLATE "C";
ALTER TABLE consents ADD COLUMN notice_sha256 TEXT COLLATE "C";

CREATE TABLE consent_refusals (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    guest_id       TEXT COLLATE "C" NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    purpose        TEXT COLLATE "C" NOT NULL,
    notice_version TEXT COLLATE "C" NOT NULL,
    notice_sha256  TEXT COLLATE "C" NOT NULL,
    channel        TEXT COLLATE "C" NOT NULL,
    initiated_by   TEXT COLLATE "C" NOT NULL CHECK (initiated_by IN ('hotel', 'guest')),
    actor          TEXT COLLATE "C" NOT NULL,
    at             TEXT COLLATE "C" NOT NULL
);
CREATE INDEX consent_refusals_by_guest ON consent_refusals (guest_id, purpose, id);
