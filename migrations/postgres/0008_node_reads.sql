-- Whether a node is busy reading (issue 14, `storage.postgres_readers_total`; docs/storage.md,
-- "Reader connections per node"). Never edit after release: add a new migration.
--
-- Set at each heartbeat: true when, since its previous heartbeat, the node had more than one
-- read to run at once. The nodes share `storage.postgres_readers_total` among the live nodes
-- that are busy (and themselves), so an idle node (a standby, a node the load balancer does
-- not send to) does not hold back part of the database's reads. Existing rows count as busy.
ALTER TABLE nodes ADD COLUMN busy BOOLEAN NOT NULL DEFAULT true;
