-- GuestVault schema for PostgreSQL, v1 (issue 14). The same tables, columns and guards as the
-- SQLite schema at migrations/0001-0005 (read those for what each table holds); applied by one
-- node at a time, under an advisory lock. Never edit after release: add a new migration.
--
-- Types: TEXT where SQLite has TEXT (timestamps stay the vault's own fixed-width UTC strings,
-- so ordering and the audit chain's canonical form are the same in both backends), BYTEA for
-- BLOB, BIGINT for INTEGER, BOOLEAN for the 0/1 `separate` flags. Every TEXT column sorts and
-- compares by bytes (COLLATE "C"), as SQLite does, whatever the database's default collation,
-- so both backends order alike and the queries' COLLATE "C" can use the indexes.

CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT COLLATE "C" NOT NULL
);

CREATE TABLE guests (
    guest_id         TEXT COLLATE "C" PRIMARY KEY,
    created_at       TEXT COLLATE "C" NOT NULL,
    status           TEXT COLLATE "C" NOT NULL CHECK (status IN ('active', 'restricted', 'erased')),
    last_activity_at TEXT COLLATE "C" NOT NULL,
    last_checkout    TEXT COLLATE "C"
);

CREATE TABLE guest_keys (
    guest_id    TEXT COLLATE "C" PRIMARY KEY REFERENCES guests (guest_id) ON DELETE CASCADE,
    kek_version BIGINT NOT NULL,
    wrapped_dek BYTEA NOT NULL
);
CREATE INDEX guest_keys_by_version ON guest_keys (kek_version);

CREATE TABLE guest_fields (
    guest_id   TEXT COLLATE "C" NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    field      TEXT COLLATE "C" NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (guest_id, field)
);

CREATE TABLE blind_index (
    field    TEXT COLLATE "C" NOT NULL,
    digest   BYTEA NOT NULL,
    guest_id TEXT COLLATE "C" NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    PRIMARY KEY (field, digest, guest_id)
);
CREATE INDEX blind_index_by_guest ON blind_index (guest_id);

CREATE TABLE stays (
    stay_id    TEXT COLLATE "C" PRIMARY KEY,
    guest_id   TEXT COLLATE "C" NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    check_out  TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    ciphertext BYTEA NOT NULL
);
CREATE INDEX stays_by_guest ON stays (guest_id);
CREATE INDEX stays_by_check_out ON stays (check_out);

CREATE TABLE consent_events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    guest_id       TEXT COLLATE "C" NOT NULL,
    purpose        TEXT COLLATE "C" NOT NULL,
    status         TEXT COLLATE "C" NOT NULL CHECK (status IN ('granted', 'withdrawn')),
    separate       BOOLEAN NOT NULL,
    notice_version TEXT COLLATE "C",
    channel        TEXT COLLATE "C",
    actor          TEXT COLLATE "C" NOT NULL,
    at             TEXT COLLATE "C" NOT NULL
);
CREATE INDEX consent_events_by_guest ON consent_events (guest_id, purpose, id);

CREATE TABLE consents (
    guest_id       TEXT COLLATE "C" NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    purpose        TEXT COLLATE "C" NOT NULL,
    status         TEXT COLLATE "C" NOT NULL CHECK (status IN ('granted', 'withdrawn')),
    separate       BOOLEAN NOT NULL,
    notice_version TEXT COLLATE "C",
    channel        TEXT COLLATE "C",
    granted_at     TEXT COLLATE "C",
    withdrawn_at   TEXT COLLATE "C",
    PRIMARY KEY (guest_id, purpose)
);

CREATE TABLE dsr_requests (
    request_id   TEXT COLLATE "C" PRIMARY KEY,
    subject      BYTEA NOT NULL,
    kind         TEXT COLLATE "C" NOT NULL CHECK (kind IN ('erasure', 'access', 'correction')),
    status       TEXT COLLATE "C" NOT NULL CHECK (status IN ('received', 'completed', 'partially_completed', 'pending_verification', 'rejected')),
    received_at  TEXT COLLATE "C" NOT NULL,
    completed_at TEXT COLLATE "C",
    due_at       TEXT COLLATE "C" NOT NULL,
    receipt      TEXT COLLATE "C" NOT NULL
);
CREATE INDEX dsr_requests_by_subject ON dsr_requests (subject, received_at);
CREATE INDEX dsr_requests_by_due ON dsr_requests (status, due_at);

CREATE TABLE correction_requests (
    request_id TEXT COLLATE "C" PRIMARY KEY,
    guest_id   TEXT COLLATE "C" NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    fields     TEXT COLLATE "C" NOT NULL,
    ciphertext BYTEA NOT NULL
);
CREATE INDEX correction_requests_by_guest ON correction_requests (guest_id);

CREATE TABLE guest_field_history (
    guest_id    TEXT COLLATE "C" NOT NULL REFERENCES guests (guest_id) ON DELETE CASCADE,
    field       TEXT COLLATE "C" NOT NULL,
    ciphertext  BYTEA NOT NULL,
    replaced_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (guest_id, field)
);

