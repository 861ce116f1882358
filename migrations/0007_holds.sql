-- GuestVault schema v7 (issue 16 §2-3): legal holds and anonymized stays. Never edit after
-- release.
--
-- 1. Legal holds (REQ-23; PIPL Art. 47(2)): while a hold stands, the retention sweeper purges
--    nothing of its guest and an erasure restricts instead of deleting. `reason` is a code of
--    `[hold_reasons]` in access.toml and `ticket` a case id (`[A-Za-z0-9._-]{1,40}`): never
--    free text. `until` (a date, inclusive) lets the hold lapse by itself; `lifted_at` is set
--    when an officer lifts it. The rows go with the guest (crypto-shredding).
CREATE TABLE legal_holds (
    hold_id   TEXT PRIMARY KEY,
    guest_id  TEXT NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    reason    TEXT NOT NULL,
    ticket    TEXT NOT NULL,
    until     TEXT,
    placed_at TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    lifted_at TEXT,
    lifted_by TEXT
) STRICT, WITHOUT ROWID;
CREATE INDEX legal_holds_by_guest ON legal_holds (guest_id);

-- 2. Stays anonymized by an erasure or at the end of their period when the stay class says
--    `anonymize = true` (legal analysis §(b) #8): dates, amount and currency only, in plain,
--    with a random id and no guest id, no stay id and no time of anonymization, so nothing
--    links a row back to the guest or to the audit event of the erasure.
CREATE TABLE anonymized_stays (
    id        TEXT PRIMARY KEY,
    check_in  TEXT,
    check_out TEXT,
    amount    TEXT,
    currency  TEXT
) STRICT, WITHOUT ROWID;
