//! SQL for consents (PIPL Art. 13–16, 29): the ledger of grants and withdrawals
//! (`consent_events`), the current state per guest and purpose (`consents`), and re-applying a
//! withdrawal after a restore.

use rusqlite::{params, Connection, OptionalExtension};

use crate::policy::ConsentFacts;
use crate::store::rows::{
    with_refusals, ConsentChange, ConsentEvent, ConsentGiver, ConsentRecord, RefusalRow,
};
use crate::store::StoreError;

/// Appends a ledger entry and updates the current view. Withdrawing what is not granted
/// changes nothing (repeating a withdrawal is safe).
pub fn apply(
    c: &Connection,
    gid: &str,
    change: &ConsentChange,
    actor: &str,
    now: &str,
) -> Result<(), StoreError> {
    let status = if change.grant { "granted" } else { "withdrawn" };
    let giver = change.giver.as_ref();
    let (given_by, relationship, guardian_gid, ticket) = (
        giver.map(|g| g.given_by.as_str()),
        giver.and_then(|g| g.relationship.as_deref()),
        giver.and_then(|g| g.guardian_guest_id.as_deref()),
        giver.and_then(|g| g.guardian_ticket.as_deref()),
    );
    if !change.grant {
        let granted: Option<String> = c
            .prepare_cached("SELECT status FROM consents WHERE guest_id = ?1 AND purpose = ?2")?
            .query_row(params![gid, change.purpose], |r| r.get(0))
            .optional()?;
        if granted.as_deref() != Some("granted") {
            return Ok(());
        }
    }
    c.prepare_cached(
        "INSERT INTO consent_events (guest_id, purpose, status, separate, notice_version, channel, actor, at,
           given_by, guardian_relationship, guardian_guest_id, guardian_ticket, notice_sha256, initiated_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![gid, change.purpose, status, change.separate, change.notice_version, change.channel, actor, now,
        given_by, relationship, guardian_gid, ticket, change.notice_sha256, change.initiated_by])?;
    if change.grant {
        c.prepare_cached(
            "INSERT INTO consents (guest_id, purpose, status, separate, notice_version, channel, granted_at, withdrawn_at,
               given_by, guardian_relationship, guardian_guest_id, guardian_ticket, notice_sha256)
             VALUES (?1, ?2, 'granted', ?3, ?4, ?5, ?6, NULL, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (guest_id, purpose) DO UPDATE SET status = 'granted', separate = excluded.separate,
               notice_version = excluded.notice_version, channel = excluded.channel,
               granted_at = excluded.granted_at, withdrawn_at = NULL,
               given_by = excluded.given_by, guardian_relationship = excluded.guardian_relationship,
               guardian_guest_id = excluded.guardian_guest_id, guardian_ticket = excluded.guardian_ticket,
               notice_sha256 = excluded.notice_sha256",
        )?
        .execute(params![gid, change.purpose, change.separate, change.notice_version, change.channel, now,
            given_by, relationship, guardian_gid, ticket, change.notice_sha256])?;
    } else {
        c.prepare_cached("UPDATE consents SET status = 'withdrawn', withdrawn_at = ?3 WHERE guest_id = ?1 AND purpose = ?2")?
            .execute(params![gid, change.purpose, now])?;
    }
    Ok(())
}

/// The current consents and the full history, for exports.
pub fn ledger(
    c: &Connection,
    gid: &str,
) -> Result<(Vec<ConsentRecord>, Vec<ConsentEvent>), StoreError> {
    Ok(with_refusals(
        stored_current(c, gid)?,
        stored_history(c, gid)?,
        refusals(c, gid)?,
    ))
}

/// The current consent per purpose (a refusal after the last grant or withdrawal shows as
/// `refused`).
pub fn current(c: &Connection, gid: &str) -> Result<Vec<ConsentRecord>, StoreError> {
    Ok(ledger(c, gid)?.0)
}

/// Every grant, withdrawal and refusal, in time order.
pub fn history(c: &Connection, gid: &str) -> Result<Vec<ConsentEvent>, StoreError> {
    Ok(ledger(c, gid)?.1)
}

