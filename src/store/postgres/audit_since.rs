//! PostgreSQL: `GET /v1/audit/verify` (the names and meanings of `store/sqlite/audit_since.rs`).
//! By default the check starts at the newest signed checkpoint (its signature, and its hash
//! against the stored event), then every event after it to the head; `?full=true` checks the
//! whole trail ([`verify_store`]). Either way the answer says which range of seqs was checked.
//! The chain itself is recomputed by the shared [`crate::audit::check_chain`], anchored at the
//! checkpoint.

use crate::audit::checkpoint::{RangeVerification, StoreVerification};
use crate::store::StoreError;

use super::audit::{count_between, latest_checkpoint, purged_through, read_after, verify_store};
use super::conn::PgConn;

/// The oldest and the newest stored event's seq.
fn stored_span(conn: &PgConn) -> Result<(Option<u64>, Option<u64>), StoreError> {
    let row = conn.query_one("SELECT min(seq), max(seq) FROM audit_events", &[])?;
    let seq = |v: Option<i64>| v.and_then(|s| u64::try_from(s).ok());
    Ok((seq(row.try_get(0)?), seq(row.try_get(1)?)))
}

/// The whole trail, with the range it covered.
pub fn full(conn: &PgConn, public_key: &[u8]) -> Result<RangeVerification, StoreError> {
    let result = verify_store(conn, public_key)?;
    let (from_seq, to_seq) = stored_span(conn)?;
    Ok(RangeVerification {
        result,
        mode: "full",
        checkpoint_seq: None,
        from_seq,
        to_seq,
    })
}

/// From the newest checkpoint to the head; the whole trail when there is no checkpoint yet.
pub fn since_checkpoint(conn: &PgConn, public_key: &[u8]) -> Result<RangeVerification, StoreError> {
    let Some(cp) = latest_checkpoint(conn)? else {
        return full(conn, public_key);
    };
    let cp_seq = i64::try_from(cp.seq).unwrap_or(i64::MAX);
    let purged = purged_through(conn)?;
    let stored: Option<Vec<u8>> = conn
        .query_opt("SELECT hash FROM audit_events WHERE seq = $1", &[&cp_seq])?
        .map(|r| r.try_get(0))
        .transpose()?;
    let anchored = match stored {
        Some(h) => h.as_slice() == cp.hash.as_slice(),
        None => cp.seq <= purged,
    };
    let verification = |result, from_seq, to_seq| RangeVerification {
        result,
        mode: "since_checkpoint",
        checkpoint_seq: Some(cp.seq),
        from_seq,
        to_seq,
    };
    let bad = |first_bad: u64, events: u64, checkpoints: u64, head: Option<u64>| {
        verification(
            StoreVerification {
                intact: false,
                events,
                checkpoints,
                first_bad_seq: Some(first_bad),
            },
            Some(cp.seq + 1),
            head,
        )
    };
    if !cp.is_valid_for(public_key) || !anchored {
        return Ok(bad(cp.seq, 0, 0, stored_span(conn)?.1));
    }
    // The chain after the checkpoint must start right after it: the next event links to the
    // checkpoint's hash, and a first stored event further on is a gap at the seq after it.
    let mut gap_after_checkpoint = false;
    let checked = crate::audit::check_chain(
        |after, n| read_after(conn, after.max(cp.seq), n),
        |seq| {
            let anchor = (seq == cp.seq).then_some(cp.hash);
            gap_after_checkpoint = anchor.is_none();
            Ok(anchor)
        },
    )?;
    match checked {
        Ok(events) => Ok(verification(
            StoreVerification {
                intact: true,
                events,
                checkpoints: 1,
                first_bad_seq: None,
            },
            (events > 0).then_some(cp.seq + 1),
            // INVARIANT: check_chain passes only consecutive seqs, from cp.seq + 1 here.
            (events > 0).then_some(cp.seq + events),
        )),
        Err(seq) => {
            let first_bad = if gap_after_checkpoint {
                cp.seq + 1
            } else {
                seq
            };
            // Every stored event between the checkpoint and the first bad one was checked.
            let events = count_between(conn, cp_seq, first_bad)?;
            Ok(bad(first_bad, events, 1, stored_span(conn)?.1))
        }
    }
}
