-- Deadlines of data-subject requests under each regime that applies (REQ-32, REQ-48; issue 16
-- §5). `deadlines` holds, as JSON, which clock decides (`cn` or `eu`), the due date of each
-- regime, and an extension of the GDPR clock with its reason code and ticket (GDPR Art.
-- 12(3)); `due_at` stays the date that applies, so the overdue list and the queue keep their
-- index. No personal data: dates, clock names and reason codes. Rows written before this
-- migration have no `deadlines` and are read as the Chinese clock alone, `due_at` its date.
-- `escalated_at` and `overdue_alerted_at` record when the sweeper raised the 80% escalation
-- and the overdue alert, so each fires once per request.
ALTER TABLE dsr_requests ADD COLUMN deadlines TEXT;
ALTER TABLE dsr_requests ADD COLUMN escalated_at TEXT;
ALTER TABLE dsr_requests ADD COLUMN overdue_alerted_at TEXT;