fn stored_current(c: &Connection, gid: &str) -> Result<Vec<ConsentRecord>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT purpose, status, separate, notice_version, channel, granted_at, withdrawn_at,
           given_by, guardian_relationship, guardian_guest_id, guardian_ticket, notice_sha256
         FROM consents WHERE guest_id = ?1 ORDER BY purpose",
    )?;
    let rows = stmt
        .query_map([gid], |r| {
            Ok(ConsentRecord {
                purpose: r.get(0)?,
                status: r.get(1)?,
                separate: r.get(2)?,
                notice_version: r.get(3)?,
                channel: r.get(4)?,
                granted_at: r.get(5)?,
                withdrawn_at: r.get(6)?,
                given_by: r.get(7)?,
                guardian_relationship: r.get(8)?,
                guardian_guest_id: r.get(9)?,
                guardian_ticket: r.get(10)?,
                confirm_needed: None,
                notice_sha256: r.get(11)?,
                refused_at: None,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn stored_history(c: &Connection, gid: &str) -> Result<Vec<ConsentEvent>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT purpose, status, separate, notice_version, channel, actor, at,
           given_by, guardian_relationship, guardian_guest_id, guardian_ticket, notice_sha256, initiated_by
         FROM consent_events WHERE guest_id = ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map([gid], |r| {
            Ok(ConsentEvent {
                purpose: r.get(0)?,
                status: r.get(1)?,
                separate: r.get(2)?,
                notice_version: r.get(3)?,
                channel: r.get(4)?,
                actor: r.get(5)?,
                at: r.get(6)?,
                given_by: r.get(7)?,
                guardian_relationship: r.get(8)?,
                guardian_guest_id: r.get(9)?,
                guardian_ticket: r.get(10)?,
                notice_sha256: r.get(11)?,
                initiated_by: r.get(12)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn refusals(c: &Connection, gid: &str) -> Result<Vec<RefusalRow>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT purpose, notice_version, notice_sha256, channel, initiated_by, actor, at
         FROM consent_refusals WHERE guest_id = ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map([gid], |r| {
            Ok(RefusalRow {
                purpose: r.get(0)?,
                notice_version: r.get(1)?,
                notice_sha256: r.get(2)?,
                channel: r.get(3)?,
                initiated_by: r.get(4)?,
                actor: r.get(5)?,
                at: r.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Records a refusal (Network Data Security Regulation Art. 22(5)). The caller withdraws a
/// standing consent first.
pub fn record_refusal(
    c: &Connection,
    gid: &str,
    change: &ConsentChange,
    actor: &str,
    now: &str,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO consent_refusals (guest_id, purpose, notice_version, notice_sha256, channel, initiated_by, actor, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        gid,
        change.purpose,
        change.notice_version.as_deref().unwrap_or_default(),
        change.notice_sha256.as_deref().unwrap_or_default(),
        change.channel.as_deref().unwrap_or_default(),
        change.initiated_by.as_deref().unwrap_or("hotel"),
        actor,
        now
    ])?;
    Ok(())
}

/// When the guest last refused `purpose`, if ever.
pub fn latest_refusal(
    c: &Connection,
    gid: &str,
    purpose: &str,
) -> Result<Option<String>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT max(at) FROM consent_refusals WHERE guest_id = ?1 AND purpose = ?2",
    )?
    .query_row([gid, purpose], |r| r.get::<_, Option<String>>(0))?)
}

/// The notice version a standing consent names (`None`: no consent row, or none named).
pub fn consent_notice(
    c: &Connection,
    gid: &str,
    purpose: &str,
) -> Result<Option<String>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT notice_version FROM consents WHERE guest_id = ?1 AND purpose = ?2",
    )?
    .query_row([gid, purpose], |r| r.get::<_, Option<String>>(0))
    .optional()?
    .flatten())
}

/// The current consent of a guest for one purpose, as the policy sees it.
pub fn consent_state(
    conn: &rusqlite::Connection,
    guest_id: &str,
    purpose: &str,
) -> Result<ConsentFacts, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT status, separate FROM consents WHERE guest_id = ?1 AND purpose = ?2",
        )?
        .query_row([guest_id, purpose], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? != 0))
        })
        .optional()?;
    Ok(match row {
        None => ConsentFacts::None,
        Some((status, separate)) if status == "granted" => ConsentFacts::Granted { separate },
        Some(_) => ConsentFacts::Withdrawn,
    })
}

/// Who gave the granted consent of a guest for one purpose (`None`: no consent in force, or
/// one recorded before the giver was; both count as the guest's own). REQ-10.
pub fn consent_giver(
    c: &Connection,
    guest_id: &str,
    purpose: &str,
) -> Result<Option<ConsentGiver>, StoreError> {
    let row = c
        .prepare_cached(
            "SELECT given_by, guardian_relationship, guardian_guest_id, guardian_ticket FROM consents
             WHERE guest_id = ?1 AND purpose = ?2 AND status = 'granted' AND given_by IS NOT NULL",
        )?
        .query_row([guest_id, purpose], |r| {
            Ok(ConsentGiver {
                given_by: r.get(0)?,
                relationship: r.get(1)?,
                guardian_guest_id: r.get(2)?,
                guardian_ticket: r.get(3)?,
            })
        })
        .optional()?;
    Ok(row)
}

/// Withdraws `purpose` for `gid` again, as of `at`, if the consent is still granted since
/// before then (a restored database that predates the withdrawal); returns whether it did.
pub fn replay_withdrawal(
    c: &Connection,
    gid: &str,
    purpose: &str,
    at: &str,
) -> Result<bool, StoreError> {
    let n = c.execute(
        "UPDATE consents SET status = 'withdrawn', withdrawn_at = ?3
         WHERE guest_id = ?1 AND purpose = ?2 AND status = 'granted' AND granted_at <= ?3",
        params![gid, purpose, at],
    )?;
    if n == 0 {
        return Ok(false);
    }
    c.execute(
        "INSERT INTO consent_events (guest_id, purpose, status, separate, actor, at)
         VALUES (?1, ?2, 'withdrawn', 0, 'system:restore', ?3)",
        params![gid, purpose, at],
    )?;
    Ok(true)
}
