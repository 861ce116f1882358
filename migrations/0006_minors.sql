-- GuestVault schema v6 (issue 16 §1, REQ-10): who gave a consent. Never edit after release.
--
-- PIPL Art. 31: the consent for a guest under 14 must come from a parent or other guardian.
-- Each grant records `given_by` (`guest` or `guardian`); a guardian's grant also records the
-- relationship and a reference to the guardian: the guest id of an accompanying adult or a
-- ticket (a paper form's number), never the guardian's name or contact. NULL `given_by` is a
-- row written before this version (the guest's own consent) or a withdrawal. The current row in
-- `consents` carries the giver of the grant in force, so a guardian's consent stays visible as
-- such after the guest turns 14, until the guest confirms it or withdraws it.
ALTER TABLE consent_events ADD COLUMN given_by TEXT CHECK (given_by IN ('guest', 'guardian'));
ALTER TABLE consent_events ADD COLUMN guardian_relationship TEXT;
ALTER TABLE consent_events ADD COLUMN guardian_guest_id TEXT;
ALTER TABLE consent_events ADD COLUMN guardian_ticket TEXT;

ALTER TABLE consents ADD COLUMN given_by TEXT CHECK (given_by IN ('guest', 'guardian'));
ALTER TABLE consents ADD COLUMN guardian_relationship TEXT;
ALTER TABLE consents ADD COLUMN guardian_guest_id TEXT;
ALTER TABLE consents ADD COLUMN guardian_ticket TEXT;
