//! PostgreSQL: the `consents` operations of the seam (the same names and meanings as
//! `store/sqlite/consents.rs`; see that file's docs): the ledger of grants and withdrawals
//! (`consent_events`, in `id` order), the current state per guest and purpose (`consents`,
//! in purpose byte order as SQLite's primary key gives it), and re-applying a withdrawal
//! after a restore (PIPL Art. 13–16, 29).

use tokio_postgres::Row;

use crate::policy::ConsentFacts;
use crate::store::rows::{
    with_refusals, ConsentChange, ConsentEvent, ConsentGiver, ConsentRecord, RefusalRow,
};
use crate::store::StoreError;

use super::conn::PgConn;

/// Appends a ledger entry and updates the current view. Withdrawing what is not granted
/// changes nothing (repeating a withdrawal is safe).
pub fn apply(
    c: &PgConn,
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
            .query_opt(
                "SELECT status FROM consents WHERE guest_id = $1 AND purpose = $2",
                &[&gid, &change.purpose],
            )?
            .map(|r| r.try_get(0))
            .transpose()?;
        if granted.as_deref() != Some("granted") {
            return Ok(());
        }
    }
    c.execute(
        "INSERT INTO consent_events (guest_id, purpose, status, separate, notice_version, channel, actor, at,
           given_by, guardian_relationship, guardian_guest_id, guardian_ticket, notice_sha256, initiated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &gid,
            &change.purpose,
            &status,
            &change.separate,
            &change.notice_version,
            &change.channel,
            &actor,
            &now,
            &given_by,
            &relationship,
            &guardian_gid,
            &ticket,
            &change.notice_sha256,
            &change.initiated_by,
        ],
    )?;
    if change.grant {
        c.execute(
            "INSERT INTO consents (guest_id, purpose, status, separate, notice_version, channel, granted_at, withdrawn_at,
               given_by, guardian_relationship, guardian_guest_id, guardian_ticket, notice_sha256)
             VALUES ($1, $2, 'granted', $3, $4, $5, $6, NULL, $7, $8, $9, $10, $11)
             ON CONFLICT (guest_id, purpose) DO UPDATE SET status = 'granted', separate = excluded.separate,
               notice_version = excluded.notice_version, channel = excluded.channel,
               granted_at = excluded.granted_at, withdrawn_at = NULL,
               given_by = excluded.given_by, guardian_relationship = excluded.guardian_relationship,
               guardian_guest_id = excluded.guardian_guest_id, guardian_ticket = excluded.guardian_ticket,
               notice_sha256 = excluded.notice_sha256",
            &[
                &gid,
                &change.purpose,
                &change.separate,
                &change.notice_version,
                &change.channel,
                &now,
                &given_by,
                &relationship,
                &guardian_gid,
                &ticket,
                &change.notice_sha256,
            ],
        )?;
    } else {
        c.execute(
            "UPDATE consents SET status = 'withdrawn', withdrawn_at = $3 WHERE guest_id = $1 AND purpose = $2",
            &[&gid, &change.purpose, &now],
        )?;
    }
    Ok(())
}

