//! SQL for retention stages (issue 16 §3): the anchor dates a guest's stages are decided from,
//! the stages the sweeper applied, and pseudonymization (the ciphertext goes, the blind-index
//! entry stays). Names and dates only; no value is read or returned here.

use rusqlite::{params, Connection, OptionalExtension};

use super::{StoreError, PLAUSIBLE_HORIZON_DAYS};
use crate::policy::{Action, Permit};
use crate::store::rows::StageFacts;

fn ensure(permit: &Permit) -> Result<(), StoreError> {
    match permit.action() {
        Action::AdminRetention => Ok(()),
        other => Err(StoreError::Other(format!(
            "permit for `{}` cannot apply retention stages",
            other.as_str()
        ))),
    }
}

/// The anchor dates (bounded as in `retention_facts`) and the pseudonymized fields.
pub fn stage_facts(conn: &Connection, guest_id: &str) -> Result<Option<StageFacts>, StoreError> {
    let head = conn
        .prepare_cached(&format!(
            "SELECT created_at, last_activity_at, \
             min(last_checkout, date(substr(last_activity_at, 1, 10), '+{PLAUSIBLE_HORIZON_DAYS} days')) \
             FROM guests WHERE guest_id = ?1"
        ))?
        .query_row([guest_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
        })
        .optional()?;
    let Some((created_at, last_activity_at, last_checkout)) = head else {
        return Ok(None);
    };
    let pseudonymized = conn
        .prepare_cached(
            "SELECT field FROM pseudonymized_fields WHERE guest_id = ?1 ORDER BY field",
        )?
        .query_map([guest_id], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Some(StageFacts {
        created_at,
        last_activity_at,
        last_checkout,
        pseudonymized,
    }))
}

/// (class, action, anchor) of every stage the sweeper applied to the guest.
pub fn applied_stages(
    conn: &Connection,
    guest_id: &str,
) -> Result<Vec<(String, String, String)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT class, action, anchor FROM retention_stages WHERE guest_id = ?1 ORDER BY class, action",
        )?
        .query_map([guest_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?)
}

pub fn record_stage(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    class: &str,
    action: &str,
    anchor: &str,
    now: &str,
) -> Result<(), StoreError> {
    ensure(permit)?;
    conn.prepare_cached(
        "INSERT INTO retention_stages (guest_id, class, action, anchor, applied_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (guest_id, class, action) DO UPDATE SET anchor = excluded.anchor, applied_at = excluded.applied_at",
    )?
    .execute(params![guest_id, class, action, anchor, now])?;
    Ok(())
}

/// Deletes the fields' ciphertext (and the registered value a correction replaced) and keeps
/// their blind-index entries; marks them pseudonymized.
pub fn pseudonymize_fields(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    fields: &[String],
    now: &str,
) -> Result<(), StoreError> {
    ensure(permit)?;
    for f in fields {
        conn.prepare_cached("DELETE FROM guest_fields WHERE guest_id = ?1 AND field = ?2")?
            .execute(params![guest_id, f])?;
        conn.prepare_cached("DELETE FROM guest_field_history WHERE guest_id = ?1 AND field = ?2")?
            .execute(params![guest_id, f])?;
        conn.prepare_cached(
            "INSERT INTO pseudonymized_fields (guest_id, field, at) VALUES (?1, ?2, ?3)
             ON CONFLICT (guest_id, field) DO NOTHING",
        )?
        .execute(params![guest_id, f, now])?;
    }
    Ok(())
}

/// Forgets that fields are pseudonymized: a new value was written, or the field was deleted.
pub fn clear_pseudonymized(
    conn: &Connection,
    guest_id: &str,
    fields: &[String],
) -> Result<(), StoreError> {
    for f in fields {
        conn.prepare_cached("DELETE FROM pseudonymized_fields WHERE guest_id = ?1 AND field = ?2")?
            .execute(params![guest_id, f])?;
    }
    Ok(())
}
