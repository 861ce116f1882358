-- GuestVault schema (issue 16 §3): retention stages; the same tables as the SQLite migration
-- 0008_retention_stages.sql (see its comments). Never edit after release.

CREATE TABLE retention_stages (
    guest_id   TEXT COLLATE "C" NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    class      TEXT COLLATE "C" NOT NULL,
    action     TEXT COLLATE "C" NOT NULL CHECK (action IN ('restrict', 'pseudonymize')),
    anchor     TEXT COLLATE "C" NOT NULL,
    applied_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (guest_id, class, action)
);

CREATE TABLE pseudonymized_fields (
    guest_id TEXT COLLATE "C" NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    field    TEXT COLLATE "C" NOT NULL,
    at       TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (guest_id, field)
);