-- The audit trail: hash-chained, append-only (REQ-18); see src/audit/mod.rs.
CREATE TABLE audit_events (
    seq           BIGINT PRIMARY KEY,
    ts            TEXT COLLATE "C" NOT NULL,
    request_id    TEXT COLLATE "C" NOT NULL,
    actor         TEXT COLLATE "C" NOT NULL,
    role          TEXT COLLATE "C" NOT NULL,
    purpose       TEXT COLLATE "C",
    action        TEXT COLLATE "C" NOT NULL,
    guest_id      TEXT COLLATE "C",
    fields        TEXT COLLATE "C" NOT NULL,
    outcome       TEXT COLLATE "C" NOT NULL CHECK (outcome IN ('allowed', 'denied', 'error')),
    reason        TEXT COLLATE "C",
    rules         TEXT COLLATE "C" NOT NULL,
    justification TEXT COLLATE "C",
    prev_hash     BYTEA NOT NULL,
    hash          BYTEA NOT NULL,
    value_hashes  TEXT COLLATE "C"
);
CREATE INDEX audit_events_by_ts ON audit_events (ts);
CREATE INDEX audit_events_by_guest ON audit_events (guest_id, seq);

CREATE TABLE audit_checkpoints (
    seq       BIGINT PRIMARY KEY,
    hash      BYTEA NOT NULL,
    signed_at TEXT COLLATE "C" NOT NULL,
    key_id    TEXT COLLATE "C" NOT NULL,
    signature BYTEA NOT NULL
);

-- Guards, as SQLite's 0001 and 0003: nothing may rewrite history. Audit events may be deleted
-- only up to `meta.audit_purge_through`; checkpoints never; the purge mark only moves forward,
-- to a stored checkpoint, and is never removed or renamed. TRUNCATE is refused too (SQLite
-- has none). The functions read the purge mark in the statement's own snapshot, so a purge
-- must set the mark before it deletes, in the same transaction, as it does in SQLite.

CREATE FUNCTION guestvault_purge_through() RETURNS BIGINT LANGUAGE sql STABLE AS $$
    SELECT COALESCE((SELECT value::BIGINT FROM meta WHERE key = 'audit_purge_through'), 0)
$$;

CREATE FUNCTION guestvault_audit_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.seq <= guestvault_purge_through() THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only';
END
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION guestvault_audit_events_guard();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION guestvault_audit_events_guard();

CREATE FUNCTION guestvault_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% are append-only', replace(TG_TABLE_NAME, '_', ' ');
END
$$;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION guestvault_append_only();
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION guestvault_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION guestvault_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION guestvault_append_only();

-- The purge mark. An upsert (INSERT ... ON CONFLICT DO UPDATE) fires the INSERT trigger, then,
-- on conflict, the UPDATE trigger: both check the new value.
CREATE FUNCTION guestvault_meta_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    current_mark BIGINT := guestvault_purge_through();
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.key = 'audit_purge_through' THEN
            RAISE EXCEPTION 'audit_purge_through cannot be removed';
        END IF;
        IF OLD.key = 'keyring_fingerprint' THEN
            RAISE EXCEPTION 'keyring_fingerprint cannot be changed';
        END IF;
        RETURN OLD;
    END IF;
    -- The keyring check at start (a node with another keyring refuses to start) relies on
    -- this row; unlike SQLite's schema, it is guarded here too.
    IF TG_OP = 'UPDATE' AND OLD.key = 'keyring_fingerprint'
       AND (NEW.key IS DISTINCT FROM OLD.key OR NEW.value IS DISTINCT FROM OLD.value) THEN
        RAISE EXCEPTION 'keyring_fingerprint cannot be changed';
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.key = 'audit_purge_through' OR NEW.key = 'audit_purge_through')
       AND NEW.key IS DISTINCT FROM OLD.key THEN
        RAISE EXCEPTION 'audit_purge_through may only move forward, to a signed checkpoint';
    END IF;
    IF NEW.key = 'audit_purge_through' AND (
        NEW.value !~ '^[1-9][0-9]{0,18}$'
        OR NEW.value::NUMERIC <= current_mark
        OR NOT EXISTS (SELECT 1 FROM audit_checkpoints WHERE seq = NEW.value::NUMERIC)
    ) THEN
        RAISE EXCEPTION 'audit_purge_through may only move forward, to a signed checkpoint';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER meta_guard BEFORE INSERT OR UPDATE OR DELETE ON meta
    FOR EACH ROW EXECUTE FUNCTION guestvault_meta_guard();
CREATE TRIGGER meta_no_truncate BEFORE TRUNCATE ON meta
    FOR EACH STATEMENT EXECUTE FUNCTION guestvault_append_only();

-- The head of the one audit chain all nodes append to (issue 14, requirement 4): a node's
-- group commit takes this row FOR UPDATE, links its events after it and moves it.
CREATE TABLE audit_head (
    id   BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (TRUE, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');
