//! PostgreSQL: the `stages` operations of the seam (the same names and meanings as
//! `store/sqlite/stages.rs`; see that file's docs). The plausible check-out bound is computed
//! as in `erasure::retention_facts`.

use crate::policy::{Action, Permit};
use crate::store::rows::StageFacts;
use crate::store::{StoreError, PLAUSIBLE_HORIZON_DAYS};

use super::conn::PgConn;
use super::erasure::{sqlite_date_plus_days, sqlite_min};

fn ensure(permit: &Permit) -> Result<(), StoreError> {
    match permit.action() {
        Action::AdminRetention => Ok(()),
        other => Err(StoreError::Other(format!(
            "permit for `{}` cannot apply retention stages",
            other.as_str()
        ))),
    }
}

pub fn stage_facts(conn: &PgConn, guest_id: &str) -> Result<Option<StageFacts>, StoreError> {
    // One round trip: it runs on every read while stages are configured.
    let Some(head) = conn.query_opt(
        "SELECT created_at, last_activity_at, last_checkout,
                ARRAY(SELECT field FROM pseudonymized_fields p WHERE p.guest_id = g.guest_id
                      ORDER BY field COLLATE \"C\")
         FROM guests g WHERE guest_id = $1",
        &[&guest_id],
    )?
    else {
        return Ok(None);
    };
    let created_at: String = head.try_get(0)?;
    let last_activity_at: String = head.try_get(1)?;
    let last_checkout = sqlite_min(
        head.try_get(2)?,
        sqlite_date_plus_days(&last_activity_at, PLAUSIBLE_HORIZON_DAYS),
    );
    let pseudonymized: Vec<String> = head.try_get(3)?;
    Ok(Some(StageFacts {
        created_at,
        last_activity_at,
        last_checkout,
        pseudonymized,
    }))
}

pub fn applied_stages(
    conn: &PgConn,
    guest_id: &str,
) -> Result<Vec<(String, String, String)>, StoreError> {
    Ok(conn
        .query(
            "SELECT class, action, anchor FROM retention_stages WHERE guest_id = $1
             ORDER BY class COLLATE \"C\", action COLLATE \"C\"",
            &[&guest_id],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?)
}

pub fn record_stage(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    class: &str,
    action: &str,
    anchor: &str,
    now: &str,
) -> Result<(), StoreError> {
    ensure(permit)?;
    conn.execute(
        "INSERT INTO retention_stages (guest_id, class, action, anchor, applied_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (guest_id, class, action) DO UPDATE SET anchor = excluded.anchor, applied_at = excluded.applied_at",
        &[&guest_id, &class, &action, &anchor, &now],
    )?;
    Ok(())
}

pub fn pseudonymize_fields(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    fields: &[String],
    now: &str,
) -> Result<(), StoreError> {
    ensure(permit)?;
    for f in fields {
        conn.execute(
            "DELETE FROM guest_fields WHERE guest_id = $1 AND field = $2",
            &[&guest_id, f],
        )?;
        conn.execute(
            "DELETE FROM guest_field_history WHERE guest_id = $1 AND field = $2",
            &[&guest_id, f],
        )?;
        conn.execute(
            "INSERT INTO pseudonymized_fields (guest_id, field, at) VALUES ($1, $2, $3)
             ON CONFLICT (guest_id, field) DO NOTHING",
            &[&guest_id, f, &now],
        )?;
    }
    Ok(())
}

pub fn clear_pseudonymized(
    conn: &PgConn,
    guest_id: &str,
    fields: &[String],
) -> Result<(), StoreError> {
    for f in fields {
        conn.execute(
            "DELETE FROM pseudonymized_fields WHERE guest_id = $1 AND field = $2",
            &[&guest_id, f],
        )?;
    }
    Ok(())
}
