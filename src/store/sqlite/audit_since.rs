//! `GET /v1/audit/verify`: by default the check starts at the newest signed checkpoint (its
//! signature, and its hash against the stored event), then every event after it to the head;
//! `?full=true` checks the whole trail ([`verify_store`]). Either way the
//! answer says which range of seqs was checked, so a report cannot be mistaken for more than
//! it covers.

use rusqlite::{Connection, OptionalExtension};

use super::audit::{latest_checkpoint, purged_through, read_after, verify_store};
use crate::audit::checkpoint::{RangeVerification, StoreVerification};
use crate::store::StoreError;

fn head_seq(conn: &Connection) -> Result<Option<u64>, StoreError> {
    Ok(conn
        .query_row("SELECT max(seq) FROM audit_events", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten()
        .map(|s| s as u64))
}

/// The whole trail, with the range it covered.
pub fn full(conn: &Connection, public_key: &[u8]) -> Result<RangeVerification, StoreError> {
    let result = verify_store(conn, public_key)?;
    let from: Option<i64> =
        conn.query_row("SELECT min(seq) FROM audit_events", [], |r| r.get(0))?;
    Ok(RangeVerification {
        result,
        mode: "full",
        checkpoint_seq: None,
        from_seq: from.map(|s| s as u64),
        to_seq: head_seq(conn)?,
    })
}

/// From the newest checkpoint to the head; the whole trail when there is no checkpoint yet.
pub fn since_checkpoint(
    conn: &Connection,
    public_key: &[u8],
) -> Result<RangeVerification, StoreError> {
    let Some(cp) = latest_checkpoint(conn)? else {
        return full(conn, public_key);
    };
    let purged = purged_through(conn)?;
    let stored: Option<Vec<u8>> = conn
        .prepare_cached("SELECT hash FROM audit_events WHERE seq = ?1")?
        .query_row([cp.seq as i64], |r| r.get(0))
        .optional()?;
    let anchored = match stored {
        Some(h) => h.as_slice() == cp.hash.as_slice(),
        None => cp.seq <= purged,
    };
    let head = head_seq(conn)?;
    let bad = |first_bad: u64, events: u64, checkpoints: u64| RangeVerification {
        result: StoreVerification {
            intact: false,
            events,
            checkpoints,
            first_bad_seq: Some(first_bad),
        },
        mode: "since_checkpoint",
        checkpoint_seq: Some(cp.seq),
        from_seq: Some(cp.seq + 1),
        to_seq: head,
    };
    if !cp.is_valid_for(public_key) || !anchored {
        return Ok(bad(cp.seq, 0, 0));
    }
    let mut after = cp.seq;
    let mut prev = cp.hash.to_vec();
    let mut checked = 0u64;
    loop {
        let batch = read_after(conn, after, 10_000)?;
        if batch.is_empty() {
            break;
        }
        for e in batch {
            let seq = e.event.seq;
            if seq != after + 1
                || e.prev_hash != prev
                || e.event.chain_hash(&e.prev_hash).as_slice() != e.hash
            {
                return Ok(bad(seq.min(after + 1), checked, 1));
            }
            after = seq;
            prev = e.hash;
            checked += 1;
        }
    }
    Ok(RangeVerification {
        result: StoreVerification {
            intact: true,
            events: checked,
            checkpoints: 1,
            first_bad_seq: None,
        },
        mode: "since_checkpoint",
        checkpoint_seq: Some(cp.seq),
        from_seq: (checked > 0).then_some(cp.seq + 1),
        to_seq: (checked > 0).then_some(after),
    })
}
