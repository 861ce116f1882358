-- GuestVault schema v1. Never edit after release: add a new migration instead.
--
-- Personal data lives only as ciphertext (guest_fields, stays) under a per-guest data key
-- that is itself stored only wrapped (guest_keys). Deleting a guest's key row crypto-shreds
-- whatever copy of its ciphertext survives elsewhere. Audit rows name guests by opaque id
-- only, so the trail survives erasure.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE guests (
    guest_id         TEXT PRIMARY KEY,
    created_at       TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('active', 'restricted', 'erased')),
    last_activity_at TEXT NOT NULL,
    -- Latest check-out date over the guest's stays: retention periods run from it.
    last_checkout    TEXT
) STRICT, WITHOUT ROWID;

-- One wrapped DEK per guest. Indexed by KEK version so rotation can find what to rewrap.
CREATE TABLE guest_keys (
    guest_id    TEXT PRIMARY KEY REFERENCES guests (guest_id) ON DELETE CASCADE,
    kek_version INTEGER NOT NULL,
    wrapped_dek BLOB NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX guest_keys_by_version ON guest_keys (kek_version);

-- One AES-256-GCM ciphertext per field; AAD binds guest id and field name.
CREATE TABLE guest_fields (
    guest_id   TEXT NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    field      TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (guest_id, field)
) STRICT, WITHOUT ROWID;

-- Keyed HMAC digests of normalized searchable values (REQ-12). Exact match only.
CREATE TABLE blind_index (
    field    TEXT NOT NULL,
    digest   BLOB NOT NULL,
    guest_id TEXT NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    PRIMARY KEY (field, digest, guest_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX blind_index_by_guest ON blind_index (guest_id);

-- A stay is one encrypted JSON document. check_out stays in clear (a date with an opaque id)
-- because the retention sweeper must find expired stays without decrypting everything.
CREATE TABLE stays (
    stay_id    TEXT PRIMARY KEY,
    guest_id   TEXT NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    check_out  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    ciphertext BLOB NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX stays_by_guest ON stays (guest_id);
CREATE INDEX stays_by_check_out ON stays (check_out);

-- Consent ledger: every grant and withdrawal appended (PIPL Art. 14-15, REQ-05) ...
CREATE TABLE consent_events (
    id             INTEGER PRIMARY KEY,
    guest_id       TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('granted', 'withdrawn')),
    separate       INTEGER NOT NULL,
    notice_version TEXT,
    channel        TEXT,
    actor          TEXT NOT NULL,
    at             TEXT NOT NULL
) STRICT;
CREATE INDEX consent_events_by_guest ON consent_events (guest_id, purpose, id);

-- ... and the current view, one row per guest and purpose.
CREATE TABLE consents (
    guest_id       TEXT NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    purpose        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('granted', 'withdrawn')),
    separate       INTEGER NOT NULL,
    notice_version TEXT,
    channel        TEXT,
    granted_at     TEXT,
    withdrawn_at   TEXT,
    PRIMARY KEY (guest_id, purpose)
) STRICT, WITHOUT ROWID;

-- The audit trail: hash-chained, append-only (REQ-18). hash = SHA-256(prev_hash | canonical
-- event JSON); see src/audit/mod.rs for the canonical encoding.
CREATE TABLE audit_events (
    seq           INTEGER PRIMARY KEY,
    ts            TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    actor         TEXT NOT NULL,
    role          TEXT NOT NULL,
    purpose       TEXT,
    action        TEXT NOT NULL,
    guest_id      TEXT,
    fields        TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('allowed', 'denied', 'error')),
    reason        TEXT,
    rules         TEXT NOT NULL,
    justification TEXT,
    prev_hash     BLOB NOT NULL,
    hash          BLOB NOT NULL
) STRICT;
CREATE INDEX audit_events_by_ts ON audit_events (ts);
CREATE INDEX audit_events_by_guest ON audit_events (guest_id, seq);

-- Ed25519 signatures over (seq, hash): anchors an exported or purged chain.
CREATE TABLE audit_checkpoints (
    seq       INTEGER PRIMARY KEY,
    hash      BLOB NOT NULL,
    signed_at TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    signature BLOB NOT NULL
) STRICT;

-- Nothing may rewrite history. The only removal path is the retention purge, which must first
-- record a signed checkpoint as the new anchor and set the `audit_purge_through` meta key.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN old.seq > COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'audit_purge_through'), 0)
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
