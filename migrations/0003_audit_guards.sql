-- GuestVault schema v3: closes gaps in the audit trail's guards. Never edit after release.
--
-- 1. Checkpoints are append-only: 0001 forbade UPDATE; DELETE is forbidden here. No code path
--    deletes one (a retention purge keeps its checkpoint as the chain's new anchor).
-- 2. `meta.audit_purge_through` is what lets the DELETE trigger of 0001 remove audit events,
--    so it is guarded too: it may only be set to a canonical integer larger than its current
--    value at which a signed checkpoint is already stored (the purge writes that checkpoint
--    first), and it can never be deleted or renamed.

CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;

-- Also fires for the upsert the purge uses and for INSERT OR REPLACE, while the old row is
-- still there: the new value must exceed it.
CREATE TRIGGER meta_purge_through_insert BEFORE INSERT ON meta
WHEN new.key = 'audit_purge_through' AND (
    CAST(CAST(new.value AS INTEGER) AS TEXT) IS NOT new.value
    OR CAST(new.value AS INTEGER) <= COALESCE(
        (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'audit_purge_through'), 0)
    OR NOT EXISTS (SELECT 1 FROM audit_checkpoints WHERE seq = CAST(new.value AS INTEGER))
)
BEGIN
    SELECT RAISE(ABORT, 'audit_purge_through may only move forward, to a signed checkpoint');
END;

CREATE TRIGGER meta_purge_through_update BEFORE UPDATE ON meta
WHEN (old.key = 'audit_purge_through' OR new.key = 'audit_purge_through') AND (
    new.key IS NOT old.key
    OR CAST(CAST(new.value AS INTEGER) AS TEXT) IS NOT new.value
    OR CAST(new.value AS INTEGER) <= CAST(old.value AS INTEGER)
    OR NOT EXISTS (SELECT 1 FROM audit_checkpoints WHERE seq = CAST(new.value AS INTEGER))
)
BEGIN
    SELECT RAISE(ABORT, 'audit_purge_through may only move forward, to a signed checkpoint');
END;

CREATE TRIGGER meta_purge_through_no_delete BEFORE DELETE ON meta
WHEN old.key = 'audit_purge_through'
BEGIN
    SELECT RAISE(ABORT, 'audit_purge_through cannot be removed');
END;
