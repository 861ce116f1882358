-- Coordination between vault nodes (issue 14, requirement 5; docs/storage.md, "Coordination
-- between nodes"). Never edit after release: add a new migration.
--
-- Unlike every other table, the times here are the database's own clock (TIMESTAMPTZ, set with
-- now()), not the vault's UTC strings: whether a node is alive is decided by comparing its
-- last heartbeat with the database's now, so the nodes' clocks (which may drift apart) never
-- enter it. Nothing here is personal data.

-- One row per running vault node, written at start and every few seconds, removed at a clean
-- shutdown. A node that dies stops counting as live once its heartbeat is older than the live
-- window, and its row is removed by the other nodes an hour later.
CREATE TABLE nodes (
    -- Random per process (a restarted node is a new node).
    node_id             TEXT COLLATE "C" PRIMARY KEY,
    -- The crate version the node runs.
    version             TEXT COLLATE "C" NOT NULL,
    keyring_fingerprint TEXT COLLATE "C" NOT NULL,
    -- Every KEK version in the node's keyring, and the one it wraps new DEKs under.
    kek_versions        INTEGER[] NOT NULL,
    active_kek          INTEGER NOT NULL,
    -- `server.listen` of the node, so an operator can tell which machine a row is.
    listen              TEXT COLLATE "C" NOT NULL,
    started_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen           TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The KEK versions made active, one row each; the active KEK of the vault is the greatest.
-- A version is added only once every live node holds it (the rotation gate), so no node is
-- ever handed a DEK wrapped under a KEK it lacks. Append-only in practice: the version only
-- moves forward.
CREATE TABLE kek_activations (
    version      INTEGER PRIMARY KEY,
    activated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The node (or `cli`) that activated it.
    activated_by TEXT COLLATE "C" NOT NULL
);
