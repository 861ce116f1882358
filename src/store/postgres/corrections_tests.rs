//! The `corrections` operations on PostgreSQL against the SQLite ones (see `guests_tests.rs`).

use crate::crypto::WrappedDek;
use crate::policy::Action;
use crate::store::postgres::guests::tests::kit::{self, permit, Backends, Log};
use crate::store::sqlite as sq;
use crate::store::DsrRow;

/// The operations of one backend that the scenario uses.
mod pg {
    pub use crate::store::postgres::corrections::*;
    pub use crate::store::postgres::guests::{insert_guest, insert_stay, list_stays, put_field};
}

const DSR_ROW: &str =
    "SELECT status, completed_at, receipt FROM dsr_requests WHERE request_id = $1";
const PROPOSALS: &str =
    "SELECT CAST(count(*) AS TEXT) FROM correction_requests WHERE request_id = $1";
const LAST_CHECKOUT: &str = "SELECT last_checkout FROM guests WHERE guest_id = $1";

fn dsr(request_id: &str, status: &str, received_at: &str, due_at: &str) -> DsrRow {
    DsrRow {
        request_id: request_id.into(),
        kind: "correction".into(),
        status: status.into(),
        received_at: received_at.into(),
        completed_at: None,
        due_at: due_at.into(),
        receipt: format!("receipt-{request_id}"),
        deadlines: None,
    }
}

fn names(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|f| f.to_string()).collect()
}

fn one(v: &str) -> Vec<Vec<Option<String>>> {
    vec![vec![Some(v.to_string())]]
}