/// The current consents and the full history, for exports.
pub fn ledger(
    c: &PgConn,
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
pub fn current(c: &PgConn, gid: &str) -> Result<Vec<ConsentRecord>, StoreError> {
    Ok(ledger(c, gid)?.0)
}

/// Every grant, withdrawal and refusal, in time order.
pub fn history(c: &PgConn, gid: &str) -> Result<Vec<ConsentEvent>, StoreError> {
    Ok(ledger(c, gid)?.1)
}

fn refusals(c: &PgConn, gid: &str) -> Result<Vec<RefusalRow>, StoreError> {
    let rows = c
        .query(
            "SELECT purpose, notice_version, notice_sha256, channel, initiated_by, actor, at
             FROM consent_refusals WHERE guest_id = $1 ORDER BY id",
            &[&gid],
        )?
        .iter()
        .map(|r| {
            Ok::<_, tokio_postgres::Error>(RefusalRow {
                purpose: r.try_get(0)?,
                notice_version: r.try_get(1)?,
                notice_sha256: r.try_get(2)?,
                channel: r.try_get(3)?,
                initiated_by: r.try_get(4)?,
                actor: r.try_get(5)?,
                at: r.try_get(6)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Records a refusal (Network Data Security Regulation Art. 22(5)). The caller withdraws a
/// standing consent first.
pub fn record_refusal(
    c: &PgConn,
    gid: &str,
    change: &ConsentChange,
    actor: &str,
    now: &str,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO consent_refusals (guest_id, purpose, notice_version, notice_sha256, channel, initiated_by, actor, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &gid,
            &change.purpose,
            &change.notice_version.as_deref().unwrap_or_default(),
            &change.notice_sha256.as_deref().unwrap_or_default(),
            &change.channel.as_deref().unwrap_or_default(),
            &change.initiated_by.as_deref().unwrap_or("hotel"),
            &actor,
            &now,
        ],
    )?;
    Ok(())
}

/// When the guest last refused `purpose`, if ever.
pub fn latest_refusal(c: &PgConn, gid: &str, purpose: &str) -> Result<Option<String>, StoreError> {
    let row = c.query_opt(
        "SELECT max(at COLLATE \"C\") FROM consent_refusals WHERE guest_id = $1 AND purpose = $2",
        &[&gid, &purpose],
    )?;
    Ok(row
        .map(|r| r.try_get::<_, Option<String>>(0))
        .transpose()?
        .flatten())
}

/// The notice version a standing consent names (`None`: no consent row, or none named).
pub fn consent_notice(c: &PgConn, gid: &str, purpose: &str) -> Result<Option<String>, StoreError> {
    let row = c.query_opt(
        "SELECT notice_version FROM consents WHERE guest_id = $1 AND purpose = $2",
        &[&gid, &purpose],
    )?;
    Ok(row
        .map(|r| r.try_get::<_, Option<String>>(0))
        .transpose()?
        .flatten())
}

fn record_from(r: &Row) -> Result<ConsentRecord, tokio_postgres::Error> {
    Ok(ConsentRecord {
        purpose: r.try_get(0)?,
        status: r.try_get(1)?,
        separate: r.try_get(2)?,
        notice_version: r.try_get(3)?,
        channel: r.try_get(4)?,
        granted_at: r.try_get(5)?,
        withdrawn_at: r.try_get(6)?,
        given_by: r.try_get(7)?,
        guardian_relationship: r.try_get(8)?,
        guardian_guest_id: r.try_get(9)?,
        guardian_ticket: r.try_get(10)?,
        confirm_needed: None,
        notice_sha256: r.try_get(11)?,
        refused_at: None,
    })
}

fn event_from(r: &Row) -> Result<ConsentEvent, tokio_postgres::Error> {
    Ok(ConsentEvent {
        purpose: r.try_get(0)?,
        status: r.try_get(1)?,
        separate: r.try_get(2)?,
        notice_version: r.try_get(3)?,
        channel: r.try_get(4)?,
        actor: r.try_get(5)?,
        at: r.try_get(6)?,
        given_by: r.try_get(7)?,
        guardian_relationship: r.try_get(8)?,
        guardian_guest_id: r.try_get(9)?,
        guardian_ticket: r.try_get(10)?,
        notice_sha256: r.try_get(11)?,
        initiated_by: r.try_get(12)?,
    })
}

fn stored_current(c: &PgConn, gid: &str) -> Result<Vec<ConsentRecord>, StoreError> {
    let rows = c
        .query(
            "SELECT purpose, status, separate, notice_version, channel, granted_at, withdrawn_at,
               given_by, guardian_relationship, guardian_guest_id, guardian_ticket, notice_sha256
             FROM consents WHERE guest_id = $1 ORDER BY purpose COLLATE \"C\"",
            &[&gid],
        )?
        .iter()
        .map(record_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn stored_history(c: &PgConn, gid: &str) -> Result<Vec<ConsentEvent>, StoreError> {
    let rows = c
        .query(
            "SELECT purpose, status, separate, notice_version, channel, actor, at,
               given_by, guardian_relationship, guardian_guest_id, guardian_ticket, notice_sha256, initiated_by
             FROM consent_events WHERE guest_id = $1 ORDER BY id",
            &[&gid],
        )?
        .iter()
        .map(event_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Who gave the granted consent of a guest for one purpose (see the SQLite twin). REQ-10.
pub fn consent_giver(
    c: &PgConn,
    guest_id: &str,
    purpose: &str,
) -> Result<Option<ConsentGiver>, StoreError> {
    let row = c.query_opt(
        "SELECT given_by, guardian_relationship, guardian_guest_id, guardian_ticket FROM consents
         WHERE guest_id = $1 AND purpose = $2 AND status = 'granted' AND given_by IS NOT NULL",
        &[&guest_id, &purpose],
    )?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some(ConsentGiver {
        given_by: r.try_get(0)?,
        relationship: r.try_get(1)?,
        guardian_guest_id: r.try_get(2)?,
        guardian_ticket: r.try_get(3)?,
    }))
}

/// The current consent of a guest for one purpose, as the policy sees it.
pub fn consent_state(
    conn: &PgConn,
    guest_id: &str,
    purpose: &str,
) -> Result<ConsentFacts, StoreError> {
    let row = conn
        .query_opt(
            "SELECT status, separate FROM consents WHERE guest_id = $1 AND purpose = $2",
            &[&guest_id, &purpose],
        )?
        .map(|r| Ok::<_, tokio_postgres::Error>((r.try_get::<_, String>(0)?, r.try_get(1)?)))
        .transpose()?;
    Ok(match row {
        None => ConsentFacts::None,
        Some((status, separate)) if status == "granted" => ConsentFacts::Granted { separate },
        Some(_) => ConsentFacts::Withdrawn,
    })
}

/// Withdraws `purpose` for `gid` again, as of `at`, if the consent is still granted since
/// before then (a restored database that predates the withdrawal); returns whether it did.
pub fn replay_withdrawal(
    c: &PgConn,
    gid: &str,
    purpose: &str,
    at: &str,
) -> Result<bool, StoreError> {
    let n = c.execute(
        "UPDATE consents SET status = 'withdrawn', withdrawn_at = $3
         WHERE guest_id = $1 AND purpose = $2 AND status = 'granted'
           AND granted_at COLLATE \"C\" <= $3",
        &[&gid, &purpose, &at],
    )?;
    if n == 0 {
        return Ok(false);
    }
    c.execute(
        "INSERT INTO consent_events (guest_id, purpose, status, separate, actor, at)
         VALUES ($1, $2, 'withdrawn', FALSE, 'system:restore', $3)",
        &[&gid, &purpose, &at],
    )?;
    Ok(true)
}

#[cfg(test)]
#[path = "consents_tests.rs"]
mod tests;
