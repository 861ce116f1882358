-- Who gave a consent (issue 16 §1, REQ-10); the same columns as the SQLite migration
-- 0006_minors.sql, whose comments explain them. Never edit after release.
ALTER TABLE consent_events
    ADD COLUMN given_by TEXT COLLATE "C" CHECK (given_by IN ('guest', 'guardian')),
    ADD COLUMN guardian_relationship TEXT COLLATE "C",
    ADD COLUMN guardian_guest_id TEXT COLLATE "C",
    ADD COLUMN guardian_ticket TEXT COLLATE "C";

ALTER TABLE consents
    ADD COLUMN given_by TEXT COLLATE "C" CHECK (given_by IN ('guest', 'guardian')),
    ADD COLUMN guardian_relationship TEXT COLLATE "C",
    ADD COLUMN guardian_guest_id TEXT COLLATE "C",
    ADD COLUMN guardian_ticket TEXT COLLATE "C";