macro_rules! corrections_scenario {
    ($m:ident, $c:expr, $rows:path) => {{
        let c = $c;
        let mut log = Log::default();
        let update = permit(Action::GuestUpdate);
        let decide = permit(Action::CorrectionDecide);
        let read = permit(Action::GuestRead);
        let correct = permit(Action::StayCorrect);
        let wrapped = WrappedDek {
            kek_version: 1,
            bytes: vec![7; 28],
        };
        for gid in ["g1", "g2"] {
            $m::insert_guest(c, &permit(Action::GuestCreate), gid, "t0", &wrapped).unwrap();
        }
        $m::put_field(c, &update, "g1", "name", b"name-1", "t0").unwrap();
        $m::put_field(c, &update, "g1", "mobile", b"mobile-1", "t0").unwrap();

        // Requests: r1 due first; r2 and r3 due the same day, r3 received earlier.
        let requests = [
            (
                "r2",
                "g1",
                "pending_verification",
                "2026-01-02",
                "2026-02-10",
                &["name"][..],
            ),
            (
                "r1",
                "g1",
                "pending_verification",
                "2026-01-03",
                "2026-02-01",
                &["name", "mobile"],
            ),
            (
                "r3",
                "g2",
                "pending_verification",
                "2026-01-01",
                "2026-02-10",
                &["name"],
            ),
            (
                "r4",
                "g2",
                "completed",
                "2026-01-01",
                "2026-01-05",
                &["name"],
            ),
        ];
        for (rid, gid, status, received, due, fields) in requests {
            log.result(
                &format!("insert {rid}"),
                $m::insert_correction(
                    c,
                    &update,
                    b"subject",
                    &dsr(rid, status, received, due),
                    gid,
                    &names(fields),
                    format!("proposal-{rid}").as_bytes(),
                ),
            )
            .unwrap();
        }
        let row = dsr("r5", "pending_verification", "2026-01-01", "2026-01-02");
        assert!(log
            .result(
                "insert with a decide permit",
                $m::insert_correction(c, &decide, b"s", &row, "g1", &[], b"p"),
            )
            .is_err());
        assert!(log
            .result(
                "insert a request twice",
                $m::insert_correction(
                    c,
                    &update,
                    b"s",
                    &dsr("r1", "pending_verification", "x", "y"),
                    "g1",
                    &[],
                    b"p"
                ),
            )
            .is_err());
        assert!(log
            .result(
                "insert for an unknown guest",
                $m::insert_correction(c, &update, b"s", &row, "nobody", &[], b"p"),
            )
            .is_err());

        let pending = log
            .result("pending", $m::pending_corrections(c, &decide))
            .unwrap();
        let ids: Vec<&str> = pending.iter().map(|p| p.row.request_id.as_str()).collect();
        assert_eq!(ids, ["r1", "r3", "r2"]);
        assert_eq!(pending[0].fields, ["name", "mobile"]);
        assert_eq!(pending[0].guest_id, "g1");
        assert_eq!(pending[0].ciphertext, b"proposal-r1");
        assert_eq!(pending[0].row.receipt, "receipt-r1");
        assert_eq!(pending[0].row.completed_at, None);
        assert!(log
            .result(
                "pending with an update permit",
                $m::pending_corrections(c, &update)
            )
            .is_err());
        let r2 = log
            .result("pending r2", $m::pending_correction(c, &decide, "r2"))
            .unwrap()
            .expect("r2 is pending");
        assert_eq!(
            (r2.row.due_at.as_str(), r2.guest_id.as_str()),
            ("2026-02-10", "g1")
        );
        assert!(log
            .result(
                "pending r4 (completed)",
                $m::pending_correction(c, &decide, "r4")
            )
            .unwrap()
            .is_none());
        assert!(log
            .result(
                "pending r5 (no proposal)",
                $m::pending_correction(c, &decide, "r5")
            )
            .unwrap()
            .is_none());
        assert!(log
            .result(
                "pending unknown",
                $m::pending_correction(c, &decide, "nope")
            )
            .unwrap()
            .is_none());
        assert!(log
            .result(
                "pending r2 with a read permit",
                $m::pending_correction(c, &read, "r2")
            )
            .is_err());

        // Registered values: the first value kept wins.
        log.result(
            "keep name",
            $m::keep_registered(c, &decide, "g1", "name", "t1"),
        )
        .unwrap();
        $m::put_field(c, &update, "g1", "name", b"name-2", "t1").unwrap();
        log.result(
            "keep name again",
            $m::keep_registered(c, &update, "g1", "name", "t2"),
        )
        .unwrap();
        log.result(
            "keep a missing field",
            $m::keep_registered(c, &decide, "g1", "passport", "t2"),
        )
        .unwrap();
        log.result(
            "keep of an unknown guest",
            $m::keep_registered(c, &decide, "nobody", "name", "t2"),
        )
        .unwrap();
        log.result(
            "keep mobile",
            $m::keep_registered(c, &decide, "g1", "mobile", "t3"),
        )
        .unwrap();
        assert!(log
            .result(
                "keep with a read permit",
                $m::keep_registered(c, &read, "g1", "name", "t3")
            )
            .is_err());
        assert_eq!(
            log.result("registered g1", $m::registered_values(c, &read, "g1"))
                .unwrap(),
            [
                ("mobile".to_string(), b"mobile-1".to_vec()),
                ("name".to_string(), b"name-1".to_vec()),
            ]
        );
        assert!(log
            .result(
                "registered g2",
                $m::registered_values(c, &permit(Action::GuestExport), "g2")
            )
            .unwrap()
            .is_empty());
        assert!(log
            .result(
                "registered with a decide permit",
                $m::registered_values(c, &decide, "g1")
            )
            .is_err());

        // Deciding closes a request once and deletes its proposal.
        assert!(log
            .result(
                "decide r1 with an update permit",
                $m::decide_correction(c, &update, "r1", "completed", "t4", "x")
            )
            .is_err());
        assert!(log
            .result(
                "decide r1",
                $m::decide_correction(
                    c,
                    &decide,
                    "r1",
                    "completed",
                    "2026-01-04T00:00:00Z",
                    "receipt-done"
                )
            )
            .unwrap());
        assert!(!log
            .result(
                "decide r1 again",
                $m::decide_correction(c, &decide, "r1", "rejected", "t5", "late")
            )
            .unwrap());
        assert_eq!(
            log.note("r1 row", $rows(c, DSR_ROW, "r1")),
            vec![vec![
                Some("completed".to_string()),
                Some("2026-01-04T00:00:00Z".to_string()),
                Some("receipt-done".to_string()),
            ]]
        );
        assert_eq!(
            log.note("r1 proposals", $rows(c, PROPOSALS, "r1")),
            one("0")
        );
        assert!(log
            .result(
                "decide r3",
                $m::decide_correction(c, &decide, "r3", "rejected", "t6", "no")
            )
            .unwrap());
        assert!(!log
            .result(
                "decide r4 (completed)",
                $m::decide_correction(c, &decide, "r4", "rejected", "t6", "no")
            )
            .unwrap());
        assert_eq!(
            log.note("r4 row", $rows(c, DSR_ROW, "r4"))[0][0].as_deref(),
            Some("completed")
        );
        assert_eq!(
            log.note("r4 proposals", $rows(c, PROPOSALS, "r4")),
            one("0")
        );
        assert!(!log
            .result(
                "decide r5 (no proposal)",
                $m::decide_correction(c, &decide, "r5", "completed", "t6", "x")
            )
            .unwrap());
        assert_eq!(
            log.note("r5 row", $rows(c, DSR_ROW, "r5"))[0][0].as_deref(),
            Some("pending_verification")
        );
        assert!(!log
            .result(
                "decide unknown",
                $m::decide_correction(c, &decide, "nope", "completed", "t6", "x")
            )
            .unwrap());
        let left: Vec<String> = $m::pending_corrections(c, &decide)
            .unwrap()
            .into_iter()
            .map(|p| p.row.request_id)
            .collect();
        assert_eq!(log.note("pending after", left), ["r2"]);

        // Stays: get one, correct it, delete it; last_checkout follows what remains.
        let create = permit(Action::StayCreate);
        $m::insert_stay(c, &create, "g1", "s1", "2026-03-01", "t0", b"stay-1").unwrap();
        $m::insert_stay(c, &create, "g1", "s2", "2026-03-09", "t0", b"stay-2").unwrap();
        $m::insert_stay(c, &create, "g2", "s3", "2026-03-04", "t0", b"stay-3").unwrap();
        assert_eq!(
            log.result("get s1", $m::get_stay(c, &correct, "g1", "s1"))
                .unwrap(),
            Some(b"stay-1".to_vec())
        );
        assert_eq!(
            log.result("get s1 as g2's", $m::get_stay(c, &correct, "g2", "s1"))
                .unwrap(),
            None
        );
        assert_eq!(
            log.result("get unknown", $m::get_stay(c, &correct, "g1", "nope"))
                .unwrap(),
            None
        );
        assert!(log
            .result("get with a read permit", $m::get_stay(c, &read, "g1", "s1"))
            .is_err());
        assert!(log
            .result(
                "shorten s2",
                $m::correct_stay(c, &correct, "g1", "s2", Some(("2026-03-05", b"stay-2b")))
            )
            .unwrap());
        assert_eq!(
            log.note("g1 after shorten", $rows(c, LAST_CHECKOUT, "g1")),
            one("2026-03-05")
        );
        assert!(!log
            .result(
                "correct s1 as g2's",
                $m::correct_stay(c, &correct, "g2", "s1", None)
            )
            .unwrap());
        assert_eq!(
            log.note("g2 untouched", $rows(c, LAST_CHECKOUT, "g2")),
            one("2026-03-04")
        );
        assert!(log
            .result(
                "correct with a create permit",
                $m::correct_stay(c, &create, "g1", "s1", None)
            )
            .is_err());
        assert!(log
            .result("delete s2", $m::correct_stay(c, &correct, "g1", "s2", None))
            .unwrap());
        assert_eq!(
            log.note("g1 after delete", $rows(c, LAST_CHECKOUT, "g1")),
            one("2026-03-01")
        );
        assert!(!log
            .result(
                "delete s2 again",
                $m::correct_stay(c, &correct, "g1", "s2", None)
            )
            .unwrap());
        assert!(log
            .result("delete s1", $m::correct_stay(c, &correct, "g1", "s1", None))
            .unwrap());
        assert_eq!(
            log.note("g1 without stays", $rows(c, LAST_CHECKOUT, "g1")),
            vec![vec![None]]
        );
        assert!($m::list_stays(c, &read, "g1").unwrap().is_empty());
        log
    }};
}

