//! The `keys` operations on PostgreSQL against the SQLite ones (see `guests_tests.rs`).

use crate::crypto::WrappedDek;
use crate::policy::Action;
use crate::store::postgres::guests::tests::kit::{self, permit, Backends, Log};
use crate::store::sqlite as sq;

/// The operations of one backend that the scenario uses.
mod pg {
    pub use crate::store::postgres::guests::{insert_guest, load_guest};
    pub use crate::store::postgres::keys::{dek_counts, deks_not_under, rewrap};
}

fn wrapped(version: u32, byte: u8) -> WrappedDek {
    WrappedDek {
        kek_version: version,
        bytes: vec![byte; 28],
    }
}

macro_rules! keys_scenario {
    ($m:ident, $c:expr) => {{
        let c = $c;
        let mut log = Log::default();
        let keys = permit(Action::AdminKeys);
        let read = permit(Action::GuestRead);

        assert!(log
            .result("counts of nothing", $m::dek_counts(c))
            .unwrap()
            .is_empty());
        // Inserted out of order, ids of mixed case: the order returned is bytewise by id.
        for (gid, v) in [("g3", 1), ("G9", 2), ("g1", 1), ("g2", 3), ("g0", 2)] {
            $m::insert_guest(
                c,
                &permit(Action::GuestCreate),
                gid,
                "t0",
                &wrapped(v, v as u8),
            )
            .unwrap();
        }
        assert_eq!(
            log.result("counts", $m::dek_counts(c)).unwrap(),
            [(1, 2), (2, 2), (3, 1)]
        );
        let old = log
            .result("not under 3", $m::deks_not_under(c, &keys, 3, 100))
            .unwrap();
        let ids: Vec<&str> = old.iter().map(|(g, _)| g.as_str()).collect();
        assert_eq!(ids, ["G9", "g0", "g1", "g3"]);
        assert_eq!(old[0].1, wrapped(2, 2));
        assert_eq!(
            log.result("not under 3, two", $m::deks_not_under(c, &keys, 3, 2))
                .unwrap()
                .len(),
            2
        );
        assert!(log
            .result("not under 3, none", $m::deks_not_under(c, &keys, 3, 0))
            .unwrap()
            .is_empty());
        assert!(log
            .result(
                "not under with a read permit",
                $m::deks_not_under(c, &read, 3, 10)
            )
            .is_err());

        // The rewrap is optimistic: only a row still under the version read changes.
        assert!(log
            .result(
                "rewrap g1",
                $m::rewrap(c, &keys, "g1", 1, &wrapped(3, 0x31))
            )
            .unwrap());
        assert!(!log
            .result(
                "rewrap g1 again, stale",
                $m::rewrap(c, &keys, "g1", 1, &wrapped(3, 0x32))
            )
            .unwrap());
        assert!(!log
            .result(
                "rewrap unknown",
                $m::rewrap(c, &keys, "nobody", 1, &wrapped(3, 0))
            )
            .unwrap());
        assert!(!log
            .result(
                "rewrap g0 from a wrong version",
                $m::rewrap(c, &keys, "g0", 1, &wrapped(3, 0))
            )
            .unwrap());
        assert!(log
            .result(
                "rewrap with a read permit",
                $m::rewrap(c, &read, "g3", 1, &wrapped(3, 0))
            )
            .is_err());
        let g1 = $m::load_guest(c, &read, "g1").unwrap().unwrap();
        assert_eq!(log.note("g1 key", g1.wrapped_dek), wrapped(3, 0x31));
        assert_eq!(
            log.result("counts after", $m::dek_counts(c)).unwrap(),
            [(1, 1), (2, 2), (3, 2)]
        );
        let ids: Vec<String> = $m::deks_not_under(c, &keys, 3, 100)
            .unwrap()
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        assert_eq!(log.note("not under 3 after", ids), ["G9", "g0", "g3"]);
        // A version above every stored one: all of them, whatever their version.
        assert_eq!(
            log.result("not under 7", $m::deks_not_under(c, &keys, 7, 100))
                .unwrap()
                .len(),
            5
        );
        log
    }};
}

fn compare(b: &Backends) {
    let sqlite = keys_scenario!(sq, &b.sqlite);
    let postgres = keys_scenario!(pg, &b.pg);
    kit::assert_same(&sqlite, &postgres);
}

#[test]
fn key_counts_old_deks_and_rewrap_behave_as_on_sqlite() {
    if let Some(b) = Backends::create() {
        compare(&b);
    }
}

#[test]
fn old_deks_come_in_bytewise_order_whatever_the_collation() {
    if let Some(b) = Backends::create().filter(|b| b.collate_pg_text_by_icu()) {
        compare(&b);
    }
}

/// The largest version the keyring can name round-trips through BIGINT.
#[test]
fn the_largest_kek_version_round_trips() {
    let Some(b) = Backends::create() else {
        return;
    };
    let c = &b.pg;
    let keys = permit(Action::AdminKeys);
    pg::insert_guest(c, &permit(Action::GuestCreate), "g", "t0", &wrapped(1, 1)).unwrap();
    assert!(pg::rewrap(c, &keys, "g", 1, &wrapped(u32::MAX, 2)).unwrap());
    assert_eq!(pg::dek_counts(c).unwrap(), [(u32::MAX, 1)]);
    assert_eq!(
        pg::deks_not_under(c, &keys, 1, 10).unwrap(),
        [("g".to_string(), wrapped(u32::MAX, 2))]
    );
    assert!(pg::rewrap(c, &keys, "g", u32::MAX, &wrapped(2, 3)).unwrap());
}
