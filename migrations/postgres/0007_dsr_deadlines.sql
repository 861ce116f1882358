-- GuestVault schema (issue 16 §5): DSR deadlines per regime, the extension of the GDPR clock,
-- and when the escalation and overdue alerts fired; the same columns as the SQLite migration
-- 0010_dsr_deadlines.sql (see its comments). Never edit after release.
ALTER TABLE dsr_requests ADD COLUMN deadlines TEXT COLLATE "C";
ALTER TABLE dsr_requests ADD COLUMN escalated_at TEXT COLLATE "C";
ALTER TABLE dsr_requests ADD COLUMN overdue_alerted_at TEXT COLLATE "C";