#[test]
fn correction_requests_registered_values_and_stay_corrections_behave_as_on_sqlite() {
    let Some(b) = Backends::create() else {
        return;
    };
    let sqlite = corrections_scenario!(sq, &b.sqlite, kit::sqlite_rows);
    let postgres = corrections_scenario!(pg, &b.pg, kit::pg_rows);
    kit::assert_same(&sqlite, &postgres);
}

/// The writer runs a unit inside a transaction. What SQLite lets pass quietly (a value kept
/// twice, a request decided twice, a stay that is not the guest's) must not raise an error
/// here either, or PostgreSQL would abort the whole transaction.
#[test]
fn repeated_decisions_do_not_abort_a_postgres_transaction() {
    let Some(b) = Backends::create() else {
        return;
    };
    let c = &b.pg;
    let update = permit(Action::GuestUpdate);
    let decide = permit(Action::CorrectionDecide);
    let wrapped = WrappedDek {
        kek_version: 1,
        bytes: vec![7; 28],
    };
    c.batch("BEGIN").unwrap();
    c.batch("SAVEPOINT unit").unwrap();
    pg::insert_guest(c, &permit(Action::GuestCreate), "g", "t0", &wrapped).unwrap();
    pg::put_field(c, &update, "g", "name", b"first", "t0").unwrap();
    let row = dsr("r", "pending_verification", "2026-01-01", "2026-01-10");
    pg::insert_correction(c, &update, b"s", &row, "g", &names(&["name"]), b"p").unwrap();
    pg::keep_registered(c, &decide, "g", "name", "t1").unwrap();
    pg::put_field(c, &update, "g", "name", b"second", "t1").unwrap();
    pg::keep_registered(c, &decide, "g", "name", "t2").unwrap();
    assert!(pg::decide_correction(c, &decide, "r", "completed", "t2", "ok").unwrap());
    assert!(!pg::decide_correction(c, &decide, "r", "completed", "t2", "ok").unwrap());
    assert!(!pg::correct_stay(c, &permit(Action::StayCorrect), "g", "none", None).unwrap());
    c.batch("RELEASE SAVEPOINT unit").unwrap();
    c.batch("COMMIT").unwrap();
    let other = b.connect_pg();
    assert_eq!(
        pg::registered_values(&other, &permit(Action::GuestRead), "g").unwrap(),
        [("name".to_string(), b"first".to_vec())]
    );
    assert_eq!(
        kit::pg_rows(&other, DSR_ROW, "r")[0][0].as_deref(),
        Some("completed")
    );
}
