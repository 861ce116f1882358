-- GuestVault schema (issue 16 §3): retention stages. Never edit after release.
--
-- The stage each guest's class has reached is decided from the dates (the class's anchor,
-- e.g. the last check-out); these tables only record what the sweeper did, so that a second
-- sweep does nothing more and so that a pseudonymized field is known. Field and class names
-- and dates only: no personal data. Both go with the guest (crypto-shredding).

-- A stage the sweeper applied (and audited) to one guest's class, for the anchor date it was
-- computed from: a new stay moves the anchor, and the stage is applied again when it is due.
CREATE TABLE retention_stages (
    guest_id   TEXT NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    class      TEXT NOT NULL,
    action     TEXT NOT NULL CHECK (action IN ('restrict', 'pseudonymize')),
    anchor     TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (guest_id, class, action)
) STRICT, WITHOUT ROWID;

-- A field whose ciphertext was deleted by a pseudonymize stage while its keyed blind-index
-- entry was kept (an exact-match search still finds the guest). Removed when a new value is
-- written, and when the field's class period ends (with the blind-index entry).
CREATE TABLE pseudonymized_fields (
    guest_id TEXT NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    field    TEXT NOT NULL,
    at       TEXT NOT NULL,
    PRIMARY KEY (guest_id, field)
) STRICT, WITHOUT ROWID;
