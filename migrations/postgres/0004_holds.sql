-- Legal holds and anonymized stays (issue 16 §2-3): the same tables as the SQLite migration
-- migrations/0007_holds.sql (read it for what each column holds). Never edit after release.

CREATE TABLE legal_holds (
    hold_id   TEXT COLLATE "C" PRIMARY KEY,
    guest_id  TEXT COLLATE "C" NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    reason    TEXT COLLATE "C" NOT NULL,
    ticket    TEXT COLLATE "C" NOT NULL,
    until     TEXT COLLATE "C",
    placed_at TEXT COLLATE "C" NOT NULL,
    placed_by TEXT COLLATE "C" NOT NULL,
    lifted_at TEXT COLLATE "C",
    lifted_by TEXT COLLATE "C"
);
CREATE INDEX legal_holds_by_guest ON legal_holds (guest_id);

CREATE TABLE anonymized_stays (
    id        TEXT COLLATE "C" PRIMARY KEY,
    check_in  TEXT COLLATE "C",
    check_out TEXT COLLATE "C",
    amount    TEXT COLLATE "C",
    currency  TEXT COLLATE "C"
);
